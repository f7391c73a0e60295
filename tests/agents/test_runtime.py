"""The runtime's own rules, on kitesim in process with a runtime ticked by hand: leases, exactly-once
orders across a take-over, rejections, pause and resume, live parameters, the loss limit, stop and the
kill switch. The strategy here is a small scripted one (buy, then protect with a stop), so that each
test knows which order must exist; the shipped strategies have their own tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import httpx
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from kitesim.clock import SimClock
from tests.conftest import ClientFactory, SignIn
from tests.support.agents import build_runtime, shared_leases
from tradedesk.agents.repository import touch_runtime
from tradedesk.agents.runtime import AgentRuntime
from tradedesk.agents.strategies.base import (
    CancelOrder,
    Decision,
    InstrumentInfo,
    Intent,
    MarketSnapshot,
    PlaceOrder,
    Watch,
)
from tradedesk.agents.strategies.registry import STRATEGIES
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.kit.calendar import ist_day
from tradedesk.kit.repository import tenant_session
from tradedesk.metrics.agents import RuntimeMetrics
from tradedesk.models import Agent, RuntimeHeartbeat

SYMBOL = "INFY"


class ScriptParams(BaseModel):
    model_config = ConfigDict(extra="ignore")
    lots: int = 1
    # far below the market, so the protective stop never fires unless a test moves it
    stop_below: float = 500.0
    tradingsymbol: str = SYMBOL


class ScriptState(BaseModel):
    entries: int = 0


class Scripted:
    """Buys once, then protects the fill with a SELL SL-M stop; squares off on request."""

    name: ClassVar[str] = "sma_crossover"
    title: ClassVar[str] = "Scripted"
    description: ClassVar[str] = "test harness"
    Params: ClassVar[type[BaseModel]] = ScriptParams
    State: ClassVar[type[BaseModel]] = ScriptState
    lots_fields: ClassVar[tuple[str, ...]] = ("lots",)

    def initial_state(self, params: Any, *, now: datetime) -> ScriptState:
        return ScriptState()

    def watch(
        self,
        params: Any,
        state: Any,
        *,
        now: datetime,
        instruments: Sequence[InstrumentInfo],
        spot: float | None,
    ) -> Watch:
        return Watch(quotes=frozenset({f"NSE:{params.tradingsymbol}"}))

    def decide(self, params: Any, state: Any, snapshot: MarketSnapshot) -> Decision[Any]:
        intents: list[Intent] = []
        if state.entries == 0:
            symbol = params.tradingsymbol
            intents.append(PlaceOrder("B1", "NSE", symbol, "BUY", params.lots, "MARKET", "MIS"))
            return Decision(ScriptState(entries=1), tuple(intents), notes=("buying",))
        entry = snapshot.orders.get("B1")
        if entry is not None and entry.filled and "S1" not in snapshot.orders:
            stop = PlaceOrder(
                "S1",
                "NSE",
                SYMBOL,
                "SELL",
                entry.filled_quantity,
                "SL-M",
                "MIS",
                trigger_price=params.stop_below,
            )
            intents.append(stop)
        return Decision(state, tuple(intents))

    def square_off(self, params: Any, state: Any, snapshot: MarketSnapshot) -> Decision[Any]:
        intents: list[Intent] = []
        held = 0
        for view in snapshot.orders.values():
            if view.pending:
                intents.append(CancelOrder(f"X-{view.intent_id}", view.intent_id))
            if view.filled:
                held += view.filled_quantity if view.transaction_type == "BUY" else -view.filled_quantity
        if held > 0:
            intents.append(PlaceOrder("SQ1", "NSE", params.tradingsymbol, "SELL", held, "MARKET", "MIS"))
        return Decision(state, tuple(intents), done_for_day=True)

    def lot_size(self, instruments: Sequence[InstrumentInfo]) -> int | None:
        return 1


def scripted_runtime(api: Any, runtime_id: str = "rt-a", **kwargs: Any) -> AgentRuntime:
    runtime = build_runtime(api, runtime_id=runtime_id, **kwargs)
    runtime._strategies = {**STRATEGIES, "sma_crossover": Scripted()}  # type: ignore[assignment]
    return runtime


async def broker_orders(kitesim: Any, sim_clock: SimClock, user_id: str = "DEMO01") -> list[dict[str, Any]]:
    """The broker's own order book of the day (what really reached the exchange), read off the simulator."""
    book = kitesim.state.sim.orders
    book.sync(user_id, sim_clock.now())
    return [o.as_dict() for o in book.orders_of_day(user_id, ist_day(sim_clock.now()))]


