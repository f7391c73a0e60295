"""Redis goes away: authenticated requests fail closed with 503 + Retry-After within about a second."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import SPA_ORIGIN, SignIn, make_settings
from tests.procs import free_port
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app


@pytest.fixture
def private_redis() -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        try:
            if (
                subprocess.run(
                    ["redis-cli", "-p", str(port), "ping"], capture_output=True, timeout=2
                ).stdout.strip()
                == b"PONG"
            ):
                break
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.1)
    yield url, proc  # type: ignore[misc]
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def test_redis_outage_fails_closed(
    private_redis: tuple[str, subprocess.Popen[bytes]],
    clean_database: str,
    clock: ManualClock,
    kitesim: object,
    sign_in: SignIn,
) -> None:
    url, proc = private_redis
    settings = make_settings(clean_database, redis_prefix="down:", redis_url=url)
    app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers={"Origin": SPA_ORIGIN}
        )
        await sign_in(client)
        assert (await client.get("/api/auth/status")).json()["authenticated"] is True

        proc.kill()
        proc.wait()
        for path in ("/api/auth/status", "/api/auth/sessions"):
            started = time.monotonic()
            response = await client.get(path)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "ServiceUnavailable"
            assert int(response.headers["retry-after"]) >= 1
            assert elapsed < 1.5
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["sessions"] == "down"
        assert (await client.get("/healthz")).status_code == 200
        await client.aclose()


async def test_hung_redis_fails_the_session_read_within_a_second() -> None:
    """A Redis that accepts but never answers: the read fails (503 upstream) instead of hanging."""
    import asyncio

    from redis.exceptions import RedisError

    from tradedesk.redis import create_redis
    from tradedesk.redis_tracking import TrackedKeys

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = create_redis(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
    reads = TrackedKeys(client, prefix="td:sess:", timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(RedisError):
        await reads.get("td:sess:x")
    assert time.monotonic() - started < 1.0
    assert not reads.live
    await reads.close()
    await client.aclose()
    server.close()
    await server.wait_closed()


async def test_concurrent_session_reads_each_get_their_own_keys_value() -> None:
    """Many concurrent reads, first from Redis and then from the tracked copy, each get their own key's
    value; a missing key stays missing."""
    import asyncio

    from redis.asyncio import Redis

    from tests.conftest import REDIS_URL
    from tradedesk.redis import create_redis
    from tradedesk.redis_tracking import TrackedKeys

    raw = Redis.from_url(REDIS_URL)
    keys = [f"tdtest:pipe:{i}" for i in range(200)]
    await raw.mset({key: key.encode() for key in keys[::2]})
    client = create_redis(REDIS_URL, timeout_s=0.5)
    reads = TrackedKeys(client, prefix="tdtest:pipe:", timeout_s=0.5)
    expected = [key.encode() if i % 2 == 0 else None for i, key in enumerate(keys)]
    try:
        assert await asyncio.gather(*(reads.get(key) for key in keys)) == expected
        for _ in range(100):
            if reads.live:
                break
            await asyncio.sleep(0.01)
        assert await asyncio.gather(*(reads.get(key) for key in keys)) == expected  # fills the copy
        hits = reads.stats.hits
        assert await asyncio.gather(*(reads.get(key) for key in keys)) == expected
        assert reads.stats.hits == hits + len(keys)
    finally:
        await reads.close()
        await client.aclose()
        await raw.delete(*keys)
        await raw.aclose()
