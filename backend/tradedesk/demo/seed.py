"""The demo's trading history, made the way a trader's own is made: for each past trading day, kitesim's clock
is set to that day, each demo account signs in through the broker's login form, starts the short strangle,
an agent runtime drives it decision by decision on that clock, and the day's fills are synced; then the
agent is stopped and the session signed out. At the end the simulator's clock is handed back.

Days an account already has are skipped, so a second run adds nothing and an interrupted one completes.
``make run`` runs ``python -m tradedesk.demo.seed`` before it starts the API (which must not run
meanwhile: its runtime would take the history's agents)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.agents.leases import Leases, MemoryLeases, RedisLeases, lease_key
from tradedesk.agents.repository import TERMINAL_STATES, AgentRepository
from tradedesk.agents.runtime import AgentRuntime, RuntimeConfig
from tradedesk.agents.services import AgentServices
from tradedesk.agents.strategies.registry import STRATEGIES
from tradedesk.auth.limits import SignInLimiter
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.config import Settings
from tradedesk.demo.plan import (
    DAY_END_AT,
    DEFAULT_DAYS,
    DEMO_TRADERS,
    FIRST_DECISION_AT,
    SIGN_IN_AT,
    STRATEGY,
    AgentRun,
    DemoTrader,
    at_ist,
    days_done,
    history_days,
    next_decision,
    times_of_day,
)
from tradedesk.demo.repository import AgentStartRepository, FillDayRepository
from tradedesk.kit.calendar import ist_day
from tradedesk.kit.clock import ManualClock
from tradedesk.kit.keys import KeyFileError
from tradedesk.kit.ratelimit import MemoryRateLimiter
from tradedesk.kit.repository import tenant_session
from tradedesk.logs import logging_config
from tradedesk.main import create_app
from tradedesk.middleware import origin_of
from tradedesk.state import ApiServices

log = logging.getLogger("tradedesk.demo")

# Names the runtime on the agents it drives.
SEED_RUNTIME_ID = "demo-history"
# The device the history's sign-ins show: its sessions, and the agents it started, are told apart by it.
USER_AGENT = "tradedesk demo history"
# kitesim's published demo app and accounts (API.md).
DEMO_API_KEY = "tradedesk-demo"
DEMO_API_SECRET = "tradedesk-demo-secret"  # noqa: S105 - a published demo credential
DEMO_PASSWORD = "demo"  # noqa: S105 - a published demo credential
# One sign-in per account and day, a second apart: far beyond what a person is allowed.
SEED_SIGNIN_LIMIT = 1_000_000
# Ticks the runtime gets to stop the agents it was told to stop (one does it).
STOP_TICKS = 5
# The runtime reads back what users want (a new agent, a stop) when told to, and on its own this often
# (real seconds), which also renews its leases.
RECONCILE_S = 2.0


class SeedError(Exception):
    """The history could not be made: the simulator or the API answered something unexpected."""


@dataclass(frozen=True, slots=True)
class DemoApp:
    """The broker app the demo accounts sign in to, and their password."""

    api_key: str = DEMO_API_KEY
    api_secret: str = DEMO_API_SECRET
    password: str = DEMO_PASSWORD


@dataclass(frozen=True, slots=True)
class DayResult:
    """One account's day as the dashboard shows it after the sync."""

    user_id: str
    trades: int
    net: Decimal


@dataclass(slots=True)
class SeedReport:
    days_wanted: int
    days_traded: list[date] = field(default_factory=list)
    results: list[DayResult] = field(default_factory=list)
    elapsed_s: float = 0.0


class Kitesim:
    """What the seed asks of the simulator itself: its clock, and its login form filled in as a browser
    fills it."""

    def __init__(self, http: httpx.AsyncClient, app: DemoApp) -> None:
        self._http = http
        self._app = app

    async def now(self) -> datetime:
        response = await self._http.get("/sim/clock")
        response.raise_for_status()
        return datetime.fromisoformat(str(response.json()["now"]))

    async def set_clock(self, when: datetime) -> None:
        response = await self._http.post("/sim/clock", json={"set_to": when.isoformat()})
        response.raise_for_status()

    async def request_token(self, user_id: str) -> str:
        form = {"user_id": user_id, "password": self._app.password, "api_key": self._app.api_key}
        response = await self._http.post("/connect/login", data=form)
        location = str(response.headers.get("location", ""))
        tokens = parse_qs(urlsplit(location).query).get("request_token")
        if response.status_code != 302 or not tokens:
            raise SeedError(f"kitesim did not sign {user_id} in (HTTP {response.status_code})")
        return tokens[0]


