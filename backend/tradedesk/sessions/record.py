"""What a session holds. Only the sha256 of its id is ever stored; credentials are ciphertext."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel


def key_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


class SessionRecord(BaseModel):
    key_hash: str
    handle: str
    broker_id: str
    user_name: str
    email: str | None
    device_id: str
    device_label: str
    ip: str | None
    created_at: datetime
    last_seen_at: datetime
    auth_time: datetime
    absolute_expires_at: datetime
    csrf_token: str
    # AES-GCM ciphertext of {"api_key", "access_token"}, bound to broker_id.
    credentials_enc: str
    broker_token_expires_at: datetime

    def dump(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def load(cls, raw: bytes | str) -> SessionRecord:
        return cls.model_validate_json(raw)
