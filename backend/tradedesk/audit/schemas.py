"""What an audit event is, and how a page of them reads."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class AuditKind(StrEnum):
    SIGN_IN = "sign_in"
    LOGOUT = "logout"
    SESSION_REVOKED = "session_revoked"
    OTHER_SESSIONS_REVOKED = "other_sessions_revoked"
    DISCONNECT = "disconnect"
    RISK_LIMIT_CHANGED = "risk_limit_changed"
    BROKER_TOKEN_EXPIRED = "broker_token_expired"  # noqa: S105 - an event name, not a secret
    AGENT_STARTED = "agent_started"
    AGENT_STOPPED = "agent_stopped"
    AGENT_PAUSED = "agent_paused"
    AGENT_RESUMED = "agent_resumed"
    AGENTS_KILL_SWITCH = "agents_kill_switch"
    STRATEGY_PARAMS_CHANGED = "strategy_params_changed"


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


DetailValue = str | int | bool | None


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    kind: AuditKind
    outcome: AuditOutcome
    ip: str | None
    device_id: str | None
    device_label: str | None
    session_handle: str | None
    detail: dict[str, DetailValue]


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    next_cursor: str | None
