"""The demo history a first run makes: the demo accounts trade the short strangle over past trading days on
kitesim's clock through the product's own sign-in, agents and sync. What DEMO01 then reads (P&L, daily
stats, trades) is what kitesim filled; a second run adds nothing; an interrupted one completes; no session
or agent of the history is left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kitesim.app import create_app as create_kitesim
from kitesim.clock import SimClock
from kitesim.config import KitesimSettings
from tests.conftest import (
    API_BASE,
    DEMO_API_KEY,
    KITE_BASE,
    SPA_ORIGIN,
    ClientFactory,
    SignIn,
    kite_access_token,
    sign_in_through,
)
from tradedesk.agents.strategies.short_strangle import StrangleParams
from tradedesk.config import Settings
from tradedesk.demo.plan import (
    DAY_END_AT,
    DEFAULT_DAYS,
    DEMO_TRADERS,
    AgentRun,
    at_ist,
    days_done,
    history_days,
    next_decision,
    times_of_day,
)
from tradedesk.demo.seed import SeedReport, chosen_traders, seed_history
from tradedesk.devrun import demo_days
from tradedesk.main import create_app

# Monday 2026-11-30, 09:20 IST: the history is Wednesday 25 to Friday 27 November.
DEMO_DAY = datetime(2026, 11, 30, 3, 50, tzinfo=UTC)
DAYS = 3
SEEDED = [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)]
TRADERS = chosen_traders("DEMO01,DEMO03")


def new_kitesim() -> Any:
    return create_kitesim(
        KitesimSettings(  # type: ignore[call-arg]
            _env_file=None, redirect_url=f"{API_BASE}/api/auth/callback", start_at=DEMO_DAY
        )
    )


@pytest.fixture
def kitesim() -> object:
    return new_kitesim()


@pytest.fixture
def sim_clock(kitesim: object) -> SimClock:
    clock: SimClock = kitesim.state.sim.clock  # type: ignore[attr-defined]
    return clock


@pytest.fixture
def clock(sim_clock: SimClock) -> SimClock:  # type: ignore[override]
    return sim_clock


# The embedded default (SQLite, SQL sessions, in-process leases) and the distributed setup (PostgreSQL
# under row-level security, Redis sessions and leases).
@pytest.fixture(params=["sqlite", "redis"])
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Seed = Callable[..., Any]


@pytest.fixture
def seed(api: Any, kitesim: Any) -> Seed:
    settings: Settings = api.state.td.settings

    async def run(*, progress: Callable[[str], None] = lambda _line: None, on: Any = kitesim) -> SeedReport:
        return await seed_history(
            settings,
            days=DAYS,
            traders=TRADERS,
            kite_transport=httpx.ASGITransport(app=on),
            progress=progress,
        )

    return run


def broker_net(kitesim: Any, user_id: str, day: date) -> Decimal:
    """What the broker's fills of a flat day add up to: what was sold minus what was bought."""
    total = Decimal(0)
    for fill in kitesim.state.sim.orders.fills_of_day(user_id, day):
        data = fill.as_dict()
        value = Decimal(str(data["average_price"])) * data["quantity"]
        total += value if data["transaction_type"] == "SELL" else -value
    return total


async def history(client: httpx.AsyncClient) -> dict[str, Any]:
    span = f"from={SEEDED[0]}&to={SEEDED[-1]}"
    return {
        "stats": (await client.get(f"/api/stats/daily?{span}")).json(),
        "cumulative": (await client.get(f"/api/pnl/cumulative?{span}")).json(),
        "trades": (await client.get(f"/api/trades?{span}&limit=500")).json()["items"],
        "agents": (await client.get("/api/agents")).json(),
    }


