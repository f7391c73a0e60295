"""One contract, two stores: RedisSessionStore and SqlSessionStore must behave the same."""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import REDIS_URL
from tests.support.records import make_record as support_record
from tradedesk.brokers.credentials import BrokerCredentialsPlain
from tradedesk.config import Settings
from tradedesk.db import create_sessionmaker
from tradedesk.kit.clock import ManualClock
from tradedesk.kit.crypto import CredentialCipher, generate_key
from tradedesk.kit.signing import CookieSigner
from tradedesk.models import WebSession
from tradedesk.redis import create_redis
from tradedesk.sessions.record import SessionRecord, SessionRecordCodec, key_hash
from tradedesk.sessions.redis_store import RedisSessionStore, session_key
from tradedesk.sessions.service import SessionService, SignedInUser
from tradedesk.sessions.sql_store import SqlSessionStore
from tradedesk.sessions.store import SessionStore

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
CODEC = SessionRecordCodec(["store-contract-secret-0123456789abcdef"])


def make_record(broker_id: str = "AB1234", *, now: datetime = NOW) -> SessionRecord:
    return support_record(broker_id, now=now)


RawGet = Callable[[str], Awaitable[bytes | None]]
RawPut = Callable[[str, bytes], Awaitable[None]]


class StoreProbe:
    """Counts what a store holds, to prove reads never write; reads and writes stored bytes by key hash,
    as someone with write access to the backend (but not the server's keys) could."""

    def __init__(self, store: SessionStore, count: object, raw_get: RawGet, raw_put: RawPut) -> None:
        self.store = store
        self.count = count
        self.raw_get = raw_get
        self.raw_put = raw_put


@pytest.fixture(params=["redis", "sql"])
async def probe(
    request: pytest.FixtureRequest, clean_database: str, redis_prefix: str
) -> AsyncIterator[StoreProbe]:
    if request.param == "redis":
        redis = create_redis(REDIS_URL, timeout_s=0.5)
        store: SessionStore = RedisSessionStore(redis, prefix=redis_prefix, codec=CODEC, timeout_s=0.5)
        raw = Redis.from_url(REDIS_URL)

        async def count() -> int:
            return len([k async for k in raw.scan_iter(match=f"{redis_prefix}sess:*")])

        async def redis_get(hashed: str) -> bytes | None:
            value: bytes | None = await raw.get(session_key(redis_prefix, hashed))
            return value

        async def redis_put(hashed: str, value: bytes) -> None:
            await raw.set(session_key(redis_prefix, hashed), value, keepttl=True)

        yield StoreProbe(store, count, redis_get, redis_put)
        await raw.aclose()
        await store.close()
    else:
        engine = create_async_engine(clean_database)
        sessionmaker = create_sessionmaker(engine)

        async def count() -> int:
            async with sessionmaker() as db:
                return int(await db.scalar(select(func.count()).select_from(WebSession)) or 0)

        async def sql_get(hashed: str) -> bytes | None:
            async with sessionmaker() as db:
                value = await db.scalar(select(WebSession.record).where(WebSession.key_hash == hashed))
            return value.encode("utf-8") if value is not None else None

        async def sql_put(hashed: str, value: bytes) -> None:
            async with sessionmaker() as db, db.begin():
                row = await db.get(WebSession, hashed)
                if row is None:
                    record = SessionRecord.model_validate_json(value.split(b":", 2)[2])
                    db.add(
                        WebSession(
                            key_hash=hashed,
                            broker_id=record.broker_id,
                            record=value.decode(),
                            expires_at=NOW + timedelta(days=1),
                        )
                    )
                else:
                    row.record = value.decode("utf-8")

        yield StoreProbe(SqlSessionStore(sessionmaker, codec=CODEC), count, sql_get, sql_put)
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
        assert await probe.store.save(ghost, expires_at=NOW + timedelta(days=1), now=NOW) is False
        assert await probe.count() == before  # type: ignore[operator]
        assert await probe.store.load(ghost.key_hash, idle_timeout_s=3600) is None

    async def test_save_overwrites_existing(self, probe: StoreProbe) -> None:
        record = make_record()
        await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        record = record.model_copy(update={"last_seen_at": NOW + timedelta(minutes=5)})
        assert await probe.store.save(record, expires_at=NOW + timedelta(days=1), now=NOW) is True
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

    async def test_ping(self, probe: StoreProbe) -> None:
        await probe.store.ping()


