"""The product on a Redis Cluster (three primaries on loopback ports, started here): a redirect sign-in
through its pending state, rate limits, an agent's lease, the live event stream with its backfill, the
session count, key rotation and sign-out; every key set one operation touches lies in one slot; and a
cluster that cannot be reached fails closed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from tests.conftest import (
    API_BASE,
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SPA_ORIGIN,
    as_app_role,
    make_settings,
    sign_in_through,
)
from tests.support.agents import build_runtime
from tests.support.redis_servers import ClusterServers, assert_fails_closed
from tradedesk.agents.events import RedisEventBus, stream_key
from tradedesk.agents.leases import RedisLeases, lease_key, runtime_key
from tradedesk.auth.pending import RedisPendingSignIns, TooManySignInsPending, pending_index_key, pending_key
from tradedesk.cli import rotate_keys
from tradedesk.kit.clock import ManualClock
from tradedesk.kit.ratelimit import rate_limit_key
from tradedesk.main import create_app
from tradedesk.redis import create_redis

ROOT = Path(__file__).resolve().parents[1] / "backend" / "tradedesk"
METRICS_TOKEN = "cluster-metrics-token-0123456789"

# Every place that sends a Lua script or a MULTI transaction, by file: each names keys of one slot. A new
# one fails this count until its keys are checked here (or, for sessions, on the real cluster below).
ATOMIC_SITES = {
    "auth/pending.py": 2,  # admit (index + payload), take (payload + index): the {signins} tag
    "agents/leases.py": 2,  # renew (one slot's leases per call), release (one lease)
    "kit/ratelimit.py": 1,  # count an attempt: one key
    "cli.py": 1,  # WATCH/MULTI rewrite of one session record
}
ATOMIC_SITE = re.compile(r"register_script\(|pipeline\(transaction=True\)")
SESSION_STORE = "sessions/redis_store.py"


def slots(*keys: str) -> set[int]:
    return {key_slot(key.encode("utf-8")) for key in keys}


class TestKeysTouchedTogether:
    def test_a_pending_sign_in_and_the_index_share_a_slot(self) -> None:
        hashes = [hashlib.sha256(f"state-{i}".encode()).hexdigest() for i in range(100)]
        assert len(slots(pending_index_key("td:"), *(pending_key("td:", h) for h in hashes))) == 1

    def test_a_users_leases_share_a_slot_and_users_spread(self) -> None:
        assert len(slots(*(lease_key("td:", "AB1234", agent_id) for agent_id in range(100)))) == 1
        assert len(slots(*(lease_key("td:", f"U{i:04d}", 1) for i in range(100)))) > 50
        assert len(slots(*(stream_key("td:", f"U{i:04d}") for i in range(100)))) > 50
        assert slots(lease_key("td:", "AB1234", 1)) == slots(stream_key("td:", "AB1234"))

    def test_one_key_per_rate_limit_and_runtime(self) -> None:
        # Each is a transaction or a SET NX on a key of its own: one slot whatever the text.
        assert rate_limit_key("td:", "signin:203.0.113.7").startswith("td:rl:")
        assert runtime_key("td:", "host-1-abc") == "td:runtime:{host-1-abc}"

    def test_every_script_and_transaction_is_accounted_for(self) -> None:
        found = {
            str(path.relative_to(ROOT)): len(ATOMIC_SITE.findall(path.read_text()))
            for path in ROOT.rglob("*.py")
        }
        found = {name: count for name, count in found.items() if count}
        sessions = found.pop(SESSION_STORE, 0)
        assert sessions > 0, "the session store's transactions moved: check them on the cluster"
        assert found == ATOMIC_SITES


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    servers = ClusterServers(tmp_path_factory.mktemp("redis-cluster")).start()
    yield servers
    servers.stop()


@pytest.fixture
def prefix() -> str:
    return f"tdc:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def direct(cluster: ClusterServers) -> AsyncIterator[Any]:
    """A client of the test's own on the cluster, to look at what the app left there."""
    redis = create_redis(cluster.url, timeout_s=2)
    assert isinstance(redis, RedisCluster)
    await redis.initialize()
    yield redis
    await redis.aclose()


async def build_app(
    url: str, database_url: str, prefix: str, clock: ManualClock, kitesim: object, **overrides: object
) -> FastAPI:
    settings = make_settings(
        as_app_role(database_url),
        redis_prefix=prefix,
        redis_url=url,
        metrics_token=METRICS_TOKEN,
        **overrides,
    )
    return create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]


@pytest.fixture
async def app(
    cluster: ClusterServers, clean_database: str, prefix: str, clock: ManualClock, kitesim: object
) -> AsyncIterator[FastAPI]:
    app = await build_app(cluster.url, clean_database, prefix, clock, kitesim, signin_rate_limit=6)
    async with app.router.lifespan_context(app):
        yield app


