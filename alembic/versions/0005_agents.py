"""agents, their recorded orders and events, strategy parameters and their history, under row-level security

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 12:30:00.000000
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
TENANT_CHECK = "broker_id = current_setting('app.broker_id', true)"
CRUD = "SELECT, INSERT, UPDATE, DELETE"
TABLE_GRANTS = {
    "agents": CRUD,
    "agent_orders": "SELECT, INSERT, UPDATE",
    # What an agent did stays as it was said: the app appends and reads, and prunes nothing.
    "agent_events": "SELECT, INSERT",
    "strategy_params": CRUD,
    "strategy_param_changes": "SELECT, INSERT",
}
LIVE = "state NOT IN ('stopped', 'failed')"

# A runtime reconciles every user's agents; the app role sees one broker's rows at a time, so the
# cross-tenant list comes from this function, which answers only what a runtime needs to decide what
# to claim (never parameters, strategy state or credentials). Touching heartbeats is scoped to the
# agents the calling runtime says it holds.
_FUNCTIONS = {
    "agents_to_run()": """
CREATE FUNCTION agents_to_run()
RETURNS TABLE (broker_id text, agent_id bigint, desired text, state text, params_version integer,
               runtime_id text, credentials_updated_at timestamptz, paused_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config('app.agent_maintenance', 'on', true);
    RETURN QUERY
    SELECT a.broker_id::text, a.id, a.desired::text, a.state::text, a.params_version, a.runtime_id::text,
           c.updated_at, a.paused_at
    FROM public.agents a LEFT JOIN public.broker_credentials c ON c.broker_id = a.broker_id
    WHERE a.state NOT IN ('stopped', 'failed');
    PERFORM set_config('app.agent_maintenance', '', true);
END
$$""",
    "touch_agents(text, text[], bigint[], timestamptz)": """
CREATE FUNCTION touch_agents(runtime text, brokers text[], ids bigint[], at timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    touched bigint;
BEGIN
    PERFORM set_config('app.agent_maintenance', 'on', true);
    UPDATE public.agents a SET heartbeat_at = at
    FROM unnest(brokers, ids) AS held(broker_id, id)
    WHERE a.broker_id = held.broker_id AND a.id = held.id AND a.runtime_id = runtime;
    GET DIAGNOSTICS touched = ROW_COUNT;
    PERFORM set_config('app.agent_maintenance', '', true);
    RETURN touched;
END
$$""",
}
MAINTENANCE_CHECK = "current_setting('app.agent_maintenance', true) = 'on'"


def _app_role() -> str | None:
    role = context.config.attributes.get("app_role") or os.environ.get("TRADEDESK_DB_APP_ROLE")
    if not role:
        return None
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", str(role)):
        raise ValueError(f"TRADEDESK_DB_APP_ROLE {role!r} is not a plain lower-case role name")
    exists = op.get_bind().execute(sa.text("select 1 from pg_roles where rolname = :r"), {"r": role}).first()
    if exists is None:
        raise RuntimeError(f"database role {role!r} does not exist; create it (LOGIN, no BYPASSRLS) first")
    return str(role)


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("broker_id", sa.String(length=32), nullable=False),
        sa.Column("id", _big_id(), sa.Identity(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("desired", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("params", _json(), nullable=False),
        sa.Column("params_version", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runtime_id", sa.String(length=100), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("strategy_state", _json(), nullable=True),
        sa.Column("trading_day", sa.Date(), nullable=True),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.Column("realised_pnl_today", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("stop_summary", _json(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("broker_id", "id", name=op.f("pk_agents")),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index(
            "uq_agents_broker_id_strategy_live",
            ["broker_id", "strategy"],
            unique=True,
            postgresql_where=sa.text(LIVE),
            sqlite_where=sa.text(LIVE),
        )
        batch_op.create_index("ix_agents_desired_state", ["desired", "state"], unique=False)

    op.create_table(
        "agent_orders",
        sa.Column("broker_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("intent_id", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("tag", sa.String(length=20), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("broker_id", "agent_id", "seq", name=op.f("pk_agent_orders")),
        sa.UniqueConstraint("broker_id", "agent_id", "day", "intent_id", name="uq_agent_orders_intent"),
    )
    with op.batch_alter_table("agent_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agent_orders_broker_id_agent_id_day", ["broker_id", "agent_id", "day"], unique=False
        )

    op.create_table(
        "agent_events",
        sa.Column("broker_id", sa.String(length=32), nullable=False),
        sa.Column("id", _big_id(), sa.Identity(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("broker_id", "id", name=op.f("pk_agent_events")),
    )
    with op.batch_alter_table("agent_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agent_events_broker_id_agent_id_id", ["broker_id", "agent_id", "id"], unique=False
        )

    op.create_table(
        "strategy_params",
        sa.Column("broker_id", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("broker_id", "strategy", name=op.f("pk_strategy_params")),
    )
    op.create_table(
        "strategy_param_changes",
        sa.Column("broker_id", sa.String(length=32), nullable=False),
        sa.Column("id", _big_id(), sa.Identity(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", _json(), nullable=False),
        sa.Column("session_handle", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("broker_id", "id", name=op.f("pk_strategy_param_changes")),
    )
    with op.batch_alter_table("strategy_param_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_strategy_param_changes_broker_id_strategy_id", ["broker_id", "strategy", "id"], unique=False
        )

    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLE_GRANTS:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_CHECK}) WITH CHECK ({TENANT_CHECK})"
        )
    # Only the functions' owner, inside them, sees across tenants.
    op.execute(f"CREATE POLICY maintenance ON agents TO CURRENT_USER USING ({MAINTENANCE_CHECK})")
    op.execute(f"CREATE POLICY maintenance ON broker_credentials TO CURRENT_USER USING ({MAINTENANCE_CHECK})")
    for signature, body in _FUNCTIONS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    role = _app_role()
    if role:
        for table, privileges in TABLE_GRANTS.items():
            op.execute(f"REVOKE ALL ON {table} FROM {role}")
            op.execute(f"GRANT {privileges} ON {table} TO {role}")
        for signature in _FUNCTIONS:
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for signature in _FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
        op.execute("DROP POLICY IF EXISTS maintenance ON broker_credentials")
    for table in ("strategy_param_changes", "strategy_params", "agent_events", "agent_orders", "agents"):
        op.drop_table(table)
