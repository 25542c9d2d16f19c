"""Cross-cutting building blocks: settings, database, enums, ids, crypto, errors, audit, tenancy."""