def browser(app: FastAPI, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 5555)),
        base_url=API_BASE,
        headers={"Origin": SPA_ORIGIN, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
    )


async def keys_like(redis: Any, pattern: str) -> set[str]:
    return {key.decode() async for key in redis.scan_iter(match=pattern, count=500)}


async def read_events(
    app: FastAPI, client: httpx.AsyncClient, *, last_event_id: str, until: Any, timeout_s: float = 10
) -> list[dict[str, Any]]:
    """GET /api/events as a browser's EventSource would, straight through ASGI (httpx's ASGI transport
    waits for a whole body, which a live stream never ends): the events until ``until(events)`` holds."""
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/events",
        "raw_path": b"/api/events",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"api.test"),
            (b"accept", b"text/event-stream"),
            (b"cookie", cookie.encode()),
            (b"last-event-id", last_event_id.encode()),
        ],
        "client": ("203.0.113.7", 5555),
        "server": ("api.test", 80),
    }
    events: list[dict[str, Any]] = []
    done = asyncio.Event()
    pending = b""
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal pending
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            pending += message.get("body", b"")
            *blocks, pending = re.split(rb"\r?\n\r?\n", pending)
            for block in blocks:
                fields = dict(
                    line.split(": ", 1) for line in block.decode().splitlines() if not line.startswith(":")
                )
                if "data" in fields:
                    events.append({"id": fields.get("id"), "event": fields["event"], "data": fields["data"]})
            if until(events):
                done.set()
            if not message.get("more_body", False):
                done.set()

    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        done.set()
        await asyncio.wait_for(task, 5)
    return events


