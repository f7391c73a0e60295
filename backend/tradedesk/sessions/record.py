"""What a session holds, and its stored form. Only the sha256 of its id is ever stored; credentials are
ciphertext; the stored bytes carry a MAC bound to their store key."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger("tradedesk.sessions")

_FORMAT = b"m1:"
_MAC_HEX = 64
_BODY_AT = len(_FORMAT) + _MAC_HEX + 1
# Separates the record MAC's key from the cookie signer's (itsdangerous derives those from salts).
_MAC_KEY_LABEL = b"tradedesk.session-record.mac.v1"


# A session id opens with its user's slot tag, so the store can find the user's Redis Cluster slot from the
# cookie alone. The tag is a hash of the broker id: the cookie names no account in the clear.
SLOT_TAG_LEN = 8
SESSION_ID_LEN = SLOT_TAG_LEN + 43  # the tag, then secrets.token_urlsafe(32)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def slot_tag(broker_id: str) -> str:
    """The Redis Cluster hash tag of every key of one user's sessions."""
    return hashlib.sha256(b"tradedesk.session-slot:" + broker_id.encode("utf-8")).hexdigest()[:SLOT_TAG_LEN]


def new_session_id(broker_id: str) -> str:
    return slot_tag(broker_id) + secrets.token_urlsafe(32)


def session_key_hash(session_id: str) -> str:
    """What is stored for a session id: its slot tag, then its sha256 (cut to keep 64 characters)."""
    return session_id[:SLOT_TAG_LEN] + key_hash(session_id)[: 64 - SLOT_TAG_LEN]


def slot_tag_of(session_key_hash: str) -> str:
    return session_key_hash[:SLOT_TAG_LEN]


def is_session_id(value: str) -> bool:
    tag = value[:SLOT_TAG_LEN]
    return len(value) == SESSION_ID_LEN and all(c in "0123456789abcdef" for c in tag)


class SessionRecord(BaseModel):
    """One signed-in browser. Immutable: a process shares one decoded copy among all the requests that
    read it, and a change is a new record (``model_copy(update=...)``) written back to the store."""

    model_config = ConfigDict(frozen=True)

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


class SessionRecordCodec:
    """Stored form ``m1:<hex HMAC-SHA256>:<JSON>``. The MAC covers the store key hash and the JSON, under
    a key derived from each secret key (the first MACs, all verify): write access to the store alone
    cannot change a record's broker_id or move a record under another key. A record that fails the
    check reads as absent."""

    def __init__(self, secret_keys: list[str]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed")
        # Keyed once: copying a keyed HMAC is cheaper than keying one on every request.
        self._macs = [
            hmac.new(hmac.digest(k.encode("utf-8"), _MAC_KEY_LABEL, "sha256"), digestmod=hashlib.sha256)
            for k in secret_keys
        ]

    def encode(self, record: SessionRecord) -> bytes:
        body = record.model_dump_json().encode("utf-8")
        return _FORMAT + _mac(self._macs[0], record.key_hash, body) + b":" + body

    def decode(self, raw: bytes | str, *, key_hash: str) -> SessionRecord | None:
        """The record stored under ``key_hash``, or None (logged) when its MAC does not verify."""
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        sent, body = data[len(_FORMAT) : _BODY_AT - 1], data[_BODY_AT:]
        if (
            data[: len(_FORMAT)] != _FORMAT
            or data[_BODY_AT - 1 : _BODY_AT] != b":"
            or not any(hmac.compare_digest(sent, _mac(k, key_hash, body)) for k in self._macs)
        ):
            log.warning(
                "a stored session record failed its integrity check and was ignored (key %.12s)", key_hash
            )
            return None
        try:
            return SessionRecord.model_validate_json(body)
        except ValidationError:
            log.warning(
                "a stored session record has an unexpected shape and was ignored (key %.12s)", key_hash
            )
            return None


def _mac(keyed: hmac.HMAC, key_hash: str, body: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(key_hash.encode("ascii"))
    mac.update(b"\x00")
    mac.update(body)
    return mac.hexdigest().encode("ascii")
