"""/api/auth: sign-in flows, status, sign-out, and the user's own device sessions."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from tradedesk.auth.dependencies import Auth, Device, SignInCookie, SignInLimits
from tradedesk.auth.limits import SignInLimiter
from tradedesk.auth.pending import TooManySignInsPending
from tradedesk.auth.schemas import (
    URL_SAFE_TOKEN,
    AuthenticateRequest,
    AuthStatus,
    LoginRequest,
    LoginResponse,
    SessionInfo,
    SetAccessTokenRequest,
)
from tradedesk.auth.service import AuthService, SignInMethod
from tradedesk.db import DbSession
from tradedesk.deps import AppSettings, api_services
from tradedesk.errors import (
    AppError,
    BrokerTimeout,
    BrokerUnavailable,
    ErrorBody,
    SignInRejected,
    TooManyRequests,
    ValidationErrorBody,
)
from tradedesk.kit.routes import RequestOnlyRoute
from tradedesk.sessions.dependencies import (
    CurrentSession,
    OptionalSession,
    SessionCookies,
    TenantDb,
    client_ip,
    session_of,
)

router = APIRouter(prefix="/api/auth", tags=["auth"])

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The body is not valid JSON"},
    401: {"model": ErrorBody, "description": "No session, or the broker rejected the sign-in"},
    403: {"model": ErrorBody, "description": "Origin or CSRF check failed"},
    429: {"model": ErrorBody, "description": "Too many sign-in attempts; see Retry-After"},
    422: {"model": ValidationErrorBody, "description": "A field is missing or has the wrong type"},
}
_LOGIN_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    503: {"model": ErrorBody, "description": "Too many sign-ins are in progress; see Retry-After"},
}


async def limit_sign_in_attempts(request: Request, limits: SignInLimits, auth: Auth) -> None:
    ip = client_ip(request)
    retry_after = await limits.hit_address(ip)
    if retry_after is not None:
        auth.log_sign_in_failure(reason="address_rate_limited", ip=ip)
        raise TooManyRequests(
            f"Too many sign-in attempts from this address; try again in {retry_after} seconds.",
            retry_after_s=retry_after,
        )


SignInAttempt = Depends(limit_sign_in_attempts)


async def _limit_attempts_per_key(
    limits: SignInLimiter, auth: AuthService, *, ip: str | None, api_key: str
) -> None:
    """Each attempt costs a broker call on this api_key: rotating addresses must not buy more of them."""
    retry_after = await limits.hit_key(api_key)
    if retry_after is not None:
        auth.log_sign_in_failure(reason="api_key_rate_limited", ip=ip, api_key=api_key)
        raise TooManyRequests(
            f"Too many sign-in attempts with this api_key; try again in {retry_after} seconds.",
            retry_after_s=retry_after,
        )


@asynccontextmanager
async def _failures_logged(
    auth: AuthService, *, ip: str | None, method: SignInMethod, api_key: str
) -> AsyncIterator[None]:
    """A broker exchange that fails has no account to audit yet: the operator's log gets it instead."""
    try:
        yield
    except AppError as exc:
        auth.log_sign_in_failure(method=method, reason=exc.name, ip=ip, api_key=api_key)
        raise


async def auth_status(request: Request) -> Response:
    """Who is signed in on this browser, the CSRF token for unsafe requests, and the broker token's state."""
    # The SPA asks this on every load and focus: it resolves the session itself rather than through two
    # dependencies, and its route calls it directly (RequestOnlyRoute).
    record = await session_of(request)
    return Response(api_services(request).auth.status_json(record), media_type="application/json")


# First in the table: the SPA polls it, and routes are matched in order.
router.add_api_route(
    "/status",
    auth_status,
    methods=["GET"],
    response_model=AuthStatus,
    operation_id="auth-status",
    openapi_extra={"security": [{"SessionCookie": []}]},
    route_class_override=RequestOnlyRoute,
)


