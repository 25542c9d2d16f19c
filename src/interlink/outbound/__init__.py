"""Outbound HTTP: the one transport every outgoing request (webhooks, API calls) goes through."""
