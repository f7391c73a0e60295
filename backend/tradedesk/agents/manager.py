"""One user's agents and strategy parameters, as routers see them: ``AgentManager(broker_id)`` writes
desired state to PostgreSQL (start, stop, parameters) and reads it back; it never runs strategy code.
The registry holds what every manager of this process shares."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.agents.journal import Journal, LiveBus, agent_read
from tradedesk.agents.market import MarketData
from tradedesk.agents.repository import AgentRepository, StrategyParamsRepository, runtime_heartbeats
from tradedesk.agents.runtime import AnyStrategy
from tradedesk.agents.schemas import (
    AgentRead,
    AgentState,
    EventKind,
    EventLevel,
    EventRead,
    EventsPage,
    ParamChangeRead,
    StopAllResult,
    StrategyRead,
)
from tradedesk.agents.strategies.base import InstrumentInfo
from tradedesk.audit import service as audit
from tradedesk.audit.schemas import AuditKind
from tradedesk.audit.service import Actor
from tradedesk.auth.repository import BrokerCredentialsRepository
from tradedesk.brokers.credentials import open_credentials
from tradedesk.db import after_commit
from tradedesk.errors import AppError, Conflict, InvalidInput, NotFound
from tradedesk.kit.clock import Clock
from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError
from tradedesk.kit.repository import tenant_session
from tradedesk.models import Agent


class StrategyNotFound(NotFound):
    default_detail = "No strategy has that name."


class AgentNotFound(NotFound):
    default_detail = "No agent of yours has that id."


class AgentAlreadyRunning(Conflict):
    default_detail = "An agent of this strategy is already running; stop it first."


class BrokerNotConnected(Conflict):
    default_detail = "Your broker account is not connected; sign in with Kite again, then start the agent."


@dataclass(frozen=True, slots=True)
class AgentLimits:
    max_lots: int = 50
    # How long the kill switch waits for the runtimes to square off before answering.
    stop_all_wait_s: float = 1.8


def _field_errors(exc: ValidationError) -> list[dict[str, object]]:
    return [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors()]


class AgentRegistry:
    """Everything the managers of one API process share: broker_id -> a manager on the caller's
    transaction."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        bus: LiveBus,
        strategies: Mapping[str, AnyStrategy],
        limits: AgentLimits,
        market: MarketData,
        cipher: CredentialCipher,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.market = market
        self.cipher = cipher
        self.clock = clock
        self.bus = bus
        self.strategies = strategies
        self.limits = limits

    def for_broker(self, broker_id: str, db: AsyncSession) -> AgentManager:
        return AgentManager(broker_id, db, registry=self)


