"""A session record in Redis cannot be rewritten into someone else's session: whoever can write to Redis
but does not hold the server's keys gets an anonymous request, not another user's trades."""

from __future__ import annotations

import logging

import httpx
import pytest
from redis.asyncio import Redis

from tests.api.conftest import Trader
from tests.conftest import REDIS_URL, ClientFactory, SignIn, kite_access_token
from tradedesk.sessions.redis_store import session_key


@pytest.fixture
def store_backend() -> str:
    return "redis"


async def trader(
    new_client: ClientFactory, sign_in: SignIn, kite_client: httpx.AsyncClient, user_id: str
) -> Trader:
    api = new_client()
    await sign_in(api, user_id)
    return Trader(user_id, api, kite_client, await kite_access_token(kite_client, user_id))


async def test_rewriting_broker_id_in_ones_own_record_gives_no_access_to_another_user(
    api: object,
    new_client: ClientFactory,
    sign_in: SignIn,
    kite_client: httpx.AsyncClient,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = await trader(new_client, sign_in, kite_client, "DEMO01")
    b = await trader(new_client, sign_in, kite_client, "DEMO02")
    await b.order("INFY", "BUY", 2)
    await b.order("INFY", "SELL", 2)
    assert (await b.sync())["fills_new"] == 2
    assert await b.trades() and await a.trades() == []

    sessions = api.state.td.sessions  # type: ignore[attr-defined]
    cookie = a.api.cookies.get("tradedesk")
    key = session_key(redis_prefix, sessions.key_hash_of_cookie(cookie))
    redis = Redis.from_url(REDIS_URL)
    try:
        stored = await redis.get(key)
        assert stored is not None and b'"broker_id":"DEMO01"' in stored
        await redis.set(key, stored.replace(b'"broker_id":"DEMO01"', b'"broker_id":"DEMO02"'), keepttl=True)
    finally:
        await redis.aclose()

    with caplog.at_level(logging.WARNING, logger="tradedesk.sessions"):
        stolen = await a.api.get("/api/trades")
        status = (await a.api.get("/api/auth/status")).json()
    assert stolen.status_code == 401, stolen.text
    assert status["authenticated"] is False
    warnings = [r for r in caplog.records if r.name == "tradedesk.sessions" and r.levelno == logging.WARNING]
    assert warnings and all("integrity" in r.getMessage() for r in warnings)
    assert str(cookie) not in caplog.text and str(cookie).split(".")[0] not in caplog.text

    # B is untouched, and A signs in again as A.
    assert (await b.api.get("/api/trades")).status_code == 200
    await sign_in(a.api, "DEMO01")
    assert await a.trades() == []