@router.post(
    "/login",
    response_model=LoginResponse,
    operation_id="auth-login",
    responses=_LOGIN_ERRORS,
    dependencies=[SignInAttempt],
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    auth: Auth,
    limits: SignInLimits,
    signin_cookie: SignInCookie,
) -> LoginResponse:
    """Start the redirect sign-in: returns the broker's login URL and binds `state` to this browser."""
    ip = client_ip(request)
    await _limit_attempts_per_key(limits, auth, ip=ip, api_key=body.api_key)
    try:
        login_url, state = await auth.start_redirect_sign_in(
            api_key=body.api_key, api_secret=body.api_secret.get_secret_value()
        )
    except TooManySignInsPending:
        auth.log_sign_in_failure(
            method="redirect", reason="pending_bound_reached", ip=ip, api_key=body.api_key
        )
        raise
    signin_cookie.set(response, state=state)
    return LoginResponse(login_url=login_url, state=state)


@router.get(
    "/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    operation_id="auth-callback",
    responses={303: {"description": "To the SPA, signed in, or with `?error=…`"}},
)
async def callback(
    request: Request,
    auth: Auth,
    settings: AppSettings,
    signin_cookie: SignInCookie,
    cookies: SessionCookies,
    device: Device,
    db: DbSession,
    previous: OptionalSession,
    # Unconstrained here on purpose: whatever arrives, the browser goes back to the SPA with `?error=`
    # rather than to a JSON error page; the handler checks each value's shape itself.
    request_token: Annotated[str | None, Query()] = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    state: Annotated[str | None, Query()] = None,
) -> RedirectResponse:
    """Where the broker sends the browser back; finishes the redirect sign-in and goes to the SPA."""

    def to_spa(error: str | None = None, message: str | None = None) -> RedirectResponse:
        if error:
            auth.log_sign_in_failure(method="redirect", reason=error, ip=client_ip(request))
        query = urlencode({k: v for k, v in (("error", error), ("message", message)) if v})
        redirect = RedirectResponse(
            settings.spa_url + (f"/?{query}" if query else "/"), status_code=status.HTTP_303_SEE_OTHER
        )
        signin_cookie.clear(redirect)
        return redirect

    bound_state = signin_cookie.bound_state(request)
    # Only what this API hands out as a state is looked at any further (ASCII, URL-safe).
    if (
        not state
        or not URL_SAFE_TOKEN.fullmatch(state)
        or bound_state is None
        or not hmac.compare_digest(bound_state.encode("utf-8"), state.encode("ascii"))
    ):
        return to_spa("invalid_state", "This sign-in link is not valid in this browser; start again.")
    pending = await auth.take_redirect_sign_in(state=state)
    if pending is None:
        return to_spa("invalid_state", "This sign-in has expired or was already used; start again.")
    if status_ != "success" or not request_token:
        return to_spa("signin_cancelled", "The broker did not complete the sign-in.")
    if not URL_SAFE_TOKEN.fullmatch(request_token):
        return to_spa("broker_rejected", "The broker's answer could not be read; start again.")
    try:
        user = await auth.exchange_request_token(
            api_key=pending.api_key, api_secret=pending.api_secret, request_token=request_token
        )
        new = await auth.complete_sign_in(db, user=user, device=device, previous=previous, method="redirect")
    except SignInRejected as exc:
        return to_spa("broker_rejected", exc.detail)
    except (BrokerUnavailable, BrokerTimeout) as exc:
        return to_spa("broker_unavailable", exc.detail)
    except AppError as exc:
        return to_spa("signin_failed", exc.detail)
    redirect = to_spa()
    cookies.set(redirect, session_value=new.cookie_value, device_id=new.record.device_id)
    return redirect


