"""Session records as a store would hold them, for store, row-level security and key rotation tests."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from tradedesk.sessions.record import SessionRecord, new_session_id, session_key_hash


def make_record(
    broker_id: str = "AB1234", *, now: datetime, credentials_enc: str = "ciphertext"
) -> SessionRecord:
    return SessionRecord(
        key_hash=session_key_hash(new_session_id(broker_id)),
        handle=secrets.token_urlsafe(12),
        broker_id=broker_id,
        user_name="Asha Rao",
        email="asha@example.com",
        device_id="dev-1",
        device_label="Firefox on Linux",
        ip="203.0.113.7",
        created_at=now,
        last_seen_at=now,
        auth_time=now,
        absolute_expires_at=now + timedelta(days=7),
        csrf_token=secrets.token_urlsafe(32),
        credentials_enc=credentials_enc,
        broker_token_expires_at=now + timedelta(hours=20),
    )