class TestStoredRecordIntegrity:
    """Whoever can write to the store but does not hold the secret keys cannot change whose session a
    record is, nor move one record under another key: such a record reads as absent, and is logged."""

    async def test_stored_bytes_carry_a_mac_and_no_credentials_in_clear(self, probe: StoreProbe) -> None:
        record = make_record()
        await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        stored = await probe.raw_get(record.key_hash)
        assert stored is not None and stored == CODEC.encode(record) and stored.startswith(b"m1:")

    async def test_a_rewritten_broker_id_reads_as_absent_and_is_logged(
        self, probe: StoreProbe, caplog: pytest.LogCaptureFixture
    ) -> None:
        record = make_record("AB1234")
        await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        stored = await probe.raw_get(record.key_hash)
        assert stored is not None
        await probe.raw_put(record.key_hash, stored.replace(b'"broker_id":"AB1234"', b'"broker_id":"ZZ9999"'))
        with caplog.at_level(logging.WARNING, logger="tradedesk.sessions"):
            assert await probe.store.load(record.key_hash, idle_timeout_s=3600) is None
        warned = [
            r for r in caplog.records if r.name == "tradedesk.sessions" and r.levelno == logging.WARNING
        ]
        assert len(warned) == 1 and "integrity" in warned[0].getMessage()
        assert record.csrf_token not in caplog.text and record.handle not in caplog.text
        assert await probe.store.list_for_user("AB1234", now=NOW) == []

    async def test_a_record_moved_under_another_key_reads_as_absent(self, probe: StoreProbe) -> None:
        mine, theirs = make_record("AB1234"), make_record("ZZ9999")
        for record in (mine, theirs):
            await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        stolen = await probe.raw_get(theirs.key_hash)
        assert stolen is not None
        await probe.raw_put(mine.key_hash, stolen)
        assert await probe.store.load(mine.key_hash, idle_timeout_s=3600) is None
        assert await probe.store.load(theirs.key_hash, idle_timeout_s=3600) == theirs

    @pytest.mark.parametrize(
        "forge",
        [
            pytest.param(lambda body: body, id="plain-json-without-mac"),
            pytest.param(lambda body: b"m1:" + b"0" * 64 + b":" + body, id="zero-mac"),
            pytest.param(lambda body: b"m1:" + b"0" * 63 + b":" + body, id="short-mac"),
            pytest.param(
                lambda body: b"m2:" + CODEC.encode(SessionRecord.model_validate_json(body))[3:], id="format"
            ),
        ],
    )
    async def test_forged_records_read_as_absent(
        self, probe: StoreProbe, forge: Callable[[bytes], bytes]
    ) -> None:
        record = make_record()
        await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        await probe.raw_put(record.key_hash, forge(record.model_dump_json().encode()))
        assert await probe.store.load(record.key_hash, idle_timeout_s=3600) is None

    async def test_a_record_maced_by_an_unknown_key_reads_as_absent(self, probe: StoreProbe) -> None:
        record = make_record()
        await probe.store.create(record, expires_at=NOW + timedelta(days=1), now=NOW)
        foreign = SessionRecordCodec(["someone-elses-secret-0123456789abcdef"])
        await probe.raw_put(record.key_hash, foreign.encode(record))
        assert await probe.store.load(record.key_hash, idle_timeout_s=3600) is None


def test_record_mac_keys_rotate_first_macs_all_verify() -> None:
    record = make_record()
    old = SessionRecordCodec(["old-secret-0123456789abcdefghijkl"])
    rotated = SessionRecordCodec(["new-secret-0123456789abcdefghijkl", "old-secret-0123456789abcdefghijkl"])
    assert rotated.decode(old.encode(record), key_hash=record.key_hash) == record
    fresh = rotated.encode(record)
    assert old.decode(fresh, key_hash=record.key_hash) is None
    only_new = SessionRecordCodec(["new-secret-0123456789abcdefghijkl"])
    assert only_new.decode(fresh, key_hash=record.key_hash) == record
    assert only_new.decode(fresh.decode("utf-8"), key_hash=record.key_hash) == record  # as SQL hands it back


