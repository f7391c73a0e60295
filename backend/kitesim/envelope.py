"""Kite Connect's JSON envelope (``{"status": "success", "data": …}`` / ``{"status": "error", …}``) and the
exception handlers that put every error the app raises into it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from kitesim.errors import KiteError

DataT = TypeVar("DataT")


class Envelope(BaseModel, Generic[DataT]):
    status: Literal["success"] = "success"
    data: DataT


class ErrorEnvelope(BaseModel):
    status: Literal["error"] = "error"
    message: str
    data: None = None
    error_type: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope, "description": "InputException"},
    403: {"model": ErrorEnvelope, "description": "TokenException"},
}


def error_response(
    *, status_code: int, message: str, error_type: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorEnvelope(message=message, error_type=error_type)
    return JSONResponse(body.model_dump(), status_code=status_code, headers=dict(headers or {}))


async def _kite_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, KiteError):
        return await _unexpected_error(request, exc)
    return error_response(
        status_code=exc.status_code, message=exc.message, error_type=exc.error_type, headers=exc.headers
    )


_HTTP_MESSAGES = {404: "Route not found.", 405: "Method not allowed."}


def _error_type_for(status_code: int) -> str:
    if status_code in (400, 413, 415, 422):
        return "InputException"
    if status_code in (401, 403):
        return "TokenException"
    if status_code in (429, 502, 503, 504):
        return "NetworkException"
    return "GeneralException"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        return await _unexpected_error(request, exc)
    # Starlette's own 404/405 carry only the status phrase; say it the way Kite does.
    message = _HTTP_MESSAGES.get(exc.status_code) or str(exc.detail)
    return error_response(
        status_code=exc.status_code,
        message=message,
        error_type=_error_type_for(exc.status_code),
        headers=exc.headers,
    )


_SOURCES = ("body", "query", "header", "path", "cookie")


def validation_message(errors: Sequence[Any]) -> str:
    """One sentence for the first problem, in Kite's style ("Missing `checksum`.")."""
    if not errors:
        return "Invalid input."
    first: Mapping[str, Any] = errors[0]
    kind = str(first.get("type", ""))
    loc = [str(part) for part in first.get("loc", ())]
    # The first element names where the value came from (body, query, header…), not the field.
    field = ".".join(loc[1:]) if loc and loc[0] in _SOURCES else ".".join(loc)
    text = str(first.get("msg", "is invalid")).removeprefix("Value error, ").rstrip(".")
    if kind == "json_invalid":
        return "The request body is not valid JSON."
    if not field:
        return "Missing request body." if kind == "missing" else f"Invalid request body: {text}."
    if kind == "missing" or (kind == "string_too_short" and first.get("input") == ""):
        return f"Missing `{field}`."
    return f"Invalid `{field}`: {text}."


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        return await _unexpected_error(request, exc)
    return error_response(
        status_code=400, message=validation_message(exc.errors()), error_type="InputException"
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # No logging here: Starlette re-raises after this response is sent, and the server logs the traceback.
    return error_response(status_code=500, message="Internal server error.", error_type="GeneralException")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KiteError, _kite_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
