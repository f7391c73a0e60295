"""The session read with no Redis round trip: each process keeps the sessions it has read, and Redis tells it
(client tracking) the moment one changes. Steady-state requests send Redis nothing; a logout or revoke on one
instance is refused on another within 100 ms; losing the invalidation connection empties the copy; a Redis
that stops answering fails requests closed; idle expiry still slides, with at most one write a minute."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import API_BASE, REDIS_URL, SPA_ORIGIN, SignIn, make_settings
from tests.support.redis_server import PrivateRedis
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app
from tradedesk.redis_tracking import TrackedKeys
from tradedesk.sessions.redis_store import RedisSessionStore, session_key

# Commands the process sends on its own schedule, not per request: the tracking connection's handshake
# and heartbeat, and this test's own questions.
_BACKGROUND = {
    "ping",
    "client|tracking",
    "hello",
    "client|setinfo",
    "info",
    "config|resetstat",
    "client|list",
}


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


def reads_of(app: object) -> TrackedKeys:
    store = app.state.td.sessions.store  # type: ignore[attr-defined]
    assert isinstance(store, RedisSessionStore)
    return store.reads


async def tracking(app: object, client: httpx.AsyncClient) -> TrackedKeys:
    """The instance's tracked copy, once invalidation messages flow (the first session read starts it)."""
    await client.get("/api/auth/status")
    reads = reads_of(app)
    await until(lambda: reads.live)
    return reads


async def signed_in_and_tracked(app: object, client: httpx.AsyncClient, sign_in: SignIn) -> TrackedKeys:
    """``client`` signed in, the instance tracking, and its session read once since: in the copy."""
    await sign_in(client)
    reads = await tracking(app, client)
    assert (await client.get("/api/auth/status")).json()["authenticated"] is True
    return reads


