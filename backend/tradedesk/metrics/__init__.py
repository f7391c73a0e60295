"""Prometheus metrics: one registry per app, request timing middleware, and `/metrics` on the API (behind a
bearer token) or on its own loopback port."""