class TestDemoHistory:
    async def test_a_first_run_trades_every_day_as_the_broker_filled_it(
        self, seed: Seed, kitesim: Any, sim_clock: SimClock, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        lines: list[str] = []
        report = await seed(progress=lines.append)
        assert report.days_traded == SEEDED
        assert any(line.startswith("demo history: day 3/3") for line in lines), lines
        # The simulator's clock is handed back where it would be had it run on by itself.
        assert DEMO_DAY <= sim_clock.now() < DEMO_DAY + timedelta(seconds=report.elapsed_s + 5)

        books: dict[str, dict[str, Any]] = {}
        for trader in TRADERS:
            client = new_client()
            await sign_in(client, trader.user_id)
            books[trader.user_id] = found = await history(client)
            by_day = {date.fromisoformat(row["day"]): row for row in found["stats"]}
            assert sorted(by_day) == SEEDED, f"{trader.user_id}: no trades on some day"
            for day in SEEDED:
                assert by_day[day]["trades"] > 0
                assert Decimal(by_day[day]["net"]) == broker_net(kitesim, trader.user_id, day), day
            cumulative = found["cumulative"]
            assert [date.fromisoformat(p["day"]) for p in cumulative] == SEEDED
            total = sum((broker_net(kitesim, trader.user_id, day) for day in SEEDED), Decimal(0))
            assert Decimal(cumulative[-1]["cumulative"]) == total
            closed = [t for t in found["trades"] if t["status"] == "closed"]
            assert len(closed) == len(found["trades"]), "a position was left open"
            assert sum(Decimal(t["realised_pnl"]) for t in closed) == total
            # One agent a day, every one of them stopped; no session of the history left signed in.
            assert len(found["agents"]) == DAYS
            assert {a["state"] for a in found["agents"]} == {"stopped"}
            sessions = (await client.get("/api/auth/sessions")).json()
            assert [s["current"] for s in sessions] == [True]
        # Different parameters, different histories.
        assert books["DEMO03"]["agents"][0]["params"]["call_lots"] == 2
        assert books["DEMO01"]["stats"] != books["DEMO03"]["stats"]

    async def test_a_second_run_adds_nothing_and_later_trades_still_sync(
        self, seed: Seed, api: Any, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        await seed()
        client = new_client()
        await sign_in(client, "DEMO01")
        before = await history(client)

        # A second `make run`: the same database, a simulator started afresh.
        restarted = new_kitesim()
        lines: list[str] = []
        again = await seed(progress=lines.append, on=restarted)
        assert again.days_traded == []
        assert lines == [f"demo history: the last {DAYS} trading days are there already"]
        assert await history(client) == before

        # What the trader does on the restarted simulator reaches the dashboard: its trade ids are new.
        app = create_app(
            api.state.td.settings,
            clock=restarted.state.sim.clock,
            kite_transport=httpx.ASGITransport(app=restarted),
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=restarted), base_url=KITE_BASE) as kite,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5555)),
                base_url=API_BASE,
                headers={"Origin": SPA_ORIGIN},
            ) as browser,
        ):
            await sign_in_through(browser, kite, "DEMO01")
            token = await kite_access_token(kite, "DEMO01")
            order = {
                "tradingsymbol": "INFY",
                "exchange": "NSE",
                "transaction_type": "BUY",
                "order_type": "MARKET",
                "quantity": "1",
                "product": "MIS",
            }
            placed = await kite.post(
                "/orders/regular",
                data=order,
                headers={"Authorization": f"token {DEMO_API_KEY}:{token}", "X-Kite-Version": "3"},
            )
            assert placed.status_code == 200, placed.text
            synced = await browser.post("/api/sync", json={})
            assert synced.json() == {"fills_new": 1, "trades_closed": 0}

    # On the embedded default alone: nothing here depends on the store.
    @pytest.mark.parametrize("store_backend", ["sqlite"])
    async def test_a_run_cut_short_mid_day_is_completed_by_the_next(
        self, seed: Seed, kitesim: Any, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        cut_at = at_ist(SEEDED[1], time(11, 0))
        running = asyncio.create_task(seed())

        async def interrupt() -> None:
            while not cut_at <= kitesim.state.sim.clock.now() < at_ist(SEEDED[1], DAY_END_AT):
                await asyncio.sleep(0.002)
            running.cancel()

        interrupter = asyncio.create_task(interrupt())
        with pytest.raises(asyncio.CancelledError):
            await running
        await interrupter
        client = new_client()
        await sign_in(client, "DEMO01")
        cut = await history(client)
        # The first day is there; the second, cut short, was not synced; nothing is left running.
        assert [row["day"] for row in cut["stats"]] == [str(SEEDED[0])]
        assert {a["state"] for a in cut["agents"]} == {"stopped"}
        assert (
            cut_at <= datetime.fromisoformat(cut["agents"][0]["stopped_at"]) < at_ist(SEEDED[1], DAY_END_AT)
        )

        # The next `make run` (a simulator started afresh) trades the second day again, whole, and the third.
        restarted = new_kitesim()
        report = await seed(on=restarted)
        assert report.days_traded == SEEDED[1:]
        found = await history(client)
        nets = {date.fromisoformat(row["day"]): Decimal(row["net"]) for row in found["stats"]}
        assert nets == {
            SEEDED[0]: broker_net(kitesim, "DEMO01", SEEDED[0]),
            SEEDED[1]: broker_net(restarted, "DEMO01", SEEDED[1]),
            SEEDED[2]: broker_net(restarted, "DEMO01", SEEDED[2]),
        }
        assert len(found["agents"]) == DAYS + 1
        assert {a["state"] for a in found["agents"]} == {"stopped"}

    # On the embedded default alone: nothing here depends on the store.
    @pytest.mark.parametrize("store_backend", ["sqlite"])
    async def test_an_account_running_its_own_agent_is_left_alone(
        self, seed: Seed, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        client = new_client()
        await sign_in(client, "DEMO01")
        own = (await client.post("/api/agents", json={"strategy": "short_strangle"})).json()

        lines: list[str] = []
        report = await seed(progress=lines.append)
        assert report.days_traded == SEEDED
        assert {r.user_id for r in report.results} == {"DEMO03"}
        assert "demo history: DEMO01 runs a short strangle agent; left as it is" in lines
        found = await history(client)
        assert found["stats"] == [] and [a["id"] for a in found["agents"]] == [own["id"]]
        assert found["agents"][0]["state"] == own["state"]


class TestPlan:
    def test_history_days_are_the_trading_days_before_today(self) -> None:
        assert history_days(date(2026, 11, 30), 3) == SEEDED
        assert history_days(date(2026, 12, 2), 4) == [
            date(2026, 11, 26),
            date(2026, 11, 27),
            date(2026, 11, 30),
            date(2026, 12, 1),
        ]

    def test_decisions_follow_the_grid_the_marks_and_the_orders(self) -> None:
        day = date(2026, 11, 25)
        assert next_decision(at_ist(day, time(9, 20)), sent_orders=False) == at_ist(day, time(9, 30))
        assert next_decision(at_ist(day, time(9, 30)), sent_orders=False, marks=[time(9, 40)]) == at_ist(
            day, time(9, 40)
        )
        assert next_decision(at_ist(day, time(9, 40)), sent_orders=True) == at_ist(day, time(9, 41))
        assert next_decision(at_ist(day, time(9, 41)), sent_orders=False) == at_ist(day, time(9, 45))
        # The strangle's square-off is met exactly, before the broker's own at 15:20.
        marks = times_of_day(StrangleParams())
        assert time(15, 15) in marks and time(9, 40) in marks
        assert next_decision(at_ist(day, time(15, 1)), sent_orders=False, marks=marks) == at_ist(
            day, time(15, 15)
        )

    def test_a_day_is_done_once_synced_or_traded_to_its_end(self) -> None:
        day = date(2026, 11, 25)
        started = at_ist(day, time(9, 15))
        whole = AgentRun(started, at_ist(day, DAY_END_AT))
        later = [day + timedelta(days=n) for n in range(9)]
        cut_short = AgentRun(at_ist(later[1], time(9, 15)), at_ist(later[1], time(11, 0)))
        left_live = AgentRun(at_ist(later[2], time(9, 15)), None)
        stopped_days_after = AgentRun(at_ist(later[5], time(9, 15)), at_ist(later[8], time(9, 20)))
        synced = later[6]
        done = days_done([synced], [whole, cut_short, left_live, stopped_days_after])
        assert done == {day, synced}

    def test_the_traders_differ_and_can_be_chosen(self) -> None:
        params = [StrangleParams.model_validate(dict(t.params)) for t in DEMO_TRADERS]
        assert len({p.model_dump_json() for p in params}) == len(DEMO_TRADERS)
        assert [t.user_id for t in chosen_traders("demo05, DEMO01")] == ["DEMO05", "DEMO01"]
        assert chosen_traders(None) == list(DEMO_TRADERS)
        with pytest.raises(ValueError, match="DEMO02"):
            chosen_traders("DEMO02")

    def test_make_run_trades_three_weeks_unless_told_otherwise(self) -> None:
        assert demo_days({}) == DEFAULT_DAYS == 15
        assert demo_days({"TRADEDESK_DEMO_DAYS": "3"}) == 3
        assert demo_days({"TRADEDESK_DEMO_DAYS": "0"}) == 0
        assert demo_days({"TRADEDESK_DEMO_DAYS": "-2"}) == 0
