"""Session lifecycle: issue on sign-in, resolve a cookie (expiry rules), list and revoke."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradedesk.brokers.credentials import BrokerCredentialsPlain, open_credentials, seal_credentials
from tradedesk.config import Settings
from tradedesk.kit.clock import Clock
from tradedesk.kit.crypto import CredentialCipher
from tradedesk.kit.signing import CookieSigner
from tradedesk.sessions.record import SessionRecord, is_session_id, new_session_id, session_key_hash
from tradedesk.sessions.store import SessionStore


@dataclass(frozen=True, slots=True)
class NewSession:
    cookie_value: str
    record: SessionRecord


@dataclass(frozen=True, slots=True)
class SignedInUser:
    broker_id: str
    user_name: str
    email: str | None
    credentials: BrokerCredentialsPlain
    broker_token_expires_at: datetime


class SessionService:
    def __init__(
        self,
        *,
        store: SessionStore,
        settings: Settings,
        clock: Clock,
        cipher: CredentialCipher,
    ) -> None:
        self.store = store
        self._settings = settings
        self._clock = clock
        self._cipher = cipher
        self._signer = CookieSigner(settings.effective_secret_keys, salt="tradedesk.session")
        self._idle_timeout = timedelta(seconds=settings.session_idle_timeout_s)
        self._touch_interval = timedelta(seconds=settings.session_touch_interval_s)

    def now(self) -> datetime:
        return self._clock.now()

    def encrypt_credentials(self, credentials: BrokerCredentialsPlain, *, broker_id: str) -> str:
        return seal_credentials(self._cipher, credentials, broker_id=broker_id)

    def decrypt_credentials(self, ciphertext: str, *, broker_id: str) -> BrokerCredentialsPlain:
        """Raises CredentialsDecryptError when no configured key opens it (or it is not ours)."""
        return open_credentials(self._cipher, ciphertext, broker_id=broker_id)

    def credentials_of(self, record: SessionRecord) -> BrokerCredentialsPlain:
        return self.decrypt_credentials(record.credentials_enc, broker_id=record.broker_id)

    def expires_at(self, record: SessionRecord) -> datetime:
        """When the session ends unless it is used again: its idle end or its absolute end, the earlier.
        The one place this rule lives (the store's expiry, the status and the device list all read it)."""
        return min(record.last_seen_at + self._idle_timeout, record.absolute_expires_at)

    def new_session(
        self,
        user: SignedInUser,
        *,
        device_id: str,
        device_label: str,
        ip: str | None,
    ) -> NewSession:
        """A brand-new session id and CSRF token, whatever the browser sent (no fixation). Not yet
        stored: ``store_new`` does that."""
        now = self.now()
        session_id = new_session_id(user.broker_id)
        record = SessionRecord(
            key_hash=session_key_hash(session_id),
            handle=secrets.token_urlsafe(12),
            broker_id=user.broker_id,
            user_name=user.user_name,
            email=user.email,
            device_id=device_id,
            device_label=device_label,
            ip=ip,
            created_at=now,
            last_seen_at=now,
            auth_time=now,
            absolute_expires_at=now + timedelta(seconds=self._settings.session_absolute_timeout_s),
            csrf_token=secrets.token_urlsafe(32),
            credentials_enc=self.encrypt_credentials(user.credentials, broker_id=user.broker_id),
            broker_token_expires_at=user.broker_token_expires_at,
        )
        return NewSession(cookie_value=self._signer.sign(session_id), record=record)

    async def store_new(self, new: NewSession) -> None:
        await self.store.create(new.record, expires_at=self.expires_at(new.record), now=self.now())

    def key_hash_of_cookie(self, cookie_value: str | None) -> str | None:
        """The store key for a cookie, or None for a bad signature (checked without touching the store)."""
        if not cookie_value:
            return None
        session_id = self._signer.unsign(cookie_value, max_age_s=self._settings.session_absolute_timeout_s)
        if session_id is None or not is_session_id(session_id):
            return None
        return session_key_hash(session_id)

    async def resolve(self, cookie_value: str | None, *, ip: str | None = None) -> SessionRecord | None:
        """The live session behind a cookie, or None. One store read (with Redis, from the process's tracked
        copy: no round trip in the steady state), and a write at most once per touch interval."""
        hashed = self.key_hash_of_cookie(cookie_value)
        if hashed is None:
            return None
        record = await self.store.load(hashed, idle_timeout_s=self._settings.session_idle_timeout_s)
        if record is None or record.key_hash != hashed:
            return None
        now = self.now()
        if now >= self.expires_at(record):
            await self.store.delete(record)
            return None
        if now - record.last_seen_at >= self._touch_interval:
            record = record.model_copy(update={"last_seen_at": now, "ip": ip or record.ip})
            if not await self.store.save(record, expires_at=self.expires_at(record), now=now):
                return None  # revoked between the read and the write
        return record

    async def end(self, record: SessionRecord) -> None:
        await self.store.delete(record)

    async def list_for_user(self, broker_id: str) -> list[SessionRecord]:
        now = self.now()
        records = await self.store.list_for_user(broker_id, now=now)
        live = [r for r in records if now < self.expires_at(r)]
        for stale in (r for r in records if r not in live):
            await self.store.delete(stale)
        return sorted(live, key=lambda r: r.created_at)

    async def end_all_for_user(self, broker_id: str, *, keep: SessionRecord | None = None) -> int:
        return await self.store.delete_for_user(
            broker_id, now=self.now(), keep_key_hash=keep.key_hash if keep else None
        )
