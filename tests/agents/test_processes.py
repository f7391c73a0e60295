"""Agents across real processes: kitesim on a fast clock, two API instances without runtimes and two
agent workers, sharing Redis and PostgreSQL. Live events reach any instance; a killed lease holder's
agent resumes on the other worker with no order sent twice or lost; a full restart resumes every agent."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import DEMO_API_KEY, DEMO_API_SECRET
from tests.procs import ProductProcesses, sign_in_over_http
from tests.procs import request_token as procs_request_token

pytestmark = pytest.mark.multiprocess

SPA = "http://spa.example"
SPEED = 30.0  # one simulated minute every two seconds
LEASE_TTL_S = 5.0
MONDAY_0920_IST = "2026-11-30T09:20:00+05:30"


class World(ProductProcesses):
    def __init__(self, *, database_url: str, redis_prefix: str) -> None:
        self.database_url = database_url
        super().__init__(
            database_url=database_url,
            redis_prefix=redis_prefix,
            spa=SPA,
            apis=("a", "b"),
            workers=("w1", "w2"),
            kitesim_args=("--speed", str(SPEED), "--start-at", MONDAY_0920_IST),
            label="agents",
            TRADEDESK_AGENT_LEASE_TTL_S=str(LEASE_TTL_S),
        )

    def restart_ours(self) -> None:
        """Every process of the product, not the broker (whose tokens live in its memory)."""
        for proc in [*self.workers.values(), *self.api_procs.values()]:
            proc.stop()
        for proc in [*self.api_procs.values(), *self.workers.values()]:
            proc.start()

    def sim_now(self) -> str:
        return str(httpx.get(f"{self.kite}/sim/clock").json()["now"])


@pytest.fixture
def world(clean_database: str, redis_prefix: str) -> Iterator[World]:
    made = World(database_url=clean_database, redis_prefix=redis_prefix)
    made.start()
    try:
        yield made
    finally:
        made.stop()


def request_token(kite: str, user_id: str) -> str:
    return procs_request_token(kite, user_id, DEMO_API_KEY)


@pytest.fixture
def browsers() -> Iterator[list[httpx.Client]]:
    made: list[httpx.Client] = []
    yield made
    for browser in made:
        browser.close()


def signed_in(world: World, user_id: str, browsers: list[httpx.Client]) -> httpx.Client:
    browser = sign_in_over_http(
        world.apis["a"], world.kite, user_id, origin=SPA, api_key=DEMO_API_KEY, api_secret=DEMO_API_SECRET
    )
    browsers.append(browser)
    return browser


def broker_orders(world: World, user_id: str) -> list[dict[str, Any]]:
    """The broker's own order book (every order that reached it), through a token of the user's own."""
    token = request_token(world.kite, user_id)
    checksum = hashlib.sha256(f"{DEMO_API_KEY}{token}{DEMO_API_SECRET}".encode()).hexdigest()
    session = httpx.post(
        f"{world.kite}/session/token",
        data={"api_key": DEMO_API_KEY, "request_token": token, "checksum": checksum},
    ).json()["data"]
    orders = httpx.get(
        f"{world.kite}/orders",
        headers={"X-Kite-Version": "3", "Authorization": f"token {DEMO_API_KEY}:{session['access_token']}"},
    ).json()["data"]
    return list(orders)


def recorded_intents(world: World, agent_id: int) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        dsn = world.database_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "select seq, intent_id, kind, tag, status, order_id from agent_orders where agent_id = $1 order by seq",
                agent_id,
            )
        finally:
            await conn.close()
        return [dict(r) for r in rows]

    return asyncio.run(read())


def wait_for(check: Any, *, timeout_s: float, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"not true within {timeout_s} s")


class Listener:
    """An SSE client in a thread: collects (id, event, data) until closed."""

    def __init__(self, browser: httpx.Client, url: str, *, last_event_id: str | None = None) -> None:
        self.items: list[tuple[str, str, dict[str, Any]]] = []
        self._stop = threading.Event()
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self._client = httpx.Client(
            cookies=browser.cookies, headers={**dict(browser.headers), **headers}, timeout=None
        )
        self._url = url
        self.status: int | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self._url) as response:
                self.status = response.status_code
                event, data, ident = "message", "", ""
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("id:"):
                        ident = line[3:].strip()
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif line == "":
                        if data:
                            self.items.append((ident, event, json.loads(data)))
                        event, data, ident = "message", "", ""
        except httpx.HTTPError:
            return
        finally:
            self.ended.set()

    def close(self) -> None:
        self._stop.set()
        self._client.close()


def test_events_reach_any_instance_only_for_their_owner_and_resume(
    world: World, browsers: list[httpx.Client]
) -> None:
    alice, bob = signed_in(world, "DEMO01", browsers), signed_in(world, "DEMO02", browsers)
    alice_stream = Listener(alice, f"{world.apis['b']}/api/events")
    bob_stream = Listener(bob, f"{world.apis['b']}/api/events")
    try:
        wait_for(lambda: alice_stream.status == 200 and bob_stream.status == 200, timeout_s=10)
        started = alice.post(
            f"{world.apis['a']}/api/agents",
            json={"strategy": "sma_crossover", "params": {"fast": 2, "slow": 3}},
        )
        assert started.status_code == 201, started.text
        agent_id = started.json()["id"]
        running = wait_for(
            lambda: [i for i in alice_stream.items if i[1] == "agent" and i[2]["state"] == "running"],
            timeout_s=15,
        )
        assert running[0][2]["id"] == agent_id and running[0][2]["runtime"] in ("w1", "w2")
        first_id = alice_stream.items[0][0]
        # A parameter change reaches the running agent within a second: its runtime says so.
        changed_at = time.monotonic()
        assert (
            alice.put(f"{world.apis['b']}/api/strategies/sma_crossover/params", json={"slow": 4}).status_code
            == 200
        )
        wait_for(
            lambda: [
                i for i in alice_stream.items if i[1] == "event" and "parameters version 2" in i[2]["message"]
            ],
            timeout_s=5,
            every_s=0.02,
        )
        assert time.monotonic() - changed_at <= 1.0
        alice.post(f"{world.apis['a']}/api/agents/{agent_id}/stop")
        wait_for(
            lambda: [i for i in alice_stream.items if i[1] == "agent" and i[2]["state"] == "stopped"],
            timeout_s=15,
        )
        time.sleep(0.5)
        assert bob_stream.items == []
        # A second browser of Alice's resumes after the first event it saw: the rest, in order, no gaps.
        resumed = Listener(alice, f"{world.apis['a']}/api/events", last_event_id=first_id)
        try:
            expected = [i[0] for i in alice_stream.items[1:]]
            wait_for(lambda: len(resumed.items) >= len(expected), timeout_s=10)
            assert [i[0] for i in resumed.items[: len(expected)]] == expected
        finally:
            resumed.close()
        # Signing out ends this browser's live stream (checked every few seconds), not Bob's.
        assert alice.post(f"{world.apis['b']}/api/auth/logout").status_code == 204
        assert alice_stream.ended.wait(timeout=10)
        assert not bob_stream.ended.is_set()
    finally:
        alice_stream.close()
        bob_stream.close()


def test_a_killed_lease_holder_is_replaced_without_duplicate_or_lost_orders(
    world: World, browsers: list[httpx.Client]
) -> None:
    alice = signed_in(world, "DEMO01", browsers)
    started = alice.post(
        f"{world.apis['a']}/api/agents",
        json={"strategy": "sma_crossover", "params": {"fast": 2, "slow": 3, "tradingsymbol": "INFY"}},
    )
    assert started.status_code == 201, started.text
    agent_id = started.json()["id"]
    agent_url = f"{world.apis['b']}/api/agents/{agent_id}"
    holder = wait_for(lambda: alice.get(agent_url).json()["runtime"], timeout_s=15)
    # Trade a while first, so the take-over has orders to adopt.
    wait_for(lambda: len(recorded_intents(world, agent_id)) >= 2, timeout_s=90, every_s=0.5)
    popen = world.workers[holder].popen
    assert popen is not None
    popen.send_signal(signal.SIGKILL)
    popen.wait()
    killed_at = time.monotonic()
    other = "w2" if holder == "w1" else "w1"
    wait_for(lambda: alice.get(agent_url).json()["runtime"] == other, timeout_s=LEASE_TTL_S + 10, every_s=0.1)
    handover_s = time.monotonic() - killed_at
    assert handover_s <= 15
    before = len(recorded_intents(world, agent_id))
    wait_for(lambda: len(recorded_intents(world, agent_id)) > before, timeout_s=90, every_s=0.5)
    # The kill switch, from another instance: everything closed, and said so, within two seconds.
    killed = time.monotonic()
    result = alice.post(f"{world.apis['a']}/api/agents/stop-all")
    assert time.monotonic() - killed <= 2.0
    assert result.status_code == 200 and result.json()["stopped"] == 1
    assert alice.get(agent_url).json()["state"] == "stopped"

    assert_every_intent_reached_the_broker_once(world, agent_id, "DEMO01", flat=True)


def assert_every_intent_reached_the_broker_once(
    world: World, agent_id: int, user_id: str, *, flat: bool
) -> None:
    intents = recorded_intents(world, agent_id)
    placed = [i for i in intents if i["kind"] == "place"]
    ours = [o for o in broker_orders(world, user_id) if (o.get("tag") or "").startswith(f"td{agent_id}-")]
    tags = [o["tag"] for o in ours]
    assert len(tags) == len(set(tags)), "an intent reached the broker twice"
    assert sorted(tags) == sorted(i["tag"] for i in placed), "an intent was lost or unknown to the broker"
    assert all(i["status"] == "sent" for i in placed)
    if flat:
        net = sum(o["filled_quantity"] * (1 if o["transaction_type"] == "BUY" else -1) for o in ours)
        assert net == 0


def test_a_worker_told_to_stop_hands_its_agents_over_at_once(
    world: World, browsers: list[httpx.Client]
) -> None:
    """SIGTERM (a deploy, a scale-in): the worker releases its leases as it stops, so the other takes the
    agent over within a reconcile or two, not after the lease TTL, and no order is sent twice."""
    alice = signed_in(world, "DEMO01", browsers)
    started = alice.post(
        f"{world.apis['a']}/api/agents",
        json={"strategy": "sma_crossover", "params": {"fast": 2, "slow": 3, "tradingsymbol": "SBIN"}},
    )
    assert started.status_code == 201, started.text
    agent_id = started.json()["id"]
    agent_url = f"{world.apis['b']}/api/agents/{agent_id}"
    holder = wait_for(lambda: alice.get(agent_url).json()["runtime"], timeout_s=15)
    wait_for(lambda: len(recorded_intents(world, agent_id)) >= 1, timeout_s=90, every_s=0.5)
    proc = world.workers[holder]
    assert proc.popen is not None
    proc.popen.send_signal(signal.SIGTERM)
    told_at = time.monotonic()
    other = "w2" if holder == "w1" else "w1"
    wait_for(lambda: alice.get(agent_url).json()["runtime"] == other, timeout_s=LEASE_TTL_S, every_s=0.05)
    handover_s = time.monotonic() - told_at
    print(f"\nhandover after SIGTERM: {handover_s:.2f} s (lease TTL {LEASE_TTL_S:.0f} s)")
    assert handover_s < 2.0, f"took {handover_s:.2f} s: the leases were not released on SIGTERM"
    assert proc.popen.wait(timeout=10) == 0
    before = len(recorded_intents(world, agent_id))
    wait_for(lambda: len(recorded_intents(world, agent_id)) > before, timeout_s=90, every_s=0.5)
    assert alice.post(f"{world.apis['a']}/api/agents/stop-all").status_code == 200
    assert_every_intent_reached_the_broker_once(world, agent_id, "DEMO01", flat=True)


def test_restarting_every_process_resumes_every_agent(world: World, browsers: list[httpx.Client]) -> None:
    alice, bob = signed_in(world, "DEMO01", browsers), signed_in(world, "DEMO02", browsers)
    ids = []
    for browser, strategy in ((alice, "sma_crossover"), (bob, "sma_crossover"), (alice, "short_strangle")):
        response = browser.post(f"{world.apis['a']}/api/agents", json={"strategy": strategy})
        assert response.status_code == 201, response.text
        ids.append((browser, response.json()["id"]))

    def all_running() -> bool:
        return all(b.get(f"{world.apis['a']}/api/agents/{i}").json()["state"] == "running" for b, i in ids)

    wait_for(all_running, timeout_s=15)
    world.restart_ours()
    restarted_at = datetime.fromisoformat(world.sim_now())

    def beating_again() -> bool:
        agents = [b.get(f"{world.apis['b']}/api/agents/{i}").json() for b, i in ids]
        return all(
            a["state"] == "running"
            and a["runtime"] in ("w1", "w2")
            and datetime.fromisoformat(a["heartbeat_at"]) > restarted_at
            for a in agents
        )

    wait_for(beating_again, timeout_s=20)
