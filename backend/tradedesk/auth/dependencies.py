"""What /api/auth's handlers get from the process: the auth service, the sign-in limiter and cookie,
and the device a request comes from."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from tradedesk.auth.cookies import SignInCookieTransport
from tradedesk.auth.devices import device_label
from tradedesk.auth.limits import SignInLimiter
from tradedesk.auth.service import AuthService, DeviceContext
from tradedesk.deps import api_services
from tradedesk.sessions.dependencies import SessionCookies, client_ip


async def get_auth_service(request: Request) -> AuthService:
    return api_services(request).auth


async def get_sign_in_limiter(request: Request) -> SignInLimiter:
    return api_services(request).sign_in_limiter


async def get_sign_in_cookie(request: Request) -> SignInCookieTransport:
    return api_services(request).sign_in_cookie


async def get_device(request: Request, cookies: SessionCookies) -> DeviceContext:
    """The browser's device id (a new one when it has none yet), its label and its address."""
    return DeviceContext(
        device_id=cookies.device_id(request) or secrets.token_urlsafe(16),
        device_label=device_label(request.headers.get("user-agent")),
        ip=client_ip(request),
    )


Auth = Annotated[AuthService, Depends(get_auth_service)]
SignInLimits = Annotated[SignInLimiter, Depends(get_sign_in_limiter)]
SignInCookie = Annotated[SignInCookieTransport, Depends(get_sign_in_cookie)]
Device = Annotated[DeviceContext, Depends(get_device)]
