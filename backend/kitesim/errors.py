"""Kite Connect's error types as exceptions (envelope.py turns each into its HTTP status and JSON body), and
the messages the API answers with."""

# ruff: noqa: S105 -- the message constants below are named after tokens; none of them is a credential.

from __future__ import annotations

from typing import ClassVar

INVALID_API_KEY = "Invalid `api_key`."
INVALID_ACCESS_TOKEN = "Incorrect `api_key` or `access_token`."
EXPIRED_ACCESS_TOKEN = "Token is invalid or has expired."
INVALID_CHECKSUM = "Invalid checksum."
INVALID_REQUEST_TOKEN = "Request token is invalid."
USED_REQUEST_TOKEN = "Request token has already been used."
EXPIRED_REQUEST_TOKEN = "Request token has expired."
UNSUPPORTED_KITE_VERSION = "Unsupported `X-Kite-Version`: only 3 is served."


class KiteError(Exception):
    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "GeneralException"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class TokenError(KiteError):
    """The session is missing, invalid or expired: the client has to sign in again."""

    status_code = 403
    error_type = "TokenException"


class InputError(KiteError):
    status_code = 400
    error_type = "InputException"


class KitePermissionError(KiteError):
    status_code = 403
    error_type = "PermissionException"


class OrderError(KiteError):
    status_code = 400
    error_type = "OrderException"


class NotFoundError(KiteError):
    """An unknown id, or another user's: the two answer the same, so ids of others are never confirmed."""

    status_code = 404
    error_type = "InputException"


class ConflictError(KiteError):
    status_code = 409
    error_type = "InputException"


class GeneralError(KiteError):
    status_code = 500
    error_type = "GeneralException"
