"""Load: simulated traders on two API instances and two agent workers, all real processes, for a while, with
one API instance and one worker killed (kill -9) halfway through.

The bench starts kitesim (its clock inside market hours and fast, so that agents trade), two API instances
without agent runtimes and two ``python -m tradedesk.agents.worker`` processes on free loopback ports, over a
throw-away PostgreSQL database (``tradedesk_bench_load_<hex>``, dropped afterwards) and a Redis key prefix of
its own (deleted afterwards). Each trader is registered at kitesim, signs in through kitesim's login form and
``/api/auth/authenticate``, sets its daily loss limit, starts an ``sma_crossover`` agent, keeps one live event
stream (``/api/events``) open and works the dashboard from one asyncio process: P&L, cumulative series and the
calendar, trade pages and the CSV export, syncs, its agent (read, stop, start again), its parameters, its
sessions and its live positions. Unsafe requests carry the SPA's Origin and the CSRF token.

The bench's client is also the load balancer: requests go round-robin to the instances it thinks are up; one
that fails to connect is marked down (and up again when its /healthz answers), and the request is sent once
to the other instance when repeating it is harmless (GET, PUT, sync, stop) or when it never reached a server.

Every answer is checked for another trader's data: the broker_id and email of /api/auth/status, the loss
limit of /api/risk (a different one per trader), the session handles of /api/auth/sessions and of parameter
history entries, and the (symbol, fast, slow) of every agent's parameters (also different per trader) in
agent lists, agent reads and live `agent` events. Ids that cannot tell their owner by themselves (trade rows
of pages and CSV files, agents, agent events of pages and live streams, parameter changes) are collected and
looked up in PostgreSQL after the run. After the run every trader pulls its kill switch and, once every agent
has stopped, every order intent the product recorded is compared with kitesim's order book of its account:
each must be there exactly once (none sent twice, none lost), and no account may hold another's order.

Reports requests, errors by status, p50/p99 per route (also as multiples of GET /healthz's p50/p99, sampled
on both instances throughout the same run), leaks, duplicated and lost orders, the time the other worker
took to drive the killed worker's agents, live streams resumed elsewhere, each process's CPU and memory,
and the warnings and errors the processes logged. Exits 1 on a leak, a duplicated, lost or misplaced order.

Run: .venv/bin/python bench/load.py [--traders 200 --seconds 120 --kill-at 60] [--quick] [--json PATH]
Needs PostgreSQL (TEST_PG_ADMIN_DSN, superuser) and Redis (TEST_REDIS_URL), as the tests do."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import itertools
import json
import os
import platform
import random
import re
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agents import CLK_TCK, MONDAY_0930_IST, agent_params, cpu_s, rss_mb  # noqa: E402
from bench.trading import clean_redis, dsn, percentile  # noqa: E402

from tests.conftest import (  # noqa: E402
    APP_ROLE,
    DEMO_API_KEY,
    DEMO_API_SECRET,
    create_database_with_app_role,
    drop_database,
    kite_access_token,
    migrate,
    register_broker_user,
    request_token_for,
)
from tests.procs import Proc, ProductProcesses  # noqa: E402
from tradedesk.agents.orders import parse_tag  # noqa: E402
from tradedesk.agents.schemas import LIVE_STATES as AGENT_LIVE_STATES  # noqa: E402
from tradedesk.agents.strategies.sma_crossover import SmaParams  # noqa: E402
from tradedesk.kit.calendar import IST, ist_day  # noqa: E402

SPA = "http://spa.bench"
STRATEGY = "sma_crossover"
START_AT = datetime.fromisoformat(MONDAY_0930_IST)
TODAY = ist_day(START_AT)
SQUARE_OFF_IST = SmaParams.model_fields["square_off_time"].default
INSTANCES = ("a", "b")
WORKERS = ("w1", "w2")
HEALTHZ_EVERY_S = 0.2
PROC_SAMPLE_EVERY_S = 1.0
REQUEST_TIMEOUT_S = 30.0
KEEPALIVE_S = 4.0
# A live stream hears a ping every 15 s: three missed ones mean the connection is gone.
SSE_READ_TIMEOUT_S = 45.0
TRADES_PAGE = 5
SETUP_CONCURRENCY = 8
TEARDOWN_CONCURRENCY = 8
LIVE_STATES = tuple(sorted(state.value for state in AGENT_LIVE_STATES))
LOG_LEVELS = re.compile(r" (WARNING|ERROR|CRITICAL) (\S+) (.*)$")


class SetupError(Exception):
    """The topology or a trader's sign-in did not come up as the bench needs it."""


# -- what the run saw --------------------------------------------------------------------------------------


@dataclass(slots=True)
class RouteFigures:
    latencies_s: list[float] = field(default_factory=list)
    # From the first byte of the request sent to the last header of the answer read: the instance's time
    # (and the network's), without what waited in this process for a connection or for its event loop.
    answer_s: list[float] = field(default_factory=list)
    connects_s: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    by_instance: Counter[str] = field(default_factory=Counter)


