"""``python -m tradedesk.cli rotate-keys`` on real PostgreSQL and Redis: what the old key sealed is readable
before, rewritten under the newest key after, still opens; a ciphertext copied to another user fails closed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from tests.conftest import REDIS_URL, as_app_role
from tests.support.records import make_record
from tradedesk.brokers.credentials import BrokerCredentialsPlain, open_credentials, seal_credentials
from tradedesk.cli import rotate_keys
from tradedesk.config import Settings
from tradedesk.db import create_sessionmaker
from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError, generate_key
from tradedesk.kit.repository import bind_tenant
from tradedesk.models import BrokerCredentials
from tradedesk.redis import create_redis
from tradedesk.sessions.record import SessionRecord, SessionRecordCodec
from tradedesk.sessions.redis_store import RedisSessionStore, session_key
from tradedesk.sessions.sql_store import SqlSessionStore

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC).replace(microsecond=0)
SECRET = "rotation-secret-0123456789abcdefghijkl"
OLD_KEY, NEW_KEY = generate_key(), generate_key()
PLAIN = {
    "AB1234": BrokerCredentialsPlain(api_key="kite-app", access_token="token-of-ab1234"),
    "CD5678": BrokerCredentialsPlain(api_key="kite-app", access_token="token-of-cd5678"),
}


@pytest.fixture
async def app_db(clean_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The API's own role: no BYPASSRLS, sees a tenant's rows only once bound to it."""
    engine = create_async_engine(as_app_role(clean_database))
    yield create_sessionmaker(engine)
    await engine.dispose()


async def put_credentials(db_maker: async_sessionmaker[AsyncSession], broker_id: str, sealed: str) -> None:
    async with db_maker() as db, db.begin():
        await bind_tenant(db, broker_id)
        db.add(
            BrokerCredentials(
                broker_id=broker_id, credentials_enc=sealed, token_expires_at=NOW, updated_at=NOW
            )
        )


async def stored_credentials(db_maker: async_sessionmaker[AsyncSession], broker_id: str) -> str:
    async with db_maker() as db, db.begin():
        await bind_tenant(db, broker_id)
        sealed = await db.scalar(
            select(BrokerCredentials.credentials_enc).where(BrokerCredentials.broker_id == broker_id)
        )
    assert sealed is not None
    return str(sealed)


def session_record(broker_id: str, credentials_enc: str) -> SessionRecord:
    return make_record(broker_id, now=NOW, credentials_enc=credentials_enc)


def settings_with(keys: list[str], database_url: str, redis_prefix: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        secret_keys=[SECRET],
        encryption_keys=keys,
    )


def opens_with(keys: list[str], sealed: str, broker_id: str) -> BrokerCredentialsPlain:
    return open_credentials(CredentialCipher(keys), sealed, broker_id=broker_id)


@pytest.fixture
async def stores(
    app_db: async_sessionmaker[AsyncSession], redis_prefix: str
) -> AsyncIterator[tuple[SqlSessionStore, RedisSessionStore]]:
    codec = SessionRecordCodec([SECRET])
    redis_store = RedisSessionStore(
        create_redis(REDIS_URL, timeout_s=0.5),
        prefix=redis_prefix,
        timeout_s=0.5,
        codec=codec,
    )
    yield SqlSessionStore(app_db, codec=codec), redis_store
    await redis_store.close()


async def test_rotation_rewrites_every_stored_ciphertext_under_the_newest_key(
    clean_database: str,
    app_db: async_sessionmaker[AsyncSession],
    redis_prefix: str,
    stores: tuple[SqlSessionStore, RedisSessionStore],
) -> None:
    sql_store, redis_store = stores
    old = CredentialCipher([OLD_KEY])
    ab_sealed = seal_credentials(old, PLAIN["AB1234"], broker_id="AB1234")
    await put_credentials(app_db, "AB1234", ab_sealed)
    # Someone with database access copies AB1234's ciphertext onto CD5678's row.
    await put_credentials(app_db, "CD5678", ab_sealed)
    in_sql = session_record("AB1234", seal_credentials(old, PLAIN["AB1234"], broker_id="AB1234"))
    await sql_store.create(in_sql, expires_at=NOW + timedelta(days=1), now=NOW)
    in_redis = session_record("CD5678", seal_credentials(old, PLAIN["CD5678"], broker_id="CD5678"))
    await redis_store.create(in_redis, expires_at=NOW + timedelta(days=1), now=NOW)

    # Before: the old key opens what is stored.
    assert opens_with([OLD_KEY], ab_sealed, "AB1234") == PLAIN["AB1234"]

    rotated = settings_with([NEW_KEY, OLD_KEY], as_app_role(clean_database), redis_prefix)
    report = await rotate_keys(rotated, database_url=clean_database)

    # After: rewritten, opened by the newest key alone, no longer by the old one.
    ab_after = await stored_credentials(app_db, "AB1234")
    assert ab_after != ab_sealed
    assert opens_with([NEW_KEY], ab_after, "AB1234") == PLAIN["AB1234"]
    with pytest.raises(CredentialsDecryptError):
        opens_with([OLD_KEY], ab_after, "AB1234")
    # The copy on CD5678's row opens for nobody and was left alone: fails closed, reported.
    assert await stored_credentials(app_db, "CD5678") == ab_sealed
    with pytest.raises(CredentialsDecryptError):
        opens_with([NEW_KEY, OLD_KEY], ab_sealed, "CD5678")
    assert report.credentials.rotated == 1 and report.credentials.unreadable == ["CD5678"]

    raw = Redis.from_url(REDIS_URL)
    assert await raw.ttl(session_key(redis_prefix, in_redis.key_hash)) > 23 * 3600  # its expiry is kept
    await raw.aclose()
    for store, record in ((sql_store, in_sql), (redis_store, in_redis)):
        after = await store.load(record.key_hash, idle_timeout_s=3600)
        assert after is not None, store  # still a valid, MACed record
        assert after.credentials_enc != record.credentials_enc
        assert opens_with([NEW_KEY], after.credentials_enc, record.broker_id) == PLAIN[record.broker_id]
        assert after.model_dump(exclude={"credentials_enc"}) == record.model_dump(exclude={"credentials_enc"})
    assert report.sql_sessions.rotated == 1 and report.redis_sessions is not None
    assert report.redis_sessions.rotated == 1

    again = await rotate_keys(rotated, database_url=clean_database)
    assert again.credentials.rotated == 0 and again.credentials.current == 1
    assert again.sql_sessions.current == 1 and again.redis_sessions is not None
    assert again.redis_sessions.current == 1
    assert await stored_credentials(app_db, "AB1234") == ab_after


