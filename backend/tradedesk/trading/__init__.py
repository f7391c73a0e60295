"""Fills, round-trip trades, P&L, daily stats, positions and broker sync, per user."""
