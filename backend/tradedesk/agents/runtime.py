"""The agent runtime: reconciles what users want (``agents`` rows) with what this process drives.

Every tick it reads the live agents of every user (one cross-tenant function), claims a lease for each
agent no other runtime holds, renews what it holds and drops what it lost. Each held agent is driven on
one shared cycle: the runtime fetches the market once for all of them (batched quotes, candles once per
minute), the user's orders once per user, asks each strategy for its decision and sends the intents.

Exactly once: an intent is recorded (with its tag: agent id and sequence) in the same transaction as the
strategy state that expects it, and only then sent; the lease is checked before every send. A runtime that
resumes an agent first matches its recorded intents with the broker's orders by tag and sends only the
intents the broker never received.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.agents.journal import Journal, LiveBus
from tradedesk.agents.leases import Leases, lease_key, runtime_key
from tradedesk.agents.market import MarketData
from tradedesk.agents.orders import (
    FINAL_STATUSES,
    agent_pnl,
    new_fills,
    order_tag,
    order_view,
    parse_tag,
    unsent_view,
)
from tradedesk.agents.repository import (
    AgentRepository,
    RunnableAgent,
    agents_to_run,
    forget_runtimes,
    record_intents,
    touch_runtime,
)
from tradedesk.agents.schemas import AgentState, EventKind, EventLevel
from tradedesk.agents.strategies.base import (
    NIFTY_KEY,
    CancelOrder,
    Candle,
    Decision,
    InstrumentInfo,
    Intent,
    MarketSnapshot,
    ModifyOrder,
    OrderView,
    PlaceOrder,
    Strategy,
    Watch,
    as_json,
)
from tradedesk.audit import service as audit
from tradedesk.audit.schemas import AuditKind
from tradedesk.auth.repository import BrokerCredentialsRepository
from tradedesk.brokers.credentials import BrokerCredentialsPlain, open_credentials
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.brokers.kite.schemas import KiteOrder
from tradedesk.errors import (
    AppError,
    BrokerInputRejected,
    BrokerTimeout,
    BrokerTokenInvalid,
    BrokerUnavailable,
)
from tradedesk.kit.calendar import ist_day, market_open
from tradedesk.kit.clock import Clock
from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError
from tradedesk.kit.repository import tenant_session
from tradedesk.logs import log_tag
from tradedesk.models import Agent, BrokerCredentials

log = logging.getLogger("tradedesk.agents")

AnyStrategy = Strategy[Any, Any]

REASON_TOKEN_EXPIRED = "broker_token_expired"  # noqa: S105 - a reason, not a secret
REASON_DISCONNECTED = "broker_disconnected"
REASON_LOSS_LIMIT = "daily_loss_limit_reached"
# An order whose answer never came (timeout) is looked up by its tag; absent that many times, it was
# never received and is sent again.
MAX_SEND_ATTEMPTS = 3
# A strategy state that only moved (no order, no note) is saved at most this often.
STATE_SAVE_EVERY_S = 30.0
# Heartbeat rows of runtimes silent this long are dropped, looked for this often.
RUNTIME_FORGOTTEN_AFTER = timedelta(days=1)
FORGET_RUNTIMES_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    runtime_id: str
    redis_prefix: str = "td:"
    lease_ttl_ms: int = 10_000
    # Each cycle is split into slots, one driven per tick (see _drive_slot).
    tick_s: float = 0.1
    # How often the desired state is read back (new agents, stops, parameters, limits, credentials).
    reconcile_s: float = 0.5
    cycle_s: float = 1.0
    # Agents driven at once while their I/O is in flight.
    concurrency: int = 64
    alive_file: str | None = None


@dataclass(slots=True)
class IntentRecord:
    seq: int
    intent_id: str
    kind: str  # place | modify | cancel
    payload: dict[str, Any]
    status: str  # recorded | sent | rejected | unknown
    order_id: str | None = None
    message: str | None = None
    attempts: int = 0

    @property
    def tag(self) -> str:
        return str(self.payload.get("tag", ""))


@dataclass(slots=True)
class HeldAgent:
    broker_id: str
    agent_id: int
    lease: str
    strategy_name: str
    strategy: AnyStrategy
    params: BaseModel
    params_version: int
    desired: str
    state: str
    reason: str | None
    next_seq: int
    strategy_state: BaseModel | None = None
    trading_day: date | None = None
    persisted_state: dict[str, Any] | None = None
    credentials: BrokerCredentialsPlain | None = None
    credentials_stamp: datetime | None = None
    token_expires_at: datetime | None = None
    intents: dict[str, IntentRecord] = field(default_factory=dict)
    orders: list[KiteOrder] = field(default_factory=list)
    fills_seen: dict[str, int] = field(default_factory=dict)
    rejections_seen: set[str] = field(default_factory=set)
    realised_today: Decimal = Decimal(0)
    done_for_day: bool = False
    blocked_day: date | None = None
    loss_limit: Decimal | None = None
    state_saved_at: float = -1e9
    # Events of a decision whose orders are being sent: written with the orders' outcomes.
    deferred: list[EventItem] = field(default_factory=list)
    # Answers of orders sent this cycle, not yet written.
    outcomes: list[tuple[IntentRecord, EventLevel, str]] = field(default_factory=list)
    # Taken over, and the broker's orders not read since: nothing is decided or sent until they are.
    needs_adoption: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.broker_id, self.agent_id)

    def open_intents(self) -> bool:
        """Whether some order of this agent may still change at the broker (so its view needs a fresh
        look): an intent not yet answered, or a placed order not known to be final."""
        final = {o.order_id for o in self.orders if (o.status or "").upper() in FINAL_STATUSES}
        return any(
            r.status in ("recorded", "unknown")
            or (r.kind == "place" and r.status == "sent" and r.order_id not in final)
            for r in self.intents.values()
        )


EventItem = tuple[EventKind, EventLevel, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CycleView:
    now: datetime
    instruments: Sequence[InstrumentInfo]
    quotes: Mapping[str, float]
    candles: Mapping[str, Sequence[Candle]]
    days_to: Mapping[date, int]
    watches: Mapping[tuple[str, int], Watch]
    active: Sequence[HeldAgent]


class LeaseLost(Exception):
    """This runtime no longer holds the agent: it must not send anything more for it."""


class RuntimeIdInUse(Exception):
    """Another live process runs under this runtime id; this one must not drive any agent."""


def release_agent(agent: Agent, *, now: datetime) -> None:
    """The runtime lets go of an agent that ends (stopped or failed): its heartbeat, kept per runtime while
    it runs, is written on the agent itself one last time, so it keeps showing when it was last driven."""
    agent.runtime_id = None
    agent.heartbeat_at = now


class RuntimeObserver(Protocol):
    """Told of what a runtime does as it does it (the metrics): cheap calls, on the runtime's own path."""

    def cycle_prepared(self, duration_s: float) -> None:
        """A cycle's shared view (orders to settle, instruments, quotes, candles) took this long."""

    def decided(self) -> None:
        """An agent took a decision."""

    def order_answered(self, status: str, ack_s: float | None) -> None:
        """The broker answered an order (``status``: sent, rejected, unknown or recorded); ``ack_s``: from
        the decision to the answer, for an order sent right after its decision."""

    def claimed(self) -> None:
        """An agent was taken over (started, or moved from another runtime)."""

    def dropped(self, why: str) -> None:
        """An agent left this runtime (``why``: a phrase the code chooses)."""


