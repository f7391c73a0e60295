"""Signing in with Kite (redirect, request token, access token), and managing one's own sessions."""
