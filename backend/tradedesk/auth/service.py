"""The three sign-in flows end here (one account row, one credentials row, one brand-new session), and
sign-out, revocation and disconnect start here: ``AuthService``, built once per API process."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Literal
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk import audit
from tradedesk.audit import Actor, AuditKind
from tradedesk.audit.schemas import DetailValue
from tradedesk.auth.pending import PendingSignInStore
from tradedesk.auth.repository import AccountRepository, BrokerCredentialsRepository
from tradedesk.auth.schemas import AuthStatus, BrokerStatus, SessionInfo
from tradedesk.brokers.credentials import BrokerCredentialsPlain, open_credentials, seal_credentials
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.brokers.kite.schemas import KiteProfile
from tradedesk.db import after_commit
from tradedesk.errors import AppError, BrokerTokenInvalid, SessionNotFound
from tradedesk.kit.clock import Clock, next_kite_token_expiry
from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError
from tradedesk.kit.repository import bind_tenant, tenant_session
from tradedesk.logs import log_tag
from tradedesk.sessions.record import SessionRecord, key_hash
from tradedesk.sessions.service import NewSession, SessionService, SignedInUser

log = logging.getLogger("tradedesk.auth")
# Status answers remembered at once (about 600 bytes each); the oldest goes first.
STATUS_JSON_REMEMBERED = 10_000

SignInMethod = Literal["redirect", "request_token", "access_token"]
# Told of every sign-in attempt's outcome: "success", or why it failed (a word the code chooses).
SignInObserver = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    api_key: str
    api_secret: str


@dataclass(frozen=True, slots=True)
class DeviceContext:
    device_id: str
    device_label: str
    ip: str | None

    def actor(self, session_handle: str | None = None) -> Actor:
        return Actor(
            ip=self.ip,
            device_id=self.device_id,
            device_label=self.device_label,
            session_handle=session_handle,
        )


def _pending_aad(state: str) -> str:
    return "signin:" + key_hash(state)


class AuthService:
    def __init__(
        self,
        *,
        sessions: SessionService,
        sessionmaker: async_sessionmaker[AsyncSession],
        pending_signins: PendingSignInStore,
        kite: KiteClient,
        cipher: CredentialCipher,
        clock: Clock,
        kite_login_url: str,
        pending_signin_ttl_s: int,
        pending_signin_max: int,
    ) -> None:
        self._sessions = sessions
        self._sessionmaker = sessionmaker
        self._pending_signins = pending_signins
        self._kite = kite
        self._cipher = cipher
        self._clock = clock
        self._kite_login_url = kite_login_url
        self._pending_signin_ttl_s = pending_signin_ttl_s
        self.pending_signin_max = pending_signin_max
        # The app's metrics exist only once the services do; they attach here.
        self.sign_in_observer: SignInObserver | None = None
        # key hash -> (record, broker connected, status JSON): see status_json.
        self._status_json: dict[str, tuple[SessionRecord, bool, bytes]] = {}
        self._signed_out_json = AuthStatus(authenticated=False).model_dump_json().encode("utf-8")

    def _count_sign_in(self, outcome: str) -> None:
        if self.sign_in_observer is not None:
            self.sign_in_observer(outcome)

    def log_sign_in_failure(
        self,
        *,
        reason: str,
        ip: str | None,
        api_key: str | None = None,
        method: SignInMethod | None = None,
    ) -> None:
        """A sign-in that failed or was refused before the broker named the account: there is no trail to
        write it to, so the operator's log gets it. Never the secret, the token or the raw key."""
        self._count_sign_in(reason)
        log.warning(
            "sign-in failed: method=%s reason=%s ip=%s api_key=%s",
            method or "-",
            reason,
            ip or "-",
            log_tag(api_key) if api_key else "-",
        )

    async def start_redirect_sign_in(self, *, api_key: str, api_secret: str) -> tuple[str, str]:
        """Keep the pending sign-in server-side under a fresh ``state``; return (login_url, state)."""
        state = secrets.token_urlsafe(32)
        now = self._clock.now()
        ttl_s = self._pending_signin_ttl_s
        payload = {
            "api_key": api_key,
            "api_secret_enc": self._cipher.encrypt(api_secret.encode("utf-8"), broker_id=_pending_aad(state)),
            "expires_at": (now + timedelta(seconds=ttl_s)).isoformat(),
        }
        await self._pending_signins.put(
            key_hash(state),
            json.dumps(payload).encode("utf-8"),
            ttl_s=ttl_s,
            now=now,
            bound=self.pending_signin_max,
        )
        query = urlencode({"v": "3", "api_key": api_key, "redirect_params": urlencode({"state": state})})
        return f"{self._kite_login_url}?{query}", state

    async def take_redirect_sign_in(self, *, state: str) -> PendingSignIn | None:
        """The pending sign-in for ``state``, consumed; None when unknown, used or expired."""
        now = self._clock.now()
        raw = await self._pending_signins.take(key_hash(state), now=now)
        if raw is None:
            return None
        try:
            payload = json.loads(raw)
            if datetime.fromisoformat(payload["expires_at"]) <= now:
                return None
            secret = self._cipher.decrypt(payload["api_secret_enc"], broker_id=_pending_aad(state))
            return PendingSignIn(api_key=str(payload["api_key"]), api_secret=secret.decode("utf-8"))
        except (ValueError, KeyError, TypeError, CredentialsDecryptError):
            log.warning("a pending sign-in could not be read and was dropped")
            return None

    async def exchange_request_token(
        self, *, api_key: str, api_secret: str, request_token: str
    ) -> SignedInUser:
        kite_session = await self._kite.generate_session(
            api_key=api_key, request_token=request_token, api_secret=api_secret
        )
        return SignedInUser(
            broker_id=kite_session.user_id,
            user_name=kite_session.user_name,
            email=kite_session.email,
            credentials=BrokerCredentialsPlain(api_key=api_key, access_token=kite_session.access_token),
            broker_token_expires_at=next_kite_token_expiry(self._clock.now()),
        )

    async def adopt_access_token(self, *, api_key: str, access_token: str) -> SignedInUser:
        try:
            profile: KiteProfile = await self._kite.profile(api_key=api_key, access_token=access_token)
        except BrokerTokenInvalid as exc:
            raise BrokerTokenInvalid(f"That access token was not accepted: {exc.detail}") from exc
        return SignedInUser(
            broker_id=profile.user_id,
            user_name=profile.user_name,
            email=profile.email,
            credentials=BrokerCredentialsPlain(api_key=api_key, access_token=access_token),
            broker_token_expires_at=next_kite_token_expiry(self._clock.now()),
        )

    async def complete_sign_in(
        self,
        db: AsyncSession,
        *,
        user: SignedInUser,
        device: DeviceContext,
        previous: SessionRecord | None,
        method: SignInMethod,
    ) -> NewSession:
        now = self._clock.now()
        await bind_tenant(db, user.broker_id)
        await AccountRepository(db, user.broker_id).record_sign_in(
            user_name=user.user_name, email=user.email, now=now
        )
        await BrokerCredentialsRepository(db, user.broker_id).replace(
            credentials_enc=seal_credentials(self._cipher, user.credentials, broker_id=user.broker_id),
            token_expires_at=user.broker_token_expires_at,
            now=now,
        )
        new = self._sessions.new_session(
            user, device_id=device.device_id, device_label=device.device_label, ip=device.ip
        )
        await audit.record(
            db,
            broker_id=user.broker_id,
            kind=AuditKind.SIGN_IN,
            at=now,
            actor=device.actor(new.record.handle),
            detail={"method": method},
        )

        async def switch_sessions() -> None:
            if previous is not None:
                # The browser's old id dies with the sign-in, whoever it belonged to.
                await self._sessions.end(previous)
            await self._sessions.store_new(new)
            self._count_sign_in("success")
            log.info("signed in broker=%s device=%s", log_tag(user.broker_id), device.device_label)

        after_commit(db, switch_sessions)
        return new

    async def _audit_by(
        self,
        db: AsyncSession,
        *,
        record: SessionRecord,
        kind: AuditKind,
        detail: Mapping[str, DetailValue] | None = None,
    ) -> None:
        """An event the signed-in user caused just now, on their own trail."""
        await audit.record(
            db,
            broker_id=record.broker_id,
            kind=kind,
            at=self._clock.now(),
            actor=Actor.of(record),
            detail=detail,
        )

    async def sign_out(self, db: AsyncSession, *, record: SessionRecord) -> None:
        """End this session, once the audit event of it has committed."""
        await self._audit_by(db, record=record, kind=AuditKind.LOGOUT)
        after_commit(db, partial(self._sessions.end, record))

    async def revoke_session(self, db: AsyncSession, *, record: SessionRecord, handle: str) -> SessionRecord:
        """End the user's session with this public handle (SessionNotFound when none has it); returns it."""
        for candidate in await self._sessions.list_for_user(record.broker_id):
            if secrets.compare_digest(candidate.handle.encode(), handle.encode()):
                await self._audit_by(
                    db,
                    record=record,
                    kind=AuditKind.SESSION_REVOKED,
                    detail={"revoked_handle": candidate.handle, "revoked_device": candidate.device_label},
                )
                after_commit(db, partial(self._sessions.end, candidate))
                return candidate
        raise SessionNotFound()

    async def revoke_other_sessions(self, db: AsyncSession, *, record: SessionRecord) -> None:
        """End every session of the user but this one; the audit event counts them."""
        others = [
            r for r in await self._sessions.list_for_user(record.broker_id) if r.key_hash != record.key_hash
        ]
        await self._audit_by(
            db, record=record, kind=AuditKind.OTHER_SESSIONS_REVOKED, detail={"sessions": len(others)}
        )
        after_commit(db, partial(self._sessions.end_all_for_user, record.broker_id, keep=record))

    def status_json(self, record: SessionRecord | None) -> bytes:
        """``status_of`` as JSON. The answer depends only on the record and on whether the broker token
        has expired, and records are immutable and shared by every request that reads the same stored
        value: the JSON made for one record object is remembered until that object, or the token's state,
        changes."""
        if record is None:
            return self._signed_out_json
        connected = self._clock.now() < record.broker_token_expires_at
        known = self._status_json.get(record.key_hash)
        if known is not None and known[0] is record and known[1] is connected:
            return known[2]
        body = self._status(record, connected=connected).model_dump_json().encode("utf-8")
        if known is None and len(self._status_json) >= STATUS_JSON_REMEMBERED:
            del self._status_json[next(iter(self._status_json))]
        self._status_json[record.key_hash] = (record, connected, body)
        return body

    def status_of(self, record: SessionRecord | None) -> AuthStatus:
        if record is None:
            return AuthStatus(authenticated=False)
        return self._status(record, connected=self._clock.now() < record.broker_token_expires_at)

    def _status(self, record: SessionRecord, *, connected: bool) -> AuthStatus:
        broker_state = "connected" if connected else "expired"
        return AuthStatus(
            authenticated=True,
            broker_id=record.broker_id,
            user_name=record.user_name,
            email=record.email,
            device_id=record.device_id,
            session_expires_at=self._sessions.expires_at(record),
            csrf_token=record.csrf_token,
            broker=BrokerStatus(state=broker_state, token_expires_at=record.broker_token_expires_at),
        )

    async def list_sessions(self, record: SessionRecord) -> list[SessionInfo]:
        """Every live session of ``record``'s user, the one ``record`` is marked current."""
        return [
            SessionInfo(
                handle=r.handle,
                device_id=r.device_id,
                device_label=r.device_label,
                ip=r.ip,
                created_at=r.created_at,
                last_seen_at=r.last_seen_at,
                expires_at=self._sessions.expires_at(r),
                current=r.key_hash == record.key_hash,
            )
            for r in await self._sessions.list_for_user(record.broker_id)
        ]

    async def disconnect(self, db: AsyncSession, *, record: SessionRecord) -> None:
        """Invalidate every access token the user's sessions and stored credentials hold, wipe the stored
        credentials, end every session of the user. The broker calls run between two short transactions,
        so a slow broker holds no database connection; credentials stored meanwhile are wiped all the same."""
        ciphertexts = {r.credentials_enc for r in await self._sessions.list_for_user(record.broker_id)}
        ciphertexts.add(record.credentials_enc)
        async with tenant_session(self._sessionmaker, record.broker_id) as read:
            stored = await BrokerCredentialsRepository(read, record.broker_id).get()
            if stored is not None:
                ciphertexts.add(stored.credentials_enc)
        tokens: dict[str, BrokerCredentialsPlain] = {}
        for ciphertext in ciphertexts:
            try:
                credentials = open_credentials(self._cipher, ciphertext, broker_id=record.broker_id)
            except CredentialsDecryptError:
                continue
            tokens[credentials.access_token] = credentials
        for credentials in tokens.values():
            try:
                await self._kite.invalidate_token(
                    api_key=credentials.api_key, access_token=credentials.access_token
                )
            except BrokerTokenInvalid:
                pass  # already dead at the broker: nothing left to invalidate
            except AppError as exc:
                # The user asked to be cut off; local wiping must not depend on the broker answering.
                log.warning(
                    "broker logout failed for broker=%s: %s", log_tag(record.broker_id), type(exc).__name__
                )
        await bind_tenant(db, record.broker_id)
        await BrokerCredentialsRepository(db, record.broker_id).wipe()
        await self._audit_by(
            db, record=record, kind=AuditKind.DISCONNECT, detail={"broker_tokens_invalidated": len(tokens)}
        )

        async def end_sessions() -> None:
            await self._sessions.end_all_for_user(record.broker_id)
            log.info(
                "disconnected broker=%s (%d broker tokens invalidated)",
                log_tag(record.broker_id),
                len(tokens),
            )

        after_commit(db, end_sessions)
