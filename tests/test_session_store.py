"""One contract, two stores: RedisSessionStore and SqlSessionStore must behave the same."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import REDIS_URL
from tradedesk.db import create_sessionmaker
from tradedesk.models import WebSession
from tradedesk.redis import SessionReadChannel, create_redis
from tradedesk.sessions.record import SessionRecord, key_hash
from tradedesk.sessions.redis_store import RedisSessionStore
from tradedesk.sessions.sql_store import SqlSessionStore
from tradedesk.sessions.store import SessionStore

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def make_record(broker_id: str = "AB1234", *, now: datetime = NOW) -> SessionRecord:
    return SessionRecord(
        key_hash=key_hash(secrets.token_urlsafe(32)),
        handle=secrets.token_urlsafe(12),
        broker_id=broker_id,
        user_name="Asha Rao",
        email="asha@example.com",
        device_id="dev-1",
        device_label="Firefox on Linux",
        ip="203.0.113.7",
        created_at=now,
        last_seen_at=now,
        auth_time=now,
        absolute_expires_at=now + timedelta(days=7),
        csrf_token=secrets.token_urlsafe(32),
        credentials_enc="ciphertext",
        broker_token_expires_at=now + timedelta(hours=20),
    )


class StoreProbe:
    """Counts what a store holds, to prove reads never write."""

    def __init__(self, store: SessionStore, count: object) -> None:
        self.store = store
        self.count = count


@pytest.fixture(params=["redis", "sql"])
async def probe(
    request: pytest.FixtureRequest, clean_database: str, redis_prefix: str
) -> AsyncIterator[StoreProbe]:
    if request.param == "redis":
        redis = create_redis(REDIS_URL, timeout_s=0.5)
        store: SessionStore = RedisSessionStore(
            redis, prefix=redis_prefix, reads=SessionReadChannel(REDIS_URL, timeout_s=0.5)
        )
        raw = Redis.from_url(REDIS_URL)

        async def count() -> int:
            return len([k async for k in raw.scan_iter(match=f"{redis_prefix}sess:*")])

        yield StoreProbe(store, count)
        await raw.aclose()
        await store.close()
    else:
        engine = create_async_engine(clean_database)
        sessionmaker = create_sessionmaker(engine)

        async def count() -> int:
            async with sessionmaker() as db:
                return int(await db.scalar(select(func.count()).select_from(WebSession)) or 0)

        yield StoreProbe(SqlSessionStore(sessionmaker), count)
        await engine.dispose()


class TestSessionStoreContract:
    async def test_create_then_load_round_trips(self, probe: StoreProbe) -> None:
        record = make_record()
        await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        loaded = await probe.store.load(record.key_hash, idle_timeout_s=3600)
        assert loaded == record

    async def test_unknown_key_is_never_written(self, probe: StoreProbe) -> None:
        before = await probe.count()  # type: ignore[operator]
        assert await probe.store.load(key_hash("nobody"), idle_timeout_s=3600) is None
        ghost = make_record()
        assert await probe.store.save(ghost, expires_at=NOW + timedelta(days=1)) is False
        assert await probe.count() == before  # type: ignore[operator]
        assert await probe.store.load(ghost.key_hash, idle_timeout_s=3600) is None

    async def test_save_overwrites_existing(self, probe: StoreProbe) -> None:
        record = make_record()
        await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        record.last_seen_at = NOW + timedelta(minutes=5)
        assert await probe.store.save(record, expires_at=NOW + timedelta(days=1)) is True
        loaded = await probe.store.load(record.key_hash, idle_timeout_s=3600)
        assert loaded is not None and loaded.last_seen_at == NOW + timedelta(minutes=5)

    async def test_delete_removes_record_and_index_entry(self, probe: StoreProbe) -> None:
        record = make_record()
        await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        await probe.store.delete(record)
        assert await probe.store.load(record.key_hash, idle_timeout_s=3600) is None
        assert await probe.store.list_for_user("AB1234", now=NOW) == []

    async def test_list_is_per_user(self, probe: StoreProbe) -> None:
        mine = [make_record("AB1234") for _ in range(3)]
        theirs = make_record("ZZ9999")
        for record in [*mine, theirs]:
            await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        listed = await probe.store.list_for_user("AB1234", now=NOW)
        assert {r.key_hash for r in listed} == {r.key_hash for r in mine}

    async def test_delete_for_user_keeps_one_and_spares_others(self, probe: StoreProbe) -> None:
        mine = [make_record("AB1234") for _ in range(3)]
        theirs = make_record("ZZ9999")
        for record in [*mine, theirs]:
            await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        ended = await probe.store.delete_for_user("AB1234", now=NOW, keep_key_hash=mine[0].key_hash)
        assert ended == 2
        assert [r.key_hash for r in await probe.store.list_for_user("AB1234", now=NOW)] == [mine[0].key_hash]
        assert await probe.store.load(theirs.key_hash, idle_timeout_s=3600) is not None

    async def test_pending_sign_in_is_single_use(self, probe: StoreProbe) -> None:
        await probe.store.put_pending("h1", b'{"x":1}', ttl_s=600, now=NOW)
        assert await probe.store.take_pending("h1", now=NOW) == b'{"x":1}'
        assert await probe.store.take_pending("h1", now=NOW) is None
        assert await probe.store.take_pending("never", now=NOW) is None

    async def test_ping(self, probe: StoreProbe) -> None:
        await probe.store.ping()
