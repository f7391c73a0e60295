"""Broker answers we cannot use: mapped to clear 502/504/401, and nothing is stored."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from tests.conftest import API_BASE, SPA_ORIGIN, as_app_role, make_settings
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def kite_ok(data: object) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": data})


@pytest.fixture
async def broker_with(
    clean_database: str, redis_prefix: str, clock: ManualClock, kitesim: object
) -> AsyncIterator[Callable[[Handler], httpx.AsyncClient]]:
    """An API whose broker is kitesim for sign-in, and `handler` for everything else."""
    clients: list[httpx.AsyncClient] = []
    apps = []
    kite_real = httpx.ASGITransport(app=kitesim)  # type: ignore[arg-type]

    def make(handler: Handler) -> httpx.AsyncClient:
        async def route(request: httpx.Request) -> httpx.Response:
            if request.url.path in ("/session/token", "/user/profile"):
                return await kite_real.handle_async_request(request)
            answer = handler(request)
            return answer if isinstance(answer, httpx.Response) else await answer

        settings = make_settings(as_app_role(clean_database), redis_prefix=redis_prefix)
        app = create_app(settings, clock=clock, kite_transport=httpx.MockTransport(route))
        apps.append(app)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=API_BASE, headers={"Origin": SPA_ORIGIN}
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
    for app in apps:
        await app.state.td.kite.aclose()
        await app.state.td.sessions.store.close()
        await app.state.td.engine.dispose()


GOOD_TRADE = {
    "trade_id": "T1",
    "order_id": "O1",
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "instrument_token": 408065,
    "product": "MIS",
    "average_price": 1500.5,
    "quantity": 1,
    "transaction_type": "BUY",
    "fill_timestamp": "2026-11-30 09:31:00",
}


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        (lambda r: httpx.Response(200, content=b"<html>gateway</html>"), 502, "BrokerUnavailable"),
        (
            lambda r: httpx.Response(
                503, json={"status": "error", "message": "down", "error_type": "NetworkException"}
            ),
            502,
            "BrokerUnavailable",
        ),
        (
            lambda r: kite_ok([{**GOOD_TRADE}, {"trade_id": "T2", "quantity": "lots"}]),
            502,
            "BrokerUnavailable",
        ),
        (lambda r: kite_ok([{**GOOD_TRADE, "fill_timestamp": "yesterday"}]), 502, "BrokerUnavailable"),
        (
            lambda r: httpx.Response(
                403,
                json={
                    "status": "error",
                    "message": "Token is invalid or has expired.",
                    "error_type": "TokenException",
                },
            ),
            401,
            "BrokerTokenInvalid",
        ),
    ],
)
async def test_unusable_broker_answers_store_nothing(
    broker_with: Callable[[Handler], httpx.AsyncClient],
    kite_client: httpx.AsyncClient,
    sign_in: object,
    answer: Handler,
    status: int,
    error: str,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/orders":
            return kite_ok([])
        return answer(request)

    client = broker_with(handler)
    await sign_in(client)  # type: ignore[operator]
    response = await client.post("/api/sync", json={})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["detail"]
    assert (await client.get("/api/trades")).json()["items"] == []


async def test_broker_timeout_is_504(
    broker_with: Callable[[Handler], httpx.AsyncClient], sign_in: object
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = broker_with(handler)
    await sign_in(client)  # type: ignore[operator]
    for method, path in (("POST", "/api/sync"), ("GET", "/api/positions")):
        response = await client.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 504, response.text
        assert response.json()["error"] == "BrokerTimeout"


async def test_positions_garbage_is_502(
    broker_with: Callable[[Handler], httpx.AsyncClient], sign_in: object
) -> None:
    client = broker_with(lambda r: kite_ok({"net": "nope"}))
    await sign_in(client)  # type: ignore[operator]
    response = await client.get("/api/positions")
    assert response.status_code == 502
    assert json.loads(response.text)["error"] == "BrokerUnavailable"


async def test_a_late_arriving_older_fill_rebuilds_fifo_order(
    broker_with: Callable[[Handler], httpx.AsyncClient], sign_in: object
) -> None:
    """The broker reports a fill older than ones already matched: the instrument is replayed in time order."""

    def fill(trade_id: str, side: str, price: float, at: str) -> dict[str, object]:
        return {
            **GOOD_TRADE,
            "trade_id": trade_id,
            "order_id": "O" + trade_id,
            "transaction_type": side,
            "average_price": price,
            "quantity": 5,
            "fill_timestamp": at,
        }

    later_buy = fill("T2", "BUY", 110.0, "2026-11-30 10:30:00")
    sell = fill("T3", "SELL", 120.0, "2026-11-30 10:40:00")
    early_buy = fill("T1", "BUY", 100.0, "2026-11-30 10:00:00")
    answers = [[later_buy, sell], [early_buy, later_buy, sell]]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/orders":
            return kite_ok([])
        return kite_ok(answers[0])

    client = broker_with(handler)
    await sign_in(client)  # type: ignore[operator]
    assert (await client.post("/api/sync", json={})).json() == {"fills_new": 2, "trades_closed": 1}
    first = (await client.get("/api/trades", params={"status": "closed"})).json()["items"]
    assert [t["entry_price"] for t in first] == ["110.0000"]
    answers.pop(0)
    assert (await client.post("/api/sync", json={})).json() == {"fills_new": 1, "trades_closed": 0}
    closed = (await client.get("/api/trades", params={"status": "closed"})).json()["items"]
    still_open = (await client.get("/api/trades", params={"status": "open"})).json()["items"]
    assert [(t["entry_price"], t["realised_pnl"]) for t in closed] == [("100.0000", "100.0000")]
    assert [(t["entry_price"], t["quantity"]) for t in still_open] == [("110.0000", 5)]


async def test_syncs_waiting_on_a_slow_broker_hold_no_database_connection(
    broker_with: Callable[[Handler], httpx.AsyncClient], sign_in: object
) -> None:
    """More syncs wait on the broker than the API has database connections (10, and 10 more for a burst):
    every one of them reaches the broker, and reads answer meanwhile."""
    waiting = 0
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal waiting
        if request.url.path == "/trades":
            waiting += 1
            await release.wait()
        return kite_ok([GOOD_TRADE] if request.url.path == "/trades" else [])

    client = broker_with(handler)
    await sign_in(client)  # type: ignore[operator]
    # This process holds every earlier test's garbage: a full collection during the burst can stall the
    # loop past the Redis connect timeout (0.5 s). A served API freezes its startup heap instead.
    gc.collect()
    gc.disable()
    syncs = [asyncio.create_task(client.post("/api/sync", json={})) for _ in range(25)]
    try:
        async with asyncio.timeout(10):
            while waiting < len(syncs):
                await asyncio.sleep(0.01)
                done = [t.result() for t in syncs if t.done()]
                assert not done, [(a.status_code, a.text) for a in done]
        async with asyncio.timeout(2):
            page = await client.get("/api/trades")
        assert page.status_code == 200, page.text
    finally:
        release.set()
        gc.enable()
    answers = await asyncio.gather(*syncs)
    assert [a.status_code for a in answers] == [200] * len(syncs)
    assert sum(a.json()["fills_new"] for a in answers) == 1  # serialised per user: stored once