def test_the_record_mac_key_is_not_the_cookie_signing_key() -> None:
    """Same secret, other purpose: the record MAC must not be computable from a cookie signature key."""
    secret = "shared-secret-0123456789abcdefghijkl"
    record = make_record()
    stored = SessionRecordCodec([secret]).encode(record)
    body = stored.split(b":", 2)[2]
    for derived in (
        CookieSigner([secret], salt="tradedesk.session")._signer.derive_key(),
        secret.encode(),
    ):
        naive = hmac.digest(derived, record.key_hash.encode() + b"\x00" + body, "sha256").hex().encode()
        assert naive != stored[3:67]


def test_a_record_of_the_wrong_shape_with_a_good_mac_reads_as_absent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    codec = SessionRecordCodec(["shape-secret-0123456789abcdefghijkl"])
    record = make_record()
    good = codec.encode(record)
    mac_key = hmac.digest(
        b"shape-secret-0123456789abcdefghijkl", b"tradedesk.session-record.mac.v1", "sha256"
    )
    body = b'{"key_hash": "x"}'
    forged = b"m1:" + hmac.digest(mac_key, record.key_hash.encode() + b"\x00" + body, "sha256").hex().encode()
    with caplog.at_level(logging.WARNING, logger="tradedesk.sessions"):
        assert codec.decode(forged + b":" + body, key_hash=record.key_hash) is None
    assert "shape" in caplog.text
    assert codec.decode(good, key_hash=record.key_hash) == record


class CountingRedisStore(RedisSessionStore):
    """The real Redis store, counting the reads that reach it."""

    loads = 0

    async def load(self, key_hash: str, *, idle_timeout_s: int) -> SessionRecord | None:
        self.loads += 1
        return await super().load(key_hash, idle_timeout_s=idle_timeout_s)


SECRET = "service-secret-0123456789abcdefghijkl"


@pytest.fixture
async def counted(redis_prefix: str) -> AsyncIterator[CountingRedisStore]:
    store = CountingRedisStore(
        create_redis(REDIS_URL, timeout_s=0.5),
        prefix=redis_prefix,
        timeout_s=0.5,
        codec=SessionRecordCodec([SECRET]),
    )
    yield store
    await store.close()


def service_over(store: SessionStore, clock: ManualClock) -> SessionService:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, secret_keys=[SECRET], encryption_keys=[generate_key()], session_touch_interval_s=60
    )
    return SessionService(
        store=store,
        settings=settings,
        clock=clock,
        cipher=CredentialCipher(settings.effective_encryption_keys),
    )


def signed_in_user() -> SignedInUser:
    return SignedInUser(
        broker_id="AB1234",
        user_name="Asha Rao",
        email=None,
        credentials=BrokerCredentialsPlain(api_key="k", access_token="t"),
        broker_token_expires_at=NOW + timedelta(hours=20),
    )


