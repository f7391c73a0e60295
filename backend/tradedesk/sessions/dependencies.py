"""Request dependencies: cookie -> signature -> store -> SessionRecord, with the CSRF check for
unsafe methods. Handlers receive records, never raw cookies; the session service and the cookie
transport come from the process's services."""

from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie
from sqlalchemy.ext.asyncio import AsyncSession

from tradedesk.db import DbSession
from tradedesk.deps import api_services
from tradedesk.errors import CsrfFailed, NotAuthenticated
from tradedesk.kit.repository import bind_tenant
from tradedesk.middleware import UNSAFE_METHODS
from tradedesk.sessions.cookies import SessionCookieTransport
from tradedesk.sessions.record import SessionRecord
from tradedesk.sessions.service import SessionService


async def get_session_service(request: Request) -> SessionService:
    return api_services(request).sessions


async def get_session_cookies(request: Request) -> SessionCookieTransport:
    return api_services(request).cookies


Sessions = Annotated[SessionService, Depends(get_session_service)]
SessionCookies = Annotated[SessionCookieTransport, Depends(get_session_cookies)]


class SessionCookie(APIKeyCookie):
    """The session dependency and its OpenAPI security scheme in one object: cookie -> signature ->
    store -> record. The real cookie name comes from settings (``__Host-`` prefixed when Secure)."""

    async def __call__(self, request: Request) -> SessionRecord | None:  # type: ignore[override]
        return await session_of(request)


async def session_of(request: Request) -> SessionRecord | None:
    """The request's live session, or None; remembered on the request for the logs."""
    services = api_services(request)
    cookie = services.cookies.read(request)
    record = await services.sessions.resolve(cookie, ip=client_ip(request))
    request.state.session = record
    return record


get_optional_session = SessionCookie(
    name="tradedesk",
    scheme_name="SessionCookie",
    description="Signed session cookie `tradedesk` (`__Host-tradedesk` when cookies are Secure). "
    "Unsafe methods also need the session's CSRF token in `X-CSRF-Token`.",
    auto_error=False,
)


@functools.lru_cache(maxsize=4096)
def _as_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def client_ip(request: Request) -> str | None:
    """The client's address (as the server, or a trusted proxy, named it) when it parses as an IP
    address; anything else is None, so a stored session's ip is always an address or nothing."""
    host = request.client.host if request.client else None
    return _as_ip(host) if host else None


OptionalSession = Annotated[SessionRecord | None, Depends(get_optional_session)]


async def get_current_session(request: Request, record: OptionalSession) -> SessionRecord:
    if record is None:
        raise NotAuthenticated()
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get("x-csrf-token", "")
        if not sent or not hmac.compare_digest(sent.encode("utf-8"), record.csrf_token.encode("utf-8")):
            raise CsrfFailed()
    return record


CurrentSession = Annotated[SessionRecord, Depends(get_current_session)]


async def get_tenant_db(db: DbSession, record: CurrentSession) -> AsyncSession:
    """The request's transaction, bound to the session's broker_id (row-level security on PostgreSQL)."""
    await bind_tenant(db, record.broker_id)
    return db


TenantDb = Annotated[AsyncSession, Depends(get_tenant_db)]