class Desk:
    """One demo account's browser on the seed's API: signs in through kitesim's form, keeps the CSRF token,
    starts and stops the agent, syncs."""

    def __init__(
        self, app: FastAPI, trader: DemoTrader, *, kitesim: Kitesim, demo_app: DemoApp, origin: str, base: str
    ) -> None:
        self.trader = trader
        self.agent_id: int | None = None
        # The times of day the running agent's parameters name.
        self.marks: list[time_of_day] = []
        self.signed_in = False
        self._kitesim = kitesim
        self._demo_app = demo_app
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
            base_url=base,
            headers={"User-Agent": USER_AGENT, "Origin": origin},
        )

    @property
    def user_id(self) -> str:
        return self.trader.user_id

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, *, body: object = None, expect: int = 200) -> Any:
        response = await self._client.request(method, path, json=body)
        if response.status_code != expect:
            raise SeedError(
                f"{method} {path} for {self.user_id}: HTTP {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else None

    async def sign_in(self) -> None:
        token = await self._kitesim.request_token(self.user_id)
        status = await self._call(
            "POST",
            "/api/auth/authenticate",
            body={
                "api_key": self._demo_app.api_key,
                "api_secret": self._demo_app.api_secret,
                "request_token": token,
            },
        )
        self._client.headers["X-CSRF-Token"] = str(status["csrf_token"])
        self.signed_in = True
        # A run that was killed may have left one of its sessions behind.
        for session in await self._call("GET", "/api/auth/sessions"):
            if session["device_label"] == USER_AGENT and not session["current"]:
                await self._call("DELETE", f"/api/auth/sessions/{session['handle']}", expect=204)

    async def sign_out(self) -> None:
        await self._call("POST", "/api/auth/logout", expect=204)
        self.signed_in = False
        self._client.headers.pop("X-CSRF-Token", None)

    async def start_agent(self) -> int:
        # The account's own parameters, once it has any; the demo's the first time.
        changed = await self._call("GET", f"/api/strategies/{STRATEGY}/params/history?limit=1")
        body: dict[str, Any] = {"strategy": STRATEGY}
        if not changed:
            body["params"] = dict(self.trader.params)
        agent = await self._call("POST", "/api/agents", body=body, expect=201)
        self.agent_id = int(agent["id"])
        self.marks = times_of_day(STRATEGIES[STRATEGY].Params.model_validate(agent["params"]))
        return self.agent_id

    async def stop_agent(self) -> None:
        if self.agent_id is not None:
            await self._call("POST", f"/api/agents/{self.agent_id}/stop")

    async def agent_stopped(self) -> bool:
        if self.agent_id is None:
            return True
        agent = await self._call("GET", f"/api/agents/{self.agent_id}")
        if agent["state"] in TERMINAL_STATES:
            self.agent_id = None
            return True
        return False

    async def sync(self, day: date) -> DayResult:
        await self._call("POST", "/api/sync", body={"day": day.isoformat()})
        stats = await self._call("GET", f"/api/stats/daily?from={day.isoformat()}&to={day.isoformat()}")
        trades = sum(int(row["trades"]) for row in stats)
        net = sum((Decimal(str(row["net"])) for row in stats), Decimal(0))
        return DayResult(user_id=self.user_id, trades=trades, net=net)


class MarketOrderCounter(KiteClient):
    """The seed runtime's broker client: it counts the MARKET orders sent. Those fill at once, and the
    agent's next decision (guarding the fill with its stop, settling a leg bought back) should follow
    within the minute; a resting stop or a modification needs no such haste."""

    market_orders = 0

    async def place_order(
        self, *, api_key: str, access_token: str, variety: str = "regular", order: dict[str, str]
    ) -> str:
        order_id = await super().place_order(
            api_key=api_key, access_token=access_token, variety=variety, order=order
        )
        if order.get("order_type") == "MARKET":
            self.market_orders += 1
        return order_id


class OwnAgentLeases:
    """Leases for the seed's runtime that let it take only the agents the seed started: an agent a trader
    left running belongs to the API's runtime, and must not trade the past."""

    def __init__(self, inner: Leases) -> None:
        self._inner = inner
        self._allowed: set[str] = set()

    def allow(self, key: str) -> None:
        self._allowed.add(key)

    async def claim(self, key: str, owner: str, *, ttl_ms: int) -> bool:
        return key in self._allowed and await self._inner.claim(key, owner, ttl_ms=ttl_ms)

    async def renew(self, keys: Sequence[str], owner: str, *, ttl_ms: int) -> set[str]:
        return await self._inner.renew(keys, owner, ttl_ms=ttl_ms)

    async def holds(self, key: str, owner: str) -> bool:
        return await self._inner.holds(key, owner)

    async def release(self, key: str, owner: str) -> None:
        await self._inner.release(key, owner)


@dataclass(frozen=True, slots=True)
class AccountHistory:
    done: set[date]
    # Live agents the history started, left by a run that was killed: stopped before their day is traded
    # again (an API started meanwhile may have taken them over).
    leftovers: list[int]
    # A short strangle agent of the account's own is live: its history is left as it is.
    busy: bool


async def history_of(
    sessionmaker: async_sessionmaker[AsyncSession], broker_id: str, days: Sequence[date]
) -> AccountHistory:
    """Which of ``days`` the account already has (see ``plan.days_done``), and what is live."""
    async with tenant_session(sessionmaker, broker_id) as db:
        fill_days = await FillDayRepository(db, broker_id).days_with_fills(days)
        ours = await AgentStartRepository(db, broker_id).agents_started_from(USER_AGENT)
        agents = [a for a in await AgentRepository(db, broker_id).newest_first() if a.strategy == STRATEGY]
    runs = [AgentRun(a.started_at, a.stopped_at) for a in agents]
    live = [a.id for a in agents if a.state not in TERMINAL_STATES]
    return AccountHistory(
        done=days_done(fill_days, runs) & set(days),
        leftovers=[agent_id for agent_id in live if agent_id in ours],
        busy=any(agent_id not in ours for agent_id in live),
    )


class HistorySeeder:
    """Trades the missing days on the seed's API app, whose clock it moves in step with kitesim's."""

    def __init__(
        self,
        app: FastAPI,
        *,
        clock: ManualClock,
        kitesim: Kitesim,
        kite_transport: httpx.AsyncBaseTransport | None,
        traders: Sequence[DemoTrader],
        demo_app: DemoApp,
        progress: Callable[[str], None],
    ) -> None:
        services: ApiServices = app.state.td
        agents: AgentServices = app.state.agents
        settings = services.settings
        self._services = services
        self._clock = clock
        self._kitesim = kitesim
        self._traders = traders
        self._progress = progress
        self._prefix = settings.redis_key_prefix
        # The history's sign-ins, one per account and day, are counted apart: in a shared Redis they would
        # use up the allowance a person signs in under.
        services.sign_in_limiter = SignInLimiter(
            MemoryRateLimiter(),
            per_address_limit=SEED_SIGNIN_LIMIT,
            per_key_limit=SEED_SIGNIN_LIMIT,
            window_s=settings.signin_rate_window_s,
        )
        # The SPA's origin: the one a browser of the account sends.
        origin = (
            settings.cors_origins[0] if settings.cors_origins else origin_of(settings.api_public_url) or ""
        )
        self._desks = {
            t.user_id: Desk(
                app, t, kitesim=kitesim, demo_app=demo_app, origin=origin, base=settings.api_public_url
            )
            for t in traders
        }
        self._kite = MarketOrderCounter(
            base_url=settings.kite_api_url, timeout_s=settings.kite_timeout_s, transport=kite_transport
        )
        self._leases = OwnAgentLeases(
            RedisLeases(services.redis) if services.redis is not None else MemoryLeases()
        )
        self._runtime = AgentRuntime(
            RuntimeConfig(
                runtime_id=SEED_RUNTIME_ID,
                redis_prefix=self._prefix,
                lease_ttl_ms=int(settings.agent_lease_ttl_s * 1000),
                cycle_s=0.0,
                reconcile_s=RECONCILE_S,
            ),
            sessionmaker=services.sessionmaker,
            kite=self._kite,
            cipher=services.cipher,
            clock=clock,
            leases=self._leases,
            bus=agents.bus,
            strategies=STRATEGIES,
        )

    async def aclose(self) -> None:
        await self._runtime.release_all()
        await self._kite.aclose()
        for desk in self._desks.values():
            await desk.aclose()

    async def _goto(self, when: datetime) -> None:
        await self._kitesim.set_clock(when)
        self._clock.set(when)

    async def _decide(self) -> bool:
        """One decision of every agent the runtime holds; whether a MARKET order went out."""
        before = self._kite.market_orders
        await self._runtime.tick()
        return self._kite.market_orders > before

    async def run(self, *, today: date, days: int) -> SeedReport:
        wanted = history_days(today, days)
        report = SeedReport(days_wanted=len(wanted))
        todo: dict[str, set[date]] = {}
        for trader in self._traders:
            history = await history_of(self._services.sessionmaker, trader.user_id, wanted)
            if history.leftovers:
                await self._stop_leftovers(self._desks[trader.user_id], history.leftovers)
            todo[trader.user_id] = set() if history.busy else set(wanted) - history.done
            if history.busy:
                self._progress(f"demo history: {trader.user_id} runs a short strangle agent; left as it is")
        to_trade = sorted(set().union(*todo.values())) if todo else []
        if not to_trade:
            self._progress(f"demo history: the last {len(wanted)} trading days are there already")
            return report
        names = ", ".join(t.user_id for t in self._traders if todo[t.user_id])
        self._progress(
            f"demo history: the short strangle for {names} over {len(to_trade)} past trading days "
            f"({to_trade[0]:%d %b} to {to_trade[-1]:%d %b}), on kitesim's clock …"
        )
        for number, day in enumerate(to_trade, start=1):
            desks = [self._desks[t.user_id] for t in self._traders if day in todo[t.user_id]]
            results = await self._trade_day(day, desks)
            report.days_traded.append(day)
            report.results.extend(results)
            summary = "  ".join(f"{r.user_id} {r.net:+,.0f} ({r.trades} trades)" for r in results)
            self._progress(f"demo history: day {number}/{len(to_trade)} {day:%a %d %b}  {summary}")
        return report

    async def _stop_leftovers(self, desk: Desk, agent_ids: Sequence[int]) -> None:
        """Stopped at the hand-over, a day after theirs: nothing of their own day is loaded or sent, and
        that day counts as missing (``plan.days_done``), so it is traded again."""
        await desk.sign_in()
        for agent_id in agent_ids:
            desk.agent_id = agent_id
            self._leases.allow(lease_key(self._prefix, desk.user_id, agent_id))
            await self._stop_agents([desk])
        await desk.sign_out()

    async def _trade_day(self, day: date, desks: Sequence[Desk]) -> list[DayResult]:
        await self._goto(at_ist(day, SIGN_IN_AT))
        traded = False
        try:
            for desk in desks:
                await desk.sign_in()
                agent_id = await desk.start_agent()
                self._leases.allow(lease_key(self._prefix, desk.user_id, agent_id))
            await self._runtime.reconcile()
            marks = {mark for desk in desks for mark in desk.marks}
            at, end = at_ist(day, FIRST_DECISION_AT), at_ist(day, DAY_END_AT)
            while at < end:
                await self._goto(at)
                sent = await self._decide()
                at = next_decision(at, sent_orders=sent, marks=marks)
            await self._goto(end)
            traded = True
            return await self._close_day(day, desks)
        except BaseException:
            # Interrupted. A day traded to its end is closed as usual; one cut short is left unsynced, its
            # agents stopped now, so that the next run trades it again whole.
            try:
                if traded:
                    await self._close_day(day, desks)
                else:
                    try:
                        await self._stop_agents(desks)
                    finally:
                        await self._sign_out(desks)
            except Exception:
                # Say, the simulator went down with us: the next run stops what is left (``_stop_leftovers``).
                log.warning("demo history: day %s not closed", day, exc_info=True)
            raise

    async def _stop_agents(self, desks: Sequence[Desk]) -> None:
        running = [d for d in desks if d.agent_id is not None]
        for desk in running:
            await desk.stop_agent()
        for _ in range(STOP_TICKS):
            await self._runtime.reconcile()
            await self._decide()
            if all([await d.agent_stopped() for d in running]):
                return
        raise SeedError("the history's agents did not stop")

    @staticmethod
    async def _sign_out(desks: Sequence[Desk]) -> None:
        for desk in desks:
            if desk.signed_in:
                await desk.sign_out()

    async def _close_day(self, day: date, desks: Sequence[Desk]) -> list[DayResult]:
        """Sync first, then stop: a day whose agent stopped at its end has its fills (``days_done``)."""
        try:
            results = [await desk.sync(day) for desk in desks if desk.signed_in]
            await self._stop_agents(desks)
        finally:
            await self._sign_out(desks)
        return results


async def seed_history(
    settings: Settings,
    *,
    days: int,
    traders: Sequence[DemoTrader] = DEMO_TRADERS,
    demo_app: DemoApp | None = None,
    kite_transport: httpx.AsyncBaseTransport | None = None,
    progress: Callable[[str], None] = print,
) -> SeedReport:
    """Trade the ``days`` trading days before kitesim's current day that the demo accounts do not have yet,
    then set kitesim's clock back to where it would be had it run on by itself meanwhile."""
    started = time.monotonic()
    demo_app = demo_app or DemoApp()
    seed_settings = settings.model_copy(update={"agent_runtime": "off", "access_log": False})
    async with httpx.AsyncClient(
        base_url=settings.kite_api_url, transport=kite_transport, timeout=settings.kite_timeout_s
    ) as http:
        kitesim = Kitesim(http, demo_app)
        handover = await kitesim.now()
        clock = ManualClock(handover)
        app = create_app(seed_settings, clock=clock, kite_transport=kite_transport)
        try:
            async with app.router.lifespan_context(app):
                seeder = HistorySeeder(
                    app,
                    clock=clock,
                    kitesim=kitesim,
                    kite_transport=kite_transport,
                    traders=traders,
                    demo_app=demo_app,
                    progress=progress,
                )
                try:
                    report = await seeder.run(today=ist_day(handover), days=days)
                finally:
                    await seeder.aclose()
        finally:
            # Shielded: an interrupted seed still hands the market back.
            await asyncio.shield(kitesim.set_clock(handover + timedelta(seconds=time.monotonic() - started)))
    report.elapsed_s = time.monotonic() - started
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tradedesk.demo.seed",
        description="Trade the demo accounts' history on kitesim before the API starts "
        "(settings from TRADEDESK_… variables or .env).",
    )
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"past trading days to trade (default {DEFAULT_DAYS})"
    )
    parser.add_argument("--kite-url", help="kitesim's URL (default: TRADEDESK_KITE_API_URL)")
    parser.add_argument(
        "--users",
        help="comma-separated demo accounts to trade (default: "
        + ",".join(t.user_id for t in DEMO_TRADERS)
        + ")",
    )
    return parser


