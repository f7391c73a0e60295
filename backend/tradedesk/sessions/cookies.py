"""The session cookie and the device cookie: the one place that knows their names, flags and lifetimes."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

from tradedesk.config import Settings
from tradedesk.kit.signing import CookieSigner


class SessionCookieTransport:
    """Reads, sets and clears the browser's session cookie (``__Host-`` prefixed when Secure), and the
    long-lived signed device cookie that lets one browser keep its identity across sign-ins."""

    def __init__(self, settings: Settings, *, device_signer: CookieSigner) -> None:
        self.name = settings.session_cookie_name
        self._device_name = settings.device_cookie_name
        self._session_max_age_s = settings.session_absolute_timeout_s
        self._device_max_age_s = settings.device_cookie_max_age_s
        self._secure = settings.cookie_secure
        self._samesite = settings.cookie_samesite
        self._device_signer = device_signer

    def read(self, connection: HTTPConnection) -> str | None:
        return connection.cookies.get(self.name)

    def device_id(self, connection: HTTPConnection) -> str | None:
        """The device id this browser was given before, or None (absent, forged or too old)."""
        signed = connection.cookies.get(self._device_name)
        return self._device_signer.unsign(signed, max_age_s=self._device_max_age_s) if signed else None

    def set(self, response: Response, *, session_value: str, device_id: str) -> None:
        response.set_cookie(
            self.name,
            session_value,
            max_age=self._session_max_age_s,
            path="/",
            secure=self._secure,
            httponly=True,
            samesite=self._samesite,
        )
        response.set_cookie(
            self._device_name,
            self._device_signer.sign(device_id),
            max_age=self._device_max_age_s,
            path="/",
            secure=self._secure,
            httponly=True,
            samesite=self._samesite,
        )

    def clear(self, response: Response) -> None:
        """Ends the session cookie; the device cookie stays, so the browser is recognised next time."""
        response.delete_cookie(
            self.name, path="/", secure=self._secure, httponly=True, samesite=self._samesite
        )
