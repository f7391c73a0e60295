"""/api/auth: sign-in flows, status, sign-out, and the user's own device sessions."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from tradedesk.auth import service
from tradedesk.auth.devices import device_label
from tradedesk.auth.schemas import (
    AuthenticateRequest,
    AuthStatus,
    LoginRequest,
    LoginResponse,
    SessionInfo,
    SetAccessTokenRequest,
)
from tradedesk.db import DbSession
from tradedesk.errors import (
    AppError,
    BrokerTimeout,
    BrokerUnavailable,
    ErrorBody,
    SessionNotFound,
    SignInRejected,
    TooManyRequests,
    ValidationErrorBody,
)
from tradedesk.sessions.dependencies import CurrentSession, OptionalSession, State, client_ip
from tradedesk.sessions.service import NewSession
from tradedesk.state import AppState

router = APIRouter(prefix="/api/auth", tags=["auth"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No session, or the broker rejected the sign-in"},
    403: {"model": ErrorBody, "description": "Origin or CSRF check failed"},
    429: {"model": ErrorBody, "description": "Too many sign-in attempts; see Retry-After"},
    422: {"model": ValidationErrorBody, "description": "A field is missing or has the wrong type"},
}


def _device(request: Request, app: AppState) -> service.DeviceContext:
    signed = request.cookies.get(app.settings.device_cookie_name)
    device_id = (
        app.device_signer.unsign(signed, max_age_s=app.settings.device_cookie_max_age_s) if signed else None
    )
    return service.DeviceContext(
        device_id=device_id or secrets.token_urlsafe(16),
        device_label=device_label(request.headers.get("user-agent")),
        ip=client_ip(request),
    )


def _set_session_cookies(response: Response, app: AppState, new: NewSession) -> None:
    settings = app.settings
    response.set_cookie(
        settings.session_cookie_name,
        new.cookie_value,
        max_age=settings.session_absolute_timeout_s,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite=settings.cookie_samesite,
    )
    response.set_cookie(
        settings.device_cookie_name,
        app.device_signer.sign(new.record.device_id),
        max_age=settings.device_cookie_max_age_s,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite=settings.cookie_samesite,
    )


def _clear_session_cookie(response: Response, app: AppState) -> None:
    settings = app.settings
    response.delete_cookie(
        settings.session_cookie_name,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite=settings.cookie_samesite,
    )


_CALLBACK_PATH = "/api/auth/callback"


async def limit_sign_in_attempts(request: Request, app: State) -> None:
    retry_after = await app.rate_limiter.hit(
        f"signin:{client_ip(request) or 'unknown'}",
        limit=app.settings.signin_rate_limit,
        window_s=app.settings.signin_rate_window_s,
    )
    if retry_after is not None:
        raise TooManyRequests(
            f"Too many sign-in attempts from this address; try again in {retry_after} seconds.",
            retry_after_s=retry_after,
        )


SignInAttempt = Depends(limit_sign_in_attempts)


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
    responses=_ERRORS,
    dependencies=[SignInAttempt],
)
async def login(body: LoginRequest, response: Response, app: State) -> LoginResponse:
    """Start the redirect sign-in: returns the broker's login URL and binds `state` to this browser."""
    login_url, state = await service.start_redirect_sign_in(
        app, api_key=body.api_key, api_secret=body.api_secret.get_secret_value()
    )
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
    request_token: Annotated[str | None, Query(max_length=128)] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=32)] = None,
    state: Annotated[str | None, Query(max_length=128)] = None,
) -> RedirectResponse:
    """Where the broker sends the browser back; finishes the redirect sign-in and goes to the SPA."""
    settings = app.settings

    def to_spa(error: str | None = None, message: str | None = None) -> RedirectResponse:
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
    if not state or bound_state is None or not secrets.compare_digest(bound_state, state):
        return to_spa("invalid_state", "This sign-in link is not valid in this browser; start again.")
    pending = await service.take_redirect_sign_in(app, state=state)
    if pending is None:
        return to_spa("invalid_state", "This sign-in has expired or was already used; start again.")
    if status_ != "success" or not request_token:
        return to_spa("signin_cancelled", "The broker did not complete the sign-in.")
    try:
        user = await service.exchange_request_token(
            app, api_key=pending.api_key, api_secret=pending.api_secret, request_token=request_token
        )
        new = await service.complete_sign_in(
            app, db, user=user, device=_device(request, app), previous=previous
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
    user = await service.exchange_request_token(
        app,
        api_key=body.api_key,
        api_secret=body.api_secret.get_secret_value(),
        request_token=body.request_token,
    )
    new = await service.complete_sign_in(app, db, user=user, device=_device(request, app), previous=previous)
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
    user = await service.adopt_access_token(
        app, api_key=body.api_key, access_token=body.access_token.get_secret_value()
    )
    new = await service.complete_sign_in(app, db, user=user, device=_device(request, app), previous=previous)
    _set_session_cookies(response, app, new)
    return service.status_of(app, new.record)


@router.post("/logout", status_code=204, operation_id="auth-logout", responses=_ERRORS)
async def logout(response: Response, app: State, record: CurrentSession) -> None:
    """End this browser's session only."""
    await app.sessions.end(record)
    _clear_session_cookie(response, app)


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
    record: CurrentSession,
    handle: Annotated[str, Path(min_length=1, max_length=64)],
) -> None:
    """End one of the user's sessions by its public handle."""
    for candidate in await app.sessions.list_for_user(record.broker_id):
        if secrets.compare_digest(candidate.handle.encode(), handle.encode()):
            await app.sessions.end(candidate)
            if candidate.key_hash == record.key_hash:
                _clear_session_cookie(response, app)
            return
    raise SessionNotFound()


@router.post("/sessions/revoke-others", status_code=204, operation_id="auth-revoke_others", responses=_ERRORS)
async def revoke_other_sessions(app: State, record: CurrentSession) -> None:
    """End every session of the user except this one."""
    await app.sessions.end_all_for_user(record.broker_id, keep=record)


@router.post("/disconnect", status_code=204, operation_id="auth-disconnect", responses=_ERRORS)
async def disconnect(response: Response, app: State, db: DbSession, record: CurrentSession) -> None:
    """Invalidate the broker token, wipe stored credentials and end every session of this user."""
    await service.disconnect(app, db, record=record)
    _clear_session_cookie(response, app)
