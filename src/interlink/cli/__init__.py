"""The ``interlink`` command line."""