async def until(condition: object, *, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def command_calls(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def browser(app: object, cookie: str | None = None) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url=API_BASE,
        headers={"Origin": SPA_ORIGIN},
    )
    if cookie is not None:
        client.cookies.set("tradedesk", cookie, domain="api.test")
    return client


@pytest.fixture
async def app_on_private_redis(
    private_redis: PrivateRedis, clean_database: str, clock: ManualClock, kitesim: object
) -> AsyncIterator[object]:
    settings = make_settings(clean_database, redis_prefix="cache:", redis_url=private_redis.url)
    app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        yield app


async def test_steady_state_requests_send_redis_no_command(
    app_on_private_redis: object, private_redis: PrivateRedis, sign_in: SignIn
) -> None:
    app = app_on_private_redis
    async with browser(app) as client, Redis.from_url(private_redis.url) as redis:
        reads = await signed_in_and_tracked(app, client, sign_in)
        hits = reads.stats.hits
        await redis.config_resetstat()

        for _ in range(200):
            status = await client.get("/api/auth/status")
            assert status.status_code == 200 and status.json()["authenticated"] is True

        calls = await command_calls(redis)
        per_request = {name: n for name, n in calls.items() if name not in _BACKGROUND}
        assert per_request == {}, per_request
        assert reads.stats.hits - hits == 200


async def test_idle_expiry_slides_with_at_most_one_write_a_minute(
    app_on_private_redis: object, private_redis: PrivateRedis, sign_in: SignIn, clock: ManualClock
) -> None:
    app = app_on_private_redis
    idle_timeout_s = app.state.td.settings.session_idle_timeout_s  # type: ignore[attr-defined]
    async with browser(app) as client, Redis.from_url(private_redis.url) as redis:
        await sign_in(client)
        await tracking(app, client)
        sessions = app.state.td.sessions  # type: ignore[attr-defined]
        key = session_key("cache:", sessions.key_hash_of_cookie(client.cookies.get("tradedesk")))
        await redis.config_resetstat()

        writes = []
        for _ in range(6):  # three minutes of use, a request every 30 s
            clock.advance(30)
            await redis.expire(key, 100)  # so that a refresh shows
            assert (await client.get("/api/auth/status")).json()["authenticated"] is True
            writes.append((await command_calls(redis)).get("set", 0))
            refreshed = await redis.ttl(key) > 100
            assert refreshed == (writes[-1] > (writes[-2] if len(writes) > 1 else 0))
        assert writes == [0, 1, 1, 2, 2, 3]  # one write a minute, each one sliding the expiry
        assert idle_timeout_s - 5 <= await redis.ttl(key) <= idle_timeout_s + 1


async def test_a_revoke_on_one_instance_is_refused_on_another_within_100_ms(
    clean_database: str, redis_prefix: str, clock: ManualClock, kitesim: object, sign_in: SignIn
) -> None:
    settings = make_settings(clean_database, redis_prefix=redis_prefix)
    one, other = (
        create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
        for _ in range(2)
    )
    devices = 25
    async with one.router.lifespan_context(one), other.router.lifespan_context(other):
        lags_ms: list[float] = []
        for _ in range(devices):
            async with browser(one) as here:
                await sign_in(here)
                cookie = here.cookies.get("tradedesk")
                async with browser(other, cookie) as there:
                    await tracking(other, there)
                    await there.get("/api/auth/status")  # now in the other instance's copy
                    hits = reads_of(other).stats.hits
                    assert (await there.get("/api/auth/status")).json()["authenticated"] is True
                    assert reads_of(other).stats.hits == hits + 1  # answered from memory

                    ended = await here.post("/api/auth/logout", headers={"X-CSRF-Token": await csrf_of(here)})
                    assert ended.status_code == 204, ended.text
                    started = time.perf_counter()
                    while (await there.get("/api/auth/status")).json()["authenticated"]:
                        assert time.perf_counter() - started < 1.0
                    lags_ms.append((time.perf_counter() - started) * 1000)
        lags_ms.sort()
        p99 = lags_ms[min(len(lags_ms) - 1, int(len(lags_ms) * 0.99))]
        figures = f"p99 {p99:.1f} ms, median {statistics.median(lags_ms):.1f} ms over {devices} revokes"
        print(f"revoke refused on the other instance after: {figures}")
        assert p99 <= 100, figures


async def csrf_of(client: httpx.AsyncClient) -> str:
    return str((await client.get("/api/auth/status")).json()["csrf_token"])


async def test_losing_the_invalidation_connection_empties_the_copy_until_it_is_back(
    app_on_private_redis: object, private_redis: PrivateRedis, sign_in: SignIn
) -> None:
    app = app_on_private_redis
    async with browser(app) as client, Redis.from_url(private_redis.url) as redis:
        reads = await signed_in_and_tracked(app, client, sign_in)
        assert len(reads) == 1

        trackers = [c for c in await redis.client_list() if "t" in c["flags"]]
        assert len(trackers) == 1
        await redis.client_kill_filter(_id=trackers[0]["id"])
        await until(lambda: not reads.live, timeout_s=1.0)
        assert len(reads) == 0

        # While nothing says what changed, every read goes to Redis and sees a revoke at once.
        sessions = app.state.td.sessions  # type: ignore[attr-defined]
        key = session_key("cache:", sessions.key_hash_of_cookie(client.cookies.get("tradedesk")))
        stored = await redis.get(key)
        assert stored is not None
        await redis.delete(key)
        assert (await client.get("/api/auth/status")).json()["authenticated"] is False
        await redis.set(key, stored, ex=3600)
        assert (await client.get("/api/auth/status")).json()["authenticated"] is True

        await until(lambda: reads.live, timeout_s=3.0)  # tracking comes back by itself
        await client.get("/api/auth/status")
        hits = reads.stats.hits
        assert (await client.get("/api/auth/status")).json()["authenticated"] is True
        assert reads.stats.hits == hits + 1


async def test_a_redis_that_stops_answering_fails_requests_closed(
    app_on_private_redis: object, private_redis: PrivateRedis, sign_in: SignIn
) -> None:
    app = app_on_private_redis
    async with browser(app) as client:
        reads = await signed_in_and_tracked(app, client, sign_in)

        pid = private_redis.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            while True:
                started = time.monotonic()
                answer = await client.get("/api/auth/status")
                assert time.monotonic() - started < 1.0
                if answer.status_code == 503:
                    break
                assert answer.status_code == 200
                assert time.monotonic() - stopped < 1.5, "still answered from memory 1.5 s after Redis hung"
                await asyncio.sleep(0.05)
            assert answer.json()["error"] == "ServiceUnavailable"
            assert not reads.live and len(reads) == 0
        finally:
            os.kill(pid, signal.SIGCONT)
        await until(lambda: reads.live, timeout_s=5.0)
        assert (await client.get("/api/auth/status")).json()["authenticated"] is True


async def test_tracked_reads_never_keep_a_value_an_invalidation_overtook() -> None:
    """A write that lands while a read is in flight: the read's answer is returned but not kept, since
    the invalidation for the write may have arrived before the read's reply."""
    from tradedesk.redis import create_redis

    client = create_redis(REDIS_URL, timeout_s=0.5)
    prefix = f"tdtest:track:{os.getpid()}:"
    reads = TrackedKeys(client, prefix=prefix, timeout_s=0.5)
    key = f"{prefix}k"
    try:
        await client.set(key, b"v1")
        assert await reads.get(key) == b"v1"
        await until(lambda: reads.live)

        real_get = client.get

        async def get_racing_a_write(name: str) -> object:
            value = await real_get(name)
            await client.set(key, b"v2")
            await until(lambda: reads.stats.invalidations > 0)
            return value

        client.get = get_racing_a_write  # type: ignore[method-assign]
        assert await reads.get(key) == b"v1"
        client.get = real_get  # type: ignore[method-assign]
        assert len(reads) == 0
        assert await reads.get(key) == b"v2"
        assert await reads.get(key) == b"v2" and reads.stats.hits == 1
    finally:
        await reads.close()
        await client.delete(key)
        await client.aclose()


async def test_a_remembered_session_is_shared_and_cannot_be_changed(redis_prefix: str) -> None:
    """The decoded record is kept with the tracked value and every read gets that one object: no request
    can change what another reads (records are frozen; the touch writes a new one), and a write drops it."""
    from datetime import UTC, datetime, timedelta

    from pydantic import ValidationError

    from tests.support.records import make_record
    from tradedesk.redis import create_redis
    from tradedesk.sessions.record import SessionRecordCodec

    now = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
    store = RedisSessionStore(
        create_redis(REDIS_URL, timeout_s=0.5),
        prefix=redis_prefix,
        codec=SessionRecordCodec(["cache-test-secret-0123456789abcdef"]),
        timeout_s=0.5,
    )
    record = make_record(now=now)
    try:
        await store.create(record, expires_at=now + timedelta(days=1), now=now)
        await store.load(record.key_hash, idle_timeout_s=60)
        await until(lambda: store.reads.live)
        first = await store.load(record.key_hash, idle_timeout_s=60)  # read from Redis, now remembered
        hits = store.reads.stats.hits
        assert first is not None
        with pytest.raises(ValidationError):
            first.ip = "198.51.100.1"
        second = await store.load(record.key_hash, idle_timeout_s=60)
        assert store.reads.stats.hits == hits + 1
        assert second is first and second == record
        touched = first.model_copy(update={"ip": "198.51.100.1", "last_seen_at": now + timedelta(minutes=5)})
        assert await store.save(touched, expires_at=now + timedelta(days=1), now=now)
        third = await store.load(record.key_hash, idle_timeout_s=60)
        assert third is not first and third == touched and first == record
    finally:
        await store.close()
