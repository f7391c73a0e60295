"""The error tree every layer raises, and the one handler that turns it into JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tradedesk.errors")


class ErrorBody(BaseModel):
    error: str
    detail: str


class ValidationErrorBody(ErrorBody):
    errors: list[dict[str, object]]


class AppError(Exception):
    status_code: ClassVar[int] = 400
    default_detail: ClassVar[str] = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.headers = dict(headers or {})
        super().__init__(self.detail)

    @property
    def name(self) -> str:
        return type(self).__name__


class BadRequest(AppError):
    status_code = 400


class NotAuthenticated(AppError):
    status_code = 401
    default_detail = "Sign in first: this needs a session."


class SessionExpired(NotAuthenticated):
    default_detail = "Your session has expired; sign in again."


class SignInRejected(AppError):
    status_code = 401
    default_detail = "The broker rejected the sign-in."


class BrokerTokenInvalid(AppError):
    status_code = 401
    default_detail = (
        "The broker no longer accepts this account's access token; reconnect your broker account."
    )


class Forbidden(AppError):
    status_code = 403


class CsrfFailed(Forbidden):
    default_detail = "The X-CSRF-Token header is missing or does not match this session."


class OriginRejected(Forbidden):
    default_detail = "This request's Origin is not allowed to make changes."


class NotFound(AppError):
    status_code = 404
    default_detail = "Not found."


class SessionNotFound(NotFound):
    default_detail = "No session of yours has that handle."


class Conflict(AppError):
    status_code = 409


class InvalidInput(AppError):
    """Input that parses but breaks a rule (a bound, a consistency check): 422 with the same body as a
    request that fails FastAPI's own validation, naming each field."""

    status_code = 422

    def __init__(self, errors: Iterable[Mapping[str, Any]]) -> None:
        given = list(errors)
        self.errors: list[dict[str, object]] = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in given
        ]
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body" for e in given)
        super().__init__(f"The request is not valid: check {fields}.")

    @property
    def name(self) -> str:
        return "ValidationError"


class TooManyRequests(AppError):
    status_code = 429

    def __init__(self, detail: str | None = None, *, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


class UnsupportedMediaType(AppError):
    status_code = 415
    default_detail = "Send the request body as JSON (Content-Type: application/json)."


class BrokerInputRejected(AppError):
    status_code = 400
    default_detail = "The broker rejected the request's input."


class BrokerUnavailable(AppError):
    status_code = 502
    default_detail = "The broker answered with an error or an unreadable response."


class BrokerTimeout(AppError):
    status_code = 504
    default_detail = "The broker did not answer in time."


class ServiceUnavailable(AppError):
    status_code = 503
    default_detail = "A service this request depends on is unavailable; try again shortly."

    def __init__(self, detail: str | None = None, *, retry_after_s: int = 2) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class SessionStoreUnavailable(ServiceUnavailable):
    """The session store (``redis`` or ``sql``) did not answer. Clients see a plain ServiceUnavailable."""

    default_detail = "Session storage is unavailable; try again shortly."

    def __init__(self, *, store: str) -> None:
        super().__init__()
        self.store = store

    @property
    def name(self) -> str:
        return "ServiceUnavailable"


# SQLSTATEs that mean "no usable connection", not "this statement is wrong": connection exceptions
# (class 08), a server shutting down or starting up, and a full connection table.
_OUTAGE_SQLSTATE_CLASSES = ("08",)
_OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def is_database_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached or used right now (a retry later may work);
    False for what a retry cannot fix: constraint violations, programming and data errors."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # An OSError (TimeoutError included) as the driver error is a connection attempt that failed.
    if exc.connection_invalidated or isinstance(exc.orig, OSError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and (
        sqlstate.startswith(_OUTAGE_SQLSTATE_CLASSES) or sqlstate in _OUTAGE_SQLSTATES
    )


def _sqlstate_in(*codes: str) -> Callable[[BaseException], bool]:
    return lambda exc: getattr(exc, "sqlstate", None) in codes


# Most specific first: a refused connection is also a failed one.
_OUTAGE_REASONS: tuple[tuple[Callable[[BaseException], bool], str], ...] = (
    (lambda exc: isinstance(exc, ConnectionRefusedError), "connection refused"),
    (lambda exc: isinstance(exc, PoolTimeoutError), "no free connection in the pool"),
    (lambda exc: isinstance(exc, TimeoutError | RedisTimeoutError), "timed out"),
    (_sqlstate_in("57P03"), "starting up"),
    (_sqlstate_in("57P01", "57P02"), "shutting down"),
    (_sqlstate_in("53300"), "too many connections"),
    (lambda exc: isinstance(exc, DBAPIError) and exc.connection_invalidated, "connection lost"),
    (lambda exc: isinstance(exc, ConnectionError | RedisConnectionError), "connection failed"),
)


def outage_reason(exc: BaseException) -> str:
    """A few words on why a dependency is down, for operators: never the message, which may carry a DSN,
    a host name or SQL."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for matches, reason in _OUTAGE_REASONS:
        if any(matches(link) for link in chain):
            return reason
    return "unavailable"


def error_response(exc: AppError) -> JSONResponse:
    body: dict[str, object] = {"error": exc.name, "detail": exc.detail}
    if isinstance(exc, InvalidInput):
        body["errors"] = exc.errors
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


_HTTP_NAMES = {
    400: "BadRequest",
    401: "NotAuthenticated",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
}


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(InvalidInput(exc.errors()))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        name = _HTTP_NAMES.get(exc.status_code, "HTTPError")
        detail = exc.detail if isinstance(exc.detail, str) else "The request could not be processed."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource."
        return JSONResponse(
            {"error": name, "detail": detail}, status_code=exc.status_code, headers=exc.headers
        )

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if not is_database_outage(exc):
            # A bug or bad data, not an outage: the last-resort handler logs it and answers 500.
            raise exc
        log.warning(
            "database unavailable (%s) on %s %s", outage_reason(exc), request.method, request.url.path
        )
        return error_response(ServiceUnavailable("The database is unavailable; try again shortly."))

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(PoolTimeoutError, on_database_error)
