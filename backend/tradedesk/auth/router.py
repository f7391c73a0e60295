"""/api/auth: sign-in flows, status, sign-out, and the user's own device sessions."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from tradedesk.auth import service
from tradedesk.auth.devices import device_label
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
from tradedesk.db import DbSession
from tradedesk.deps import State
from tradedesk.errors import (
    AppError,
    BrokerTimeout,
    BrokerUnavailable,
    ErrorBody,
    SignInRejected,
    TooManyRequests,
    ValidationErrorBody,
)
from tradedesk.logs import log_tag
from tradedesk.sessions.dependencies import CurrentSession, OptionalSession, TenantDb, client_ip
from tradedesk.sessions.service import NewSession
from tradedesk.state import AppState

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


def _device(request: Request, app: AppState) -> service.DeviceContext:
    return service.DeviceContext(
        device_id=app.cookies.device_id(request) or secrets.token_urlsafe(16),
        device_label=device_label(request.headers.get("user-agent")),
        ip=client_ip(request),
    )


def _set_session_cookies(response: Response, app: AppState, new: NewSession) -> None:
    app.cookies.set(response, session_value=new.cookie_value, device_id=new.record.device_id)


_CALLBACK_PATH = "/api/auth/callback"


async def limit_sign_in_attempts(request: Request, app: State) -> None:
    ip = client_ip(request)
    retry_after = await app.rate_limiter.hit(
        f"signin:{ip or 'unknown'}",
        limit=app.settings.signin_rate_limit,
        window_s=app.settings.signin_rate_window_s,
    )
    if retry_after is not None:
        service.log_sign_in_failure(app, reason="address_rate_limited", ip=ip)
        raise TooManyRequests(
            f"Too many sign-in attempts from this address; try again in {retry_after} seconds.",
            retry_after_s=retry_after,
        )


SignInAttempt = Depends(limit_sign_in_attempts)


async def limit_attempts_per_key(request: Request, app: AppState, *, api_key: str) -> None:
    """Each attempt costs a broker call on this api_key: rotating addresses must not buy more of them.
    The limiter only ever sees a hash of the key."""
    retry_after = await app.rate_limiter.hit(
        f"signin-key:{log_tag(api_key)}",
        limit=app.settings.signin_rate_limit_per_key,
        window_s=app.settings.signin_rate_window_s,
    )
    if retry_after is not None:
        service.log_sign_in_failure(
            app, reason="api_key_rate_limited", ip=client_ip(request), api_key=api_key
        )
        raise TooManyRequests(
            f"Too many sign-in attempts with this api_key; try again in {retry_after} seconds.",
            retry_after_s=retry_after,
        )


@asynccontextmanager
async def _failures_logged(
    app: AppState, request: Request, *, method: service.SignInMethod, api_key: str
) -> AsyncIterator[None]:
    """A broker exchange that fails has no account to audit yet: the operator's log gets it instead."""
    try:
        yield
    except AppError as exc:
        service.log_sign_in_failure(
            app, method=method, reason=exc.name, ip=client_ip(request), api_key=api_key
        )
        raise


# First in the table: the SPA polls it, and routes are matched in order.
@router.get("/status", response_model=AuthStatus, operation_id="auth-status")
async def auth_status(request: Request, record: OptionalSession) -> Response:
    """Who is signed in on this browser, the CSRF token for unsafe requests, and the broker token's state."""
    body = service.status_of(request.app.state.td, record)
    return Response(body.model_dump_json(), media_type="application/json")


