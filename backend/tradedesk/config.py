"""Settings from the environment (``TRADEDESK_…``) or ``.env``, with the production guard."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Development-only keys: anyone can read them here, so production refuses them.
DEV_SECRET_KEY = "dev-only-secret-key-change-me"  # noqa: S105 - refused in production
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM"  # base64url of 32 bytes


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def _split_list(value: object) -> object:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRADEDESK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite+aiosqlite:///./tradedesk.db"
    # Unset: SQL-backed sessions and in-process leases (one process only).
    redis_url: str | None = None
    redis_key_prefix: str = "td:"
    redis_timeout_s: float = Field(default=0.5, gt=0, le=10)

    secret_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:5173", "http://127.0.0.1:5173"]
    )
    spa_url: str = "http://127.0.0.1:5173"
    api_public_url: str = "http://127.0.0.1:8000"

    cookie_secure: bool = False
    cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    session_idle_timeout_s: int = Field(default=24 * 3600, ge=60)
    session_absolute_timeout_s: int = Field(default=7 * 24 * 3600, ge=60)
    session_touch_interval_s: int = Field(default=60, ge=1)
    # Sign-in attempts per client IP per window: each one costs a call to the broker.
    signin_rate_limit: int = Field(default=30, ge=1)
    signin_rate_window_s: int = Field(default=600, ge=1)
    pending_signin_ttl_s: int = Field(default=600, ge=30, le=3600)
    device_cookie_max_age_s: int = 400 * 24 * 3600

    kite_api_url: str = "http://127.0.0.1:8100"
    kite_login_url: str = "http://127.0.0.1:8100/connect/login"
    kite_timeout_s: float = Field(default=7.0, gt=0, le=60)

    agent_runtime: Literal["on", "off"] = "on"
    # FastAPI's native OpenTelemetry spans/metrics, exported by the providers OTEL_* configures.
    otel_enabled: bool = False

    @model_validator(mode="before")
    @classmethod
    def _parse_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("secret_keys", "encryption_keys", "cors_origins"):
                if key in data:
                    data[key] = _split_list(data[key])
        return data

    @model_validator(mode="after")
    def _guard(self) -> Settings:
        if self.cookie_samesite == "none" and not self.cookie_secure:
            raise ValueError("TRADEDESK_COOKIE_SAMESITE=none requires TRADEDESK_COOKIE_SECURE=true")
        if any(origin.strip() == "*" for origin in self.cors_origins):
            raise ValueError("TRADEDESK_CORS_ORIGINS must list origins explicitly; '*' cannot carry cookies")
        if self.session_idle_timeout_s > self.session_absolute_timeout_s:
            raise ValueError("the idle timeout cannot be longer than the absolute session lifetime")
        if self.env is Environment.PRODUCTION:
            problems = []
            if not self.secret_keys or any(k.get_secret_value() == DEV_SECRET_KEY for k in self.secret_keys):
                problems.append("TRADEDESK_SECRET_KEYS must be set")
            if not self.encryption_keys or any(
                k.get_secret_value() == DEV_ENCRYPTION_KEY for k in self.encryption_keys
            ):
                problems.append("TRADEDESK_ENCRYPTION_KEYS must be set")
            if not self.cors_origins:
                problems.append("TRADEDESK_CORS_ORIGINS must list the SPA's origin(s)")
            if not self.cookie_secure:
                problems.append("TRADEDESK_COOKIE_SECURE must be true")
            if any(len(k.get_secret_value()) < 32 for k in self.secret_keys):
                problems.append("every secret key must be at least 32 characters")
            if problems:
                raise ValueError("production settings refused: " + "; ".join(problems))
        return self

    @cached_property
    def effective_secret_keys(self) -> list[str]:
        keys = [k.get_secret_value() for k in self.secret_keys]
        return keys or [DEV_SECRET_KEY]

    @cached_property
    def effective_encryption_keys(self) -> list[str]:
        keys = [k.get_secret_value() for k in self.encryption_keys]
        return keys or [DEV_ENCRYPTION_KEY]

    @property
    def session_cookie_name(self) -> str:
        return "__Host-tradedesk" if self.cookie_secure else "tradedesk"

    @property
    def device_cookie_name(self) -> str:
        return "__Host-tradedesk_device" if self.cookie_secure else "tradedesk_device"

    @property
    def signin_cookie_name(self) -> str:
        return "__Host-tradedesk_signin" if self.cookie_secure else "tradedesk_signin"
