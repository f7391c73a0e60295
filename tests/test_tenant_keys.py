"""Ready to be distributed by tenant (Citus, by broker_id) without a schema change: on PostgreSQL every
table under row-level security keyed by broker_id has broker_id in its primary key and in every unique key,
so each key's uniqueness can be enforced on the one node that holds that tenant's rows. The two session
tables are the exception by design: they are found by the session key hash before anyone knows the
broker_id (a cookie arrives, not a user), so they would be distributed by that hash instead."""

from __future__ import annotations

import asyncpg

BY_SESSION_KEY = {"web_sessions": ["key_hash"], "pending_signins": ["key_hash"]}

KEYS = """
select c.relname as table_name, i.relname as key_name,
       array(select a.attname from unnest(x.indkey) with ordinality k(attnum, n)
             join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum order by k.n) as columns
from pg_class c
join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
join pg_index x on x.indrelid = c.oid and x.indisunique
join pg_class i on i.oid = x.indexrelid
where c.relrowsecurity
order by 1, 2
"""


async def keys(database_url: str) -> dict[str, dict[str, list[str]]]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(KEYS)
        secured = await conn.fetch(
            "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and c.relrowsecurity"
        )
    finally:
        await conn.close()
    found: dict[str, dict[str, list[str]]] = {row["relname"]: {} for row in secured}
    for row in rows:
        found[row["table_name"]][row["key_name"]] = list(row["columns"])
    return found


async def test_every_tenant_tables_keys_include_broker_id(pg_database: str) -> None:
    tables = await keys(pg_database)
    assert {"fills", "trades", "agents", "agent_orders", "audit_events"} <= set(tables), "tables went missing"
    missing = {
        f"{table}.{name}{columns}"
        for table, named in tables.items()
        if table not in BY_SESSION_KEY
        for name, columns in named.items()
        if "broker_id" not in columns
    }
    assert not missing, f"keys without broker_id (the table could not be distributed by it): {missing}"
    for table, named in tables.items():
        if table not in BY_SESSION_KEY:
            assert any(name.startswith("pk_") for name in named), f"{table} has no primary key"


async def test_the_session_tables_are_keyed_by_the_session_key_alone(pg_database: str) -> None:
    tables = await keys(pg_database)
    for table, key in BY_SESSION_KEY.items():
        assert list(tables[table].values()) == [key], f"{table}: {tables[table]}"
