"""Interlink: the integration layer for multi-tenant SaaS backends."""

__version__ = "0.1.0"
