"""Every ORM model, on one Base whose MetaData names constraints predictably (alembic relies on it)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both dialects: SQLite stores no zone and hands back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(18, 4)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """One row per broker account that has ever signed in."""

    __tablename__ = "accounts"

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_sign_in_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BrokerCredentials(Base):
    """The account's current broker credentials, encrypted; agents use them while no browser is open."""

    __tablename__ = "broker_credentials"

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    credentials_enc: Mapped[str] = mapped_column(Text)
    token_expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebSession(Base):
    """Browser sessions for the embedded (no Redis) setup; keyed by sha256 of the session id. On PostgreSQL
    a row is visible only by its key hash (``app.session_key``) or its broker_id (``app.broker_id``)."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_broker_id_expires_at", "broker_id", "expires_at"),)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    broker_id: Mapped[str] = mapped_column(String(32))
    record: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class PendingSignIn(Base):
    """A redirect sign-in between /login and /callback (embedded setup); keyed by sha256 of state. On
    PostgreSQL a row is visible only by its key hash (``app.session_key``)."""

    __tablename__ = "pending_signins"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


# Tenant tables: every row belongs to one broker_id; PostgreSQL enforces it with row-level security.
TENANT_TABLES = (
    "accounts",
    "broker_credentials",
    "fills",
    "trades",
    "risk_settings",
    "audit_events",
    "agents",
    "agent_orders",
    "agent_events",
    "strategy_params",
    "strategy_param_changes",
)
# Session tables: rows are reached by key hash (or, for web_sessions, broker_id), never all at once.
SESSION_TABLES = ("web_sessions", "pending_signins")


class Fill(Base):
    """One execution pulled from the broker (``GET /trades``); re-syncing never duplicates one."""

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("broker_id", "trade_id", name="uq_fills_broker_id_trade_id"),
        Index(
            "ix_fills_broker_id_instrument", "broker_id", "exchange", "tradingsymbol", "product", "filled_at"
        ),
    )

    # On PostgreSQL the primary key is (broker_id, id) (migration 0007: distributable by broker_id);
    # ``id`` alone is unique either way, and SQLite's rowid numbers it.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    broker_id: Mapped[str] = mapped_column(String(32))
    trade_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[str] = mapped_column(String(8))
    tradingsymbol: Mapped[str] = mapped_column(String(64))
    instrument_token: Mapped[int] = mapped_column(BigInteger)
    product: Mapped[str] = mapped_column(String(8))
    transaction_type: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    filled_at: Mapped[datetime] = mapped_column(UtcDateTime())
    day: Mapped[date] = mapped_column(Date)  # IST trading day of filled_at
    order_type: Mapped[str | None] = mapped_column(String(8))
    tag: Mapped[str | None] = mapped_column(String(32))
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Trade(Base):
    """A round trip built FIFO from fills: an open lot (status ``open``) or a closed piece of one."""

    __tablename__ = "trades"
    __table_args__ = (
        Index("ix_trades_broker_id_id", "broker_id", "id"),
        Index(
            "ix_trades_broker_id_day_closed",
            "broker_id",
            "day",
            "exit_at",
            "id",
            postgresql_include=["realised_pnl"],
            postgresql_where="status = 'closed'",
            sqlite_where="status = 'closed'",
        ),
        Index("ix_trades_broker_id_symbol", "broker_id", "tradingsymbol", "id"),
        Index(
            "ix_trades_broker_id_instrument_status",
            "broker_id",
            "exchange",
            "tradingsymbol",
            "product",
            "status",
        ),
    )

    # Primary key (broker_id, id) on PostgreSQL, as for fills.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    broker_id: Mapped[str] = mapped_column(String(32))
    exchange: Mapped[str] = mapped_column(String(8))
    tradingsymbol: Mapped[str] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(5))  # LONG | SHORT
    status: Mapped[str] = mapped_column(String(6))  # open | closed
    quantity: Mapped[int] = mapped_column(Integer)
    entry_price: Mapped[Decimal] = mapped_column(Money)
    entry_at: Mapped[datetime] = mapped_column(UtcDateTime())
    entry_trade_id: Mapped[str] = mapped_column(String(64))
    exit_price: Mapped[Decimal | None] = mapped_column(Money)
    exit_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    exit_trade_id: Mapped[str | None] = mapped_column(String(64))
    realised_pnl: Mapped[Decimal | None] = mapped_column(Money)
    exit_reason: Mapped[str | None] = mapped_column(String(32))
    strategy: Mapped[str | None] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)  # IST day of the exit (closed) or the entry (open)


class RiskSettings(Base):
    """The user's daily loss limit; when today's realised loss reaches it, agents stop opening positions."""

    __tablename__ = "risk_settings"

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    daily_loss_limit: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditEvent(Base):
    """One security event of an account (sign-in, sign-out, revocation, risk change...), append-only.
    The primary key (broker_id, id) also serves each user's page, newest first."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_broker_id_kind_id", "broker_id", "kind", "id"),)

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # PostgreSQL numbers rows with an identity; SQLite (one writer) takes the user's next number.
    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(45))
    device_id: Mapped[str | None] = mapped_column(String(64))
    device_label: Mapped[str | None] = mapped_column(String(100))
    session_handle: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))