@router.post(
    "/authenticate",
    response_model=AuthStatus,
    operation_id="auth-authenticate",
    responses=_ERRORS,
    dependencies=[SignInAttempt],
)
async def authenticate(
    body: AuthenticateRequest,
    response: Response,
    auth: Auth,
    limits: SignInLimits,
    cookies: SessionCookies,
    device: Device,
    db: DbSession,
    previous: OptionalSession,
) -> AuthStatus:
    """Exchange a request token for a session (the same exchange as the redirect flow, JSON in and out)."""
    await _limit_attempts_per_key(limits, auth, ip=device.ip, api_key=body.api_key)
    async with _failures_logged(auth, ip=device.ip, method="request_token", api_key=body.api_key):
        user = await auth.exchange_request_token(
            api_key=body.api_key,
            api_secret=body.api_secret.get_secret_value(),
            request_token=body.request_token,
        )
    new = await auth.complete_sign_in(db, user=user, device=device, previous=previous, method="request_token")
    cookies.set(response, session_value=new.cookie_value, device_id=new.record.device_id)
    return auth.status_of(new.record)


@router.post(
    "/set-access-token",
    response_model=AuthStatus,
    operation_id="auth-set_access_token",
    responses=_ERRORS,
    dependencies=[SignInAttempt],
)
async def set_access_token(
    body: SetAccessTokenRequest,
    response: Response,
    auth: Auth,
    limits: SignInLimits,
    cookies: SessionCookies,
    device: Device,
    db: DbSession,
    previous: OptionalSession,
) -> AuthStatus:
    """Sign in with an access token obtained elsewhere; it is checked against the broker's profile."""
    await _limit_attempts_per_key(limits, auth, ip=device.ip, api_key=body.api_key)
    async with _failures_logged(auth, ip=device.ip, method="access_token", api_key=body.api_key):
        user = await auth.adopt_access_token(
            api_key=body.api_key, access_token=body.access_token.get_secret_value()
        )
    new = await auth.complete_sign_in(db, user=user, device=device, previous=previous, method="access_token")
    cookies.set(response, session_value=new.cookie_value, device_id=new.record.device_id)
    return auth.status_of(new.record)


@router.post("/logout", status_code=204, operation_id="auth-logout", responses=_ERRORS)
async def logout(
    response: Response, auth: Auth, cookies: SessionCookies, db: TenantDb, record: CurrentSession
) -> None:
    """End this browser's session only."""
    await auth.sign_out(db, record=record)
    cookies.clear(response)


@router.get(
    "/sessions", response_model=list[SessionInfo], operation_id="auth-list_sessions", responses=_ERRORS
)
async def list_sessions(auth: Auth, record: CurrentSession) -> list[SessionInfo]:
    """Every live session of the signed-in user, one per device."""
    return await auth.list_sessions(record)


@router.delete(
    "/sessions/{handle}",
    status_code=204,
    operation_id="auth-revoke_session",
    responses={**_ERRORS, 404: {"model": ErrorBody, "description": "No session of yours has that handle"}},
)
async def revoke_session(
    response: Response,
    auth: Auth,
    cookies: SessionCookies,
    db: TenantDb,
    record: CurrentSession,
    handle: Annotated[str, Path(min_length=1, max_length=64)],
) -> None:
    """End one of the user's sessions by its public handle."""
    revoked = await auth.revoke_session(db, record=record, handle=handle)
    if revoked.key_hash == record.key_hash:
        cookies.clear(response)


@router.post("/sessions/revoke-others", status_code=204, operation_id="auth-revoke_others", responses=_ERRORS)
async def revoke_other_sessions(auth: Auth, db: TenantDb, record: CurrentSession) -> None:
    """End every session of the user except this one."""
    await auth.revoke_other_sessions(db, record=record)


@router.post("/disconnect", status_code=204, operation_id="auth-disconnect", responses=_ERRORS)
async def disconnect(
    response: Response, auth: Auth, cookies: SessionCookies, db: DbSession, record: CurrentSession
) -> None:
    """Invalidate the broker token, wipe stored credentials and end every session of this user."""
    await auth.disconnect(db, record=record)
    cookies.clear(response)
