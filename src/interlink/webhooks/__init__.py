"""Webhooks: event types, endpoints, signed delivery over several channels, replay, inbound."""