class Agent(Base):
    """One run of a strategy for one user: what the user wants (``desired``), what the runtime last saw
    (``state``, ``reason``), the parameters in force, which runtime holds it, and the strategy's own
    state between cycles. At most one live agent per user and strategy (a partial unique index)."""

    __tablename__ = "agents"
    __table_args__ = (
        Index(
            "uq_agents_broker_id_strategy_live",
            "broker_id",
            "strategy",
            unique=True,
            postgresql_where="state NOT IN ('stopped', 'failed')",
            sqlite_where="state NOT IN ('stopped', 'failed')",
        ),
        Index("ix_agents_desired_state", "desired", "state"),
    )

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(32))
    desired: Mapped[str] = mapped_column(String(8))  # running | stopped
    state: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    # Bumped on every parameter change, so a runtime notices without reading params every cycle.
    params_version: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    runtime_id: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    strategy_state: Mapped[dict[str, Any] | None] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    trading_day: Mapped[date | None] = mapped_column(Date)  # the IST day strategy_state belongs to
    next_seq: Mapped[int] = mapped_column(Integer, default=1)  # the next order tag's sequence number
    realised_pnl_today: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    stop_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RuntimeHeartbeat(Base):
    """When each agent runtime last said it was alive: one row per runtime, written once a second, rather
    than a write to every agent it drives. An agent's heartbeat is its runtime's (``agent_read``). Names
    runtimes only, no user's data: not under row-level security."""

    __tablename__ = "agent_runtimes"

    runtime_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AgentOrder(Base):
    """An intent an agent decided to send, recorded before it is sent: its tag (agent id and sequence
    number) lets a resumed runtime find the broker order it became instead of sending it twice."""

    __tablename__ = "agent_orders"
    __table_args__ = (
        UniqueConstraint("broker_id", "agent_id", "day", "intent_id", name="uq_agent_orders_intent"),
        Index("ix_agent_orders_broker_id_agent_id_day", "broker_id", "agent_id", "day"),
    )

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    intent_id: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))  # place | modify | cancel
    tag: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    status: Mapped[str] = mapped_column(String(10))  # recorded | sent | rejected
    order_id: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AgentEventRow(Base):
    """What an agent did and saw (state changes, orders, fills, decisions, log lines), paged per agent."""

    __tablename__ = "agent_events"
    __table_args__ = (Index("ix_agent_events_broker_id_agent_id_id", "broker_id", "agent_id", "id"),)

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    agent_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(10))
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))


class StrategyParams(Base):
    """A user's current parameters of one strategy (defaults until the first change)."""

    __tablename__ = "strategy_params"

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(32), primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StrategyParamChange(Base):
    """One change of a user's parameters: which fields went from what to what, from which session."""

    __tablename__ = "strategy_param_changes"
    __table_args__ = (
        Index("ix_strategy_param_changes_broker_id_strategy_id", "broker_id", "strategy", "id"),
    )

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    changes: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    session_handle: Mapped[str | None] = mapped_column(String(32))
