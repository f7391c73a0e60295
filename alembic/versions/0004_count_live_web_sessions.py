"""a count of live web sessions for the metrics, through the session tables' row-level security

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:15:00.000000
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "count_live_web_sessions(timestamptz)"
# Like 0003's maintenance functions: runs as their owner, whose maintenance policy it switches on for
# its own statement only; it returns one number and no row.
FUNCTION = """
CREATE FUNCTION count_live_web_sessions(cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    live bigint;
BEGIN
    PERFORM set_config('app.session_maintenance', 'on', true);
    SELECT count(*) INTO live FROM public.web_sessions WHERE expires_at > cutoff;
    PERFORM set_config('app.session_maintenance', '', true);
    RETURN live;
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


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    role = _app_role()
    if role:
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
