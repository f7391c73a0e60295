"""The storage contract both backends honour; the expiry rules live above it, in the service."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from tradedesk.sessions.record import SessionRecord


class SessionStore(Protocol):
    async def create(self, record: SessionRecord, *, expires_at: datetime, now: datetime) -> None:
        """Store a new record and add it to its user's index."""

    async def load(self, key_hash: str, *, idle_timeout_s: int) -> SessionRecord | None:
        """The record, or None; at most one round trip. Never writes an unknown key."""

    async def save(self, record: SessionRecord, *, expires_at: datetime, now: datetime) -> bool:
        """Overwrite an existing record only, its storage life running to ``expires_at`` (this write is what
        slides the idle expiry); False when it is gone (revoked meanwhile)."""

    async def delete(self, record: SessionRecord) -> None:
        """Remove the record and its index entry."""

    async def list_for_user(self, broker_id: str, *, now: datetime) -> list[SessionRecord]:
        """Every stored session of this user, purging index entries whose record is gone."""

    async def delete_for_user(
        self, broker_id: str, *, now: datetime, keep_key_hash: str | None = None
    ) -> int:
        """End every session of this user but ``keep_key_hash``; returns how many ended."""

    async def ping(self) -> None:
        """Raise ServiceUnavailable when the backend cannot answer."""

    async def close(self) -> None: ...