def chosen_traders(users: str | None) -> list[DemoTrader]:
    """The demo traders named (all when none is); ValueError for a name that is not one of them."""
    if not users:
        return list(DEMO_TRADERS)
    known = {t.user_id: t for t in DEMO_TRADERS}
    names = [name.strip().upper() for name in users.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"not a demo trader: {', '.join(unknown)} (they are {', '.join(known)})")
    return [known[name] for name in dict.fromkeys(names)]


async def _seed_until_told(
    settings: Settings, *, days: int, traders: Sequence[DemoTrader], demo_app: DemoApp
) -> SeedReport:
    task = asyncio.current_task()
    assert task is not None

    def interrupt() -> None:
        # Once: a second cancel would cut short the closing of the day in progress.
        if not task.cancelling():
            task.cancel()

    # SIGTERM (from make run's launcher) interrupts the seed as Ctrl-C does: the day in progress is wound up.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, interrupt)
    return await seed_history(
        settings,
        days=days,
        traders=traders,
        demo_app=demo_app,
        progress=lambda line: print(line, flush=True),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        traders = chosen_traders(args.users)
    except ValueError as exc:
        parser.error(str(exc))
    if args.days <= 0:
        return 0
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"demo history: not made: {exc}", file=sys.stderr)
        return 2
    if args.kite_url:
        settings = settings.model_copy(update={"kite_api_url": args.kite_url})
    logging.config.dictConfig(logging_config(settings.model_copy(update={"log_level": "warning"})))
    try:
        settings.effective_secret_keys  # noqa: B018 - reads (or first creates) the key file now
    except KeyFileError as exc:
        print(f"demo history: not made: {exc}", file=sys.stderr)
        return 2
    # The demo app as kitesim was configured (make run hands both processes the same environment).
    demo_app = DemoApp(
        api_key=os.environ.get("KITESIM_API_KEY", DEMO_API_KEY),
        api_secret=os.environ.get("KITESIM_API_SECRET", DEMO_API_SECRET),
    )
    try:
        report = asyncio.run(_seed_until_told(settings, days=args.days, traders=traders, demo_app=demo_app))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("demo history: interrupted; the next run completes it", file=sys.stderr)
        return 130
    except (SeedError, httpx.HTTPError) as exc:
        print(f"demo history: not made: {exc}", file=sys.stderr)
        return 1
    if report.days_traded:
        print(
            f"demo history: {len(report.days_traded)} trading days traded in {report.elapsed_s:.1f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