def run_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRADEDESK_")}
    return subprocess.run(
        [sys.executable, "-m", "tradedesk.cli", "rotate-keys", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


async def test_the_command_binds_each_tenant_and_needs_a_role_that_can_list_them(
    clean_database: str, app_db: async_sessionmaker[AsyncSession], redis_prefix: str, tmp_path: Path
) -> None:
    old = CredentialCipher([OLD_KEY])
    for broker_id in PLAIN:
        await put_credentials(app_db, broker_id, seal_credentials(old, PLAIN[broker_id], broker_id=broker_id))
    before = {b: await stored_credentials(app_db, b) for b in PLAIN}
    env = {
        "TRADEDESK_DATABASE_URL": as_app_role(clean_database),
        "TRADEDESK_REDIS_URL": REDIS_URL,
        "TRADEDESK_REDIS_KEY_PREFIX": redis_prefix,
        "TRADEDESK_SECRET_KEYS": SECRET,
        "TRADEDESK_ENCRYPTION_KEYS": f"{NEW_KEY},{OLD_KEY}",
        "TRADEDESK_KEY_FILE": str(tmp_path / "never-used.json"),
    }

    # The API's role cannot see past row-level security, so it cannot find the accounts by itself.
    refused = run_cli(env, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "BYPASSRLS" in refused.stderr and "--broker-id" in refused.stderr
    assert {b: await stored_credentials(app_db, b) for b in PLAIN} == before

    # Named accounts work with that role: each transaction is bound to its broker_id.
    named = run_cli(env, "--broker-id", "AB1234", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert "broker_credentials: 1 re-encrypted" in named.stdout
    assert await stored_credentials(app_db, "AB1234") != before["AB1234"]
    assert await stored_credentials(app_db, "CD5678") == before["CD5678"]

    # The migration (owner, here superuser) role finds the rest.
    everyone = run_cli({**env, "TRADEDESK_MIGRATION_DATABASE_URL": clean_database}, cwd=tmp_path)
    assert everyone.returncode == 0, everyone.stderr
    assert "broker_credentials: 1 re-encrypted, 1 already current" in everyone.stdout
    for broker_id in PLAIN:
        sealed = await stored_credentials(app_db, broker_id)
        assert opens_with([NEW_KEY], sealed, broker_id) == PLAIN[broker_id]
    for secret in (NEW_KEY, OLD_KEY, SECRET, *[p.access_token for p in PLAIN.values()]):
        assert secret not in everyone.stdout + everyone.stderr + named.stdout + refused.stderr
    assert not (tmp_path / "never-used.json").exists()


async def test_a_copied_ciphertext_makes_the_command_fail_loudly(
    clean_database: str, app_db: async_sessionmaker[AsyncSession], redis_prefix: str, tmp_path: Path
) -> None:
    sealed = seal_credentials(CredentialCipher([OLD_KEY]), PLAIN["AB1234"], broker_id="AB1234")
    await put_credentials(app_db, "CD5678", sealed)
    result = run_cli(
        {
            "TRADEDESK_DATABASE_URL": clean_database,
            "TRADEDESK_SECRET_KEYS": SECRET,
            "TRADEDESK_ENCRYPTION_KEYS": f"{NEW_KEY},{OLD_KEY}",
        },
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "1 unreadable (CD5678)" in result.stdout
    assert await stored_credentials(app_db, "CD5678") == sealed
    async with app_db() as db:  # row-level security still hides it from an unbound transaction
        assert (await db.execute(text("select count(*) from broker_credentials"))).scalar() == 0