class Recorder:
    """Every answer, by phase (setup, load, teardown) and route template; leaks, retries and /healthz."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.routes: dict[str, dict[str, RouteFigures]] = defaultdict(lambda: defaultdict(RouteFigures))
        self.retries: Counter[str] = Counter()
        self.leaks: list[dict[str, Any]] = []
        self.mismatches: list[dict[str, Any]] = []
        self.server_errors: list[dict[str, Any]] = []
        self.notes: Counter[str] = Counter()
        self.healthz: dict[str, list[float]] = defaultdict(list)
        self.healthz_failures: Counter[str] = Counter()
        # (when, how long) of every answered request and /healthz sample of the load, for the timeline.
        self.window_start = 0.0
        self.timeline: list[tuple[float, float]] = []
        self.healthz_timeline: list[tuple[float, float]] = []

    def answer(
        self, route: str, response: httpx.Response, elapsed_s: float, instance: str, marks: dict[str, float]
    ) -> None:
        figures = self.routes[self.phase][route]
        figures.statuses[str(response.status_code)] += 1
        figures.by_instance[instance] += 1
        if "connection.connect_tcp.complete" in marks:
            figures.connects_s.append(
                marks["connection.connect_tcp.complete"] - marks["connection.connect_tcp.started"]
            )
        if response.status_code < 400:
            figures.latencies_s.append(elapsed_s)
            if self.phase == "load":
                self.timeline.append((time.monotonic() - self.window_start, elapsed_s))
            if "http11.receive_response_headers.complete" in marks:
                figures.answer_s.append(
                    marks["http11.receive_response_headers.complete"]
                    - marks["http11.send_request_headers.started"]
                )
        elif response.status_code >= 500 and len(self.server_errors) < 200:
            self.server_errors.append(
                {
                    "phase": self.phase,
                    "route": route,
                    "instance": instance,
                    "status": response.status_code,
                    "request_id": response.headers.get("x-request-id"),
                    "body": response.text[:300],
                }
            )

    def failure(self, route: str, what: str, instance: str) -> None:
        figures = self.routes[self.phase][route]
        figures.statuses[what] += 1
        figures.by_instance[instance] += 1

    def leak(self, trader: Trader, route: str, what: str) -> None:
        self.leaks.append({"phase": self.phase, "trader": trader.user_id, "route": route, "what": what})

    def mismatch(self, trader: Trader, route: str, what: str) -> None:
        """The caller's own data, not as the caller left it (not another trader's): reported, not a leak."""
        self.mismatches.append({"phase": self.phase, "trader": trader.user_id, "route": route, "what": what})


class Balancer:
    """Round-robin over the instances believed up. A connection failure marks an instance down (its /healthz
    sampler marks it up again); the request then goes once to the other instance if that is safe."""

    def __init__(self, urls: dict[str, str], recorder: Recorder) -> None:
        self.urls = urls
        self.up = dict.fromkeys(urls, True)
        self.recorder = recorder
        self._turn = itertools.count()

    def order(self) -> list[str]:
        names = list(self.urls)
        first = next(self._turn) % len(names)
        rotated = names[first:] + names[:first]
        return [n for n in rotated if self.up[n]] + [n for n in rotated if not self.up[n]]

    async def send(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        route: str,
        idempotent: bool,
        body: object = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        candidates = self.order()
        started = time.perf_counter()
        for attempt, name in enumerate(candidates[:2]):
            marks: dict[str, float] = {}

            async def trace(event: str, _: object, marks: dict[str, float] = marks) -> None:
                marks[event] = time.perf_counter()

            try:
                response = await client.request(
                    method, self.urls[name] + path, json=body, params=params, extensions={"trace": trace}
                )
            except httpx.TimeoutException as exc:
                # Slow, not gone: a balancer waits for it rather than sending the work twice.
                self.recorder.failure(route, f"timeout:{type(exc).__name__}", name)
                return None
            except httpx.TransportError as exc:
                # A refused connection is an instance gone; a reset one may be a single request's fate.
                never_sent = isinstance(exc, httpx.ConnectError)
                if never_sent:
                    self.up[name] = False
                if attempt == 0 and (idempotent or never_sent) and len(candidates) > 1:
                    self.recorder.retries[f"{route} ({type(exc).__name__} on {name})"] += 1
                    continue
                self.recorder.failure(route, f"conn:{type(exc).__name__}", name)
                return None
            self.recorder.answer(route, response, time.perf_counter() - started, name, marks)
            return response
        return None


# -- a trader --------------------------------------------------------------------------------------------


class Trader:
    """One trader's browser: its own cookie jar, the SPA's Origin, the CSRF token once signed in."""

    def __init__(self, n: int, *, lb: Balancer, recorder: Recorder, think_s: float, seed: int) -> None:
        self.n = n
        self.user_id = f"LT{n:04d}"
        self.lb = lb
        self.recorder = recorder
        self.think_s = think_s
        self.rng = random.Random(seed * 100_003 + n)
        # Different per trader (for fewer than 352 traders): an agent's parameters tell whose it is.
        self.marker: dict[str, object] = agent_params(n)
        self.loss_limit = Decimal(100_000 + n)
        self.lots = 1
        self.expected_lots: int | None = None
        self.client = httpx.AsyncClient(
            headers={"Origin": SPA, "User-Agent": f"tradedesk load trader {n}"},
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S),
            # A browser's six connections per origin, and the live stream's. Idle connections are dropped
            # before uvicorn's 5 s keep-alive ends them, so that no request races a server-side close.
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=KEEPALIVE_S),
        )
        self.handles: set[str] = set()
        self.seen_trades: set[int] = set()
        self.seen_agents: set[int] = set()
        self.seen_events: dict[int, int] = {}
        self.seen_param_changes: set[int] = set()
        # The live stream.
        self.sse_events: Counter[str] = Counter()
        self.sse_connects: Counter[str] = Counter()
        self.sse_drops: Counter[str] = Counter()
        self.sse_down_since: float | None = None
        self.sse_resumed_after_s: list[float] = []

    async def aclose(self) -> None:
        await self.client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        route: str,
        idempotent: bool,
        body: object = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        return await self.lb.send(
            self.client, method, path, route=route, idempotent=idempotent, body=body, params=params
        )

    async def get_json(self, path: str, *, route: str, params: dict[str, str] | None = None) -> Any:
        response = await self.call("GET", path, route=route, idempotent=True, params=params)
        if response is None or response.status_code != 200:
            return None
        return response.json()

    # -- checks --------------------------------------------------------------------------------------------
    def check_agent(self, route: str, agent: dict[str, Any]) -> None:
        self.seen_agents.add(int(agent["id"]))
        params = agent.get("params") or {}
        if any(params.get(name) != value for name, value in self.marker.items()):
            shown = {name: params.get(name) for name in self.marker}
            self.recorder.leak(self, route, f"agent {agent['id']} with parameters {shown}, not this trader's")

    def check_risk(self, route: str, risk: dict[str, Any]) -> None:
        try:
            limit = Decimal(str(risk.get("daily_loss_limit")))
        except InvalidOperation:
            limit = None
        if limit != self.loss_limit:
            self.recorder.leak(self, route, f"daily loss limit {risk.get('daily_loss_limit')}")

    def check_params(self, route: str, params: dict[str, Any]) -> None:
        if any(params.get(name) != value for name, value in self.marker.items()):
            shown = {name: params.get(name) for name in self.marker}
            self.recorder.leak(self, route, f"parameters {shown}, not this trader's")
        elif self.expected_lots is not None and params.get("lots") != self.expected_lots:
            self.recorder.mismatch(self, route, f"lots {params.get('lots')}, last set {self.expected_lots}")

    # -- sign-in and agent ---------------------------------------------------------------------------------
    async def sign_in(self, kite: httpx.AsyncClient) -> None:
        token = await request_token_for(kite, self.user_id)
        response = await self.call(
            "POST",
            "/api/auth/authenticate",
            route="POST /api/auth/authenticate",
            idempotent=False,
            body={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token},
        )
        if response is None or response.status_code != 200:
            raise SetupError(f"{self.user_id} not signed in: {response and response.text[:300]}")
        status = response.json()
        if status.get("broker_id") != self.user_id:
            self.recorder.leak(self, "POST /api/auth/authenticate", f"signed in as {status.get('broker_id')}")
        self.client.headers["X-CSRF-Token"] = str(status["csrf_token"])
        sessions = await self.get_json("/api/auth/sessions", route="GET /api/auth/sessions")
        if not sessions:
            raise SetupError(f"{self.user_id}: no session list")
        self.handles.update(s["handle"] for s in sessions if s["current"])
        risk = await self.call(
            "PUT",
            "/api/risk",
            route="PUT /api/risk",
            idempotent=True,
            body={"daily_loss_limit": str(self.loss_limit)},
        )
        if risk is None or risk.status_code != 200:
            raise SetupError(f"{self.user_id}: loss limit not set: {risk and risk.text[:300]}")
        self.check_risk("PUT /api/risk", risk.json())
        started = await self.call(
            "POST",
            "/api/agents",
            route="POST /api/agents",
            idempotent=False,
            body={"strategy": STRATEGY, "params": {**self.marker, "lots": self.lots}},
        )
        if started is None or started.status_code != 201:
            raise SetupError(f"{self.user_id}: agent not started: {started and started.text[:300]}")
        self.expected_lots = self.lots
        self.check_agent("POST /api/agents", started.json())

    async def kill_switch(self) -> None:
        await self.call("POST", "/api/agents/stop-all", route="POST /api/agents/stop-all", idempotent=True)

    # -- what a trader does --------------------------------------------------------------------------------
    async def dashboard(self) -> None:
        """The dashboard's first paint, its requests at once as the SPA sends them: P&L tiles, the cumulative
        chart (30 days), the calendar heat map (a year of daily stats) and the loss limit."""
        month_ago, year_ago = TODAY - timedelta(days=30), TODAY - timedelta(days=364)
        _, _, _, risk = await asyncio.gather(
            self.get_json("/api/pnl/summary", route="GET /api/pnl/summary"),
            self.get_json(
                "/api/pnl/cumulative",
                route="GET /api/pnl/cumulative",
                params={"from": month_ago.isoformat(), "to": TODAY.isoformat()},
            ),
            self.get_json(
                "/api/stats/daily",
                route="GET /api/stats/daily",
                params={"from": year_ago.isoformat(), "to": TODAY.isoformat()},
            ),
            self.get_json("/api/risk", route="GET /api/risk"),
        )
        if risk is not None:
            self.check_risk("GET /api/risk", risk)

    async def trades(self) -> None:
        """The trades page and up to two more (small pages: a trader has a few round trips in a run)."""
        limit = str(TRADES_PAGE)
        page = await self.get_json("/api/trades", route="GET /api/trades", params={"limit": limit})
        for _ in range(3):
            if page is None:
                return
            self.seen_trades.update(int(item["id"]) for item in page["items"])
            if not page.get("next_cursor"):
                return
            page = await self.get_json(
                "/api/trades",
                route="GET /api/trades?cursor",
                params={"limit": limit, "cursor": page["next_cursor"]},
            )

    async def export(self) -> None:
        response = await self.call("GET", "/api/trades.csv", route="GET /api/trades.csv", idempotent=True)
        if response is None or response.status_code != 200:
            return
        rows = list(csv.reader(io.StringIO(response.text)))
        for number, row in enumerate(rows):
            if row and row[0].startswith("#"):
                self.recorder.notes[f"GET /api/trades.csv 200 cut short: {','.join(row)[:90]}"] += 1
            elif number == 0 and row[:1] != ["id"]:
                self.recorder.notes["GET /api/trades.csv 200 without its header row"] += 1
            elif number > 0 and row:
                self.seen_trades.add(int(row[0]))

    async def sync(self) -> None:
        # Idempotent by contract (a second sync stores nothing twice): safe for the balancer to repeat.
        await self.call("POST", "/api/sync", route="POST /api/sync", idempotent=True, body={})

    async def agents(self) -> None:
        listed = await self.get_json("/api/agents", route="GET /api/agents")
        if not listed:
            return
        for agent in listed:
            self.check_agent("GET /api/agents", agent)
        newest = listed[0]
        agent = await self.get_json(f"/api/agents/{newest['id']}", route="GET /api/agents/{id}")
        if agent is not None:
            self.check_agent("GET /api/agents/{id}", agent)
        page = await self.get_json(
            f"/api/agents/{newest['id']}/events",
            route="GET /api/agents/{id}/events",
            params={"limit": "50"},
        )
        if page is not None:
            for event in page["items"]:
                self.seen_events[int(event["id"])] = int(event["agent_id"])
                if int(event["agent_id"]) != int(newest["id"]):
                    self.recorder.leak(
                        self,
                        "GET /api/agents/{id}/events",
                        f"event {event['id']} of agent {event['agent_id']}",
                    )

    async def tune(self) -> None:
        """A parameter change (lots, 1 <-> 2: symbol and averages stay this trader's), then the editor's
        reads: the parameters and their history."""
        lots = 2 if self.lots == 1 else 1
        path = f"/api/strategies/{STRATEGY}/params"
        changed = await self.call(
            "PUT", path, route="PUT /api/strategies/{name}/params", idempotent=True, body={"lots": lots}
        )
        if changed is not None and changed.status_code == 200:
            self.lots = self.expected_lots = lots
            self.check_params("PUT /api/strategies/{name}/params", changed.json())
        elif changed is None or changed.status_code >= 500:
            self.expected_lots = None  # the change may or may not have been made
        params = await self.get_json(path, route="GET /api/strategies/{name}/params")
        if params is not None:
            self.check_params("GET /api/strategies/{name}/params", params)
            if self.expected_lots is None:
                self.lots = self.expected_lots = int(params["lots"])
        history = await self.get_json(
            f"{path}/history", route="GET /api/strategies/{name}/params/history", params={"limit": "20"}
        )
        for change in history or []:
            self.seen_param_changes.add(int(change["id"]))
            if change.get("session_handle") not in (None, *self.handles):
                self.recorder.leak(
                    self,
                    "GET /api/strategies/{name}/params/history",
                    f"change {change['id']} made from session handle {change['session_handle']}",
                )

    async def status(self) -> None:
        status = await self.get_json("/api/auth/status", route="GET /api/auth/status")
        if status is None:
            return
        if not status.get("authenticated"):
            self.recorder.mismatch(self, "GET /api/auth/status", "signed out")
        elif (
            status.get("broker_id") != self.user_id
            or status.get("email") != f"{self.user_id.lower()}@example.com"
        ):
            self.recorder.leak(
                self, "GET /api/auth/status", f"status of {status.get('broker_id')} / {status.get('email')}"
            )

    async def sessions(self) -> None:
        for session in await self.get_json("/api/auth/sessions", route="GET /api/auth/sessions") or []:
            if session["handle"] not in self.handles:
                self.recorder.leak(self, "GET /api/auth/sessions", f"session handle {session['handle']}")

    async def positions(self) -> None:
        await self.get_json("/api/positions", route="GET /api/positions")

    async def toggle_agent(self) -> None:
        """Stop the running agent, or start a new one once the last has stopped."""
        listed = await self.get_json("/api/agents", route="GET /api/agents")
        if listed is None:
            return
        for agent in listed:
            self.check_agent("GET /api/agents", agent)
        live = [a for a in listed if a["state"] in LIVE_STATES]
        if live:
            if live[0]["state"] != "stopping":
                stopped = await self.call(
                    "POST",
                    f"/api/agents/{live[0]['id']}/stop",
                    route="POST /api/agents/{id}/stop",
                    idempotent=True,
                )
                if stopped is not None and stopped.status_code == 200:
                    self.check_agent("POST /api/agents/{id}/stop", stopped.json())
            return
        started = await self.call(
            "POST",
            "/api/agents",
            route="POST /api/agents",
            idempotent=False,
            body={"strategy": STRATEGY, "params": {**self.marker, "lots": self.lots}},
        )
        if started is not None and started.status_code == 201:
            self.expected_lots = self.lots
            self.check_agent("POST /api/agents", started.json())

    async def work(self, stop: asyncio.Event) -> None:
        actions: list[tuple[Callable[[], Awaitable[None]], float]] = [
            (self.dashboard, 4),
            (self.trades, 3),
            (self.export, 1),
            (self.sync, 2),
            (self.agents, 3),
            (self.tune, 1.5),
            (self.status, 1),
            (self.sessions, 0.5),
            (self.positions, 1),
            (self.toggle_agent, 0.3),
        ]
        calls, weights = zip(*actions, strict=True)
        pause = self.rng.uniform(0, self.think_s)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            if stop.is_set():
                return
            action = self.rng.choices(calls, weights)[0]
            try:
                await action()
            except (KeyError, TypeError, ValueError) as exc:
                self.recorder.notes[f"unreadable answer in {action.__name__}: {type(exc).__name__}"] += 1
            pause = self.rng.uniform(0.5, 1.5) * self.think_s

    # -- the live stream -----------------------------------------------------------------------------------
    async def listen(self, stop: asyncio.Event) -> None:
        """One EventSource: reconnects (after the server's retry hint) to an instance that is up, resuming
        after the last id it saw, as a browser does."""
        last_id: str | None = None
        retry_s = 2.0
        while not stop.is_set():
            name = self.lb.order()[0]
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            try:
                async with self.client.stream(
                    "GET",
                    self.lb.urls[name] + "/api/events",
                    headers=headers,
                    timeout=httpx.Timeout(REQUEST_TIMEOUT_S, read=SSE_READ_TIMEOUT_S),
                ) as response:
                    if response.status_code != 200:
                        self.sse_drops[f"HTTP {response.status_code}"] += 1
                    else:
                        self.sse_connects[name] += 1
                        if self.sse_down_since is not None:
                            self.sse_resumed_after_s.append(time.monotonic() - self.sse_down_since)
                            self.sse_down_since = None
                        last_id, retry_s = await self._read_stream(response, last_id, retry_s)
                        self.sse_drops["ended by the server"] += 1
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError):
                    self.lb.up[name] = False
                self.sse_drops[type(exc).__name__] += 1
            except (KeyError, TypeError, ValueError) as exc:
                self.recorder.notes[f"unreadable live event: {type(exc).__name__}"] += 1
                self.sse_drops["unreadable event"] += 1
            if stop.is_set():
                return
            if self.sse_down_since is None:
                self.sse_down_since = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry_s)

    async def _read_stream(
        self, response: httpx.Response, last_id: str | None, retry_s: float
    ) -> tuple[str | None, float]:
        ident, kind, data = "", "message", ""
        async for line in response.aiter_lines():
            if line.startswith("retry:"):
                retry_s = int(line[6:].strip()) / 1000
            elif line.startswith("id:"):
                ident = line[3:].strip()
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if data:
                    self._on_event(kind, json.loads(data))
                    if ident:
                        last_id = ident
                ident, kind, data = "", "message", ""
        return last_id, retry_s

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        self.sse_events[kind] += 1
        if kind == "agent":
            self.check_agent("GET /api/events (agent)", data)
        elif kind == "event":
            self.seen_events[int(data["id"])] = int(data["agent_id"])


# -- processes -------------------------------------------------------------------------------------------


class Topology(ProductProcesses):
    def __init__(self, *, database: str, prefix: str, lease_ttl_s: float, signin_limit: int) -> None:
        super().__init__(
            database_url=dsn(database, driver="postgresql+asyncpg"),
            redis_prefix=prefix,
            spa=SPA,
            apis=INSTANCES,
            workers=WORKERS,
            kitesim_args=("--start-at", MONDAY_0930_IST, "--log-level", "warning"),
            label="load",
            TRADEDESK_AGENT_LEASE_TTL_S=str(lease_ttl_s),
            TRADEDESK_LOG_LEVEL="warning",
            # Every trader signs in from this one address and with the demo app's one key.
            TRADEDESK_SIGNIN_RATE_LIMIT=str(signin_limit),
            TRADEDESK_SIGNIN_RATE_LIMIT_PER_KEY=str(signin_limit),
        )

    def start(self, timeout_s: float = 60) -> None:
        super().start(timeout_s)


class ProcessWatch:
    """CPU seconds and resident memory of each process, from /proc, once a second."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.samples: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        self.killed: set[str] = set()
        self.machine: list[tuple[float, float]] = []

    def sample(self) -> None:
        now = time.monotonic()
        self.machine.append((now, machine_busy_s()))
        for name, pid in list(self.pids.items()):
            try:
                self.samples[name].append((now, cpu_s(pid), rss_mb(pid)))
            except (OSError, IndexError, ValueError):
                del self.pids[name]

    def killed_now(self, name: str) -> None:
        self.pids.pop(name, None)
        self.killed.add(name)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROC_SAMPLE_EVERY_S)

    def machine_cores(self, window: tuple[float, float]) -> float | None:
        inside = [m for m in self.machine if window[0] <= m[0] <= window[1]]
        if len(inside) < 2:
            return None
        return round((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]), 2)

    def figures(self, window: tuple[float, float]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for name, samples in self.samples.items():
            inside = [s for s in samples if window[0] <= s[0] <= window[1]] or samples[-1:]
            first, last = inside[0], inside[-1]
            span = last[0] - first[0]
            found[name] = {
                "cpu_cores_in_load": round((last[1] - first[1]) / span, 3) if span > 0 else None,
                "cpu_s_in_load": round(last[1] - first[1], 1),
                "cpu_s_total": round(samples[-1][1], 1),
                "rss_mb_peak": round(max(s[2] for s in samples), 1),
                "rss_mb_last": round(samples[-1][2], 1),
                # A killed process's figures stop at its last sample before the kill.
                "killed": name in self.killed,
            }
        return found


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


async def sample_healthz(lb: Balancer, recorder: Recorder, name: str, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(5.0), limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S)
    ) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = await client.get(lb.urls[name] + "/healthz")
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError):
                    lb.up[name] = False
                recorder.healthz_failures[f"{name} {type(exc).__name__}"] += 1
            else:
                if response.status_code == 200:
                    lb.up[name] = True
                    if recorder.phase == "load":
                        elapsed_s = time.perf_counter() - started
                        recorder.healthz[name].append(elapsed_s)
                        recorder.healthz_timeline.append(
                            (time.monotonic() - recorder.window_start, elapsed_s)
                        )
                else:
                    recorder.healthz_failures[f"{name} HTTP {response.status_code}"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEALTHZ_EVERY_S)


