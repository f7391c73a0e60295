"""agents_to_run() also answers each user's daily loss limit and broker token expiry; record_intents()
stores a decision's orders and state in one statement

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 19:00:00.000000
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "agents_to_run()"
MAINTENANCE_CHECK = "current_setting('app.agent_maintenance', true) = 'on'"
# A runtime checks every agent's loss limit and token expiry each tick: read with the list it already
# reads, not with one query per agent. Still nothing secret: no parameters, state or credentials.
FUNCTION = """
CREATE FUNCTION agents_to_run()
RETURNS TABLE (broker_id text, agent_id bigint, desired text, state text, params_version integer,
               runtime_id text, credentials_updated_at timestamptz, paused_at timestamptz,
               token_expires_at timestamptz, daily_loss_limit numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config('app.agent_maintenance', 'on', true);
    RETURN QUERY
    SELECT a.broker_id::text, a.id, a.desired::text, a.state::text, a.params_version, a.runtime_id::text,
           c.updated_at, a.paused_at, c.token_expires_at, r.daily_loss_limit
    FROM public.agents a
    LEFT JOIN public.broker_credentials c ON c.broker_id = a.broker_id
    LEFT JOIN public.risk_settings r ON r.broker_id = a.broker_id
    WHERE a.state NOT IN ('stopped', 'failed');
    PERFORM set_config('app.agent_maintenance', '', true);
END
$$"""
# The path from an agent's decision to its orders: the intents and the state that expects them, stored
# in one round trip (one statement in its own transaction) instead of five. It runs as the caller, so
# row-level security checks every row against the broker it binds first, like any tenant transaction.
RECORD_INTENTS_SIGNATURE = (
    "record_intents(text, bigint, date, jsonb, jsonb, integer, numeric, text, timestamptz)"
)
RECORD_INTENTS = """
CREATE FUNCTION record_intents(broker text, agent bigint, on_day date, orders jsonb, new_state jsonb,
                               new_next_seq integer, realised numeric, new_reason text, at timestamptz)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM set_config('app.broker_id', broker, true);
    INSERT INTO agent_orders
        (broker_id, agent_id, seq, day, intent_id, kind, tag, payload, status, created_at)
    SELECT broker, agent, (o->>'seq')::integer, on_day, o->>'intent_id', o->>'kind', o->>'tag', o->'payload',
           'recorded', at
    FROM jsonb_array_elements(orders) AS o;
    UPDATE agents SET strategy_state = new_state, trading_day = on_day, next_seq = new_next_seq,
                      realised_pnl_today = realised, updated_at = at, reason = coalesce(new_reason, reason)
    WHERE broker_id = broker AND id = agent;
END
$$"""
PREVIOUS = """
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
$$"""


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


def _install(body: str) -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    op.execute(body)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    role = _app_role()
    if role:
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {role}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Only the function's owner, inside it, sees every user's limit.
    op.execute(f"CREATE POLICY maintenance ON risk_settings TO CURRENT_USER USING ({MAINTENANCE_CHECK})")
    _install(FUNCTION)
    op.execute(RECORD_INTENTS)
    op.execute(f"REVOKE ALL ON FUNCTION {RECORD_INTENTS_SIGNATURE} FROM PUBLIC")
    role = _app_role()
    if role:
        op.execute(f"GRANT EXECUTE ON FUNCTION {RECORD_INTENTS_SIGNATURE} TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {RECORD_INTENTS_SIGNATURE}")
    _install(PREVIOUS)
    op.execute("DROP POLICY IF EXISTS maintenance ON risk_settings")