class AgentManager:
    def __init__(self, broker_id: str, db: AsyncSession, *, registry: AgentRegistry) -> None:
        self.broker_id = broker_id
        self._db = db
        self._registry = registry
        self._agents = AgentRepository(db, broker_id)
        self._params = StrategyParamsRepository(db, broker_id)

    # -- strategies and parameters --------------------------------------------------------------------
    def _strategy(self, name: str) -> AnyStrategy:
        strategy = self._registry.strategies.get(name)
        if strategy is None:
            raise StrategyNotFound(f"No strategy is named {name[:40]!r}.")
        return strategy

    async def strategies(self) -> list[StrategyRead]:
        instruments = await self._instruments()
        return [
            StrategyRead(
                name=name,
                title=strategy.title,
                description=strategy.description,
                params_schema=strategy.Params.model_json_schema(),
                defaults=strategy.Params().model_dump(mode="json"),
                lot_size=strategy.lot_size(instruments),
            )
            for name, strategy in self._registry.strategies.items()
        ]

    async def _instruments(self) -> Sequence[InstrumentInfo]:
        """The broker's instrument list of the day (shared by every user of this process: it is public),
        read with this user's credentials the first time; empty when the broker cannot be asked."""
        market, cipher = self._registry.market, self._registry.cipher
        now = self._registry.clock.now()
        row = await BrokerCredentialsRepository(self._db, self.broker_id).get()
        if row is None or row.token_expires_at <= now:
            return ()
        try:
            credentials = open_credentials(cipher, row.credentials_enc, broker_id=self.broker_id)
            return await market.instruments(credentials, now=now)
        except (AppError, CredentialsDecryptError):
            # Lot sizes are a convenience of the strategies list; it answers without them.
            return ()

    async def params(self, name: str) -> dict[str, Any]:
        strategy = self._strategy(name)
        stored = await self._params.current(name)
        return self._validated(strategy, stored or {}).model_dump(mode="json")

    def _validated(self, strategy: AnyStrategy, values: Mapping[str, Any]) -> BaseModel:
        """Values checked against the strategy's model and the lots maximum. A stored set may carry a field
        a later version retired: the model drops it (a request's unknown field is refused before)."""
        try:
            params = strategy.Params.model_validate(dict(values))
        except ValidationError as exc:
            raise InvalidInput(_field_errors(exc)) from None
        too_many: list[dict[str, object]] = [
            {
                "loc": ["body", lots_field],
                "msg": f"at most {self._registry.limits.max_lots} lots",
                "type": "less_than_equal",
            }
            for lots_field in strategy.lots_fields
            if int(getattr(params, lots_field)) > self._registry.limits.max_lots
        ]
        if too_many:
            raise InvalidInput(too_many)
        return params

    async def update_params(self, name: str, values: Mapping[str, Any], *, actor: Actor) -> dict[str, Any]:
        """Change the given fields (the others keep their values), validate the whole set, keep the change
        in the history, and hand it to the live agent (its runtime reloads on the version bump)."""
        strategy = self._strategy(name)
        current = self._validated(strategy, await self._params.current(name) or {}).model_dump(mode="json")
        unknown: list[dict[str, object]] = [
            {"loc": ["body", str(field)], "msg": "no such parameter", "type": "extra_forbidden"}
            for field in values
            if field not in strategy.Params.model_fields
        ]
        if unknown:
            raise InvalidInput(unknown)
        new = self._validated(strategy, {**current, **values}).model_dump(mode="json")
        changes = {key: [current.get(key), value] for key, value in new.items() if current.get(key) != value}
        if not changes:
            return new
        now = self._registry.clock.now()
        await self._params.save(
            strategy=name, params=new, changes=changes, at=now, session_handle=actor.session_handle
        )
        journal = Journal(self._agents)
        for agent in await self._agents.live(strategy=name):
            agent.params = new
            agent.params_version += 1
            agent.updated_at = now
            await journal.event(
                agent.id,
                at=now,
                kind=EventKind.LOG,
                message="Parameters changed: "
                + ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in changes.items()),
                data={"changes": changes},
            )
            journal.status(agent)
        await audit.record(
            self._db,
            broker_id=self.broker_id,
            kind=AuditKind.STRATEGY_PARAMS_CHANGED,
            at=now,
            actor=actor,
            detail={"strategy": name, "fields": ",".join(sorted(changes))[:200]},
        )
        self._after_commit(journal)
        return new

    async def history(self, name: str, *, before: int | None, limit: int) -> list[ParamChangeRead]:
        self._strategy(name)
        rows = await self._params.history(strategy=name, before_id=before, limit=limit)
        return [
            ParamChangeRead(id=r.id, at=r.at, changes=dict(r.changes), session_handle=r.session_handle)
            for r in rows
        ]

    # -- agents ---------------------------------------------------------------------------------------
    async def start(self, *, strategy_name: str, params: Mapping[str, Any] | None, actor: Actor) -> AgentRead:
        strategy = self._strategy(strategy_name)
        values = (
            await self.update_params(strategy_name, params, actor=actor)
            if params is not None
            else await self.params(strategy_name)
        )
        now = self._registry.clock.now()
        credentials = await BrokerCredentialsRepository(self._db, self.broker_id).get()
        if credentials is None:
            raise BrokerNotConnected()
        if credentials.token_expires_at <= now:
            raise BrokerNotConnected(
                "Your broker access token has expired (Kite ends them at 06:00 IST); sign in again first."
            )
        if await self._agents.live(strategy=strategy_name):
            raise AgentAlreadyRunning(f"Your {strategy.title} agent is already running; stop it first.")
        try:
            async with self._db.begin_nested():
                agent = await self._agents.add(strategy=strategy_name, params=values, now=now)
        except IntegrityError:
            # Another device started the same strategy between the check and the insert.
            raise AgentAlreadyRunning() from None
        journal = Journal(self._agents)
        await journal.event(agent.id, at=now, kind=EventKind.STATE, message=f"Started {strategy.title}.")
        journal.status(agent)
        await audit.record(
            self._db,
            broker_id=self.broker_id,
            kind=AuditKind.AGENT_STARTED,
            at=now,
            actor=actor,
            detail={"agent_id": agent.id, "strategy": strategy_name},
        )
        self._after_commit(journal)
        return agent_read(agent)

    async def _read(self, agents: Sequence[Agent]) -> list[AgentRead]:
        """As the API answers them: each with its runtime's last heartbeat."""
        beats = await runtime_heartbeats(self._db, (agent.runtime_id for agent in agents))
        return [
            agent_read(agent, runtime_heartbeat=beats.get(agent.runtime_id) if agent.runtime_id else None)
            for agent in agents
        ]

    async def list(self) -> list[AgentRead]:
        return await self._read(await self._agents.newest_first())

    async def _agent(self, agent_id: int, *, for_update: bool = False) -> Agent:
        agent = await self._agents.get(agent_id, for_update=for_update)
        if agent is None:
            raise AgentNotFound()
        return agent

    async def get(self, agent_id: int) -> AgentRead:
        (read,) = await self._read([await self._agent(agent_id)])
        return read

    async def stop(self, agent_id: int, *, actor: Actor) -> AgentRead:
        agent = await self._agent(agent_id, for_update=True)
        if agent.state in (AgentState.STOPPED.value, AgentState.FAILED.value):
            (read,) = await self._read([agent])
            return read
        journal = Journal(self._agents)
        await request_stop(agent, journal, now=self._registry.clock.now(), reason="stopped by user")
        await audit.record(
            self._db,
            broker_id=self.broker_id,
            kind=AuditKind.AGENT_STOPPED,
            at=self._registry.clock.now(),
            actor=actor,
            detail={"agent_id": agent.id, "strategy": agent.strategy},
        )
        self._after_commit(journal)
        (read,) = await self._read([agent])
        return read

    async def events(self, agent_id: int, *, before: int | None, limit: int) -> EventsPage:
        await self._agent(agent_id)
        rows = await self._agents.events(agent_id=agent_id, before_id=before, limit=limit + 1)
        items = [
            EventRead(
                id=r.id,
                agent_id=r.agent_id,
                at=r.at,
                kind=EventKind(r.kind),
                level=EventLevel(r.level),
                message=r.message,
                data=dict(r.data),
            )
            for r in rows[:limit]
        ]
        return EventsPage(items=items, next=items[-1].id if len(rows) > limit else None)

    def _after_commit(self, journal: Journal) -> None:
        after_commit(self._db, lambda: journal.publish(self._registry.bus))


