"""Connections to providers: the provider catalogue (more to come: connectors, connections,
credentials and OAuth2, health checks)."""
