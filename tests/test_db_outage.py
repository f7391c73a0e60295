"""PostgreSQL goes away (a TCP proxy in front of it is cut): every route that needs it answers 503 with
Retry-After, never 500; /readyz says the database is down and why; a CSV export already streaming ends
with an explicit error line. When the database is back, everything works again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.api.conftest import Trader
from tests.conftest import API_BASE, SPA_ORIGIN, START, SignIn, as_app_role, kite_access_token, make_settings
from tests.support.tcp_proxy import TcpProxy
from tradedesk.db import create_engine
from tradedesk.errors import is_database_outage, outage_reason
from tradedesk.kit.calendar import ist_day
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app
from tradedesk.models import Trade

PG_HOST, PG_PORT = "127.0.0.1", 5432
# Connections to a cut proxy are refused at once; anything slower is hanging on something.
ANSWER_WITHIN_S = 5.0


@dataclass
class Deployment:
    app: FastAPI
    proxy: TcpProxy
    client: httpx.AsyncClient
    owner_database: str


@pytest.fixture
async def deployment(
    clean_database: str,
    redis_prefix: str,
    clock: ManualClock,
    kitesim: object,
    store_backend: str,
) -> AsyncIterator[Deployment]:
    """The API reaching PostgreSQL only through a proxy the test can cut; sessions in Redis (``redis``)
    or in PostgreSQL itself (``sql``)."""
    proxy = await TcpProxy(PG_HOST, PG_PORT).start()
    settings = make_settings(
        proxy.url_for(as_app_role(clean_database)),
        redis_prefix=redis_prefix if store_backend == "redis" else None,
    )
    app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5555)),
            base_url=API_BASE,
            headers={"Origin": SPA_ORIGIN},
        )
        try:
            yield Deployment(app, proxy, client, clean_database)
        finally:
            await client.aclose()
            await proxy.aclose()


@pytest.fixture(params=["redis", "sql"])
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]

# Every route that reads or writes PostgreSQL, with a valid request.
DATABASE_ROUTES: dict[str, Call] = {
    "GET /api/trades": lambda c: c.get("/api/trades"),
    "GET /api/trades?status=closed&symbol=INFY": lambda c: c.get(
        "/api/trades", params={"status": "closed", "symbol": "INFY"}
    ),
    "GET /api/trades.csv": lambda c: c.get("/api/trades.csv"),
    "GET /api/pnl/summary": lambda c: c.get("/api/pnl/summary"),
    "GET /api/pnl/cumulative": lambda c: c.get("/api/pnl/cumulative"),
    "GET /api/stats/daily": lambda c: c.get("/api/stats/daily"),
    "GET /api/risk": lambda c: c.get("/api/risk"),
    "PUT /api/risk": lambda c: c.put("/api/risk", json={"daily_loss_limit": "5000.00"}),
    "POST /api/sync": lambda c: c.post("/api/sync", json={}),
}


async def timed(call: Call, client: httpx.AsyncClient) -> httpx.Response:
    started = time.monotonic()
    response = await call(client)
    assert time.monotonic() - started < ANSWER_WITHIN_S
    return response


def assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text}"
    assert response.json()["error"] == "ServiceUnavailable", what
    assert int(response.headers["retry-after"]) >= 1, what


async def signed_in_trader(deployment: Deployment, kite_client: httpx.AsyncClient, sign_in: SignIn) -> Trader:
    await sign_in(deployment.client)
    trader = Trader("DEMO01", deployment.client, kite_client, await kite_access_token(kite_client, "DEMO01"))
    await trader.order("INFY", "BUY", 3)
    await trader.order("INFY", "SELL", 3)
    assert (await trader.sync())["trades_closed"] == 1
    return trader


class TestDatabaseOutage:
    async def test_every_database_route_answers_503_then_recovers(
        self, deployment: Deployment, kite_client: httpx.AsyncClient, sign_in: SignIn, store_backend: str
    ) -> None:
        client = deployment.client
        await signed_in_trader(deployment, kite_client, sign_in)
        for what, call in DATABASE_ROUTES.items():
            assert (await call(client)).status_code == 200, what

        await deployment.proxy.cut()
        for what, call in DATABASE_ROUTES.items():
            assert_unavailable(await timed(call, client), what)
        # Signing in writes the account: a new browser gets 503 too, not 500.
        newcomer = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=deployment.app),
            base_url=API_BASE,
            headers={"Origin": SPA_ORIGIN},
        )
        token_response = await kite_client.post(
            "/connect/login", data={"user_id": "DEMO02", "password": "demo", "api_key": "tradedesk-demo"}
        )
        request_token = httpx.URL(token_response.headers["location"]).params["request_token"]
        signing_in = await newcomer.post(
            "/api/auth/authenticate",
            json={
                "api_key": "tradedesk-demo",
                "api_secret": "tradedesk-demo-secret",
                "request_token": request_token,
            },
        )
        await newcomer.aclose()
        assert_unavailable(signing_in, "POST /api/auth/authenticate")

        await deployment.proxy.restore()
        for what, call in DATABASE_ROUTES.items():
            assert (await call(client)).status_code == 200, what

    async def test_no_route_answers_500_during_the_outage(
        self, deployment: Deployment, kite_client: httpx.AsyncClient, sign_in: SignIn
    ) -> None:
        """Every GET route without path parameters, whatever it depends on: 2xx/4xx or 503, never another 5xx."""
        await signed_in_trader(deployment, kite_client, sign_in)
        # A live event stream never ends by itself (and needs no database): its own tests cover it.
        paths = sorted(
            path
            for path, operations in deployment.app.openapi()["paths"].items()
            if "get" in operations
            and "{" not in path
            and "text/event-stream" not in operations["get"]["responses"].get("200", {}).get("content", {})
        )
        assert "/api/trades" in paths and "/api/auth/sessions" in paths
        await deployment.proxy.cut()
        for path in paths:
            response = await timed(lambda c, p=path: c.get(p), deployment.client)  # type: ignore[misc]
            assert response.status_code < 500 or response.status_code == 503, f"{path}: {response.text}"
            if response.status_code == 503:
                assert response.headers["retry-after"]

    async def test_readyz_says_the_database_is_down_and_why_then_ready(
        self, deployment: Deployment, store_backend: str
    ) -> None:
        client = deployment.client
        assert (await client.get("/readyz")).json() == {"status": "ready", "database": "ok", "sessions": "ok"}
        await deployment.proxy.cut()
        response = await timed(lambda c: c.get("/readyz"), client)
        assert response.status_code == 503 and response.headers["retry-after"]
        body = response.json()
        assert body["status"] == "unavailable" and body["database"] == "down"
        assert body["reasons"]["database"] == "connection refused"
        # Sessions live in PostgreSQL with the SQL store, so they are down with it; Redis is not.
        if store_backend == "sql":
            assert body["sessions"] == "down" and body["reasons"]["sessions"] == "connection refused"
        else:
            assert body["sessions"] == "ok" and "sessions" not in body["reasons"]
        for leak in (str(deployment.proxy.port), "127.0.0.1", "postgres", "tradedesk_test"):
            assert leak not in response.text

        await deployment.proxy.restore()
        assert (await client.get("/readyz")).json() == {"status": "ready", "database": "ok", "sessions": "ok"}


# -- a CSV export that loses the database half way ---------------------------------------------------

EXPORT_ROWS = 2500  # three pages of 1000


async def seed_trades(owner_database: str, broker_id: str, count: int) -> None:
    engine = create_async_engine(owner_database)
    exit_at = START - timedelta(hours=1)
    rows = [
        {
            "broker_id": broker_id,
            "exchange": "NSE",
            "tradingsymbol": "INFY",
            "product": "MIS",
            "direction": "LONG",
            "status": "closed",
            "quantity": 1,
            "entry_price": Decimal("100"),
            "entry_at": exit_at - timedelta(minutes=5),
            "entry_trade_id": f"E{i}",
            "exit_price": Decimal("99.5"),
            "exit_at": exit_at,
            "exit_trade_id": f"X{i}",
            "realised_pnl": Decimal("-0.5"),
            "exit_reason": "manual",
            "day": ist_day(exit_at),
        }
        for i in range(count)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Trade), rows)
    await engine.dispose()


async def stream_export(
    app: FastAPI, cookie: str, *, on_first_chunk: Callable[[], Awaitable[None]]
) -> tuple[int, str]:
    """GET /api/trades.csv straight through ASGI, running ``on_first_chunk`` once the first part of the
    body has left (httpx's ASGI transport only hands back a finished body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/trades.csv",
        "raw_path": b"/api/trades.csv",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"api.test"), (b"cookie", cookie.encode())],
        "client": ("203.0.113.7", 5555),
        "server": ("api.test", 80),
    }
    requested = False
    never = asyncio.Event()

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # the client stays connected
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))  # type: ignore[arg-type]
            if len(chunks) == 1 and message.get("more_body"):
                await on_first_chunk()

    await asyncio.wait_for(app(scope, receive, send), timeout=ANSWER_WITHIN_S)  # type: ignore[arg-type]
    return status, b"".join(chunks).decode()


