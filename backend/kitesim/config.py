"""kitesim's settings, read from ``KITESIM_…`` environment variables or ``.env``."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import AwareDatetime, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_SPEED = 10_000.0


class KitesimSettings(BaseSettings):
    # extra="ignore": the shared .env also carries the API's TRADEDESK_… keys.
    model_config = SettingsConfigDict(env_prefix="KITESIM_", env_file=".env", extra="ignore")

    redirect_url: str = "http://127.0.0.1:8000/api/auth/callback"
    api_key: str = Field(default="tradedesk-demo", min_length=1)
    api_secret: SecretStr = SecretStr("tradedesk-demo-secret")
    request_token_ttl_s: float = Field(default=300, gt=0)
    speed: float = Field(default=1.0, gt=0, le=MAX_SPEED, allow_inf_nan=False)
    seed: int = 7
    start_at: AwareDatetime | None = None

    @field_validator("redirect_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("redirect_url must be an absolute http(s) URL")
        return value

    @field_validator("api_secret")
    @classmethod
    def _non_empty_secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("api_secret must not be empty")
        return value
