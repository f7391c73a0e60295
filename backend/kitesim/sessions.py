"""Request tokens (from the login page) and access tokens (``POST /session/token``), with their lifetimes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from kitesim.accounts import DemoApp
from kitesim.clock import next_token_expiry
from kitesim.errors import (
    EXPIRED_ACCESS_TOKEN,
    EXPIRED_REQUEST_TOKEN,
    INVALID_ACCESS_TOKEN,
    INVALID_CHECKSUM,
    INVALID_REQUEST_TOKEN,
    USED_REQUEST_TOKEN,
    TokenError,
)

# Long enough past expiry that a client still hears "expired" rather than "invalid", yet bounded.
FORGET_AFTER = timedelta(days=1)

_ALPHANUMERIC = string.ascii_letters + string.digits


def random_token(length: int = 32) -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def session_checksum(*, api_key: str, request_token: str, api_secret: str) -> str:
    return hashlib.sha256(f"{api_key}{request_token}{api_secret}".encode()).hexdigest()


@dataclass(slots=True)
class RequestToken:
    token: str
    api_key: str
    user_id: str
    issued_at: datetime
    used: bool = False


@dataclass(frozen=True, slots=True)
class AccessToken:
    access_token: str
    public_token: str
    enctoken: str
    api_key: str
    user_id: str
    issued_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class SessionBook:
    """Every token handed out; a user may hold several access tokens at once (one per sign-in)."""

    def __init__(self, *, request_token_ttl_s: float) -> None:
        self.request_token_ttl = timedelta(seconds=request_token_ttl_s)
        self.request_tokens: dict[str, RequestToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}

    def issue_request_token(self, *, api_key: str, user_id: str, now: datetime) -> RequestToken:
        self._forget_request_tokens(now)
        issued = RequestToken(token=random_token(), api_key=api_key, user_id=user_id, issued_at=now)
        self.request_tokens[issued.token] = issued
        return issued

    def redeem_request_token(
        self, *, app: DemoApp, request_token: str, checksum: str, now: datetime
    ) -> RequestToken:
        """Check the checksum, then the token; consume it only when both are good."""
        expected = session_checksum(
            api_key=app.api_key, request_token=request_token, api_secret=app.api_secret.get_secret_value()
        )
        # Checked first, so that a caller without the app's secret learns nothing about which tokens exist.
        if not hmac.compare_digest(expected.encode(), checksum.strip().lower().encode()):
            raise TokenError(INVALID_CHECKSUM)
        issued = self.request_tokens.get(request_token)
        if issued is None or issued.api_key != app.api_key:
            raise TokenError(INVALID_REQUEST_TOKEN)
        if issued.used:
            raise TokenError(USED_REQUEST_TOKEN)
        if now - issued.issued_at > self.request_token_ttl:
            raise TokenError(EXPIRED_REQUEST_TOKEN)
        issued.used = True
        return issued

    def issue_access_token(self, *, api_key: str, user_id: str, now: datetime) -> AccessToken:
        self._forget_access_tokens(now)
        issued = AccessToken(
            access_token=random_token(),
            public_token=random_token(),
            enctoken=secrets.token_urlsafe(48),
            api_key=api_key,
            user_id=user_id,
            issued_at=now,
            expires_at=next_token_expiry(now),
        )
        self.access_tokens[issued.access_token] = issued
        return issued

    def resolve_access_token(self, *, api_key: str, access_token: str, now: datetime) -> AccessToken:
        issued = self.access_tokens.get(access_token)
        if issued is None or issued.api_key != api_key:
            raise TokenError(INVALID_ACCESS_TOKEN)
        if issued.expired(now):
            raise TokenError(EXPIRED_ACCESS_TOKEN)
        return issued

    def revoke_access_token(self, *, api_key: str, access_token: str) -> AccessToken:
        issued = self.access_tokens.get(access_token)
        if issued is None or issued.api_key != api_key:
            raise TokenError(INVALID_ACCESS_TOKEN)
        del self.access_tokens[access_token]
        return issued

    def _forget_request_tokens(self, now: datetime) -> None:
        horizon = now - self.request_token_ttl - FORGET_AFTER
        stale = [key for key, token in self.request_tokens.items() if token.issued_at < horizon]
        for key in stale:
            del self.request_tokens[key]

    def _forget_access_tokens(self, now: datetime) -> None:
        horizon = now - FORGET_AFTER
        stale = [key for key, token in self.access_tokens.items() if token.expires_at < horizon]
        for key in stale:
            del self.access_tokens[key]
