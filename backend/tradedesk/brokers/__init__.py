"""Broker integrations."""