@pytest.mark.parametrize("store_backend", ["redis"])
async def test_csv_export_cut_short_ends_with_an_error_line(
    deployment: Deployment, sign_in: SignIn, caplog: pytest.LogCaptureFixture
) -> None:
    await sign_in(deployment.client)
    await seed_trades(deployment.owner_database, "DEMO01", EXPORT_ROWS)
    cookie = "; ".join(f"{c.name}={c.value}" for c in deployment.client.cookies.jar)

    async def nothing() -> None:
        pass

    status, whole = await stream_export(deployment.app, cookie, on_first_chunk=nothing)
    assert status == 200
    assert len(whole.splitlines()) == 1 + EXPORT_ROWS and "# error" not in whole

    with caplog.at_level(logging.WARNING, logger="tradedesk"):
        status, cut = await stream_export(deployment.app, cookie, on_first_chunk=deployment.proxy.cut)
    assert status == 200
    lines = cut.splitlines()
    assert lines[-1] == "# error: export incomplete, database unavailable; retry"
    assert len(lines) == 1 + 1000 + 1  # header, the page that left before the cut, the error line
    assert any("export" in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)

    await deployment.proxy.restore()
    status, again = await stream_export(deployment.app, cookie, on_first_chunk=nothing)
    assert status == 200 and again == whole


