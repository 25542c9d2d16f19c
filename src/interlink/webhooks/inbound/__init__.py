"""Inbound webhooks: providers post to ``/v1/inbound/{sourceId}``, verified by a signature scheme."""
