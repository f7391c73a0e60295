"""Request and response bodies of /api/auth. Secrets come in as SecretStr and never go out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

ApiKey = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$", examples=["tradedesk-demo"])


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginRequest(StrictBody):
    api_key: str = ApiKey
    api_secret: SecretStr = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    login_url: str
    state: str


class AuthenticateRequest(StrictBody):
    api_key: str = ApiKey
    api_secret: SecretStr = Field(min_length=1, max_length=256)
    request_token: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")


class SetAccessTokenRequest(StrictBody):
    api_key: str = ApiKey
    access_token: SecretStr = Field(min_length=1, max_length=256)


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
