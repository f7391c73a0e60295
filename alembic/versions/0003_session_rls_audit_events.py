"""session tables under row-level security, audit events, explicit grants

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 09:20:00.000000
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
TENANT_CHECK = "broker_id = current_setting('app.broker_id', true)"
SESSION_KEY_CHECK = "key_hash = current_setting('app.session_key', true)"
WEB_SESSION_CHECK = f"{SESSION_KEY_CHECK} OR {TENANT_CHECK}"
# Set only inside the maintenance functions below, and honoured only for the role that owns them.
MAINTENANCE_CHECK = "current_setting('app.session_maintenance', true) = 'on'"

CRUD = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_USE = "USAGE, SELECT"
# Every table the app role may touch, and how. Later migrations grant their own tables the same way.
TABLE_GRANTS = {
    "accounts": CRUD,
    "broker_credentials": CRUD,
    "fills": CRUD,
    "trades": CRUD,
    "risk_settings": CRUD,
    "web_sessions": CRUD,
    "pending_signins": CRUD,
    # Append-only for the app: an audit trail the app could rewrite would prove little.
    "audit_events": "SELECT, INSERT",
}
SEQUENCES = ("fills_id_seq", "trades_id_seq")

# Expired rows of every user are purged, and pending sign-ins counted, by these SECURITY DEFINER
# functions: the app role itself never sees more than one key's or one broker's rows.
_MAINTENANCE_FUNCTIONS = {
    "purge_expired_web_sessions(timestamptz)": """
CREATE FUNCTION purge_expired_web_sessions(cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    purged bigint;
BEGIN
    PERFORM set_config('app.session_maintenance', 'on', true);
    -- Never later than the database's own clock: a caller cannot end live sessions with a future cutoff.
    DELETE FROM public.web_sessions WHERE expires_at <= least(cutoff, statement_timestamp());
    GET DIAGNOSTICS purged = ROW_COUNT;
    PERFORM set_config('app.session_maintenance', '', true);
    RETURN purged;
END
$$""",
    "purge_expired_pending_signins(timestamptz)": """
CREATE FUNCTION purge_expired_pending_signins(cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    purged bigint;
BEGIN
    PERFORM set_config('app.session_maintenance', 'on', true);
    DELETE FROM public.pending_signins WHERE expires_at <= least(cutoff, statement_timestamp());
    GET DIAGNOSTICS purged = ROW_COUNT;
    PERFORM set_config('app.session_maintenance', '', true);
    RETURN purged;
END
$$""",
    "count_pending_signins(timestamptz)": """
CREATE FUNCTION count_pending_signins(cutoff timestamptz, OUT live bigint, OUT next_expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config('app.session_maintenance', 'on', true);
    SELECT count(*), min(expires_at) INTO live, next_expires_at
    FROM public.pending_signins WHERE expires_at > cutoff;
    PERFORM set_config('app.session_maintenance', '', true);
END
$$""",
}


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
    postgres = op.get_bind().dialect.name == "postgresql"
    role = _app_role() if postgres else None
    if role:
        # First, so that audit_events below is not handed to the app role by default.
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE {CRUD} ON TABLES FROM {role}")
        op.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE {SEQUENCE_USE} ON SEQUENCES FROM {role}"
        )

    op.create_table(
        "audit_events",
        sa.Column("broker_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("device_label", sa.String(length=100), nullable=True),
        sa.Column("session_handle", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("broker_id", "id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_broker_id_kind_id", ["broker_id", "kind", "id"], unique=False)

    if not postgres:
        return
    op.execute("ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit_events FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON audit_events USING ({TENANT_CHECK}) WITH CHECK ({TENANT_CHECK})"
    )
    for table, check in (("web_sessions", WEB_SESSION_CHECK), ("pending_signins", SESSION_KEY_CHECK)):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY session_access ON {table} USING ({check}) WITH CHECK ({check})")
        op.execute(f"CREATE POLICY maintenance ON {table} TO CURRENT_USER USING ({MAINTENANCE_CHECK})")
    for signature, body in _MAINTENANCE_FUNCTIONS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    if role:
        _grant(role)


def _grant(role: str) -> None:
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    for table, privileges in TABLE_GRANTS.items():
        op.execute(f"REVOKE ALL ON {table} FROM {role}")
        op.execute(f"GRANT {privileges} ON {table} TO {role}")
    for sequence in SEQUENCES:
        op.execute(f"GRANT {SEQUENCE_USE} ON SEQUENCE {sequence} TO {role}")
    for signature in _MAINTENANCE_FUNCTIONS:
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for signature in _MAINTENANCE_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
        for table in ("web_sessions", "pending_signins"):
            op.execute(f"DROP POLICY IF EXISTS maintenance ON {table}")
            op.execute(f"DROP POLICY IF EXISTS session_access ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_broker_id_kind_id")
    op.drop_table("audit_events")
    role = _app_role() if postgres else None
    if role:
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {CRUD} ON TABLES TO {role}")
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {SEQUENCE_USE} ON SEQUENCES TO {role}")
