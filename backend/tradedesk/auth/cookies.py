"""The sign-in cookie: binds a redirect sign-in's ``state`` to the browser that started it, until the
broker sends that browser back to the callback."""

from __future__ import annotations

from typing import Literal

from starlette.requests import HTTPConnection
from starlette.responses import Response

from tradedesk.config import Settings
from tradedesk.kit.signing import CookieSigner

CALLBACK_PATH = "/api/auth/callback"


class SignInCookieTransport:
    def __init__(self, settings: Settings, *, signer: CookieSigner) -> None:
        self._name = settings.signin_cookie_name
        self._max_age_s = settings.pending_signin_ttl_s
        self._secure = settings.cookie_secure
        # The broker sends the browser back with a top-level cross-site GET: Lax still carries it.
        self._samesite: Literal["lax", "none"] = "none" if settings.cookie_samesite == "none" else "lax"
        self._path = "/" if settings.cookie_secure else CALLBACK_PATH
        self._signer = signer

    def set(self, response: Response, *, state: str) -> None:
        response.set_cookie(
            self._name,
            self._signer.sign(state),
            max_age=self._max_age_s,
            path=self._path,
            secure=self._secure,
            httponly=True,
            samesite=self._samesite,
        )

    def bound_state(self, connection: HTTPConnection) -> str | None:
        """The ``state`` this browser started a sign-in with, or None (absent, forged or too old)."""
        signed = connection.cookies.get(self._name)
        return self._signer.unsign(signed, max_age_s=self._max_age_s) if signed else None

    def clear(self, response: Response) -> None:
        response.delete_cookie(self._name, path=self._path, secure=self._secure, httponly=True)
