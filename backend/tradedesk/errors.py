"""The error tree every layer raises, and the one handler that turns it into JSON."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
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


def error_response(exc: AppError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.name, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


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
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        fields = ", ".join(".".join(str(p) for p in e["loc"] if p != "body") or "body" for e in errors)
        return JSONResponse(
            {
                "error": "ValidationError",
                "detail": f"The request is not valid: check {fields}.",
                "errors": errors,
            },
            status_code=422,
        )

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        name = _HTTP_NAMES.get(exc.status_code, "HTTPError")
        detail = exc.detail if isinstance(exc.detail, str) else "The request could not be processed."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource."
        return JSONResponse(
            {"error": name, "detail": detail}, status_code=exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