# -- the database's view ---------------------------------------------------------------------------------


async def held_by(pool: asyncpg.Pool) -> Counter[str]:
    rows = await pool.fetch(
        "select runtime_id, count(*) from agents"
        " where state = 'running' and runtime_id is not null group by 1"
    )
    return Counter({str(r[0]): int(r[1]) for r in rows})


async def wait_for_agents(pool: asyncpg.Pool, *, running: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while sum((await held_by(pool)).values()) < running:
        if time.monotonic() > deadline:
            raise SetupError(f"only {sum((await held_by(pool)).values())} of {running} agents running")
        await asyncio.sleep(0.5)


async def track_handover(
    pool: asyncpg.Pool, *, agents: dict[int, str], survivor: str, killed_at: float, timeout_s: float
) -> dict[str, Any]:
    """Until every agent the killed worker held is held by the survivor (or stopped, having been taken over
    to be stopped), polled every 0.1 s."""
    pending = set(agents)
    moved: dict[int, float] = {}
    stopped: dict[int, float] = {}
    while pending and time.monotonic() - killed_at < timeout_s:
        rows = await pool.fetch(
            "select id, runtime_id, state from agents where id = any($1::bigint[])", list(pending)
        )
        at = time.monotonic() - killed_at
        for row in rows:
            if row["runtime_id"] == survivor:
                moved[row["id"]] = at
            elif row["state"] in ("stopped", "failed"):
                stopped[row["id"]] = at
        pending -= moved.keys() | stopped.keys()
        await asyncio.sleep(0.1)
    times = sorted(moved.values())
    return {
        "agents_held_by_killed_worker": len(agents),
        "taken_over": len(moved),
        "stopped_before_taken_over": len(stopped),
        "not_taken_over": len(pending),
        "handover_p50_s": round(percentile(times, 50), 2) if times else None,
        "handover_p99_s": round(percentile(times, 99), 2) if times else None,
        "handover_max_s": round(times[-1], 2) if times else None,
        "handover_first_s": round(times[0], 2) if times else None,
    }


async def owners(
    pool: asyncpg.Pool, table: str, ids: set[int], *, extra: str = ""
) -> dict[int, tuple[Any, ...]]:
    rows = await pool.fetch(
        f"select id, broker_id{extra} from {table} where id = any($1::bigint[])", sorted(ids)
    )
    return {int(r[0]): tuple(r[1:]) for r in rows}


async def check_ownership(pool: asyncpg.Pool, traders: list[Trader], recorder: Recorder) -> dict[str, int]:
    """Every id a trader was shown, looked up: it must be the trader's own."""
    seen: dict[str, int] = Counter()
    missing: Counter[str] = Counter()
    tables = {
        "trades": (lambda t: t.seen_trades, ""),
        "agents": (lambda t: t.seen_agents, ""),
        "agent_events": (lambda t: set(t.seen_events), ", agent_id"),
        "strategy_param_changes": (lambda t: t.seen_param_changes, ""),
    }
    for table, (of, extra) in tables.items():
        found = await owners(pool, table, set().union(*(of(t) for t in traders)), extra=extra)
        for trader in traders:
            for ident in of(trader):
                seen[table] += 1
                row = found.get(ident)
                if row is None:
                    missing[table] += 1
                elif row[0] != trader.user_id:
                    recorder.leak(trader, f"owner of {table} ids", f"{table} id {ident} belongs to {row[0]}")
                elif table == "agent_events" and row[1] != trader.seen_events[ident]:
                    recorder.mismatch(
                        trader, table, f"event {ident} shown for agent {trader.seen_events[ident]}"
                    )
    return {
        **{f"{k}_ids_checked": v for k, v in seen.items()},
        **{f"{k}_ids_gone": v for k, v in missing.items()},
    }


async def check_orders(pool: asyncpg.Pool, kite: httpx.AsyncClient, traders: list[Trader]) -> dict[str, Any]:
    """Each place intent the product recorded against the broker's order book of its account: there once
    (not twice, not missing), and no order of one account's agent in another account's book."""
    intents = await pool.fetch(
        "select broker_id, agent_id, seq, day, tag, status, order_id from agent_orders where kind = 'place'"
    )
    agent_owner = {int(r[0]): str(r[1]) for r in await pool.fetch("select id, broker_id from agents")}
    gate = asyncio.Semaphore(TEARDOWN_CONCURRENCY)

    async def book(user_id: str) -> list[dict[str, Any]]:
        async with gate:
            token = await kite_access_token(kite, user_id)
            answer = await kite.get(
                "/orders", headers={"X-Kite-Version": "3", "Authorization": f"token {DEMO_API_KEY}:{token}"}
            )
            answer.raise_for_status()
            return list(answer.json()["data"])

    books = dict(
        zip(
            [t.user_id for t in traders],
            await asyncio.gather(*(book(t.user_id) for t in traders)),
            strict=True,
        )
    )
    by_user: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for intent in intents:
        by_user[intent["broker_id"]].append(intent)
    result: Counter[str] = Counter()
    examples: list[str] = []
    statuses = Counter(str(i["status"]) for i in intents)
    for user_id, orders in books.items():
        at_broker = Counter(str(o.get("tag") or "") for o in orders if parse_tag(o.get("tag")) is not None)
        order_ids = {str(o.get("tag")): str(o.get("order_id")) for o in orders}
        for tag in at_broker:
            parsed = parse_tag(tag)
            assert parsed is not None
            if agent_owner.get(parsed[0]) != user_id:
                result["misplaced"] += 1
                examples.append(f"{user_id}'s book holds {tag} (agent of {agent_owner.get(parsed[0])})")
        ours = by_user.get(user_id, [])
        tags = {str(i["tag"]) for i in ours}
        result["orders_at_broker"] += sum(at_broker.values())
        result["intents"] += len(ours)
        for tag, count in at_broker.items():
            if count > 1:
                result["duplicated"] += count - 1
                examples.append(f"{user_id}: {tag} reached the broker {count} times")
            if tag not in tags:
                result["unknown_to_product"] += 1
                examples.append(f"{user_id}: {tag} at the broker, no intent recorded")
        for intent in ours:
            tag = str(intent["tag"])
            if intent["day"] != TODAY:
                result["other_day_not_checked"] += 1
            elif tag not in at_broker:
                if intent["status"] == "rejected":
                    result["rejected_not_at_broker"] += 1
                else:
                    result["lost"] += 1
                    examples.append(f"{user_id}: {tag} ({intent['status']}) never reached the broker")
            elif intent["status"] == "sent" and intent["order_id"] != order_ids.get(tag):
                result["order_id_differs"] += 1
                examples.append(
                    f"{user_id}: {tag} recorded as order {intent['order_id']}, broker {order_ids[tag]}"
                )
    return {
        **{k: result.get(k, 0) for k in ("intents", "orders_at_broker", "duplicated", "lost", "misplaced")},
        "unknown_to_product": result.get("unknown_to_product", 0),
        "order_id_differs": result.get("order_id_differs", 0),
        "rejected_not_at_broker": result.get("rejected_not_at_broker", 0),
        "other_day_not_checked": result.get("other_day_not_checked", 0),
        "intent_statuses": dict(statuses),
        "examples": examples[:20],
    }


# -- logs ------------------------------------------------------------------------------------------------


def scan_logs(procs: dict[str, Proc], request_ids: set[str]) -> dict[str, Any]:
    """Warnings and errors each process logged, grouped by logger and message (numbers blanked), and the
    lines of the requests that answered 5xx."""
    grouped: Counter[str] = Counter()
    by_request: list[str] = []
    tracebacks: Counter[str] = Counter()
    for name, proc in procs.items():
        lines = proc.output().splitlines()
        for number, line in enumerate(lines):
            found = LOG_LEVELS.search(line)
            if found:
                level, logger, message = found.groups()
                message = re.sub(r"\d+", "N", message.split(" request_id=")[0])[:160]
                grouped[f"{name} {level} {logger}: {message}"] += 1
                if any(rid in line for rid in request_ids) and len(by_request) < 40:
                    by_request.append(f"{name}: {line[:400]}")
            elif line.startswith("Traceback"):
                last = next(
                    (ln for ln in lines[number + 1 : number + 200] if ln and not ln.startswith((" ", "\t"))),
                    "",
                )
                tracebacks[f"{name}: {last[:200]}"] += 1
    return {
        "log_files": {name: str(proc.log_path) for name, proc in procs.items()},
        "warnings_and_errors": dict(grouped.most_common(40)),
        "tracebacks": dict(tracebacks.most_common(20)),
        "lines_of_5xx_requests": by_request,
    }


# -- the run ---------------------------------------------------------------------------------------------


def timeline(recorder: Recorder, *, step_s: float, until_s: float) -> list[dict[str, Any]]:
    """Every answered request's latency, and /healthz's, by slice of the load window."""
    rows = []
    for start in itertools.takewhile(lambda t: t < until_s, itertools.count(0.0, step_s)):
        inside = [v for t, v in recorder.timeline if start <= t < start + step_s]
        health = [v for t, v in recorder.healthz_timeline if start <= t < start + step_s]
        row: dict[str, Any] = {"from_s": start, "requests": len(inside)}
        for name, values in (("", inside), ("healthz_", health)):
            if values:
                row[f"{name}p50_ms"] = round(percentile(values, 50) * 1000, 1)
                row[f"{name}p99_ms"] = round(percentile(values, 99) * 1000, 1)
        rows.append(row)
    return rows


def route_table(recorder: Recorder, phase: str, health: tuple[float, float] | None) -> list[dict[str, Any]]:
    rows = []
    for route, figures in sorted(recorder.routes[phase].items()):
        row: dict[str, Any] = {
            "route": route,
            "requests": sum(figures.statuses.values()),
            "statuses": dict(figures.statuses),
            "by_instance": dict(figures.by_instance),
        }
        if figures.connects_s:
            row |= {
                "new_connections": len(figures.connects_s),
                "connect_p99_ms": round(percentile(figures.connects_s, 99) * 1000, 2),
            }
        if figures.answer_s:
            row |= {
                "answer_p50_ms": round(percentile(figures.answer_s, 50) * 1000, 2),
                "answer_p99_ms": round(percentile(figures.answer_s, 99) * 1000, 2),
            }
        if figures.latencies_s:
            p50, p99 = percentile(figures.latencies_s, 50), percentile(figures.latencies_s, 99)
            row |= {"p50_ms": round(p50 * 1000, 2), "p99_ms": round(p99 * 1000, 2)}
            if health is not None:
                row |= {
                    "p50_x_healthz": round(p50 / health[0], 1),
                    "p99_x_healthz": round(p99 / health[1], 1),
                }
        rows.append(row)
    return rows


async def run(args: argparse.Namespace, database: str, prefix: str) -> dict[str, Any]:
    recorder = Recorder()
    topology = Topology(
        database=database, prefix=prefix, lease_ttl_s=args.lease_ttl, signin_limit=args.traders * 10 + 100
    )
    lb = Balancer(topology.apis, recorder)
    traders = [
        Trader(n, lb=lb, recorder=recorder, think_s=args.think_s, seed=args.seed) for n in range(args.traders)
    ]
    pool = await asyncpg.create_pool(dsn(database), min_size=1, max_size=2)
    kite = httpx.AsyncClient(base_url=topology.kite, timeout=httpx.Timeout(REQUEST_TIMEOUT_S))
    stop_sampling, stop_load = asyncio.Event(), asyncio.Event()
    background: list[asyncio.Task[Any]] = []
    started = time.monotonic()
    try:
        await asyncio.to_thread(topology.start)
        pids = {name: p.popen.pid for name, p in topology.procs.items() if p.popen is not None}
        watch = ProcessWatch({**pids, "load generator": os.getpid()})
        background.append(asyncio.create_task(watch.run(stop_sampling)))
        background += [
            asyncio.create_task(sample_healthz(lb, recorder, name, stop_sampling)) for name in INSTANCES
        ]

        print(f"signing in {len(traders)} traders and starting their agents …", flush=True)
        gate = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def set_up(trader: Trader) -> None:
            async with gate:
                await register_broker_user(kite, trader.user_id, f"Load Trader {trader.n}")
                await trader.sign_in(kite)

        await asyncio.gather(*(set_up(t) for t in traders))
        await wait_for_agents(pool, running=len(traders), timeout_s=60 + len(traders) * 0.2)
        setup_s = time.monotonic() - started
        held = await held_by(pool)
        print(f"set up in {setup_s:.0f} s; agents held {dict(held)}", flush=True)
        clock = await kite.post("/sim/clock", json={"speed": args.speed})
        clock.raise_for_status()
        sim_started = datetime.fromisoformat(clock.json()["now"])

        window_start = recorder.window_start = time.monotonic()
        recorder.phase = "load"
        work = [asyncio.create_task(t.work(stop_load)) for t in traders]
        streams = [asyncio.create_task(t.listen(stop_load)) for t in traders]
        handover: dict[str, Any] = {}
        kill: dict[str, Any] = {}
        if args.kill_at < args.seconds:
            await asyncio.sleep(args.kill_at)
            held = await held_by(pool)
            victim = max(WORKERS, key=lambda w: held.get(w, 0))
            survivor = next(w for w in WORKERS if w != victim)
            rows = await pool.fetch(
                "select id, broker_id from agents where runtime_id = $1 and state = any($2::text[])",
                victim,
                list(LIVE_STATES),
            )
            watch.sample()
            killed_at = time.monotonic()
            for proc in (topology.api_procs["a"], topology.workers[victim]):
                assert proc.popen is not None
                proc.popen.send_signal(signal.SIGKILL)
            for name, proc in (
                ("api-a", topology.api_procs["a"]),
                (f"worker-{victim}", topology.workers[victim]),
            ):
                assert proc.popen is not None
                proc.popen.wait()
                proc.popen = None
                watch.killed_now(name)
            kill = {
                "at_s": round(killed_at - window_start, 1),
                "api": "a",
                "worker": victim,
                "held_before": dict(held),
                "survivor": survivor,
            }
            print(
                f"killed api-a and worker {victim} ({held.get(victim, 0)} agents) at {kill['at_s']} s",
                flush=True,
            )
            handover_task = asyncio.create_task(
                track_handover(
                    pool,
                    agents={int(r["id"]): str(r["broker_id"]) for r in rows},
                    survivor=survivor,
                    killed_at=killed_at,
                    timeout_s=args.lease_ttl * 3 + 30,
                )
            )
            await asyncio.sleep(max(0.0, window_start + args.seconds - time.monotonic()))
        else:
            await asyncio.sleep(args.seconds)
        stop_load.set()
        window_end = time.monotonic()
        recorder.phase = "teardown"
        if kill:
            # The kill switch would stop the agents still waiting for the survivor: measure first.
            handover = await handover_task
        await asyncio.wait(work, timeout=REQUEST_TIMEOUT_S + 5)
        for task in [*work, *streams]:
            task.cancel()
        await asyncio.gather(*work, *streams, return_exceptions=True)
        sim_ended = datetime.fromisoformat((await kite.get("/sim/clock")).json()["now"])
        print("load over; every trader pulls its kill switch …", flush=True)

        gate = asyncio.Semaphore(TEARDOWN_CONCURRENCY)

        async def kill_switch(trader: Trader) -> None:
            async with gate:
                await trader.kill_switch()

        await asyncio.gather(*(kill_switch(t) for t in traders))
        deadline = time.monotonic() + 60
        live = -1
        while time.monotonic() < deadline:
            live = int(
                await pool.fetchval(
                    "select count(*) from agents where state = any($1::text[])", list(LIVE_STATES)
                )
            )
            if live == 0:
                break
            await asyncio.sleep(0.5)
        orders = await check_orders(pool, kite, traders)
        ownership = await check_ownership(pool, traders, recorder)
        stop_sampling.set()
        await asyncio.gather(*background, return_exceptions=True)
    finally:
        stop_load.set()
        stop_sampling.set()
        for task in background:
            task.cancel()
        for trader in traders:
            await trader.aclose()
        await kite.aclose()
        await pool.close()
        await asyncio.to_thread(topology.stop)

    healthz_all = [v for values in recorder.healthz.values() for v in values]
    health = (percentile(healthz_all, 50), percentile(healthz_all, 99)) if healthz_all else None
    load_rows = route_table(recorder, "load", health)
    load_requests = sum(r["requests"] for r in load_rows)
    errors: Counter[str] = Counter()
    for row in load_rows:
        for status, count in row["statuses"].items():
            if not status.isdigit() or int(status) >= 400:
                errors[f"{status} {row['route']}"] += count
    sse_resumed = sorted(s for t in traders for s in t.sse_resumed_after_s)
    request_ids = {str(e["request_id"]) for e in recorder.server_errors if e["request_id"]}
    window_s = window_end - window_start
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "settings": {
            "traders": args.traders,
            "seconds": args.seconds,
            "kill_at_s": args.kill_at,
            "think_s": args.think_s,
            "sim_speed": args.speed,
            "lease_ttl_s": args.lease_ttl,
            "sim_clock": [sim_started.isoformat(), sim_ended.isoformat()],
        },
        "setup_s": round(setup_s, 1),
        "load_window_s": round(window_s, 1),
        "requests": load_requests,
        "requests_per_s": round(load_requests / window_s, 1),
        "healthz": {
            "p50_ms": round(health[0] * 1000, 2) if health else None,
            "p99_ms": round(health[1] * 1000, 2) if health else None,
            "samples": {name: len(v) for name, v in recorder.healthz.items()},
            "by_instance_ms": {
                name: [round(percentile(v, 50) * 1000, 2), round(percentile(v, 99) * 1000, 2)]
                for name, v in recorder.healthz.items()
                if v
            },
            "failures": dict(recorder.healthz_failures),
        },
        "routes": load_rows,
        "timeline_step_s": (step_s := max(1, round(args.seconds / 12))),
        "timeline": timeline(recorder, step_s=step_s, until_s=args.seconds),
        "errors": dict(errors.most_common()),
        "retries_on_other_instance": dict(recorder.retries),
        "setup_routes": route_table(recorder, "setup", None),
        "teardown_routes": route_table(recorder, "teardown", None),
        "leaks": len(recorder.leaks),
        "leak_examples": recorder.leaks[:20],
        "own_data_mismatches": len(recorder.mismatches),
        "mismatch_examples": recorder.mismatches[:20],
        "ownership_checked": ownership,
        "orders": orders,
        "agents_still_live_after_kill_switch": live,
        "kill": kill,
        "handover": handover,
        "live_streams": {
            "events": dict(sum((t.sse_events for t in traders), Counter())),
            "connects": dict(sum((t.sse_connects for t in traders), Counter())),
            "drops": dict(sum((t.sse_drops for t in traders), Counter())),
            "resumed_p50_s": round(percentile(sse_resumed, 50), 2) if sse_resumed else None,
            "resumed_max_s": round(sse_resumed[-1], 2) if sse_resumed else None,
        },
        "notes": dict(recorder.notes),
        "server_errors": recorder.server_errors[:20],
        "processes": watch.figures((window_start, window_end)),
        # Context on a shared machine: every process's CPU, ours, PostgreSQL's and Redis's and anyone else's.
        "machine_busy_cores_in_load": watch.machine_cores((window_start, window_end)),
        "load_average_after": os.getloadavg(),
        "logs": scan_logs(topology.procs, request_ids),
    }