async def request_stop(agent: Agent, journal: Journal, *, now: datetime, reason: str) -> None:
    """Tell the runtimes this agent must stop; one that never ran stops here and now."""
    agent.desired = "stopped"
    agent.reason = reason
    agent.updated_at = now
    if agent.runtime_id is None and agent.state == AgentState.STARTING.value:
        # No runtime ever took it: nothing was sent, so there is nothing to square off.
        agent.state = AgentState.STOPPED.value
        agent.stopped_at = now
        agent.stop_summary = {"orders_cancelled": 0, "positions_closed": 0}
        message = "Stopped before any runtime took it."
    else:
        agent.state = AgentState.STOPPING.value
        message = "Stopping: cancelling open orders and squaring off."
    await journal.event(agent.id, at=now, kind=EventKind.STATE, message=message, data={"reason": reason})
    journal.status(agent)


async def stop_all(registry: AgentRegistry, broker_id: str, *, actor: Actor) -> StopAllResult:
    """The kill switch: every live agent of the user is told to stop (committed at once, so every runtime
    sees it on its next tick), then the answer waits, bounded, for the runtimes to report what they
    cancelled and closed."""
    now = registry.clock.now()
    async with tenant_session(registry.sessionmaker, broker_id) as db:
        agents = AgentRepository(db, broker_id)
        live = await agents.live()
        journal = Journal(agents)
        for live_agent in live:
            await request_stop(live_agent, journal, now=now, reason="kill switch")
        await audit.record(
            db,
            broker_id=broker_id,
            kind=AuditKind.AGENTS_KILL_SWITCH,
            at=now,
            actor=actor,
            detail={"agents": len(live)},
        )
    await journal.publish(registry.bus)
    ids = [a.id for a in live]
    deadline = asyncio.get_running_loop().time() + registry.limits.stop_all_wait_s
    summaries: dict[int, Mapping[str, Any]] = {}
    while True:
        async with tenant_session(registry.sessionmaker, broker_id) as db:
            repo = AgentRepository(db, broker_id)
            for agent_id in ids:
                if agent_id in summaries:
                    continue
                found = await repo.get(agent_id)
                if found is None or found.state in (AgentState.STOPPED.value, AgentState.FAILED.value):
                    summaries[agent_id] = dict(found.stop_summary or {}) if found is not None else {}
        if len(summaries) == len(ids) or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.05)
    return StopAllResult(
        stopped=len(ids),
        orders_cancelled=sum(int(s.get("orders_cancelled", 0)) for s in summaries.values()),
        positions_closed=sum(int(s.get("positions_closed", 0)) for s in summaries.values()),
    )