# -- what counts as an outage ---------------------------------------------------------------------------


async def test_only_connection_errors_count_as_an_outage(clean_database: str) -> None:
    """Real errors from PostgreSQL: a bug or bad data is not an outage (a 500, logged); a refused or
    dropped connection is (a 503)."""
    proxy = await TcpProxy(PG_HOST, PG_PORT).start()
    engine = create_engine(proxy.url_for(clean_database))

    async def error_of(statement: str, params: dict[str, object] | None = None) -> BaseException:
        with pytest.raises(SQLAlchemyError) as caught:
            async with engine.connect() as conn:
                await conn.execute(text("create temp table once (id int primary key)"))
                await conn.execute(text("insert into once values (1)"))
                await conn.execute(text(statement), params or {})
        return caught.value

    try:
        not_outages = {
            "constraint": await error_of("insert into once values (1)"),
            "programming": await error_of("select no_such_column from once"),
            "data": await error_of("select cast(:n as bigint)", {"n": str(2**63)}),
            "division": await error_of("select 1 / 0"),
        }
        for kind, error in not_outages.items():
            assert not is_database_outage(error), kind

        # The connection dies under a running statement.
        async def cut_soon() -> None:
            await asyncio.sleep(0.3)
            await proxy.cut()

        cutting = asyncio.create_task(cut_soon())
        with pytest.raises(SQLAlchemyError) as dropped:
            async with engine.connect() as conn:
                await conn.execute(text("select pg_sleep(3)"))
        await cutting
        assert is_database_outage(dropped.value) and outage_reason(dropped.value) == "connection lost"

        # Nobody listens any more.
        with pytest.raises(SQLAlchemyError) as refused:
            async with engine.connect() as conn:
                await conn.execute(text("select 1"))
        assert is_database_outage(refused.value) and outage_reason(refused.value) == "connection refused"
        assert is_database_outage(PoolTimeoutError("QueuePool limit reached"))
        assert not is_database_outage(ConnectionRefusedError())  # not from the database layer
    finally:
        await engine.dispose()
        await proxy.aclose()
