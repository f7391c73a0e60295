"""Request and response bodies of /api/auth. Secrets come in as SecretStr and never go out."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

# Kite's keys and tokens are ASCII letters and digits. Anything else (non-ASCII, spaces, control
# characters) is refused here, before it can reach a header, a checksum or a log line.
ApiKey = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$", examples=["tradedesk-demo"])
RequestToken = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")
# What this API hands out as a sign-in state, and Kite as a request token.
URL_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_PRINTABLE = r"^[!-~]+$"
_PRINTABLE_RE = re.compile(_PRINTABLE)


def _printable_ascii(value: SecretStr) -> SecretStr:
    if not _PRINTABLE_RE.fullmatch(value.get_secret_value()):
        raise ValueError("must be printable ASCII, without spaces or control characters")
    return value


# A secret that is only ever printable ASCII; SecretStr keeps it out of reprs and validation errors.
PrintableSecret = Annotated[
    SecretStr,
    AfterValidator(_printable_ascii),
    Field(min_length=1, max_length=256, json_schema_extra={"pattern": _PRINTABLE}),
]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginRequest(StrictBody):
    api_key: str = ApiKey
    api_secret: PrintableSecret


class LoginResponse(BaseModel):
    login_url: str
    state: str


class AuthenticateRequest(StrictBody):
    api_key: str = ApiKey
    api_secret: PrintableSecret
    request_token: str = RequestToken


class SetAccessTokenRequest(StrictBody):
    api_key: str = ApiKey
    access_token: PrintableSecret


class BrokerStatus(BaseModel):
    state: Literal["connected", "expired"]
    token_expires_at: datetime


class AuthStatus(BaseModel):
    authenticated: bool
    broker_id: str | None = None
    user_name: str | None = None
    email: str | None = None
    device_id: str | None = None
    session_expires_at: datetime | None = None
    csrf_token: str | None = None
    broker: BrokerStatus | None = None


class SessionInfo(BaseModel):
    handle: str
    device_id: str
    device_label: str
    ip: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool
