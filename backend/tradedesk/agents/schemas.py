"""The agents API's shapes: strategies, parameters and their history, agents, events, the kill switch."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class AgentState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


# States in which the user wants the agent to exist (a runtime should hold it).
LIVE_STATES = frozenset({AgentState.STARTING, AgentState.RUNNING, AgentState.PAUSED, AgentState.STOPPING})


class EventKind(StrEnum):
    STATE = "state"
    ORDER = "order"
    FILL = "fill"
    DECISION = "decision"
    LOG = "log"


class EventLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class EventRead(BaseModel):
    id: int
    agent_id: int
    at: datetime
    kind: EventKind
    level: EventLevel
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class EventsPage(BaseModel):
    items: list[EventRead]
    next: int | None = Field(description="Pass as `after` for the next (older) page; null at the end.")


class AgentRead(BaseModel):
    id: int
    strategy: str
    state: AgentState
    reason: str | None
    started_at: datetime
    stopped_at: datetime | None
    params: dict[str, Any]
    runtime: str | None = Field(description="The runtime that holds this agent now, or null.")
    heartbeat_at: datetime | None
    realised_pnl_today: Decimal = Field(description="Today's realised P&L of this agent's fills (INR).")


class AgentCreate(BaseModel):
    strategy: str = Field(min_length=1, max_length=32)
    params: dict[str, Any] | None = None


class StopAllResult(BaseModel):
    stopped: int
    orders_cancelled: int
    positions_closed: int


class StrategyRead(BaseModel):
    name: str
    title: str
    description: str
    params_schema: dict[str, Any]
    defaults: dict[str, Any]
    lot_size: int | None


class ParamChangeRead(BaseModel):
    id: int
    at: datetime
    changes: dict[str, list[Any]] = Field(description="field -> [old, new]")
    session_handle: str | None
