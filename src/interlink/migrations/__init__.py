"""Alembic migrations, shipped inside the package so `interlink migrate` works anywhere."""
