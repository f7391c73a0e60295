"""agent_runtimes: one heartbeat row per agent runtime, written once a second, in place of touch_agents(),
which updated every agent a runtime held every second

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 02:30:00.000000
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOUCH_AGENTS = "touch_agents(text, text[], bigint[], timestamptz)"
# Frozen here on purpose (0005's body): a migration must not change when the code does.
TOUCH_AGENTS_BODY = """
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
$$"""


def _app_role() -> str | None:
    role = context.config.attributes.get("app_role") or os.environ.get("TRADEDESK_DB_APP_ROLE")
    if not role:
        return None
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", str(role)):
        raise ValueError(f"TRADEDESK_DB_APP_ROLE {role!r} is not a plain lower-case role name")
    return str(role)


def upgrade() -> None:
    op.create_table(
        "agent_runtimes",
        sa.Column("runtime_id", sa.String(length=100), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("runtime_id", name=op.f("pk_agent_runtimes")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {TOUCH_AGENTS}")
    role = _app_role()
    if role:
        # Runtime names and times only: every process of the deployment writes its own, reads any, and
        # clears out the rows of runtimes long gone.
        op.execute(f"REVOKE ALL ON agent_runtimes FROM {role}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON agent_runtimes TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(TOUCH_AGENTS_BODY)
        op.execute(f"REVOKE ALL ON FUNCTION {TOUCH_AGENTS} FROM PUBLIC")
        role = _app_role()
        if role:
            op.execute(f"GRANT EXECUTE ON FUNCTION {TOUCH_AGENTS} TO {role}")
    op.drop_table("agent_runtimes")
