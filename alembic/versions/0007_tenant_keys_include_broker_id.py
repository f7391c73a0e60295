"""fills and trades: the primary key is (broker_id, id) on PostgreSQL, so that every tenant table's primary
and unique keys include broker_id and the tables can be distributed by it (Citus) without a schema change

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 21:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("fills", "trades")


def upgrade() -> None:
    # SQLite keeps ``id`` alone as the key: its rowid is what numbers the rows, and it is never distributed.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        key = "(broker_id, id)"
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, ADD CONSTRAINT pk_{table} PRIMARY KEY {key}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, ADD CONSTRAINT pk_{table} PRIMARY KEY (id)"
        )