class AgentRuntime:
    def __init__(
        self,
        config: RuntimeConfig,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        kite: KiteClient,
        cipher: CredentialCipher,
        clock: Clock,
        leases: Leases,
        bus: LiveBus,
        strategies: Mapping[str, AnyStrategy],
    ) -> None:
        self.config = config
        self._sessionmaker = sessionmaker
        self._kite = kite
        self._cipher = cipher
        self._clock = clock
        self._leases = leases
        self._bus = bus
        self._strategies = strategies
        self._market = MarketData(kite)
        self._held: dict[tuple[str, int], HeldAgent] = {}
        # This process's claim on the runtime id (see register()).
        self._instance = uuid.uuid4().hex
        self._registration: str | None = None
        self._registration_renewed_at = 0.0
        self._renewed_at = 0.0
        self._touched_at = 0.0
        self._cycle_at = 0.0
        self._reconciled_at = -1e9
        self._frozen_instruments: Sequence[InstrumentInfo] | None = None
        self._view: CycleView | None = None
        self._slot = 0
        # Four fifths of the cycle's ticks drive agents; the rest is slack for a slow tick, so that every
        # agent still decides once a cycle.
        self._slots = max(1, int(config.cycle_s / config.tick_s * 0.8))
        self._alive_touched_at = -1e9
        self._runtimes_forgotten_at = -1e9
        self._last_prices: dict[str, float] = {}
        self._stopping = asyncio.Event()
        self._gate = asyncio.Semaphore(config.concurrency)
        # Separate from the gate: an agent holding the gate reads its orders through this one.
        self._order_reads = asyncio.Semaphore(config.concurrency)
        # (when, seconds from the decision to the broker's answer) of each order sent, and decisions taken:
        # for the benchmark. Bounded: the oldest go first.
        self.ack_latencies_s: collections.deque[tuple[float, float]] = collections.deque(maxlen=100_000)
        # decisions taken per second of time.perf_counter(), the last hour of them
        self.decisions_per_second: collections.Counter[int] = collections.Counter()
        self.observer: RuntimeObserver | None = None

    @property
    def runtime_id(self) -> str:
        return self.config.runtime_id

    def held(self) -> list[tuple[str, int]]:
        return sorted(self._held)

    # -- the loop -------------------------------------------------------------------------------------
    async def register(self) -> None:
        """Take this runtime's name for this process. A name still held by a process that died (kill -9)
        frees itself within the lease TTL, so that long is waited out; a name still renewed after twice
        that belongs to a live process, and this one refuses to run."""
        key = runtime_key(self.config.redis_prefix, self.runtime_id)
        ttl_ms = self.config.lease_ttl_ms
        deadline = time.monotonic() + 2 * ttl_ms / 1000
        waited = False
        while not await self._leases.claim(key, self._instance, ttl_ms=ttl_ms):
            if time.monotonic() >= deadline:
                log.error(
                    "agent runtime id %r is in use by another running process; refusing to start "
                    "(give each worker its own --runtime-id or TRADEDESK_AGENT_RUNTIME_ID)",
                    self.runtime_id,
                )
                raise RuntimeIdInUse(self.runtime_id)
            if not waited:
                waited = True
                log.warning(
                    "agent runtime id %r is held by another process; waiting up to %.0f s for it to expire",
                    self.runtime_id,
                    2 * ttl_ms / 1000,
                )
            await asyncio.sleep(min(0.5, ttl_ms / 4000))
        self._registration = key
        self._registration_renewed_at = time.monotonic()

    async def _renew_registration(self) -> None:
        if self._registration is None:
            return
        if time.monotonic() - self._registration_renewed_at < self.config.lease_ttl_ms / 3000:
            return
        self._registration_renewed_at = time.monotonic()
        ttl_ms = self.config.lease_ttl_ms
        if not await self._leases.renew([self._registration], self._instance, ttl_ms=ttl_ms):
            # Paused past the TTL and another process took the name: what this one holds is not its own.
            log.error("agent runtime id %r was taken by another process; stopping", self.runtime_id)
            self._held.clear()
            self._registration = None
            raise RuntimeIdInUse(self.runtime_id)

    async def run(self) -> None:
        await self.register()
        log.info("agent runtime %s started", self.runtime_id)
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    await self._renew_registration()
                    await self.tick()
                    await self._touch_alive_file()
                except RuntimeIdInUse:
                    raise
                except Exception:
                    # A database or broker outage: every held agent waits; the leases expire if it lasts.
                    log.warning("agent runtime tick failed", exc_info=True)
                delay = max(0.0, self.config.tick_s - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        finally:
            await self.release_all()
            if self._registration is not None:
                await self._leases.release(self._registration, self._instance)
                self._registration = None
            log.info("agent runtime %s stopped", self.runtime_id)

    def stop(self) -> None:
        self._stopping.set()

    async def _touch_alive_file(self) -> None:
        if self.config.alive_file and time.monotonic() - self._alive_touched_at >= 5.0:
            self._alive_touched_at = time.monotonic()
            await asyncio.to_thread(Path(self.config.alive_file).touch)

    async def release_all(self) -> None:
        for held in list(self._held.values()):
            await self._leases.release(held.lease, self.runtime_id)
        self._held.clear()

    async def tick(self) -> None:
        now_mono = time.monotonic()
        if now_mono - self._reconciled_at >= self.config.reconcile_s:
            self._reconciled_at = now_mono
            await self.reconcile()
        stopping = [h for h in self._held.values() if h.desired == "stopped"]
        if stopping:
            await self._each(stopping, self._stop)
        # A cycle starts when it is due and the last one has driven all its slots: an overloaded runtime
        # stretches its cycles rather than skipping some agents.
        if now_mono - self._cycle_at >= self.config.cycle_s and (
            self._view is None or self._slot >= self._slots
        ):
            self._cycle_at = now_mono
            self._view = await self._begin_cycle()
            self._slot = 0
            if self.observer is not None:
                self.observer.cycle_prepared(time.monotonic() - now_mono)
        if self._view is not None and self._slot < self._slots:
            await self._drive_slot(self._view, self._slot)
            self._slot += 1

    # -- desired state --------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        async with self._sessionmaker() as db, db.begin():
            rows = await agents_to_run(db)
        now_mono = time.monotonic()
        live = {(r.broker_id, r.agent_id): r for r in rows}
        for key in [k for k in self._held if k not in live]:
            # Stopped or failed elsewhere (or deleted): nothing more to do for it here.
            await self._drop(key, "no longer live")
        if self._held and now_mono - self._renewed_at >= self.config.lease_ttl_ms / 3000:
            self._renewed_at = now_mono
            still = await self._leases.renew(
                [h.lease for h in self._held.values()], self.runtime_id, ttl_ms=self.config.lease_ttl_ms
            )
            for lost in [h for h in self._held.values() if h.lease not in still]:
                await self._drop(lost.key, "lease lost")
        unclaimed: list[RunnableAgent] = []
        for key, row in live.items():
            held = self._held.get(key)
            if held is None:
                if row.desired == "running" or row.state == AgentState.STOPPING.value:
                    unclaimed.append(row)
                continue
            held.desired = row.desired
            held.loss_limit = row.daily_loss_limit
            if row.params_version != held.params_version:
                await self._reload_params(held)
            if row.credentials_updated_at != held.credentials_stamp:
                await self._load_credentials(held)
        if unclaimed:
            # A take-over after another runtime died moves all its agents at once: adopt them side by side.
            await asyncio.gather(*(self._claim_guarded(row) for row in unclaimed))
        if self._held and now_mono - self._touched_at >= 1.0:
            self._touched_at = now_mono
            now = self._clock.now()
            async with self._sessionmaker() as db, db.begin():
                await touch_runtime(db, runtime_id=self.runtime_id, at=now)
                if now_mono - self._runtimes_forgotten_at >= FORGET_RUNTIMES_EVERY_S:
                    self._runtimes_forgotten_at = now_mono
                    await forget_runtimes(db, silent_since=now - RUNTIME_FORGOTTEN_AFTER)

    async def _drop(self, key: tuple[str, int], why: str) -> None:
        held = self._held.pop(key, None)
        if held is None:
            return
        await self._leases.release(held.lease, self.runtime_id)
        log.info("agent %s of broker=%s dropped: %s", held.agent_id, log_tag(held.broker_id), why)
        if self.observer is not None:
            self.observer.dropped(why)

    async def _claim_guarded(self, row: RunnableAgent) -> None:
        async with self._gate:
            try:
                await self._try_claim(row)
            except Exception:
                log.warning("agent %s: not taken over", row.agent_id, exc_info=True)

    async def _try_claim(self, row: RunnableAgent) -> None:
        key = lease_key(self.config.redis_prefix, row.broker_id, row.agent_id)
        if not await self._leases.claim(key, self.runtime_id, ttl_ms=self.config.lease_ttl_ms):
            return
        try:
            held = await self._take_over(row, key)
        except Exception:
            await self._leases.release(key, self.runtime_id)
            raise
        if held is not None:
            self._held[held.key] = held
            if self.observer is not None:
                self.observer.claimed()

    async def _take_over(self, row: RunnableAgent, lease: str) -> HeldAgent | None:
        """Take an agent over in one transaction: its row, today's recorded intents and its credentials.
        The broker's view of its orders is read with the next cycle's (``_adopt``); intents the broker
        never received are sent then, once."""
        now = self._clock.now()
        today = ist_day(now)
        held: HeldAgent | None = None
        async with tenant_session(self._sessionmaker, row.broker_id) as db:
            repo = AgentRepository(db, row.broker_id)
            journal = Journal(repo)
            agent = await repo.get(row.agent_id, for_update=True)
            if agent is None or agent.state in (AgentState.STOPPED.value, AgentState.FAILED.value):
                return None
            strategy = self._strategies.get(agent.strategy)
            params: BaseModel | None = None
            if strategy is None:
                await self._fail(journal, agent, now, f"unknown strategy {agent.strategy!r}")
            else:
                try:
                    params = strategy.Params.model_validate(agent.params)
                except ValidationError as exc:
                    await self._fail(
                        journal, agent, now, f"parameters no longer valid: {exc.errors()[0]['msg']}"
                    )
            if strategy is not None and params is not None:
                held = HeldAgent(
                    broker_id=row.broker_id,
                    agent_id=agent.id,
                    lease=lease,
                    strategy_name=agent.strategy,
                    strategy=strategy,
                    params=params,
                    params_version=agent.params_version,
                    desired=agent.desired,
                    state=agent.state,
                    reason=agent.reason,
                    next_seq=agent.next_seq,
                    loss_limit=row.daily_loss_limit,
                    # Spread the periodic state saves of agents taken over together.
                    state_saved_at=time.monotonic()
                    - (row.agent_id * 7919 % 1000) / 1000 * STATE_SAVE_EVERY_S,
                    realised_today=agent.realised_pnl_today if agent.trading_day == today else Decimal(0),
                    # Nothing is decided or sent before the broker's orders have been read.
                    needs_adoption=True,
                )
                if agent.trading_day == today and agent.strategy_state is not None:
                    held.strategy_state = strategy.State.model_validate(agent.strategy_state)
                    held.trading_day = today
                    held.persisted_state = dict(agent.strategy_state)
                for order in await repo.orders_of_day(agent_id=agent.id, day=today):
                    held.intents[order.intent_id] = IntentRecord(
                        seq=order.seq,
                        intent_id=order.intent_id,
                        kind=order.kind,
                        payload=dict(order.payload),
                        status=order.status,
                        order_id=order.order_id,
                        message=order.message,
                    )
                self._set_credentials(held, await BrokerCredentialsRepository(db, row.broker_id).get())
                previous = agent.runtime_id
                agent.runtime_id = self.runtime_id
                agent.heartbeat_at = now
                agent.updated_at = now
                if agent.state == AgentState.STARTING.value and agent.desired == "running":
                    agent.state = AgentState.RUNNING.value
                held.state = agent.state
                message = (
                    f"Taken over by runtime {self.runtime_id} (was {previous})."
                    if previous and previous != self.runtime_id
                    else f"Running on runtime {self.runtime_id}."
                )
                await journal.event(
                    agent.id, at=now, kind=EventKind.STATE, message=message, data={"runtime": self.runtime_id}
                )
                journal.status(agent)
        await journal.publish(self._bus)
        if held is not None:
            log.info("agent %s of broker=%s claimed", held.agent_id, log_tag(held.broker_id))
        return held

    async def _adopt(self, held: HeldAgent) -> None:
        """First look at the broker after a take-over: what it already has of the recorded intents is
        marked sent, and fills made before are not announced again."""
        adopted = self._adopt_broker_orders(held)
        if adopted:
            async with tenant_session(self._sessionmaker, held.broker_id) as db:
                repo = AgentRepository(db, held.broker_id)
                for record in adopted:
                    await repo.update_order(
                        agent_id=held.agent_id, seq=record.seq, status="sent", order_id=record.order_id
                    )
        held.needs_adoption = False

    def _adopt_broker_orders(self, held: HeldAgent) -> list[IntentRecord]:
        """Match the intents recorded but not known to be sent with what the broker has: a placed order by
        its tag; a modification or cancel by its target's state (done already, or moot once the target is
        final). Returns the records that changed; the rest are sent on the next cycle."""
        by_tag = {o.tag: o for o in held.orders if o.tag}
        by_id = {o.order_id: o for o in held.orders}
        adopted: list[IntentRecord] = []
        for record in held.intents.values():
            if record.status not in ("recorded", "unknown"):
                continue
            if record.kind == "place":
                found = by_tag.get(record.tag)
                if found is not None:
                    record.status, record.order_id = "sent", found.order_id
                    adopted.append(record)
                continue
            target = held.intents.get(str(record.payload.get("target")))
            order = by_id.get(target.order_id or "") if target is not None else None
            if order is None:
                continue
            final = (order.status or "").upper() in FINAL_STATUSES
            changes = dict(record.payload.get("changes") or {})
            applied = all(
                abs(float(getattr(order, name, 0.0) or 0.0) - float(value)) < 1e-6
                for name, value in changes.items()
                if name in ("price", "trigger_price", "quantity")
            )
            if final or (record.kind == "modify" and applied):
                record.status, record.order_id = "sent", order.order_id
                adopted.append(record)
        # Fills made before the take-over were told by the runtime that saw them (or by nobody, if it died
        # first); the page of orders shows them either way.
        held.fills_seen = {o.order_id: o.filled_quantity for o in held.orders}
        held.rejections_seen = {o.order_id for o in held.orders if (o.status or "").upper() == "REJECTED"}
        return adopted

    async def _fail(self, journal: Journal, agent: Agent, now: datetime, why: str) -> None:
        agent.state = AgentState.FAILED.value
        agent.desired = "stopped"
        agent.reason = why[:200]
        agent.stopped_at = now
        release_agent(agent, now=now)
        agent.updated_at = now
        await journal.event(
            agent.id, at=now, kind=EventKind.STATE, level=EventLevel.ERROR, message=f"Failed: {why}"
        )
        journal.status(agent)

    async def _reload_params(self, held: HeldAgent) -> None:
        """The user changed the parameters: the next decision uses them, and the agent says so."""
        async with tenant_session(self._sessionmaker, held.broker_id) as db:
            repo = AgentRepository(db, held.broker_id)
            agent = await repo.get(held.agent_id)
            if agent is None:
                return
            journal = Journal(repo)
            try:
                held.params = held.strategy.Params.model_validate(agent.params)
                message, level = f"Trading with parameters version {agent.params_version}.", EventLevel.INFO
            except ValidationError:
                message = "The new parameters do not validate; keeping the previous ones."
                level = EventLevel.WARNING
            held.params_version = agent.params_version
            await journal.event(
                held.agent_id,
                at=self._clock.now(),
                kind=EventKind.LOG,
                level=level,
                message=message,
                data={"params_version": agent.params_version},
            )
        await journal.publish(self._bus)

    async def _load_credentials(self, held: HeldAgent) -> None:
        async with tenant_session(self._sessionmaker, held.broker_id) as db:
            row = await BrokerCredentialsRepository(db, held.broker_id).get()
        self._set_credentials(held, row)

    def _set_credentials(self, held: HeldAgent, row: BrokerCredentials | None) -> None:
        if row is None:
            held.credentials = None
            held.credentials_stamp = None
            held.token_expires_at = None
            return
        held.credentials_stamp = row.updated_at
        held.token_expires_at = row.token_expires_at
        try:
            held.credentials = open_credentials(self._cipher, row.credentials_enc, broker_id=held.broker_id)
        except CredentialsDecryptError:
            held.credentials = None

    def _token_live(self, held: HeldAgent, now: datetime) -> bool:
        return held.token_expires_at is not None and now < held.token_expires_at

    # -- the shared cycle -----------------------------------------------------------------------------
    async def _begin_cycle(self) -> CycleView | None:
        """What every agent of this cycle decides on: the broker's view of the orders of users with
        orders still open, and the market, fetched once for all of them."""
        now = self._clock.now()
        active: list[HeldAgent] = []
        settling: list[HeldAgent] = []
        for held in list(self._held.values()):
            if held.desired != "running":
                continue
            if not await self._check_connection(held, now):
                continue
            if held.trading_day != ist_day(now):
                self._roll_day(held, now)
            if market_open(now) and not held.done_for_day:
                active.append(held)
            elif held.open_intents():
                settling.append(held)
        by_user: dict[str, list[HeldAgent]] = {}
        for held in [*active, *settling]:
            if held.open_intents() or held.needs_adoption:
                by_user.setdefault(held.broker_id, []).append(held)
        unread = await self._refresh_orders(by_user, skip_unreachable=True)
        # An agent whose orders could not be read (after a take-over, or the broker failed that user's read)
        # waits for the next cycle rather than deciding on orders it cannot see.
        active = [h for h in active if not h.needs_adoption and h.broker_id not in unread]
        settling = [h for h in settling if not h.needs_adoption and h.broker_id not in unread]
        if settling:
            await self._each(settling, lambda held: self._settle(held, now))
        if not active:
            return None
        source = active[0].credentials
        assert source is not None
        instruments = await self._market.instruments(source, now=now)
        if instruments is not self._frozen_instruments:
            # The day's instrument list (tens of thousands of objects) lives until tomorrow: keep it out of
            # the collector's full passes, which otherwise stall every agent for ~100 ms each time.
            self._frozen_instruments = instruments
            gc.freeze()
        spot = self._last_prices.get(NIFTY_KEY)
        watches: dict[tuple[str, int], Watch] = {}
        keys: set[str] = set()
        candles_wanted: dict[str, int] = {}
        for held in active:
            state = self._state_of(held, now)
            watch = held.strategy.watch(held.params, state, now=now, instruments=instruments, spot=spot)
            watches[held.key] = watch
            keys |= watch.quotes
            for key, count in watch.minute_candles.items():
                candles_wanted[key] = max(count, candles_wanted.get(key, 0))
        self._last_prices = await self._market.last_prices(source, keys)
        candles = await self._market.minute_candles(source, candles_wanted, now=now) if candles_wanted else {}
        days_to = self._market.trading_days_to(now=now)
        return CycleView(
            now=now,
            instruments=instruments,
            quotes=self._last_prices,
            candles=candles,
            days_to=days_to,
            watches=watches,
            active=active,
        )

    async def _drive_slot(self, view: CycleView, slot: int) -> None:
        """The decisions of one slot of the cycle's agents. Agents are spread over the cycle's ticks by
        id, so that the orders of a burst (a new candle every agent waited for) queue behind a quarter
        of the others, not all of them; their answers are written once the slot's orders are out."""
        agents = [h for h in view.active if h.agent_id % self._slots == slot and h.key in self._held]
        if not agents:
            return

        async def drive(held: HeldAgent) -> None:
            snapshot = MarketSnapshot(
                now=view.now,
                quotes=view.quotes,
                instruments=view.instruments,
                orders=self._views(held),
                candles={
                    k: view.candles[k] for k in view.watches[held.key].minute_candles if k in view.candles
                },
                trading_days_to=view.days_to,
                entries_allowed=held.blocked_day != ist_day(view.now),
            )
            await self._decide(held, snapshot)

        await self._each(agents, drive)
        await self._each(
            [h for h in agents if h.outcomes or h.deferred], lambda h: self._flush(h, now=view.now)
        )

    async def _each(self, agents: Sequence[HeldAgent], action: Any) -> None:
        async def guarded(held: HeldAgent) -> None:
            async with self._gate:
                if held.key not in self._held:
                    return
                try:
                    await action(held)
                except LeaseLost:
                    await self._drop(held.key, "lease lost before sending")
                except Exception:
                    log.warning("agent %s: cycle failed", held.agent_id, exc_info=True)

        await asyncio.gather(*(guarded(h) for h in agents))

    def _state_of(self, held: HeldAgent, now: datetime) -> BaseModel:
        if held.strategy_state is None:
            held.strategy_state = held.strategy.initial_state(held.params, now=now)
            held.trading_day = ist_day(now)
        return held.strategy_state

    def _roll_day(self, held: HeldAgent, now: datetime) -> None:
        held.trading_day = ist_day(now)
        held.strategy_state = held.strategy.initial_state(held.params, now=now)
        held.persisted_state = None
        held.intents.clear()
        held.orders = []
        held.fills_seen.clear()
        held.rejections_seen.clear()
        held.realised_today = Decimal(0)
        held.done_for_day = False

    def _views(self, held: HeldAgent) -> dict[str, OrderView]:
        by_id = {o.order_id: o for o in held.orders}
        views: dict[str, OrderView] = {}
        for record in held.intents.values():
            if record.kind != "place":
                continue
            found = by_id.get(record.order_id or "")
            if found is not None:
                views[record.intent_id] = order_view(record.intent_id, found)
            elif record.status == "rejected":
                views[record.intent_id] = unsent_view(
                    record.intent_id, record.payload, status="REJECTED", message=record.message
                )
            else:
                views[record.intent_id] = unsent_view(
                    record.intent_id, record.payload, status="PENDING", message=None
                )
        return views

    async def _refresh_orders(
        self, by_user: Mapping[str, Sequence[HeldAgent]], *, skip_unreachable: bool = False
    ) -> set[str]:
        """One ``GET /orders`` per user, split among that user's agents by tag. With ``skip_unreachable``,
        a user whose orders the broker could not give (down, slow, garbled) is left out and named in the
        answer, so one user's failed read holds back only that user's agents; otherwise it raises."""
        unread: set[str] = set()

        async def one(broker_id: str, agents: Sequence[HeldAgent]) -> None:
            credentials = agents[0].credentials
            if credentials is None:
                return
            async with self._order_reads:
                try:
                    orders = await self._kite.orders(
                        api_key=credentials.api_key, access_token=credentials.access_token
                    )
                except BrokerTokenInvalid:
                    for held in agents:
                        await self._pause(held, REASON_TOKEN_EXPIRED, "The broker refused the access token.")
                    return
                except (BrokerUnavailable, BrokerTimeout) as exc:
                    if not skip_unreachable:
                        raise
                    log.warning(
                        "orders of %s unread this cycle (%s); their agents wait", broker_id, exc.detail
                    )
                    unread.add(broker_id)
                    return
            mine: dict[int, list[KiteOrder]] = {}
            for order in orders:
                parsed = parse_tag(order.tag)
                if parsed is not None:
                    mine.setdefault(parsed[0], []).append(order)
            for held in agents:
                held.orders = mine.get(held.agent_id, [])
                if held.needs_adoption:
                    await self._adopt(held)

        await asyncio.gather(*(one(b, a) for b, a in by_user.items()))
        return unread

    # -- one agent's decision -------------------------------------------------------------------------
    def _observe(self, held: HeldAgent) -> list[EventItem]:
        """Events for what the broker did since the last look: fills, and orders it rejected."""
        journal_items: list[EventItem] = []
        for fill in new_fills(held.orders, held.fills_seen):
            held.fills_seen[fill.order_id] = held.fills_seen.get(fill.order_id, 0) + fill.quantity
            journal_items.append(
                (
                    EventKind.FILL,
                    EventLevel.INFO,
                    f"{fill.transaction_type} {fill.quantity} {fill.tradingsymbol} filled at "
                    f"{fill.average_price:.2f}",
                    {
                        "order_id": fill.order_id,
                        "tradingsymbol": fill.tradingsymbol,
                        "transaction_type": fill.transaction_type,
                        "quantity": fill.quantity,
                        "average_price": fill.average_price,
                    },
                )
            )
        for order in held.orders:
            if (order.status or "").upper() == "REJECTED" and order.order_id not in held.rejections_seen:
                held.rejections_seen.add(order.order_id)
                journal_items.append(
                    (
                        EventKind.ORDER,
                        EventLevel.ERROR,
                        f"The broker rejected order {order.order_id}: "
                        f"{order.status_message or 'no reason given'}",
                        {"order_id": order.order_id, "tag": order.tag},
                    )
                )
        return journal_items

    async def _settle(self, held: HeldAgent, now: datetime) -> None:
        """A strategy done for the day whose last orders were still open: record how they ended."""
        extra = self._observe(held)
        held.realised_today = agent_pnl(held.orders, self._last_prices).realised
        state = self._state_of(held, now)
        await self._apply(held, Decision(state), now=now, extra=extra, force=True)

    async def _decide(self, held: HeldAgent, snapshot: MarketSnapshot) -> None:
        now = snapshot.now
        state = self._state_of(held, now)
        journal_items = self._observe(held)
        pnl = agent_pnl(held.orders, snapshot.quotes)
        held.realised_today = pnl.realised
        decision: Decision[Any]
        total = pnl.realised + pnl.unrealised
        limit_hit = held.loss_limit is not None and held.loss_limit > 0 and -total >= held.loss_limit
        if limit_hit and held.blocked_day != ist_day(now):
            held.blocked_day = ist_day(now)
            journal_items.append(
                (
                    EventKind.LOG,
                    EventLevel.WARNING,
                    f"Daily loss limit of {held.loss_limit} reached (P&L {total:.2f}): "
                    "squaring off; no new entries today.",
                    {"loss_limit": str(held.loss_limit), "pnl": str(total)},
                )
            )
            held.reason = REASON_LOSS_LIMIT
            decision = held.strategy.square_off(held.params, state, snapshot)
        else:
            decision = held.strategy.decide(held.params, state, snapshot)
        held.done_for_day = decision.done_for_day
        second = int(time.perf_counter())
        self.decisions_per_second[second] += 1
        if len(self.decisions_per_second) > 3600:
            del self.decisions_per_second[min(self.decisions_per_second)]
        if self.observer is not None:
            self.observer.decided()
        decided_at = time.perf_counter()
        await self._apply(held, decision, now=now, extra=journal_items)
        await self._send_pending(held, now=now, decided_at=decided_at, flush=False)

    async def _apply(
        self,
        held: HeldAgent,
        decision: Decision[Any],
        *,
        now: datetime,
        extra: Sequence[EventItem] = (),
        force: bool = False,
    ) -> None:
        """Record the decision. New intents (with their tags) are stored with the strategy state that
        expects them, alone in one short transaction, since the orders wait on it; the decision's notes
        and other events follow with the orders' outcomes. Without intents, the state is saved with the
        events, or at most every STATE_SAVE_EVERY_S when it only moved (a resumed agent recomputes it)."""
        new_intents = [i for i in decision.intents if i.intent_id not in held.intents]
        new_state = as_json(decision.state)
        events: list[EventItem] = [
            (EventKind.DECISION, EventLevel.INFO, note, {}) for note in decision.notes
        ] + list(extra)
        state_due = new_state != held.persisted_state and (
            time.monotonic() - held.state_saved_at >= STATE_SAVE_EVERY_S
        )
        if not (new_intents or events or force or state_due):
            held.strategy_state = decision.state
            return
        today = ist_day(now)
        records: list[IntentRecord] = []
        for intent in new_intents:
            seq = held.next_seq
            held.next_seq += 1
            records.append(self._record_of(held, intent, seq))
        reason = REASON_LOSS_LIMIT if held.reason == REASON_LOSS_LIMIT else None
        journal: Journal | None = None
        if records:
            await record_intents(
                self._sessionmaker,
                broker_id=held.broker_id,
                agent_id=held.agent_id,
                day=today,
                orders=[
                    {
                        "seq": r.seq,
                        "intent_id": r.intent_id,
                        "kind": r.kind,
                        "tag": r.tag,
                        "payload": r.payload,
                    }
                    for r in records
                ],
                state=new_state,
                next_seq=held.next_seq,
                realised=held.realised_today,
                reason=reason,
                at=now,
            )
            held.deferred.extend(events)
        else:
            async with tenant_session(self._sessionmaker, held.broker_id) as db:
                repo = AgentRepository(db, held.broker_id)
                await repo.save_progress(
                    held.agent_id,
                    day=today,
                    state=new_state,
                    next_seq=held.next_seq,
                    realised=held.realised_today,
                    reason=reason,
                    at=now,
                )
                journal = Journal(repo)
                await self._write_events(journal, held, events, now=now)
        # Only now: had the transaction failed, the strategy decides again from the state before.
        held.strategy_state = decision.state
        held.persisted_state = new_state
        held.state_saved_at = time.monotonic()
        for record in records:
            held.intents[record.intent_id] = record
        if journal is not None:
            await journal.publish(self._bus)

    @staticmethod
    async def _write_events(
        journal: Journal, held: HeldAgent, events: Sequence[EventItem], *, now: datetime
    ) -> None:
        for kind, level, message, data in events:
            await journal.event(held.agent_id, at=now, kind=kind, level=level, message=message, data=data)

    def _record_of(self, held: HeldAgent, intent: Intent, seq: int) -> IntentRecord:
        tag = order_tag(held.agent_id, seq)
        if isinstance(intent, PlaceOrder):
            payload: dict[str, Any] = {
                "tag": tag,
                "exchange": intent.exchange,
                "tradingsymbol": intent.tradingsymbol,
                "transaction_type": intent.transaction_type,
                "quantity": intent.quantity,
                "order_type": intent.order_type,
                "product": intent.product,
                "price": intent.price,
                "trigger_price": intent.trigger_price,
            }
            return IntentRecord(
                seq=seq, intent_id=intent.intent_id, kind="place", payload=payload, status="recorded"
            )
        if isinstance(intent, ModifyOrder):
            changes = {
                name: value
                for name, value in (
                    ("price", intent.price),
                    ("trigger_price", intent.trigger_price),
                    ("quantity", intent.quantity),
                    ("order_type", intent.order_type),
                )
                if value is not None
            }
            payload = {"tag": tag, "target": intent.target, "changes": changes}
            return IntentRecord(
                seq=seq, intent_id=intent.intent_id, kind="modify", payload=payload, status="recorded"
            )
        payload = {"tag": tag, "target": intent.target}
        return IntentRecord(
            seq=seq, intent_id=intent.intent_id, kind="cancel", payload=payload, status="recorded"
        )

    async def _send_pending(
        self, held: HeldAgent, *, now: datetime, decided_at: float | None = None, flush: bool = True
    ) -> None:
        """Send every recorded intent the broker has not received, in sequence order, checking the lease
        before each one. The answers are written by ``_flush``: at once, or (``flush=False``, a cycle's
        burst of decisions) after every agent of the cycle has sent its orders, so that no order waits
        on another agent's bookkeeping."""
        pending = sorted(
            (r for r in held.intents.values() if r.status in ("recorded", "unknown")), key=lambda r: r.seq
        )
        try:
            if not pending or held.credentials is None:
                return
            for record in pending:
                if record.status == "unknown":
                    if not await self._was_received(held, record):
                        continue
                    if record.status != "recorded":
                        continue
                if not await self._leases.holds(held.lease, self.runtime_id):
                    raise LeaseLost()
                held.outcomes.append(await self._send(held, record))
                ack_s: float | None = None
                if decided_at is not None and record.status == "sent":
                    acked_at = time.perf_counter()
                    ack_s = acked_at - decided_at
                    self.ack_latencies_s.append((acked_at, ack_s))
                if self.observer is not None:
                    self.observer.order_answered(record.status, ack_s)
        finally:
            if flush:
                await self._flush(held, now=now)

    async def _flush(self, held: HeldAgent, *, now: datetime) -> None:
        if held.outcomes or held.deferred:
            outcomes, held.outcomes = held.outcomes, []
            await self._record_outcomes(held, outcomes, now=now)

    async def _was_received(self, held: HeldAgent, record: IntentRecord) -> bool:
        """An unanswered send: adopt the broker's order when it has one with this tag; otherwise the send
        is tried again (``recorded``) until MAX_SEND_ATTEMPTS. True when something is left to do."""
        await self._refresh_orders({held.broker_id: [held]})
        for order in held.orders:
            if order.tag == record.tag:
                record.status = "sent"
                record.order_id = order.order_id
                return False
        if record.attempts < MAX_SEND_ATTEMPTS:
            record.status = "recorded"
            return True
        record.status = "rejected"
        record.message = "the broker never confirmed this order"
        return False

    async def _send(self, held: HeldAgent, record: IntentRecord) -> tuple[IntentRecord, EventLevel, str]:
        credentials = held.credentials
        assert credentials is not None
        auth = {"api_key": credentials.api_key, "access_token": credentials.access_token}
        record.attempts += 1
        payload = record.payload
        try:
            if record.kind == "place":
                form = {
                    "tradingsymbol": str(payload["tradingsymbol"]),
                    "exchange": str(payload["exchange"]),
                    "transaction_type": str(payload["transaction_type"]),
                    "order_type": str(payload["order_type"]),
                    "quantity": str(payload["quantity"]),
                    "product": str(payload["product"]),
                    "validity": "DAY",
                    "tag": record.tag,
                }
                if payload["order_type"] in ("LIMIT", "SL"):
                    form["price"] = _price(payload["price"])
                if payload["order_type"] in ("SL", "SL-M"):
                    form["trigger_price"] = _price(payload["trigger_price"])
                record.order_id = await self._kite.place_order(**auth, order=form)
                what = (
                    f"{payload['transaction_type']} {payload['quantity']} {payload['tradingsymbol']} "
                    f"{payload['order_type']}"
                    + (
                        f" trigger {_price(payload['trigger_price'])}"
                        if payload["order_type"] in ("SL", "SL-M")
                        else ""
                    )
                )
            else:
                target = held.intents.get(str(payload["target"]))
                if target is None or not target.order_id:
                    record.status = "rejected"
                    record.message = f"no order to {record.kind}: {payload['target']} was never placed"
                    return record, EventLevel.WARNING, record.message
                if record.kind == "modify":
                    changes = {
                        name: _price(value) if name in ("price", "trigger_price") else str(value)
                        for name, value in dict(payload["changes"]).items()
                    }
                    record.order_id = await self._kite.modify_order(
                        **auth, order_id=target.order_id, changes=changes
                    )
                    what = f"modify {target.intent_id} ({', '.join(f'{k} {v}' for k, v in changes.items())})"
                else:
                    record.order_id = await self._kite.cancel_order(**auth, order_id=target.order_id)
                    what = f"cancel {target.intent_id}"
        except BrokerInputRejected as exc:
            record.status = "rejected"
            record.message = exc.detail[:300]
            return record, EventLevel.ERROR, f"{record.intent_id} rejected: {exc.detail}"
        except BrokerTokenInvalid:
            record.status = "recorded"
            await self._pause(held, REASON_TOKEN_EXPIRED, "The broker refused the access token.")
            raise LeaseLost() from None
        except AppError as exc:
            # No answer: the broker may or may not have the order; its tag tells on the next look.
            record.status = "unknown"
            record.message = exc.detail[:300]
            return record, EventLevel.WARNING, f"{record.intent_id}: no answer from the broker ({exc.detail})"
        record.status = "sent"
        record.message = None
        return record, EventLevel.INFO, f"{record.intent_id}: {what} (order {record.order_id})"

    async def _record_outcomes(
        self, held: HeldAgent, outcomes: Sequence[tuple[IntentRecord, EventLevel, str]], *, now: datetime
    ) -> None:
        deferred, held.deferred = held.deferred, []
        async with tenant_session(self._sessionmaker, held.broker_id) as db:
            repo = AgentRepository(db, held.broker_id)
            journal = Journal(repo)
            await self._write_events(journal, held, deferred, now=now)
            rejected: str | None = None
            for record, level, message in outcomes:
                await repo.update_order(
                    agent_id=held.agent_id,
                    seq=record.seq,
                    status=record.status,
                    order_id=record.order_id,
                    message=record.message,
                    sent_at=now if record.status == "sent" else None,
                )
                await journal.event(
                    held.agent_id,
                    at=now,
                    kind=EventKind.ORDER,
                    level=level,
                    message=message,
                    data={
                        "intent_id": record.intent_id,
                        "tag": record.tag,
                        "order_id": record.order_id,
                        "status": record.status,
                    },
                )
                if record.status == "rejected":
                    rejected = f"order rejected: {record.message}"
            if rejected is not None:
                held.reason = rejected[:200]
                agent = await repo.get(held.agent_id)
                if agent is not None:
                    agent.reason = held.reason
                    agent.updated_at = now
                    journal.status(agent)
        await journal.publish(self._bus)

    # -- connection, pause and resume -----------------------------------------------------------------
    async def _check_connection(self, held: HeldAgent, now: datetime) -> bool:
        if held.credentials is None:
            reason = REASON_DISCONNECTED
            message = "The broker account is disconnected; sign in again to resume."
        elif not self._token_live(held, now):
            reason = REASON_TOKEN_EXPIRED
            message = "The broker's access token has expired; sign in again to resume."
        else:
            if held.state == AgentState.PAUSED.value:
                await self._set_state(
                    held,
                    AgentState.RUNNING,
                    None,
                    "Resumed: the broker account is connected again.",
                    AuditKind.AGENT_RESUMED,
                )
            return True
        if held.state != AgentState.PAUSED.value or held.reason != reason:
            await self._pause(held, reason, message)
        return False

    async def _pause(self, held: HeldAgent, reason: str, message: str) -> None:
        if held.state == AgentState.PAUSED.value and held.reason == reason:
            return
        await self._set_state(held, AgentState.PAUSED, reason, f"Paused: {message}", AuditKind.AGENT_PAUSED)

    async def _set_state(
        self, held: HeldAgent, state: AgentState, reason: str | None, message: str, audit_kind: AuditKind
    ) -> None:
        now = self._clock.now()
        async with tenant_session(self._sessionmaker, held.broker_id) as db:
            repo = AgentRepository(db, held.broker_id)
            agent = await repo.get(held.agent_id, for_update=True)
            if agent is None or agent.desired != "running":
                return
            agent.state = state.value
            agent.reason = reason
            agent.paused_at = now if state is AgentState.PAUSED else None
            agent.updated_at = now
            journal = Journal(repo)
            await journal.event(
                held.agent_id,
                at=now,
                kind=EventKind.STATE,
                level=EventLevel.WARNING if state is AgentState.PAUSED else EventLevel.INFO,
                message=message,
                data={"state": state.value, "reason": reason},
            )
            journal.status(agent)
            await audit.record(
                db,
                broker_id=held.broker_id,
                kind=audit_kind,
                at=now,
                detail={"agent_id": held.agent_id, "strategy": held.strategy_name, "reason": reason},
            )
        held.state = state.value
        held.reason = reason
        await journal.publish(self._bus)

    # -- stop -----------------------------------------------------------------------------------------
    async def _stop(self, held: HeldAgent) -> None:
        """Cancel the agent's open orders and close what it holds (as its own square-off does), then mark
        it stopped with what that took, and let it go."""
        now = self._clock.now()
        cancelled = closed = 0
        problem: str | None = None
        if held.credentials is not None and self._token_live(held, now) and market_open(now):
            await self._refresh_orders({held.broker_id: [held]})
            state = self._state_of(held, now)
            snapshot = MarketSnapshot(
                now=now,
                quotes=self._last_prices,
                instruments=(),
                orders=self._views(held),
                entries_allowed=False,
            )
            decision = held.strategy.square_off(held.params, state, snapshot)
            await self._apply(held, decision, now=now)
            await self._send_pending(held, now=now)
            for intent in decision.intents:
                record = held.intents.get(intent.intent_id)
                if record is None or record.status != "sent":
                    if record is not None and record.status == "rejected":
                        problem = record.message
                    continue
                if isinstance(intent, CancelOrder):
                    cancelled += 1
                elif isinstance(intent, PlaceOrder):
                    closed += 1
            await self._refresh_orders({held.broker_id: [held]})
        elif held.open_intents() or held.orders:
            problem = "the broker could not be reached to square off"
        pnl = agent_pnl(held.orders, self._last_prices)
        async with tenant_session(self._sessionmaker, held.broker_id) as db:
            repo = AgentRepository(db, held.broker_id)
            agent = await repo.get(held.agent_id, for_update=True)
            if agent is None:
                return
            agent.state = AgentState.STOPPED.value
            agent.stopped_at = now
            release_agent(agent, now=now)
            agent.updated_at = now
            agent.realised_pnl_today = (
                pnl.realised if held.trading_day == ist_day(now) else agent.realised_pnl_today
            )
            agent.stop_summary = {"orders_cancelled": cancelled, "positions_closed": closed}
            if problem:
                agent.reason = f"stopped; square-off incomplete: {problem}"[:200]
            journal = Journal(repo)
            await journal.event(
                held.agent_id,
                at=now,
                kind=EventKind.STATE,
                level=EventLevel.WARNING if problem else EventLevel.INFO,
                message=f"Stopped: {cancelled} orders cancelled, {closed} positions closed"
                + (f" ({problem})" if problem else "."),
                data={"state": "stopped", "orders_cancelled": cancelled, "positions_closed": closed},
            )
            journal.status(agent)
        await journal.publish(self._bus)
        await self._drop(held.key, "stopped")


def _price(value: object) -> str:
    return f"{float(str(value)):.2f}"
