"""Redis crashes (SIGKILL) and comes back on the same port: the very next sign-ins and authenticated
requests work, with no pooled connection left over from before failing them; connections that break
with a command in flight are replaced, and only commands that may run twice are sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.conftest import API_BASE, REDIS_URL, SPA_ORIGIN, SignIn, make_settings
from tests.support.redis_server import PrivateRedis
from tests.support.tcp_proxy import TcpProxy
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app
from tradedesk.redis import create_redis, is_repeatable
from tradedesk.redis_tracking import TrackedKeys

BROWSERS = 10


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


@pytest.fixture
async def proxied_redis(redis_prefix: str) -> AsyncIterator[tuple[TcpProxy, Redis]]:
    """A proxy in front of the shared Redis (never touched itself), and a plain client to check on it."""
    proxy = await TcpProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])).start()
    direct = Redis.from_url(REDIS_URL)
    yield proxy, direct
    await direct.aclose()
    await proxy.aclose()


async def test_sign_ins_and_requests_work_right_after_redis_restarts(
    private_redis: PrivateRedis,
    clean_database: str,
    clock: ManualClock,
    kitesim: object,
    sign_in: SignIn,
) -> None:
    settings = make_settings(clean_database, redis_prefix="restart:", redis_url=private_redis.url)
    app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        browsers = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=(f"198.51.100.{i + 1}", 5555)),
                base_url=API_BASE,
                headers={"Origin": SPA_ORIGIN},
            )
            for i in range(BROWSERS)
        ]
        try:
            # Busy enough that the pool holds several connections when Redis dies.
            await asyncio.gather(*(sign_in(b) for b in browsers))
            answers = await asyncio.gather(*(b.get("/api/auth/sessions") for b in browsers))
            assert [a.status_code for a in answers] == [200] * BROWSERS

            await asyncio.to_thread(private_redis.kill)
            await asyncio.to_thread(private_redis.start)

            # Redis kept nothing: old sessions are simply gone (401, not 503) ...
            for browser in browsers:
                assert (await browser.get("/api/auth/sessions")).status_code == 401
                browser.cookies.clear()
            ready = await browsers[0].get("/readyz")
            assert ready.status_code == 200, ready.text
            # ... and signing in again, all at once, works the first time for everyone.
            statuses = await asyncio.gather(*(sign_in(b) for b in browsers), return_exceptions=True)
            assert [s if isinstance(s, BaseException) else "ok" for s in statuses] == ["ok"] * BROWSERS
            answers = await asyncio.gather(*(b.get("/api/auth/sessions") for b in browsers))
            assert [a.status_code for a in answers] == [200] * BROWSERS
        finally:
            for browser in browsers:
                await browser.aclose()


async def test_session_read_is_sent_again_when_its_connection_breaks(
    proxied_redis: tuple[TcpProxy, Redis], redis_prefix: str
) -> None:
    proxy, direct = proxied_redis
    key = f"{redis_prefix}sess:read"
    await direct.set(key, b"record")
    client = create_redis(proxy.url_for(REDIS_URL), timeout_s=0.5)
    # A prefix nothing is under: the tracking connection stays up, and the read still goes to Redis.
    reads = TrackedKeys(client, prefix=f"{redis_prefix}nothing:", timeout_s=0.5)
    try:
        assert await reads.get(key) == b"record"
        proxy.lose_next_replies()
        assert await reads.get(key) == b"record"
    finally:
        await reads.close()
        await client.aclose()


async def test_repeatable_commands_are_sent_again_and_incr_never(
    proxied_redis: tuple[TcpProxy, Redis], redis_prefix: str
) -> None:
    proxy, direct = proxied_redis
    client = create_redis(proxy.url_for(REDIS_URL), timeout_s=0.5)
    key, counter = f"{redis_prefix}k", f"{redis_prefix}rl:attempts"
    try:
        assert await client.set(key, b"v", ex=60)
        proxy.lose_next_replies()
        assert await client.get(key) == b"v"

        # A pipeline of repeatable commands (as a session is created) is resent whole.
        proxy.lose_next_replies()
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(key, b"w", ex=60)
            pipe.zadd(f"{redis_prefix}index", {"member": 1.0})
            assert await pipe.execute() in ([True, 1], [True, 0])  # 0: the first run had added it
        assert await direct.get(key) == b"w"

        # The rate limiter's INCR ran once at Redis when its answer was lost: it must not run again.
        proxy.lose_next_replies()
        with pytest.raises(RedisConnectionError):
            async with client.pipeline(transaction=True) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, 60, nx=True)
                await pipe.execute()
        assert await direct.get(counter) == b"1"
        assert await client.ping()  # a live connection again, to break once more
        proxy.lose_next_replies()
        with pytest.raises(RedisConnectionError):
            await client.incr(counter)
        assert await direct.get(counter) == b"2"
        # The broken connections were replaced: the next command simply works.
        assert await client.incr(counter) == 3
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("args", "repeatable"),
    [
        (("GET", "k"), True),
        ((b"GETEX", "k", "EX", 60), True),
        (("SET", "k", "v", "EX", 60), True),
        (("SET", "k", "NX", "EX", 60), True),  # "NX" is the value here, not an option
        (("SET", "k", "v", "NX", "PX", 500), False),
        (("SET", "k", "v", "GET"), False),
        (("ZADD", "k", "GT", 1, "m"), True),
        (("ZADD", "k", "INCR", 1, "m"), False),
        (("DEL", "a", "b"), True),
        (("INCR", "k"), False),
        (("GETDEL", "k"), False),
        (("XADD", "s", "*", "f", "v"), False),
        (("FLUSHALL",), False),
        ((), False),
    ],
)
def test_which_commands_may_be_sent_twice(args: tuple[object, ...], repeatable: bool) -> None:
    assert is_repeatable(args) is repeatable
