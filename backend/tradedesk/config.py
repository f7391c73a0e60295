"""Settings from the environment (``TRADEDESK_…``) or ``.env``, with the production guard."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyAddress, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tradedesk.kit.keys import InstallKeys, load_or_create_key_file

# sha256 of the development keys this repository once shipped: anyone can read them, so they are
# refused in every environment. Unconfigured keys come from a per-install key file (kit/keys.py).
_PUBLISHED_KEY_SHA256 = frozenset(
    {
        "f7f126b1fd80175752c755e7fc88ef5570c519aebe7b7199599d0451667ad905",
        "9965ced22417b6c21036953f168839a2307a27b4f296d7be1ebf1545fa3ae02d",
    }
)


def is_published_key(key: str) -> bool:
    return hashlib.sha256(key.strip().rstrip("=").encode("utf-8")).hexdigest() in _PUBLISHED_KEY_SHA256


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
    # Off behind a transaction-pooling proxy (pgbouncer pool_mode = transaction): no prepared statement
    # outlives its transaction. Tenant binding is set_config(..., true), transaction-local either way.
    database_statement_cache: bool = True
    # Unset: SQL-backed sessions and in-process leases (one process only). Else one of:
    #   redis://[[user]:password@]host[:port][/db]  (rediss:// for TLS, unix:///path?db=N), one server;
    #   redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<service>[/<db>]  the master of a
    #     Sentinel-monitored service, followed across failovers (sentinels default to port 26379; the
    #     credentials are the master's, ?sentinel_password=... for sentinels that want their own);
    #   redis+cluster://[[user]:password@]host[:port][,host[:port]...]  a Redis Cluster, found from any
    #     of the nodes named (db 0 only).
    # rediss+sentinel:// and rediss+cluster:// speak TLS to every node; redis-py's query options
    # (ssl_ca_certs=..., ssl_cert_reqs=...) apply to all of them. See tradedesk.redis.create_redis.
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

    # Behind a reverse proxy: only peers in these CIDRs may say who the client is (X-Forwarded-For,
    # X-Forwarded-Proto). Empty: the socket's peer is the client, whatever the headers say.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Host header values this API answers to; empty: the host of api_public_url, localhost and loopback.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # Sign-in attempts per api_key per window, whatever address they come from; pending redirect
    # sign-ins kept at once (each holds an encrypted api_secret until its callback or expiry).
    signin_rate_limit_per_key: int = Field(default=60, ge=1)
    pending_signin_max: int = Field(default=10_000, ge=10)
    # /docs and /openapi.json: None means on in development, off in production.
    docs_enabled: bool | None = None
    # /metrics: served on this API only with `Authorization: Bearer <token>`, or on its own port (an agent
    # worker's only one), bound to metrics_host: loopback unless the scraper is on another host or container.
    metrics_token: SecretStr | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: IPvAnyAddress = IPv4Address("127.0.0.1")
    # One tradedesk.http line per request (method, route, status, duration, request id).
    access_log: bool = True
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Development without configured keys: per-install random keys are generated into this file.
    key_file: str = ".tradedesk-keys.json"

    # SIGTERM: stop accepting, end live streams with a retry hint, and give requests in flight this long.
    shutdown_timeout_s: int = Field(default=10, ge=1, le=300)

    agent_runtime: Literal["on", "off"] = "on"
    # Names this process's runtime in leases and on the agents it drives; unset: host name, pid and a
    # random suffix (unique per start).
    agent_runtime_id: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$"
    )
    # A runtime that dies leaves its agents to another after at most this long.
    agent_lease_ttl_s: float = Field(default=10.0, ge=1, le=60)
    # Agents decide once per cycle; the market is fetched once per cycle for all of them.
    agent_cycle_s: float = Field(default=1.0, ge=0.1, le=60)
    agent_max_lots: int = Field(default=50, ge=1, le=10_000)
    # Touched after every runtime tick that reached the database: a container healthcheck reads its age.
    agent_alive_file: str | None = None
    # Clock of the product: the system's, or kitesim's simulated clock (demos and tests on a fast day).
    clock: Literal["system", "kitesim"] = "system"
    # FastAPI's native OpenTelemetry spans/metrics, exported by the providers OTEL_* configures.
    otel_enabled: bool = False

    @model_validator(mode="before")
    @classmethod
    def _parse_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("secret_keys", "encryption_keys", "cors_origins", "trusted_proxies", "allowed_hosts"):
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
        if any(is_published_key(k.get_secret_value()) for k in [*self.secret_keys, *self.encryption_keys]):
            raise ValueError(
                "TRADEDESK_SECRET_KEYS / TRADEDESK_ENCRYPTION_KEYS hold a development key published with "
                "tradedesk; remove it (unset keys are generated per install in development)"
            )
        if self.env is Environment.PRODUCTION:
            problems = []
            if not self.secret_keys:
                problems.append("TRADEDESK_SECRET_KEYS must be set")
            if not self.encryption_keys:
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
        """The configured secret keys, else (development only) the per-install key file's."""
        keys = [k.get_secret_value() for k in self.secret_keys]
        return keys or self._install_keys().secret_keys

    @cached_property
    def effective_encryption_keys(self) -> list[str]:
        """The configured encryption keys, else (development only) the per-install key file's."""
        keys = [k.get_secret_value() for k in self.encryption_keys]
        return keys or self._install_keys().encryption_keys

    def _install_keys(self) -> InstallKeys:
        if self.env is not Environment.DEVELOPMENT:
            raise RuntimeError("keys must be configured explicitly outside development")
        return load_or_create_key_file(self.key_file)

    @property
    def effective_allowed_hosts(self) -> list[str]:
        if self.allowed_hosts:
            return self.allowed_hosts
        own = urlsplit(self.api_public_url).hostname
        return [h for h in (own, "localhost", "127.0.0.1", "::1") if h]

    @property
    def docs_on(self) -> bool:
        return self.env is Environment.DEVELOPMENT if self.docs_enabled is None else self.docs_enabled

    @property
    def session_cookie_name(self) -> str:
        return "__Host-tradedesk" if self.cookie_secure else "tradedesk"

    @property
    def device_cookie_name(self) -> str:
        return "__Host-tradedesk_device" if self.cookie_secure else "tradedesk_device"

    @property
    def signin_cookie_name(self) -> str:
        return "__Host-tradedesk_signin" if self.cookie_secure else "tradedesk_signin"
