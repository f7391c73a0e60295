"""One broker's agents, their recorded orders and events, and strategy parameters with their history;
plus the one cross-tenant read a runtime needs (which agents should run), through a database function,
and the runtimes' heartbeats."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.agents.schemas import AgentState
from tradedesk.kit.repository import BrokerScopedRepository, tenant_session
from tradedesk.models import (
    Agent,
    AgentEventRow,
    AgentOrder,
    BrokerCredentials,
    RiskSettings,
    RuntimeHeartbeat,
    StrategyParamChange,
    StrategyParams,
)

TERMINAL_STATES = (AgentState.STOPPED.value, AgentState.FAILED.value)


def _sqlite_next_id(db: AsyncSession, model: Any, values: dict[str, Any]) -> None:
    """SQLite has no identity for a two-column key; its single writer makes max + 1 safe."""
    if db.get_bind().dialect.name != "postgresql":
        values["id"] = select(func.coalesce(func.max(model.id), 0) + 1).scalar_subquery()


class AgentRepository(BrokerScopedRepository[Agent]):
    model = Agent

    async def add(self, *, strategy: str, params: dict[str, Any], now: datetime) -> Agent:
        values: dict[str, Any] = {
            "broker_id": self.broker_id,
            "strategy": strategy,
            "desired": "running",
            "state": AgentState.STARTING.value,
            "params": params,
            "params_version": 1,
            "started_at": now,
            "next_seq": 1,
            "realised_pnl_today": 0,
            "updated_at": now,
        }
        _sqlite_next_id(self.db, Agent, values)
        new_id = await self.db.scalar(insert(Agent).values(**values).returning(Agent.id))
        agent = await self.get(int(new_id or 0))
        assert agent is not None
        return agent

    async def get(self, agent_id: int, *, for_update: bool = False) -> Agent | None:
        statement: Select[Any] = self.base_select().where(Agent.id == agent_id)
        if for_update and self.db.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        found: Agent | None = await self.db.scalar(statement.execution_options(populate_existing=True))
        return found

    async def newest_first(self) -> list[Agent]:
        rows = await self.db.scalars(self.base_select().order_by(Agent.id.desc()))
        return list(rows.all())

    async def live(self, *, strategy: str | None = None) -> list[Agent]:
        statement = self.base_select().where(Agent.state.not_in(TERMINAL_STATES))
        if strategy is not None:
            statement = statement.where(Agent.strategy == strategy)
        rows = await self.db.scalars(statement.order_by(Agent.id))
        return list(rows.all())

    async def save_progress(
        self,
        agent_id: int,
        *,
        day: date,
        state: dict[str, Any],
        next_seq: int,
        realised: Decimal,
        reason: str | None,
        at: datetime,
    ) -> None:
        """The strategy's state of ``day`` and what goes with it; ``reason`` replaces the agent's only
        when given."""
        values: dict[str, Any] = {
            "strategy_state": state,
            "trading_day": day,
            "next_seq": next_seq,
            "realised_pnl_today": realised,
            "updated_at": at,
        }
        if reason is not None:
            values["reason"] = reason
        await self.set_fields(agent_id, **values)

    async def set_fields(self, agent_id: int, **values: Any) -> None:
        await self.db.execute(
            update(Agent).where(Agent.broker_id == self.broker_id, Agent.id == agent_id).values(**values)
        )

    async def add_event(
        self, *, agent_id: int, at: datetime, kind: str, level: str, message: str, data: dict[str, Any]
    ) -> AgentEventRow:
        values: dict[str, Any] = {
            "broker_id": self.broker_id,
            "agent_id": agent_id,
            "at": at,
            "kind": kind,
            "level": level,
            "message": message,
            "data": data,
        }
        _sqlite_next_id(self.db, AgentEventRow, values)
        new_id = await self.db.scalar(insert(AgentEventRow).values(**values).returning(AgentEventRow.id))
        return AgentEventRow(id=int(new_id or 0), **{k: v for k, v in values.items() if k != "id"})

    async def events(self, *, agent_id: int, before_id: int | None, limit: int) -> list[AgentEventRow]:
        statement = select(AgentEventRow).where(
            AgentEventRow.broker_id == self.broker_id, AgentEventRow.agent_id == agent_id
        )
        if before_id is not None:
            statement = statement.where(AgentEventRow.id < before_id)
        rows = await self.db.scalars(statement.order_by(AgentEventRow.id.desc()).limit(limit))
        return list(rows.all())

    # -- recorded orders (the runtime's) ------------------------------------------------------------------
    async def orders_of_day(self, *, agent_id: int, day: date) -> list[AgentOrder]:
        rows = await self.db.scalars(
            select(AgentOrder)
            .where(AgentOrder.broker_id == self.broker_id, AgentOrder.agent_id == agent_id)
            .where(AgentOrder.day == day)
            .order_by(AgentOrder.seq)
        )
        return list(rows.all())

    async def record_order(self, **values: Any) -> None:
        # A Core insert: on the path from a decision to its order, the ORM's unit of work costs more
        # than the statement.
        await self.db.execute(insert(AgentOrder).values(broker_id=self.broker_id, **values))

    async def update_order(self, *, agent_id: int, seq: int, **values: Any) -> None:
        await self.db.execute(
            update(AgentOrder)
            .where(AgentOrder.broker_id == self.broker_id, AgentOrder.agent_id == agent_id)
            .where(AgentOrder.seq == seq)
            .values(**values)
        )


class StrategyParamsRepository(BrokerScopedRepository[StrategyParams]):
    model = StrategyParams

    async def current(self, strategy: str) -> dict[str, Any] | None:
        found = await self.db.scalar(self.base_select().where(StrategyParams.strategy == strategy))
        return dict(found.params) if found is not None else None

    async def save(
        self,
        *,
        strategy: str,
        params: dict[str, Any],
        changes: dict[str, list[Any]],
        at: datetime,
        session_handle: str | None,
    ) -> None:
        await self.upsert(
            {"strategy": strategy, "params": params, "updated_at": at}, key=("broker_id", "strategy")
        )
        values: dict[str, Any] = {
            "broker_id": self.broker_id,
            "strategy": strategy,
            "at": at,
            "changes": changes,
            "session_handle": session_handle,
        }
        _sqlite_next_id(self.db, StrategyParamChange, values)
        await self.db.execute(insert(StrategyParamChange).values(**values))

    async def history(self, *, strategy: str, before_id: int | None, limit: int) -> list[StrategyParamChange]:
        statement = select(StrategyParamChange).where(
            StrategyParamChange.broker_id == self.broker_id, StrategyParamChange.strategy == strategy
        )
        if before_id is not None:
            statement = statement.where(StrategyParamChange.id < before_id)
        rows = await self.db.scalars(statement.order_by(StrategyParamChange.id.desc()).limit(limit))
        return list(rows.all())


@dataclass(frozen=True, slots=True)
class RunnableAgent:
    """What a runtime needs to know of an agent to decide whether to claim or drop it."""

    broker_id: str
    agent_id: int
    desired: str
    state: str
    params_version: int
    runtime_id: str | None
    credentials_updated_at: datetime | None
    paused_at: datetime | None
    token_expires_at: datetime | None
    daily_loss_limit: Decimal | None


async def agents_to_run(db: AsyncSession) -> list[RunnableAgent]:
    """Every live agent of every user (PostgreSQL: through the SECURITY DEFINER function, since the
    app role itself sees one broker's rows at a time)."""
    if db.get_bind().dialect.name == "postgresql":
        result = await db.execute(text("select * from agents_to_run()"))
        return [RunnableAgent(*row) for row in result.all()]
    rows = await db.execute(
        select(
            Agent.broker_id,
            Agent.id,
            Agent.desired,
            Agent.state,
            Agent.params_version,
            Agent.runtime_id,
            BrokerCredentials.updated_at,
            Agent.paused_at,
            BrokerCredentials.token_expires_at,
            RiskSettings.daily_loss_limit,
        )
        .outerjoin(BrokerCredentials, BrokerCredentials.broker_id == Agent.broker_id)
        .outerjoin(RiskSettings, RiskSettings.broker_id == Agent.broker_id)
        .where(Agent.state.not_in(TERMINAL_STATES))
    )
    return [RunnableAgent(*tuple(row)) for row in rows.all()]


async def touch_runtime(db: AsyncSession, *, runtime_id: str, at: datetime) -> None:
    """This runtime is alive at ``at``: one row, whatever number of agents it drives."""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(RuntimeHeartbeat).values(runtime_id=runtime_id, heartbeat_at=at)
    await db.execute(
        statement.on_conflict_do_update(
            index_elements=["runtime_id"], set_={"heartbeat_at": statement.excluded.heartbeat_at}
        )
    )


async def forget_runtimes(db: AsyncSession, *, silent_since: datetime) -> int:
    """Drop the rows of runtimes silent since before ``silent_since`` (each process start may take a new
    name); an agent still naming one shows the moment it was taken over instead."""
    result = await db.execute(delete(RuntimeHeartbeat).where(RuntimeHeartbeat.heartbeat_at < silent_since))
    return int(getattr(result, "rowcount", 0) or 0)


async def runtime_heartbeats(db: AsyncSession, runtime_ids: Iterable[str | None]) -> dict[str, datetime]:
    """The last heartbeat of each of these runtimes that has written one."""
    wanted = sorted({runtime_id for runtime_id in runtime_ids if runtime_id})
    if not wanted:
        return {}
    rows = await db.execute(
        select(RuntimeHeartbeat.runtime_id, RuntimeHeartbeat.heartbeat_at).where(
            RuntimeHeartbeat.runtime_id.in_(wanted)
        )
    )
    return {runtime_id: at for runtime_id, at in rows.all()}


_RECORD_INTENTS = text(
    "select record_intents(:broker, :agent, :day, cast(:orders as jsonb), cast(:state as jsonb), :next_seq, "
    ":realised, :reason, :at)"
)


async def record_intents(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    broker_id: str,
    agent_id: int,
    day: date,
    orders: list[dict[str, Any]],
    state: dict[str, Any],
    next_seq: int,
    realised: Decimal,
    reason: str | None,
    at: datetime,
) -> None:
    """A decision's orders (``seq``, ``intent_id``, ``kind``, ``tag``, ``payload`` each) and the strategy
    state that expects them, stored together before any is sent. PostgreSQL: one round trip, through the
    database function that binds the broker first; SQLite: one tenant transaction."""
    async with sessionmaker() as db:
        if db.get_bind().dialect.name == "postgresql":
            conn = await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            await conn.execute(
                _RECORD_INTENTS,
                {
                    "broker": broker_id,
                    "agent": agent_id,
                    "day": day,
                    "orders": json.dumps(orders),
                    "state": json.dumps(state),
                    "next_seq": next_seq,
                    "realised": realised,
                    "reason": reason,
                    "at": at,
                },
            )
            return
    async with tenant_session(sessionmaker, broker_id) as db:
        repo = AgentRepository(db, broker_id)
        for order in orders:
            await repo.record_order(agent_id=agent_id, day=day, status="recorded", created_at=at, **order)
        await repo.save_progress(
            agent_id, day=day, state=state, next_seq=next_seq, realised=realised, reason=reason, at=at
        )
