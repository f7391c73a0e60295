"""What an agent did, said once: each event is a row of ``agent_events`` written in the transaction of
the change it describes, and, once that transaction has committed, a message on the user's live bus
(with the agent's new status when it changed). Nothing is published for a change that rolled back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from tradedesk.agents.repository import AgentRepository
from tradedesk.agents.schemas import AgentRead, AgentState, EventKind, EventLevel, EventRead
from tradedesk.models import Agent

log = logging.getLogger("tradedesk.agents")

MESSAGE_MAX_CHARS = 500


class LiveBus(Protocol):
    async def publish(self, broker_id: str, *, kind: str, data: dict[str, Any]) -> str: ...


def agent_read(agent: Agent, *, runtime_heartbeat: datetime | None = None) -> AgentRead:
    """``runtime_heartbeat``: the last heartbeat of the runtime that holds the agent (``agent.runtime_id``);
    the agent's own stamp is when that runtime took it over, or, once it ended, when it was last driven."""
    heartbeat_at = agent.heartbeat_at
    if runtime_heartbeat is not None and agent.runtime_id is not None:
        heartbeat_at = max(heartbeat_at, runtime_heartbeat) if heartbeat_at else runtime_heartbeat
    return AgentRead(
        id=agent.id,
        strategy=agent.strategy,
        state=AgentState(agent.state),
        reason=agent.reason,
        started_at=agent.started_at,
        stopped_at=agent.stopped_at,
        params=dict(agent.params),
        runtime=agent.runtime_id,
        heartbeat_at=heartbeat_at,
        realised_pnl_today=agent.realised_pnl_today,
    )


@dataclass(slots=True)
class Journal:
    """Events of one broker's transaction, published by ``publish`` after the commit."""

    repo: AgentRepository
    _pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def on(cls, db: AsyncSession, broker_id: str) -> Journal:
        return cls(AgentRepository(db, broker_id))

    async def event(
        self,
        agent_id: int,
        *,
        at: datetime,
        kind: EventKind,
        message: str,
        level: EventLevel = EventLevel.INFO,
        data: dict[str, Any] | None = None,
    ) -> EventRead:
        row = await self.repo.add_event(
            agent_id=agent_id,
            at=at,
            kind=kind.value,
            level=level.value,
            message=message[:MESSAGE_MAX_CHARS],
            data=data or {},
        )
        read = EventRead(
            id=row.id,
            agent_id=agent_id,
            at=at,
            kind=kind,
            level=level,
            message=row.message,
            data=dict(row.data),
        )
        self._pending.append(("event", read.model_dump(mode="json")))
        return read

    def status(self, agent: Agent) -> None:
        """The agent's status as it will be once this transaction commits."""
        self._pending.append(("agent", agent_read(agent).model_dump(mode="json")))

    async def publish(self, bus: LiveBus) -> None:
        pending, self._pending = self._pending, []
        for kind, data in pending:
            try:
                await bus.publish(self.repo.broker_id, kind=kind, data=data)
            except Exception:
                # The row is stored and pages through /agents/{id}/events; a live stream that misses it
                # is told of the gap when it resumes.
                log.warning("live event not published (%s)", kind, exc_info=True)