class TestSessionServiceOverRedis:
    @pytest.mark.parametrize("length", [0, 1, 43, 50, 52, 64])
    async def test_a_signed_id_of_the_wrong_length_never_reaches_the_store(
        self, counted: CountingRedisStore, length: int
    ) -> None:
        service = service_over(counted, ManualClock(NOW))
        forged = CookieSigner([SECRET], salt="tradedesk.session").sign(("0" * 8 + "x" * 64)[:length])
        assert service.key_hash_of_cookie(forged) is None
        assert await service.resolve(forged) is None
        assert counted.loads == 0

    async def test_a_signed_id_of_a_slot_tag_and_43_characters_is_looked_up(
        self, counted: CountingRedisStore
    ) -> None:
        service = service_over(counted, ManualClock(NOW))
        forged = CookieSigner([SECRET], salt="tradedesk.session").sign("0a1b2c3d" + "x" * 43)
        assert await service.resolve(forged) is None  # unknown, so anonymous: but it was looked up
        assert counted.loads == 1

    async def test_a_signed_id_whose_slot_tag_is_not_hex_never_reaches_the_store(
        self, counted: CountingRedisStore
    ) -> None:
        service = service_over(counted, ManualClock(NOW))
        forged = CookieSigner([SECRET], salt="tradedesk.session").sign("{x}:y:zz" + "x" * 43)
        assert await service.resolve(forged) is None
        assert counted.loads == 0

    async def test_bad_signatures_and_no_cookie_never_reach_the_store(
        self, counted: CountingRedisStore
    ) -> None:
        service = service_over(counted, ManualClock(NOW))
        for cookie in (
            None,
            "",
            CookieSigner(["another-secret-0123456789abcdef"], salt="tradedesk.session").sign("x" * 43),
        ):
            assert await service.resolve(cookie) is None
        assert counted.loads == 0

    async def test_activity_from_a_new_address_refreshes_the_ip_after_the_touch_interval(
        self, counted: CountingRedisStore
    ) -> None:
        clock = ManualClock(NOW)
        service = service_over(counted, clock)
        new = service.new_session(signed_in_user(), device_id="d", device_label="Firefox", ip="203.0.113.7")
        await service.store_new(new)

        clock.advance(30)  # within the touch interval: nothing is written
        seen = await service.resolve(new.cookie_value, ip="198.51.100.9")
        assert seen is not None and seen.ip == "203.0.113.7" and seen.last_seen_at == NOW

        clock.advance(30)
        seen = await service.resolve(new.cookie_value, ip="198.51.100.9")
        assert (
            seen is not None
            and seen.ip == "198.51.100.9"
            and seen.last_seen_at == NOW + timedelta(seconds=60)
        )
        stored = await counted.load(new.record.key_hash, idle_timeout_s=3600)
        assert stored is not None and stored.ip == "198.51.100.9"

        clock.advance(60)  # no address known this time: the last one stays
        seen = await service.resolve(new.cookie_value, ip=None)
        assert seen is not None and seen.ip == "198.51.100.9"

    async def test_a_record_revoked_between_read_and_touch_is_not_recreated(self, redis_prefix: str) -> None:
        class RevokedWhileReading(RedisSessionStore):
            async def load(self, key_hash: str, *, idle_timeout_s: int) -> SessionRecord | None:
                record = await super().load(key_hash, idle_timeout_s=idle_timeout_s)
                if record is not None:
                    await self.delete(record)  # another device revokes it right now
                return record

        store = RevokedWhileReading(
            create_redis(REDIS_URL, timeout_s=0.5),
            prefix=redis_prefix,
            timeout_s=0.5,
            codec=SessionRecordCodec([SECRET]),
        )
        clock = ManualClock(NOW)
        service = service_over(store, clock)
        new = service.new_session(signed_in_user(), device_id="d", device_label="Firefox", ip=None)
        await service.store_new(new)
        clock.advance(120)  # past the touch interval: resolve writes
        try:
            assert await service.resolve(new.cookie_value) is None
            assert await RedisSessionStore.load(store, new.record.key_hash, idle_timeout_s=3600) is None
        finally:
            await store.close()

    async def test_the_device_list_leaves_out_and_ends_idle_sessions_the_store_still_holds(
        self, counted: CountingRedisStore
    ) -> None:
        clock = ManualClock(NOW)
        service = service_over(counted, clock)
        idle = service.new_session(signed_in_user(), device_id="d1", device_label="Firefox", ip=None)
        await service.store_new(idle)
        clock.advance(23 * 3600)
        active = service.new_session(signed_in_user(), device_id="d2", device_label="Chrome", ip=None)
        await service.store_new(active)
        clock.advance(3600 + 1)  # the first is past the 24 h idle timeout; Redis's own TTL has not run out
        listed = await service.list_for_user("AB1234")
        assert [r.key_hash for r in listed] == [active.record.key_hash]
        assert await RedisSessionStore.load(counted, idle.record.key_hash, idle_timeout_s=60) is None

    def test_new_sessions_carry_full_strength_secrets(self, counted: CountingRedisStore) -> None:
        service = service_over(counted, ManualClock(NOW))
        new = service.new_session(signed_in_user(), device_id="d", device_label="Firefox", ip=None)
        session_id = new.cookie_value.split(".")[0]
        assert len(session_id) == 8 + 43  # the user's slot tag, then a 256-bit secret
        assert session_id[:8] == new.record.key_hash[:8] and session_id[8:] not in new.record.key_hash
        assert len(new.record.csrf_token) == 43  # 256-bit CSRF token
        with pytest.raises(dataclasses.FrozenInstanceError):
            signed_in_user().credentials.access_token = "changed"  # type: ignore[misc]