@router.post(
    "/login",
    response_model=LoginResponse,
    operation_id="auth-login",
    responses=_LOGIN_ERRORS,
    dependencies=[SignInAttempt],
)
async def login(body: LoginRequest, request: Request, response: Response, app: State) -> LoginResponse:
    """Start the redirect sign-in: returns the broker's login URL and binds `state` to this browser."""
    await limit_attempts_per_key(request, app, api_key=body.api_key)
    try:
        login_url, state = await service.start_redirect_sign_in(
            app, api_key=body.api_key, api_secret=body.api_secret.get_secret_value()
        )
    except TooManySignInsPending:
        service.log_sign_in_failure(
            app,
            method="redirect",
            reason="pending_bound_reached",
            ip=client_ip(request),
            api_key=body.api_key,
        )
        raise
    settings = app.settings
    response.set_cookie(
        settings.signin_cookie_name,
        app.signin_signer.sign(state),
        max_age=settings.pending_signin_ttl_s,
        path="/" if settings.cookie_secure else _CALLBACK_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        # The broker sends the browser back with a top-level cross-site GET: Lax still carries it.
        samesite="none" if settings.cookie_samesite == "none" else "lax",
    )
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
    app: State,
    db: DbSession,
    previous: OptionalSession,
    # Unconstrained here on purpose: whatever arrives, the browser goes back to the SPA with `?error=`
    # rather than to a JSON error page; the handler checks each value's shape itself.
    request_token: Annotated[str | None, Query()] = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    state: Annotated[str | None, Query()] = None,
) -> RedirectResponse:
    """Where the broker sends the browser back; finishes the redirect sign-in and goes to the SPA."""
    settings = app.settings

    def to_spa(error: str | None = None, message: str | None = None) -> RedirectResponse:
        if error:
            service.log_sign_in_failure(app, method="redirect", reason=error, ip=client_ip(request))
        query = urlencode({k: v for k, v in (("error", error), ("message", message)) if v})
        redirect = RedirectResponse(
            settings.spa_url + (f"/?{query}" if query else "/"), status_code=status.HTTP_303_SEE_OTHER
        )
        redirect.delete_cookie(
            settings.signin_cookie_name,
            path="/" if settings.cookie_secure else _CALLBACK_PATH,
            secure=settings.cookie_secure,
            httponly=True,
        )
        return redirect

    signed = request.cookies.get(settings.signin_cookie_name)
    bound_state = (
        app.signin_signer.unsign(signed, max_age_s=settings.pending_signin_ttl_s) if signed else None
    )
    # Only what this API hands out as a state is looked at any further (ASCII, URL-safe).
    if (
        not state
        or not URL_SAFE_TOKEN.fullmatch(state)
        or bound_state is None
        or not hmac.compare_digest(bound_state.encode("utf-8"), state.encode("ascii"))
    ):
        return to_spa("invalid_state", "This sign-in link is not valid in this browser; start again.")
    pending = await service.take_redirect_sign_in(app, state=state)
    if pending is None:
        return to_spa("invalid_state", "This sign-in has expired or was already used; start again.")
    if status_ != "success" or not request_token:
        return to_spa("signin_cancelled", "The broker did not complete the sign-in.")
    if not URL_SAFE_TOKEN.fullmatch(request_token):
        return to_spa("broker_rejected", "The broker's answer could not be read; start again.")
    try:
        user = await service.exchange_request_token(
            app, api_key=pending.api_key, api_secret=pending.api_secret, request_token=request_token
        )
        new = await service.complete_sign_in(
            app, db, user=user, device=_device(request, app), previous=previous, method="redirect"
        )
    except SignInRejected as exc:
        return to_spa("broker_rejected", exc.detail)
    except (BrokerUnavailable, BrokerTimeout) as exc:
        return to_spa("broker_unavailable", exc.detail)
    except AppError as exc:
        return to_spa("signin_failed", exc.detail)
    redirect = to_spa()
    _set_session_cookies(redirect, app, new)
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
    request: Request,
    response: Response,
    app: State,
    db: DbSession,
    previous: OptionalSession,
) -> AuthStatus:
    """Exchange a request token for a session (the same exchange as the redirect flow, JSON in and out)."""
    await limit_attempts_per_key(request, app, api_key=body.api_key)
    async with _failures_logged(app, request, method="request_token", api_key=body.api_key):
        user = await service.exchange_request_token(
            app,
            api_key=body.api_key,
            api_secret=body.api_secret.get_secret_value(),
            request_token=body.request_token,
        )
    new = await service.complete_sign_in(
        app, db, user=user, device=_device(request, app), previous=previous, method="request_token"
    )
    _set_session_cookies(response, app, new)
    return service.status_of(app, new.record)


@router.post(
    "/set-access-token",
    response_model=AuthStatus,
    operation_id="auth-set_access_token",
    responses=_ERRORS,
    dependencies=[SignInAttempt],
)
async def set_access_token(
    body: SetAccessTokenRequest,
    request: Request,
    response: Response,
    app: State,
    db: DbSession,
    previous: OptionalSession,
) -> AuthStatus:
    """Sign in with an access token obtained elsewhere; it is checked against the broker's profile."""
    await limit_attempts_per_key(request, app, api_key=body.api_key)
    async with _failures_logged(app, request, method="access_token", api_key=body.api_key):
        user = await service.adopt_access_token(
            app, api_key=body.api_key, access_token=body.access_token.get_secret_value()
        )
    new = await service.complete_sign_in(
        app, db, user=user, device=_device(request, app), previous=previous, method="access_token"
    )
    _set_session_cookies(response, app, new)
    return service.status_of(app, new.record)


@router.post("/logout", status_code=204, operation_id="auth-logout", responses=_ERRORS)
async def logout(response: Response, app: State, db: TenantDb, record: CurrentSession) -> None:
    """End this browser's session only."""
    await service.sign_out(app, db, record=record)
    app.cookies.clear(response)


@router.get(
    "/sessions", response_model=list[SessionInfo], operation_id="auth-list_sessions", responses=_ERRORS
)
async def list_sessions(app: State, record: CurrentSession) -> list[SessionInfo]:
    """Every live session of the signed-in user, one per device."""
    records = await app.sessions.list_for_user(record.broker_id)
    return [service.session_info(app, r, current=record) for r in records]


@router.delete(
    "/sessions/{handle}",
    status_code=204,
    operation_id="auth-revoke_session",
    responses={**_ERRORS, 404: {"model": ErrorBody, "description": "No session of yours has that handle"}},
)
async def revoke_session(
    response: Response,
    app: State,
    db: TenantDb,
    record: CurrentSession,
    handle: Annotated[str, Path(min_length=1, max_length=64)],
) -> None:
    """End one of the user's sessions by its public handle."""
    revoked = await service.revoke_session(app, db, record=record, handle=handle)
    if revoked.key_hash == record.key_hash:
        app.cookies.clear(response)


@router.post("/sessions/revoke-others", status_code=204, operation_id="auth-revoke_others", responses=_ERRORS)
async def revoke_other_sessions(app: State, db: TenantDb, record: CurrentSession) -> None:
    """End every session of the user except this one."""
    await service.revoke_other_sessions(app, db, record=record)


@router.post("/disconnect", status_code=204, operation_id="auth-disconnect", responses=_ERRORS)
async def disconnect(response: Response, app: State, db: DbSession, record: CurrentSession) -> None:
    """Invalidate the broker token, wipe stored credentials and end every session of this user."""
    await service.disconnect(app, db, record=record)
    app.cookies.clear(response)