async def start(trader: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await trader.post("/api/agents", json={"strategy": "sma_crossover", "params": params or None})
    assert response.status_code == 201, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def agent_of(trader: httpx.AsyncClient, agent_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = (await trader.get(f"/api/agents/{agent_id}")).json()
    return answer


async def events_of(trader: httpx.AsyncClient, agent_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await trader.get(f"/api/agents/{agent_id}/events?limit=200")).json()[
        "items"
    ]
    return items[::-1]


class TestDriving:
    async def test_claims_sends_once_and_reports(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader, lots=2)
        runtime = scripted_runtime(api)
        await runtime.tick()
        seen = await agent_of(trader, agent["id"])
        assert seen["state"] == "running" and seen["runtime"] == "rt-a"
        for _ in range(4):
            sim_clock.advance(60)
            await runtime.tick()
        orders = await broker_orders(kitesim, sim_clock)
        tags = sorted(o["tag"] for o in orders)
        assert tags == [f"td{agent['id']}-1", f"td{agent['id']}-2"]
        buy = next(o for o in orders if o["transaction_type"] == "BUY")
        assert buy["status"] == "COMPLETE" and buy["quantity"] == 2
        stop = next(o for o in orders if o["transaction_type"] == "SELL")
        assert stop["status"] == "TRIGGER PENDING" and stop["order_type"] == "SL-M"
        kinds = [e["kind"] for e in await events_of(trader, agent["id"])]
        assert kinds.count("order") == 2 and "fill" in kinds and "decision" in kinds

    async def test_a_rejection_is_the_reason_and_is_not_retried(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader, tradingsymbol="NOSUCHSYMBOL")
        runtime = scripted_runtime(api)
        for _ in range(5):
            await runtime.tick()
            sim_clock.advance(60)
        seen = await agent_of(trader, agent["id"])
        assert seen["state"] == "running"
        assert seen["reason"] is not None and "rejected" in seen["reason"]
        errors = [e for e in await events_of(trader, agent["id"]) if e["level"] == "error"]
        assert len(errors) == 1 and "B1" in errors[0]["message"]
        assert await broker_orders(kitesim, sim_clock) == []


class TestLeases:
    async def test_one_runtime_drives_an_agent(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader)
        first, second = scripted_runtime(api, "rt-a"), scripted_runtime(api, "rt-b")
        for _ in range(3):
            await first.tick()
            await second.tick()
            sim_clock.advance(60)
        assert first.held() == [("DEMO01", agent["id"])] and second.held() == []
        assert len(await broker_orders(kitesim, sim_clock)) == 2

    async def test_take_over_sends_only_what_the_broker_never_got(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader)
        leases = shared_leases(api)
        first = scripted_runtime(api, "rt-a", leases=leases)
        await first.tick()  # claims, records and sends B1
        lease = first._held[("DEMO01", agent["id"])].lease
        sim_clock.advance(60)
        # rt-a loses its lease before it can send S1 (a pause, a partition): it must send nothing more.
        await leases.release(lease, "rt-a")
        await leases.claim(lease, "someone-else", ttl_ms=60_000)
        await first.tick()
        assert first.held() == []
        assert [o["tag"] for o in await broker_orders(kitesim, sim_clock)] == [f"td{agent['id']}-1"]
        await leases.release(lease, "someone-else")
        second = scripted_runtime(api, "rt-b", leases=leases)
        for _ in range(3):
            await second.tick()
            sim_clock.advance(60)
        tags = sorted(o["tag"] for o in await broker_orders(kitesim, sim_clock))
        # B1 adopted, not sent again; S1 sent once, by the new holder.
        assert tags == [f"td{agent['id']}-1", f"td{agent['id']}-2"]
        seen = await agent_of(trader, agent["id"])
        assert seen["runtime"] == "rt-b"
        assert any("Taken over by runtime rt-b" in e["message"] for e in await events_of(trader, agent["id"]))

    async def test_one_users_unreadable_order_book_holds_back_only_that_users_agents(
        self,
        api: Any,
        trader: httpx.AsyncClient,
        other_trader: httpx.AsyncClient,
        kitesim: Any,
        sim_clock: SimClock,
    ) -> None:
        mine, theirs = await start(trader), await start(other_trader)
        broker = BrokerFailingOrderReads(httpx.ASGITransport(app=kitesim))
        state = api.state.td
        runtime = scripted_runtime(api)
        runtime._kite = KiteClient(base_url=state.settings.kite_api_url, timeout_s=5, transport=broker)
        await runtime.tick()  # both claimed, both send B1
        held = runtime._held[("DEMO01", mine["id"])]
        assert held.credentials is not None
        broker.failing_token = held.credentials.access_token
        for _ in range(3):
            sim_clock.advance(60)
            await runtime.tick()  # DEMO01's order book cannot be read: only DEMO01 waits
        assert broker.refused > 0
        assert [o["tag"] for o in await broker_orders(kitesim, sim_clock, "DEMO01")] == [f"td{mine['id']}-1"]
        assert sorted(o["tag"] for o in await broker_orders(kitesim, sim_clock, "DEMO02")) == [
            f"td{theirs['id']}-1",
            f"td{theirs['id']}-2",
        ]

        broker.failing_token = None
        for _ in range(2):
            sim_clock.advance(60)
            await runtime.tick()
        assert sorted(o["tag"] for o in await broker_orders(kitesim, sim_clock, "DEMO01")) == [
            f"td{mine['id']}-1",
            f"td{mine['id']}-2",
        ]


class BrokerFailingOrderReads(httpx.AsyncBaseTransport):
    """The broker's gateway failing one account's order book reads (HTTP 503) and serving everything else."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failing_token: str | None = None
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = self.failing_token
        if (
            token is not None
            and request.method == "GET"
            and request.url.path == "/orders"
            and request.headers.get("authorization", "").endswith(f":{token}")
        ):
            self.refused += 1
            return httpx.Response(
                503, json={"status": "error", "error_type": "NetworkException", "message": "Gateway down"}
            )
        return await self.inner.handle_async_request(request)


class TestLifecycle:
    async def test_parameters_reach_the_running_agent_on_the_next_tick(
        self, api: Any, trader: httpx.AsyncClient, sim_clock: SimClock
    ) -> None:
        agent = await start(trader, lots=1)
        runtime = scripted_runtime(api)
        await runtime.tick()
        response = await trader.put("/api/strategies/sma_crossover/params", json={"lots": 3})
        assert response.status_code == 200
        assert (await agent_of(trader, agent["id"]))["params"]["lots"] == 3
        await runtime.tick()
        held = runtime._held[("DEMO01", agent["id"])]
        assert held.params.lots == 3  # type: ignore[attr-defined]

    async def test_token_expiry_pauses_and_signing_in_resumes(
        self,
        api: Any,
        trader: httpx.AsyncClient,
        sim_clock: SimClock,
        new_client: ClientFactory,
        sign_in: SignIn,
    ) -> None:
        agent = await start(trader)
        runtime = scripted_runtime(api)
        await runtime.tick()
        sim_clock.advance(21 * 3600)  # Tuesday 06:20 IST: Monday's token is dead
        await runtime.tick()
        paused = await agent_of(trader, agent["id"])
        assert paused["state"] == "paused" and paused["reason"] == "broker_token_expired"
        await sign_in(new_client(), "DEMO01")
        await runtime.tick()
        resumed = await agent_of(trader, agent["id"])
        assert resumed["state"] == "running" and resumed["reason"] is None
        audit = (await trader.get("/api/audit?limit=50")).json()["items"]
        kinds = [e["kind"] for e in audit]
        assert "agent_paused" in kinds and "agent_resumed" in kinds

    async def test_disconnect_pauses_and_signing_in_resumes(
        self, api: Any, trader: httpx.AsyncClient, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        agent = await start(trader)
        runtime = scripted_runtime(api)
        await runtime.tick()
        assert (await trader.post("/api/auth/disconnect")).status_code == 204
        await runtime.tick()
        again = new_client()
        await sign_in(again, "DEMO01")
        # Signed in again between two ticks: the tick before saw the credentials wiped.
        paused = await agent_of(again, agent["id"])
        assert paused["state"] == "paused" and paused["reason"] == "broker_disconnected"
        await runtime.tick()
        resumed = await agent_of(again, agent["id"])
        assert resumed["state"] == "running" and resumed["reason"] is None

    async def test_stop_squares_off(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader, lots=2)
        runtime = scripted_runtime(api)
        for _ in range(3):
            await runtime.tick()
            sim_clock.advance(60)
        stopping = await trader.post(f"/api/agents/{agent['id']}/stop")
        assert stopping.json()["state"] == "stopping"
        await runtime.tick()
        stopped = await agent_of(trader, agent["id"])
        assert stopped["state"] == "stopped" and stopped["runtime"] is None
        orders = await broker_orders(kitesim, sim_clock)
        assert {o["status"] for o in orders if o["order_type"] == "SL-M"} == {"CANCELLED"}
        net = sum(o["filled_quantity"] * (1 if o["transaction_type"] == "BUY" else -1) for o in orders)
        assert net == 0
        assert runtime.held() == []

    async def test_kill_switch_answers_with_what_it_did(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader, lots=1)
        runtime = scripted_runtime(api)
        for _ in range(3):
            await runtime.tick()
            sim_clock.advance(60)

        async def keep_ticking() -> None:
            for _ in range(20):
                await asyncio.sleep(0.05)
                await runtime.tick()

        ticking = asyncio.create_task(keep_ticking())
        response = await trader.post("/api/agents/stop-all")
        await ticking
        assert response.status_code == 200
        assert response.json() == {"stopped": 1, "orders_cancelled": 1, "positions_closed": 1}
        assert (await agent_of(trader, agent["id"]))["state"] == "stopped"
        kinds = [e["kind"] for e in (await trader.get("/api/audit?limit=50")).json()["items"]]
        assert "agents_kill_switch" in kinds

    async def test_daily_loss_limit_squares_off_and_blocks_entries(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader, lots=50)
        runtime = scripted_runtime(api)
        await runtime.tick()
        # A limit so small that the spread of one minute's move breaches it.
        assert (await trader.put("/api/risk", json={"daily_loss_limit": "0.01"})).status_code == 200
        held = runtime._held[("DEMO01", agent["id"])]
        breached = False
        for _ in range(30):
            sim_clock.advance(60)
            await runtime.tick()
            if held.blocked_day is not None:
                breached = True
                break
        assert breached
        await runtime.tick()  # the next cycle books how the square-off filled
        seen = await agent_of(trader, agent["id"])
        assert seen["reason"] == "daily_loss_limit_reached"
        logs = [e for e in await events_of(trader, agent["id"]) if e["kind"] == "log"]
        assert any("Daily loss limit" in e["message"] for e in logs)
        orders = await broker_orders(kitesim, sim_clock)
        net = sum(o["filled_quantity"] * (1 if o["transaction_type"] == "BUY" else -1) for o in orders)
        assert net == 0
        assert Decimal(seen["realised_pnl_today"]) < 0


class TestMetrics:
    async def test_the_runtime_counts_what_it_does(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader, lots=2)
        runtime = scripted_runtime(api)
        registry = CollectorRegistry()
        RuntimeMetrics(registry, runtime, clock=api.state.td.clock)
        for _ in range(4):
            await runtime.tick()
            sim_clock.advance(60)

        def value(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, labels)

        assert value("tradedesk_agents_held", runtime="rt-a") == 1
        assert value("tradedesk_agent_claims_total") == 1
        # B1, then S1 once B1 filled, each sent right after the decision that made it.
        assert value("tradedesk_agent_orders_total", outcome="sent") == 2
        assert value("tradedesk_agent_orders_total", outcome="rejected") == 0
        assert value("tradedesk_agent_order_ack_seconds_count") == 2
        decisions = value("tradedesk_agent_decisions_total")
        assert decisions is not None and decisions >= 3
        assert value("tradedesk_agent_cycle_prepare_seconds_count") == 4

        await trader.post(f"/api/agents/{agent['id']}/stop")
        await runtime.tick()
        assert value("tradedesk_agents_held", runtime="rt-a") == 0
        assert value("tradedesk_agent_drops_total", reason="stopped") == 1
        # The square-off: S1 cancelled and the position sold, answered outside any decision.
        assert value("tradedesk_agent_orders_total", outcome="sent") == 4
        assert value("tradedesk_agent_order_ack_seconds_count") == 2

    async def test_a_rejection_and_a_lost_lease_are_counted(
        self, api: Any, trader: httpx.AsyncClient, kitesim: Any, sim_clock: SimClock
    ) -> None:
        agent = await start(trader, tradingsymbol="NOSUCHSYMBOL")
        leases = shared_leases(api)
        runtime = scripted_runtime(api, leases=leases)
        registry = CollectorRegistry()
        RuntimeMetrics(registry, runtime, clock=api.state.td.clock)
        await runtime.tick()
        assert registry.get_sample_value("tradedesk_agent_orders_total", {"outcome": "rejected"}) == 1
        lease = runtime._held[("DEMO01", agent["id"])].lease
        await leases.release(lease, "rt-a")
        await leases.claim(lease, "someone-else", ttl_ms=60_000)
        sim_clock.advance(60)
        await runtime.tick()
        assert registry.get_sample_value("tradedesk_agent_drops_total", {"reason": "lease_lost"}) == 1
        assert registry.get_sample_value("tradedesk_agents_held", {"runtime": "rt-a"}) == 0


class TestHeartbeat:
    async def test_one_row_for_the_runtime_and_every_agent_shows_it(
        self,
        api: Any,
        trader: httpx.AsyncClient,
        other_trader: httpx.AsyncClient,
        sim_clock: SimClock,
    ) -> None:
        """The runtime writes its own heartbeat, not one per agent: the agents' rows keep the moment they
        were taken over, and the API answers each agent with its runtime's latest."""
        agents = {"DEMO01": await start(trader), "DEMO02": await start(other_trader)}
        runtime = scripted_runtime(api)
        await runtime.tick()
        taken_over_at = sim_clock.now()
        sim_clock.advance(30)
        runtime._touched_at = -1e9  # as far as the runtime knows, its last heartbeat was long ago
        await runtime.tick()
        beat_at = sim_clock.now()

        def near(stamp: str | datetime, moment: datetime) -> bool:
            at = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
            return abs((at - moment).total_seconds()) < 0.01

        sessionmaker = api.state.td.sessionmaker
        async with sessionmaker() as db:
            rows = (
                await db.execute(select(RuntimeHeartbeat.runtime_id, RuntimeHeartbeat.heartbeat_at))
            ).all()
        assert [runtime_id for runtime_id, _ in rows] == ["rt-a"] and near(rows[0][1], beat_at)
        for (broker_id, agent), client in zip(agents.items(), (trader, other_trader), strict=True):
            async with tenant_session(sessionmaker, broker_id) as db:
                stored = await db.scalar(select(Agent.heartbeat_at).where(Agent.id == agent["id"]))
            assert stored is not None and near(stored, taken_over_at)
            seen = await agent_of(client, agent["id"])
            assert seen.get("runtime") == "rt-a", seen
            assert near(seen["heartbeat_at"], beat_at)
            (listed,) = (await client.get("/api/agents")).json()
            assert near(listed["heartbeat_at"], beat_at)

    async def test_an_agent_that_stops_keeps_when_it_was_last_driven(
        self, api: Any, trader: httpx.AsyncClient, sim_clock: SimClock
    ) -> None:
        agent = await start(trader)
        runtime = scripted_runtime(api)
        await runtime.tick()  # taken over
        sim_clock.advance(600)
        await trader.post(f"/api/agents/{agent['id']}/stop")
        await runtime.tick()  # squared off and released
        stopped_at = sim_clock.now()
        seen = await agent_of(trader, agent["id"])
        assert seen["state"] == "stopped" and seen["runtime"] is None
        assert abs((datetime.fromisoformat(seen["heartbeat_at"]) - stopped_at).total_seconds()) < 0.01

    async def test_rows_of_runtimes_silent_for_a_day_are_dropped(
        self, api: Any, trader: httpx.AsyncClient, sim_clock: SimClock
    ) -> None:
        await start(trader)
        sessionmaker = api.state.td.sessionmaker
        now = sim_clock.now()
        async with sessionmaker() as db, db.begin():
            await touch_runtime(db, runtime_id="gone-long-ago", at=now - timedelta(days=1, seconds=1))
            await touch_runtime(db, runtime_id="gone-lately", at=now - timedelta(hours=23))
        await scripted_runtime(api).tick()
        async with sessionmaker() as db:
            left = set(await db.scalars(select(RuntimeHeartbeat.runtime_id)))
        assert left == {"gone-lately", "rt-a"}