def report(result: dict[str, Any]) -> None:
    s, health = result["settings"], result["healthz"]
    sim_from, sim_to = (f"{datetime.fromisoformat(at).astimezone(IST):%H:%M}" for at in s["sim_clock"])
    print()
    print(
        f"{s['traders']} traders for {result['load_window_s']:.0f} s (kill at {s['kill_at_s']:g} s), "
        f"think {s['think_s']:g} s, sim clock {sim_from}-{sim_to} IST at x{s['sim_speed']:g}; "
        f"set up in {result['setup_s']:.0f} s"
    )
    print(
        f"requests {result['requests']} ({result['requests_per_s']:.1f}/s); GET /healthz "
        f"p50 {health['p50_ms']} ms p99 {health['p99_ms']} ms ({sum(health['samples'].values())} samples)"
    )
    print()
    print(
        f"{'route':<42} {'reqs':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50/hz':>6} {'p99/hz':>6}"
        f" {'ans p50':>8} {'ans p99':>8}  not 2xx"
    )
    for row in result["routes"]:
        bad = {k: v for k, v in row["statuses"].items() if not (k.isdigit() and int(k) < 400)}
        print(
            f"{row['route']:<42} {row['requests']:>5} {row.get('p50_ms', '-'):>8} {row.get('p99_ms', '-'):>8}"
            f" {row.get('p50_x_healthz', '-'):>6} {row.get('p99_x_healthz', '-'):>6}"
            f" {row.get('answer_p50_ms', '-'):>8} {row.get('answer_p99_ms', '-'):>8}  "
            + ", ".join(f"{k}: {v}" for k, v in bad.items())
        )
    print(
        "(p50/p99: as the trader waits, retries included; /hz: over GET /healthz's; ans: from sending the "
        "request to the answer's headers)"
    )
    print()
    kill_at = result["kill"].get("at_s")
    print(f"{'window s':>12} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'healthz p50':>11} {'p99':>8}")
    for row in result["timeline"]:
        end = row["from_s"] + result["timeline_step_s"]
        mark = "  <- kill" if kill_at is not None and row["from_s"] <= kill_at < end else ""
        print(
            f"{row['from_s']:>5.0f}-{end:<6.0f} {row['requests']:>8} {row.get('p50_ms', '-'):>8} "
            f"{row.get('p99_ms', '-'):>8} {row.get('healthz_p50_ms', '-'):>11} "
            f"{row.get('healthz_p99_ms', '-'):>8}{mark}"
        )
    print()
    print("errors by status:", json.dumps(result["errors"]) if result["errors"] else "none")
    retries = result["retries_on_other_instance"]
    print(
        f"sent again to the other instance: {sum(retries.values())}", json.dumps(retries) if retries else ""
    )
    for phase in ("setup", "teardown"):
        for row in result[f"{phase}_routes"]:
            print(
                f"  {phase:<8} {row['route']:<36} {row['requests']:>5} p50 {row.get('p50_ms', '-')} ms"
                f" p99 {row.get('p99_ms', '-')} ms  {json.dumps(row['statuses'])}"
            )
    print()
    print(f"LEAKS: {result['leaks']}  (ids looked up afterwards: {json.dumps(result['ownership_checked'])})")
    for leak in result["leak_examples"]:
        print(f"  {leak}")
    print(f"own data not as the trader left it: {result['own_data_mismatches']}")
    for item in result["mismatch_examples"][:5]:
        print(f"  {item}")
    o = result["orders"]
    print(
        f"ORDERS: {o['intents']} intents, {o['orders_at_broker']} at the broker; "
        f"DUPLICATED {o['duplicated']}, LOST {o['lost']}, MISPLACED {o['misplaced']}; "
        f"unknown to the product {o['unknown_to_product']}, order id differs {o['order_id_differs']}, "
        f"rejected {o['rejected_not_at_broker']}; statuses {json.dumps(o['intent_statuses'])}"
    )
    print(f"agents still live after the kill switch: {result['agents_still_live_after_kill_switch']}")
    for example in o["examples"][:10]:
        print(f"  {example}")
    if result["kill"]:
        k, h = result["kill"], result["handover"]
        print(
            f"kill -9 at {k['at_s']} s: api-{k['api']} and worker {k['worker']} (agents held "
            f"{json.dumps(k['held_before'])}); to {k['survivor']}: {h['taken_over']} of "
            f"{h['agents_held_by_killed_worker']} agents"
        )
        print(
            f"  handover first {h['handover_first_s']} s, p50 {h['handover_p50_s']} s, "
            f"p99 {h['handover_p99_s']} s, max {h['handover_max_s']} s (lease TTL {s['lease_ttl_s']:g} s); "
            f"stopped before taken over {h['stopped_before_taken_over']}, never {h['not_taken_over']}"
        )
    streams = result["live_streams"]
    print(f"live streams: events {json.dumps(streams['events'])}, connects {json.dumps(streams['connects'])}")
    print(
        f"  drops {json.dumps(streams['drops'])}; resumed after p50 {streams['resumed_p50_s']} s, "
        f"max {streams['resumed_max_s']} s"
    )
    if result["notes"]:
        print("notes:", json.dumps(result["notes"]))
    print()
    busy = result["machine_busy_cores_in_load"]
    ours = sum(p["cpu_s_in_load"] for p in result["processes"].values()) / result["load_window_s"]
    print(
        f"machine: {result['machine']['cpus']} cores, {busy} busy during the load, of which the processes "
        f"below {ours:.2f} (the rest: PostgreSQL, Redis and anything else running); load average after "
        + " ".join(f"{v:.2f}" for v in result["load_average_after"])
    )
    print(f"{'process':<16} {'cores (load)':>12} {'cpu s':>8} {'rss MB peak':>12} {'rss MB last':>12}")
    for name, row in result["processes"].items():
        cores = row["cpu_cores_in_load"]
        print(
            f"{name:<16} {cores if cores is not None else '-':>12} "
            f"{row['cpu_s_total']:>8} {row['rss_mb_peak']:>12} {row['rss_mb_last']:>12}"
            + ("  (killed: until the kill)" if row["killed"] else "")
        )
    logs = result["logs"]
    if logs["warnings_and_errors"] or logs["tracebacks"]:
        print()
        print("logged warnings and errors (count, process, level, logger: message):")
        for line, count in list(logs["warnings_and_errors"].items())[:25]:
            print(f"  {count:>5}  {line}")
        for line, count in logs["tracebacks"].items():
            print(f"  {count:>5}  traceback ending {line}")
        for line in logs["lines_of_5xx_requests"][:10]:
            print(f"  5xx: {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traders", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120, help="length of the load window")
    parser.add_argument(
        "--kill-at", type=float, help="seconds into the window (default: half); >= --seconds: no kill"
    )
    parser.add_argument("--think-s", type=float, default=5.0, help="mean pause between a trader's actions")
    parser.add_argument("--speed", type=float, default=30.0, help="kitesim clock speed during the window")
    parser.add_argument("--lease-ttl", type=float, default=10.0, help="TRADEDESK_AGENT_LEASE_TTL_S")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--quick", action="store_true", help="20 traders for 20 s: does the bench work")
    parser.add_argument("--json", type=Path, help="default: bench/results/load-<UTC time>.json")
    args = parser.parse_args()
    if args.quick:
        args.traders, args.seconds = 20, 20.0
    if args.kill_at is None:
        args.kill_at = args.seconds / 2
    if args.traders > 352:
        print("more than 352 traders: agent parameters no longer tell every trader apart", file=sys.stderr)
    # The window must stay inside one trading session, before the agents' square-off.
    sim_end = START_AT + timedelta(seconds=args.seconds * args.speed + 600)
    if sim_end.astimezone(IST).time() >= SQUARE_OFF_IST:
        parser.error("--seconds x --speed runs past the day's square-off; lower one of them")

    def stop(signum: int, _: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    database = f"tradedesk_bench_load_{uuid.uuid4().hex[:8]}"
    prefix = f"tdload:{uuid.uuid4().hex[:8]}:"
    started = time.monotonic()
    create_database_with_app_role(database)
    try:
        migrate(dsn(database, driver="postgresql+asyncpg"), app_role=APP_ROLE)
        result = asyncio.run(run(args, database, prefix))
    finally:
        drop_database(database)
        asyncio.run(clean_redis(prefix))
    result["wall_s"] = round(time.monotonic() - started, 1)
    report(result)
    path = args.json or ROOT / "bench" / "results" / f"load-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    o = result["orders"]
    failed = result["leaks"] or o["duplicated"] or o["lost"] or o["misplaced"]
    print(f"\nwall {result['wall_s']:.0f} s; figures in {path}; {'FAILED' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