async def test_pending_sign_ins_and_rate_limits_live_in_the_cluster(
    app: FastAPI, direct: Any, prefix: str
) -> None:
    client = browser(app)
    started = (
        await client.post("/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET})
    ).json()
    state_hash = hashlib.sha256(started["state"].encode()).hexdigest()
    assert await direct.exists(pending_key(prefix, state_hash)) == 1
    assert await direct.zscore(pending_index_key(prefix), state_hash) is not None

    # The limit of 6 per address: five more attempts go through, the next is refused with a wait.
    for _ in range(5):
        response = await client.post("/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": "s"})
        assert response.status_code == 200, response.text
    refused = await client.post("/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": "s"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert await direct.get(rate_limit_key(prefix, "signin:203.0.113.7")) == b"7"
    # Another address has its own window.
    other = browser(app, ip="198.51.100.9")
    assert (await other.post("/api/auth/login", json={"api_key": "k", "api_secret": "s"})).status_code == 200
    await client.aclose()
    await other.aclose()


async def test_the_pending_bound_and_single_use_on_the_cluster(direct: Any, prefix: str) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    pending = RedisPendingSignIns(direct, prefix=prefix)
    await pending.put("a" * 64, b"first", ttl_s=300, now=now, bound=2)
    await pending.put("b" * 64, b"second", ttl_s=600, now=now, bound=2)
    with pytest.raises(TooManySignInsPending) as refused:
        await pending.put("c" * 64, b"third", ttl_s=600, now=now + timedelta(seconds=60), bound=2)
    assert refused.value.headers["Retry-After"] == "240"
    assert await pending.take("a" * 64, now=now) == b"first"
    assert await pending.take("a" * 64, now=now) is None
    await pending.put("c" * 64, b"third", ttl_s=600, now=now, bound=2)


async def test_leases_of_many_users_on_every_node(direct: Any, prefix: str) -> None:
    leases = RedisLeases(direct)
    keys = [lease_key(prefix, f"U{i:03d}", agent_id) for i in range(12) for agent_id in (1, 2)]
    assert len({direct.get_node_from_key(key).name for key in keys}) == 3, "users on every primary"
    for key in keys:
        assert await leases.claim(key, "rt-a", ttl_ms=10_000)
        assert not await leases.claim(key, "rt-b", ttl_ms=10_000)
    await direct.set(keys[0], "rt-b", px=10_000)  # lost to another runtime meanwhile
    assert await leases.renew(keys, "rt-a", ttl_ms=20_000) == set(keys[1:])
    assert 10_000 < await direct.pttl(keys[5]) <= 20_000
    await leases.release(keys[0], "rt-a")
    assert await leases.holds(keys[0], "rt-b")
    for key in keys[1:]:
        await leases.release(key, "rt-a")
    assert await direct.exists(*keys[1:]) == 0


async def test_live_events_of_users_on_every_node(direct: Any, prefix: str) -> None:
    bus = RedisEventBus(direct, prefix=prefix, cluster_poll_ms=50)
    users = [f"U{i:03d}" for i in range(9)]
    assert len({direct.get_node_from_key(stream_key(prefix, u)).name for u in users}) == 3
    first = {u: await bus.publish(u, kind="event", data={"n": 0}) for u in users}
    streams = {u: bus.subscribe(u, last_id="0-0") for u in users}
    try:
        for u in users:  # the backfill, each from its own node
            event = await asyncio.wait_for(anext(streams[u]), 5)
            assert (event.id, event.data) == (first[u], {"n": 0})
        started = time.monotonic()
        for u in users:
            await bus.publish(u, kind="event", data={"n": 1, "user": u})
        for u in users:  # live, through the reader's polls
            event = await asyncio.wait_for(anext(streams[u]), 5)
            assert event.data == {"n": 1, "user": u}
        assert time.monotonic() - started < 2
    finally:
        for stream in streams.values():
            await stream.aclose()
        await bus.close()


async def test_signed_in_user_on_a_cluster(
    app: FastAPI, direct: Any, prefix: str, clean_database: str, kite_client: httpx.AsyncClient
) -> None:
    """The whole day of a user on the cluster: their session's keys, too, are changed together."""
    client = browser(app)
    started = (
        await client.post("/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET})
    ).json()
    redirect_params = parse_qs(urlsplit(started["login_url"]).query)["redirect_params"][0]
    form = {
        "user_id": "DEMO01",
        "password": "demo",
        "api_key": DEMO_API_KEY,
        "redirect_params": redirect_params,
    }
    back = urlsplit((await kite_client.post("/connect/login", data=form)).headers["location"])
    callback = await client.get(f"{back.path}?{back.query}")
    assert callback.status_code == 303 and callback.headers["location"] == f"{SPA_ORIGIN}/"
    status = (await client.get("/api/auth/status")).json()
    assert status["authenticated"] is True and status["broker_id"] == "DEMO01"
    client.headers["X-CSRF-Token"] = status["csrf_token"]
    state_hash = hashlib.sha256(started["state"].encode()).hexdigest()
    assert await direct.exists(pending_key(prefix, state_hash)) == 0, "taken once"

    # A second browser of the same user: both listed, then the second one signed out.
    second = browser(app, ip="198.51.100.20")
    await sign_in_through(second, kite_client, "DEMO01")
    assert len((await client.get("/api/auth/sessions")).json()) == 2

    agent = (await client.post("/api/agents", json={"strategy": "sma_crossover"})).json()
    runtime = build_runtime(app, runtime_id="rt-cluster")
    await runtime.tick()
    assert await direct.get(lease_key(prefix, "DEMO01", agent["id"])) == b"rt-cluster"
    assert (await client.get(f"/api/agents/{agent['id']}")).json()["state"] == "running"

    # Everything so far, from the start of the user's stream; then a change while it is open.
    async def stop_soon() -> None:
        await asyncio.sleep(0.5)
        assert (await client.post(f"/api/agents/{agent['id']}/stop")).status_code == 200

    stopping = asyncio.create_task(stop_soon())
    events = await read_events(
        app,
        client,
        last_event_id="0-0",
        until=lambda seen: any(
            e["event"] == "agent" and json.loads(e["data"])["state"] in ("stopping", "stopped") for e in seen
        ),
    )
    await stopping
    states = [json.loads(e["data"])["state"] for e in events if e["event"] == "agent"]
    assert states[0] == "starting" and "running" in states
    assert [e["id"] for e in events] == sorted(
        {e["id"] for e in events}, key=lambda i: tuple(map(int, i.split("-")))
    )
    await runtime.tick()
    assert await direct.exists(lease_key(prefix, "DEMO01", agent["id"])) == 0

    metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert "tradedesk_active_sessions 2.0" in metrics.text

    report = await rotate_keys(app.state.td.settings, database_url=clean_database, broker_ids=["DEMO01"])
    assert report.redis_sessions is not None and report.redis_sessions.current == 2

    assert (await second.post("/api/auth/logout")).status_code == 204
    assert (await second.get("/api/auth/status")).json()["authenticated"] is False
    assert len((await client.get("/api/auth/sessions")).json()) == 1
    assert (await client.post("/api/auth/logout")).status_code == 204
    assert (await client.get("/api/auth/status")).json()["authenticated"] is False
    assert await keys_like(direct, f"{prefix}sess:*") == set()
    await client.aclose()
    await second.aclose()


async def test_an_unreachable_cluster_fails_closed(
    tmp_path: Path, clean_database: str, clock: ManualClock, kitesim: object, kite_client: httpx.AsyncClient
) -> None:
    servers = ClusterServers(tmp_path).start()
    try:
        app = await build_app(servers.url, clean_database, "down:", clock, kitesim)
        async with app.router.lifespan_context(app):
            client = browser(app)
            await sign_in_through(client, kite_client, "DEMO01")
            assert (await client.get("/readyz")).status_code == 200

            servers.nodes[1].kill()  # one primary: a third of the users' keys are gone
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["sessions"] == "down"

            servers.stop()
            await assert_fails_closed(client)
            await client.aclose()
    finally:
        servers.stop()
