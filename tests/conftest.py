"""Shared fixtures: a throw-away PostgreSQL database (migrated with alembic), a per-test Redis key
prefix, kitesim in process, and an API client that signs in through the real chain."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.config import Config
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from kitesim.app import create_app as create_kitesim
from kitesim.config import KitesimSettings
from tradedesk.config import Settings
from tradedesk.kit.clock import ManualClock
from tradedesk.kit.crypto import generate_key
from tradedesk.main import create_app

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SPA_ORIGIN = "http://spa.test"
API_BASE = "http://api.test"
KITE_BASE = "http://kitesim.test"
DEMO_API_KEY = "tradedesk-demo"
DEMO_API_SECRET = "tradedesk-demo-secret"
TABLES = (
    "web_sessions",
    "pending_signins",
    "broker_credentials",
    "accounts",
    "fills",
    "trades",
    "risk_settings",
    "audit_events",
    "agents",
    "agent_orders",
    "agent_events",
    "agent_runtimes",
    "strategy_params",
    "strategy_param_changes",
)
# Generated per test run: tests never fall back to a key file or to any key published with the code.
TEST_ENCRYPTION_KEY = generate_key()
# The role the API connects as: owns nothing, cannot bypass row-level security (cluster-wide, reused).
APP_ROLE = "tradedesk_test_app"


def migrate(url: str, *, app_role: str | None = None) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    if app_role:
        config.attributes["app_role"] = app_role
    config.attributes["skip_logging"] = True
    command.upgrade(config, "head")


async def pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database_with_app_role(name: str) -> None:
    """An empty database, and the app role (created once per cluster, then reused)."""
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    asyncio.run(
        pg_admin(
            f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    )


def drop_database(name: str) -> None:
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated to head; dropped afterwards."""
    name = f"tradedesk_test_{uuid.uuid4().hex[:10]}"
    create_database_with_app_role(name)
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        migrate(url, app_role=APP_ROLE)
        yield url
    finally:
        drop_database(name)


def as_app_role(owner_url: str) -> str:
    return owner_url.replace("postgresql+asyncpg://postgres@", f"postgresql+asyncpg://{APP_ROLE}@", 1)


@pytest.fixture
async def clean_database(pg_database: str) -> AsyncIterator[str]:
    yield pg_database
    engine = create_async_engine(pg_database)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
    await engine.dispose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"tdtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


START = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # 09:30 IST on a Monday


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def kitesim() -> object:
    return create_kitesim(
        KitesimSettings(_env_file=None, redirect_url=f"{API_BASE}/api/auth/callback", start_at=START)  # type: ignore[call-arg]
    )


@pytest.fixture
def kite_client(kitesim: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=kitesim), base_url=KITE_BASE)  # type: ignore[arg-type]


def make_settings(database_url: str, *, redis_prefix: str | None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "redis_url": REDIS_URL if redis_prefix else None,
        "redis_key_prefix": redis_prefix or "unused:",
        "cors_origins": [SPA_ORIGIN],
        "spa_url": SPA_ORIGIN,
        "api_public_url": API_BASE,
        "kite_api_url": KITE_BASE,
        "kite_login_url": f"{KITE_BASE}/connect/login",
        "secret_keys": ["test-secret-key-0123456789abcdefghijklmnop"],
        "encryption_keys": [TEST_ENCRYPTION_KEY],
        # Tests that need a runtime build one and tick it by hand, on the simulator's clock.
        "agent_runtime": "off",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default's database file, migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


# redis: the distributed setup; sql: SQL sessions on PostgreSQL; sqlite: the embedded default.
@pytest.fixture(params=["redis", "sql", "sqlite"])
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def api(
    clean_database: str,
    redis_prefix: str,
    clock: ManualClock,
    kitesim: object,
    store_backend: str,
    sqlite_template: Path,
    tmp_path: Path,
) -> AsyncIterator[object]:
    database_url = as_app_role(clean_database)
    if store_backend == "sqlite":
        copy = tmp_path / "tradedesk.db"
        shutil.copyfile(sqlite_template, copy)
        database_url = f"sqlite+aiosqlite:///{copy}"
    settings = make_settings(database_url, redis_prefix=redis_prefix if store_backend == "redis" else None)
    app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        yield app


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def new_client(api: object) -> AsyncIterator[ClientFactory]:
    """Makes browser-like clients (own cookie jar, the SPA's Origin) for the API under test."""
    made: list[httpx.AsyncClient] = []

    def factory(
        *, origin: str | None = SPA_ORIGIN, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
    ) -> httpx.AsyncClient:
        headers = {"User-Agent": user_agent}
        if origin:
            headers["Origin"] = origin
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api, client=("203.0.113.7", 5555)),  # type: ignore[arg-type]
            base_url=API_BASE,
            headers=headers,
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(new_client: ClientFactory) -> httpx.AsyncClient:
    return new_client()


async def request_token_for(
    kite_client: httpx.AsyncClient, user_id: str, *, redirect_params: str | None = None
) -> str:
    """Sign in on kitesim's login form, as a browser would, and read the request token off the redirect."""
    form = {"user_id": user_id, "password": "demo", "api_key": DEMO_API_KEY}
    if redirect_params is not None:
        form["redirect_params"] = redirect_params
    response = await kite_client.post("/connect/login", data=form)
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return query["request_token"][0]


SignIn = Callable[..., Awaitable[dict[str, object]]]


async def sign_in_through(
    client: httpx.AsyncClient, kite_client: httpx.AsyncClient, user_id: str
) -> dict[str, object]:
    """The real chain: kitesim's login form, then /api/auth/authenticate; keeps the CSRF token on the client."""
    token = await request_token_for(kite_client, user_id)
    response = await client.post(
        "/api/auth/authenticate",
        json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token},
    )
    assert response.status_code == 200, response.text
    status: dict[str, object] = response.json()
    client.headers["X-CSRF-Token"] = str(status["csrf_token"])
    return status


async def kite_access_token(kite_client: httpx.AsyncClient, user_id: str) -> str:
    """An access token of the user's own, straight from the broker (as another Kite app of theirs would hold)."""
    token = await request_token_for(kite_client, user_id)
    checksum = hashlib.sha256(f"{DEMO_API_KEY}{token}{DEMO_API_SECRET}".encode()).hexdigest()
    answer = await kite_client.post(
        "/session/token", data={"api_key": DEMO_API_KEY, "request_token": token, "checksum": checksum}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["access_token"])


async def register_broker_user(kite_client: httpx.AsyncClient, user_id: str, user_name: str) -> int:
    """Adds a broker account to kitesim (password ``demo``); returns the status (201, or 409 when taken)."""
    response = await kite_client.post(
        "/sim/users",
        json={
            "user_id": user_id,
            "user_name": user_name,
            "email": f"{user_id.lower()}@example.com",
            "password": "demo",
        },
    )
    assert response.status_code in (201, 409), response.text
    return response.status_code


@pytest.fixture
def sign_in(kite_client: httpx.AsyncClient) -> SignIn:
    async def do(client: httpx.AsyncClient, user_id: str = "DEMO01") -> dict[str, object]:
        return await sign_in_through(client, kite_client, user_id)

    return do
