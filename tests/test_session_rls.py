"""Session tables under row-level security: the app role reaches a session row only by its key hash or its
broker_id, never all rows; expired rows of every user are purged, and pending sign-ins counted, through
functions the migration role owns. Grants are explicit: a new table is not the app role's by default."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from tests.conftest import APP_ROLE, as_app_role, drop_database, migrate, pg_admin
from tests.support.records import make_record
from tradedesk.auth.pending import SqlPendingSignIns
from tradedesk.db import create_sessionmaker
from tradedesk.models import SESSION_TABLES
from tradedesk.sessions.record import SessionRecord, SessionRecordCodec, key_hash
from tradedesk.sessions.sql_store import SqlSessionStore

CODEC = SessionRecordCodec(["session-rls-secret-0123456789abcdefghij"])
OWNER_ROLE = "tradedesk_test_owner"


def hashed() -> str:
    return key_hash(secrets.token_urlsafe(32))


class Seed:
    """Rows written as the migration role: two sessions of AB1234 (one expired), an expired one of
    CD5678, two live pending sign-ins and an expired one."""

    def __init__(self) -> None:
        self.a_live, self.a_expired, self.b_expired = hashed(), hashed(), hashed()
        self.pending_live = [hashed(), hashed()]
        self.pending_expired = hashed()


@pytest.fixture
async def seed(clean_database: str) -> AsyncIterator[Seed]:
    rows = Seed()
    engine = create_async_engine(clean_database)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "insert into web_sessions (key_hash, broker_id, record, expires_at) values "
                "(:a1, 'AB1234', 'r', now() + interval '1 day'), (:a2, 'AB1234', 'r', now() - interval '1 hour'), "
                "(:b1, 'CD5678', 'r', now() - interval '1 hour')"
            ),
            {"a1": rows.a_live, "a2": rows.a_expired, "b1": rows.b_expired},
        )
        await conn.execute(
            text(
                "insert into pending_signins (key_hash, payload, expires_at) values "
                "(:p1, 'p', now() + interval '5 minutes'), (:p2, 'p', now() + interval '9 minutes'), "
                "(:p3, 'p', now() - interval '1 minute')"
            ),
            {"p1": rows.pending_live[0], "p2": rows.pending_live[1], "p3": rows.pending_expired},
        )
    await engine.dispose()
    yield rows


async def bind(
    conn: AsyncConnection, *, session_key: str | None = None, broker_id: str | None = None
) -> None:
    if session_key is not None:
        await conn.execute(text("select set_config('app.session_key', :k, true)"), {"k": session_key})
    if broker_id is not None:
        await conn.execute(text("select set_config('app.broker_id', :b, true)"), {"b": broker_id})


async def visible(url: str, table: str, **binding: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await bind(conn, **binding)
            return sorted((await conn.execute(text(f"select key_hash from {table}"))).scalars())
    finally:
        await engine.dispose()


class TestVisibility:
    async def test_both_tables_force_row_level_security(self, clean_database: str) -> None:
        engine = create_async_engine(clean_database)
        try:
            async with engine.connect() as conn:
                flags = (
                    await conn.execute(
                        text(
                            "select relname, relrowsecurity, relforcerowsecurity from pg_class "
                            "where relname = any(cast(:t as text[]))"
                        ),
                        {"t": list(SESSION_TABLES)},
                    )
                ).all()
        finally:
            await engine.dispose()
        assert sorted(flags) == sorted((t, True, True) for t in SESSION_TABLES)

    async def test_nothing_is_visible_without_a_binding(self, clean_database: str, seed: Seed) -> None:
        app = as_app_role(clean_database)
        assert await visible(app, "web_sessions") == []
        assert await visible(app, "pending_signins") == []
        # The rows are there: the migration role sees them.
        assert len(await visible(clean_database, "web_sessions")) == 3
        assert len(await visible(clean_database, "pending_signins")) == 3

    async def test_a_key_hash_shows_exactly_its_row(self, clean_database: str, seed: Seed) -> None:
        app = as_app_role(clean_database)
        assert await visible(app, "web_sessions", session_key=seed.a_live) == [seed.a_live]
        assert await visible(app, "web_sessions", session_key=seed.b_expired) == [seed.b_expired]
        assert await visible(app, "pending_signins", session_key=seed.pending_live[1]) == [
            seed.pending_live[1]
        ]
        assert await visible(app, "web_sessions", session_key="") == []

    async def test_a_broker_id_shows_only_that_users_sessions(self, clean_database: str, seed: Seed) -> None:
        app = as_app_role(clean_database)
        assert await visible(app, "web_sessions", broker_id="AB1234") == sorted([seed.a_live, seed.a_expired])
        assert await visible(app, "web_sessions", broker_id="CD5678") == [seed.b_expired]
        # Pending sign-ins belong to nobody yet: only their key reaches them.
        assert await visible(app, "pending_signins", broker_id="AB1234") == []

    async def test_rows_outside_the_binding_cannot_be_written(self, clean_database: str, seed: Seed) -> None:
        engine = create_async_engine(as_app_role(clean_database))
        try:
            async with engine.begin() as conn:
                await bind(conn, broker_id="AB1234")
                with pytest.raises(DBAPIError, match="row-level security"):
                    await conn.execute(
                        text(
                            "insert into web_sessions (key_hash, broker_id, record, expires_at) "
                            "values (:k, 'CD5678', 'r', now())"
                        ),
                        {"k": hashed()},
                    )
            async with engine.begin() as conn:
                await bind(conn, broker_id="AB1234")
                with pytest.raises(DBAPIError, match="row-level security"):
                    await conn.execute(text("update web_sessions set broker_id = 'CD5678'"))
            async with engine.begin() as conn:
                # Bound to AB1234, a delete of everything ends only AB1234's sessions.
                await bind(conn, broker_id="AB1234")
                assert (await conn.execute(text("delete from web_sessions"))).rowcount == 2
        finally:
            await engine.dispose()
        assert await visible(clean_database, "web_sessions") == [seed.b_expired]


class TestMaintenanceFunctions:
    async def test_purges_reach_every_user_but_only_expired_rows(
        self, clean_database: str, seed: Seed
    ) -> None:
        engine = create_async_engine(as_app_role(clean_database))
        try:
            async with engine.begin() as conn:
                # A cutoff far in the future still ends nothing the database's clock calls live.
                purged = await conn.scalar(text("select purge_expired_web_sessions('infinity')"))
                pending = await conn.scalar(text("select purge_expired_pending_signins(now())"))
                flag = await conn.scalar(text("select current_setting('app.session_maintenance', true)"))
        finally:
            await engine.dispose()
        assert (purged, pending) == (2, 1)
        assert flag in (None, "")
        assert await visible(clean_database, "web_sessions") == [seed.a_live]
        assert await visible(clean_database, "pending_signins") == sorted(seed.pending_live)

    async def test_count_pending_counts_every_users_live_rows(self, clean_database: str, seed: Seed) -> None:
        engine = create_async_engine(as_app_role(clean_database))
        try:
            async with engine.begin() as conn:
                live, soonest, db_now = (
                    await conn.execute(
                        text("select live, next_expires_at, now() from count_pending_signins(now())")
                    )
                ).one()
                # The app role setting the maintenance flag itself still sees nothing.
                await conn.execute(text("select set_config('app.session_maintenance', 'on', true)"))
                seen = await conn.scalar(text("select count(*) from pending_signins"))
        finally:
            await engine.dispose()
        assert live == 2
        assert timedelta(minutes=4) < soonest - db_now <= timedelta(minutes=5)
        assert seen == 0


class TestGrants:
    async def test_no_default_privileges_hand_new_tables_to_the_app_role(self, clean_database: str) -> None:
        engine = create_async_engine(clean_database)
        try:
            async with engine.connect() as conn:
                defaults = await conn.scalar(
                    text(
                        "select count(*) from pg_default_acl d, aclexplode(d.defaclacl) a "
                        "join pg_roles r on r.oid = a.grantee where r.rolname = :role"
                    ),
                    {"role": APP_ROLE},
                )
                assert defaults == 0
            async with engine.connect() as conn:
                transaction = await conn.begin()
                await conn.execute(text("create table later_table (id int)"))
                granted = await conn.scalar(
                    text("select has_table_privilege(:role, 'later_table', 'SELECT')"), {"role": APP_ROLE}
                )
                await transaction.rollback()
                assert granted is False
        finally:
            await engine.dispose()

    async def test_each_table_is_granted_explicitly_and_audit_events_are_append_only(
        self, clean_database: str
    ) -> None:
        engine = create_async_engine(clean_database)
        try:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "select t, p, has_table_privilege(:role, t, p) from unnest(cast(:tables as text[])) t, "
                            "unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']::text[]) p"
                        ),
                        {
                            "role": APP_ROLE,
                            "tables": ["web_sessions", "pending_signins", "accounts", "audit_events"],
                        },
                    )
                ).all()
                public_execute = await conn.scalar(
                    text(
                        "select count(*) from pg_proc p, aclexplode(p.proacl) a where a.grantee = 0 "
                        "and p.proname in ('purge_expired_web_sessions', 'purge_expired_pending_signins', "
                        "'count_pending_signins')"
                    )
                )
        finally:
            await engine.dispose()
        granted = {(table, privilege) for table, privilege, yes in rows if yes}
        assert ("audit_events", "UPDATE") not in granted
        assert ("audit_events", "DELETE") not in granted
        assert {("audit_events", "SELECT"), ("audit_events", "INSERT")} <= granted
        assert {
            (t, p) for t in ("web_sessions", "pending_signins", "accounts") for p in ("SELECT", "DELETE")
        } <= granted
        assert public_execute == 0


def session(broker_id: str, *, now: datetime, expires_in: timedelta) -> tuple[SessionRecord, datetime]:
    return make_record(broker_id, now=now), now + expires_in


@pytest.fixture(scope="module")
def owner_database() -> Iterator[str]:
    """Migrated by a role that owns the tables but is no superuser, as in production: FORCE binds it too."""
    name = f"tradedesk_test_owner_{uuid.uuid4().hex[:10]}"
    asyncio.run(
        pg_admin(
            f"DO $$ BEGIN CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    )
    asyncio.run(
        pg_admin(
            f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    )
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}'))
    owner_url = f"postgresql+asyncpg://{OWNER_ROLE}@127.0.0.1:5432/{name}"
    try:
        migrate(owner_url, app_role=APP_ROLE)
        yield owner_url
    finally:
        drop_database(name)


class TestStoreAsTheAppRole:
    async def test_the_store_works_through_its_bindings(self, owner_database: str) -> None:
        owner = create_async_engine(owner_database)
        app = create_async_engine(owner_database.replace(f"{OWNER_ROLE}@", f"{APP_ROLE}@", 1))
        store = SqlSessionStore(create_sessionmaker(app), codec=CODEC)
        # Real time: a purge never runs ahead of the database's own clock.
        now = datetime.now(UTC)
        try:
            a1, a1_expires = session("AB1234", now=now, expires_in=timedelta(hours=1))
            a2, a2_expires = session("AB1234", now=now, expires_in=timedelta(hours=2))
            b1, b1_expires = session("CD5678", now=now, expires_in=timedelta(hours=1))
            for record, expires_at in ((a1, a1_expires), (a2, a2_expires), (b1, b1_expires)):
                await store.create(record, expires_at=expires_at, now=now)
            loaded = await store.load(a1.key_hash, idle_timeout_s=3600)
            assert loaded is not None and loaded.handle == a1.handle
            assert {r.key_hash for r in await store.list_for_user("AB1234", now=now)} == {
                a1.key_hash,
                a2.key_hash,
            }
            assert await store.delete_for_user("AB1234", now=now, keep_key_hash=a1.key_hash) == 1
            pending = SqlPendingSignIns(create_sessionmaker(app))
            await pending.put(hashed(), b"{}", ttl_s=600, now=now, bound=10)
            taken = hashed()
            await pending.put(taken, b"{}", ttl_s=300, now=now, bound=10)
            live, soonest = await pending.count(now=now)
            assert (live, soonest) == (2, now + timedelta(seconds=300))
            assert await pending.take(taken, now=now) == b"{}"
            assert (await pending.count(now=now))[0] == 1

            # Expired by the database's clock: the next sign-in's purge ends it, whoever it belonged to.
            async with owner.begin() as conn:
                await conn.execute(text("select set_config('app.session_maintenance', 'on', true)"))
                await conn.execute(
                    text("update web_sessions set expires_at = :at where key_hash = :k"),
                    {"k": b1.key_hash, "at": now - timedelta(minutes=1)},
                )
            late, late_expires = session("EF9012", now=now, expires_in=timedelta(hours=1))
            await store.create(late, expires_at=late_expires, now=now)
            async with owner.connect() as conn:
                # Bound to nothing, even the owning role sees no row.
                assert await conn.scalar(text("select count(*) from web_sessions")) == 0
            async with owner.begin() as conn:
                await conn.execute(text("select set_config('app.session_maintenance', 'on', true)"))
                left = set((await conn.execute(text("select key_hash from web_sessions"))).scalars())
            assert left == {a1.key_hash, late.key_hash}
        finally:
            await store.close()
            await app.dispose()
            await owner.dispose()
