"""Pending redirect sign-ins, the same contract on Redis and on SQL (as the app role, under row-level
security): single use, expiry, and the bound on how many are kept at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import REDIS_URL, as_app_role
from tradedesk.auth.pending import (
    PendingSignInStore,
    RedisPendingSignIns,
    SqlPendingSignIns,
    TooManySignInsPending,
)
from tradedesk.db import create_sessionmaker
from tradedesk.redis import create_redis

# Real time: on PostgreSQL a purge never runs ahead of the database's own clock.
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["redis", "sql"])
async def pending(
    request: pytest.FixtureRequest, clean_database: str, redis_prefix: str
) -> AsyncIterator[PendingSignInStore]:
    if request.param == "redis":
        redis = create_redis(REDIS_URL, timeout_s=0.5)
        yield RedisPendingSignIns(redis, prefix=redis_prefix)
        await redis.aclose()
    else:
        engine = create_async_engine(as_app_role(clean_database))
        yield SqlPendingSignIns(create_sessionmaker(engine))
        await engine.dispose()


async def test_a_pending_sign_in_is_taken_once(pending: PendingSignInStore) -> None:
    await pending.put("h1", b'{"x":1}', ttl_s=600, now=NOW, bound=10)
    assert await pending.take("h1", now=NOW) == b'{"x":1}'
    assert await pending.take("h1", now=NOW) is None
    assert await pending.take("never", now=NOW) is None


async def test_the_bound_refuses_with_the_wait_until_the_soonest_expires(pending: PendingSignInStore) -> None:
    await pending.put("first", b"{}", ttl_s=300, now=NOW, bound=2)
    await pending.put("second", b"{}", ttl_s=600, now=NOW, bound=2)
    with pytest.raises(TooManySignInsPending) as refused:
        await pending.put("third", b"{}", ttl_s=600, now=NOW + timedelta(seconds=60), bound=2)
    assert refused.value.status_code == 503
    assert refused.value.headers["Retry-After"] == "240"
    # A finished sign-in gives its place back.
    assert await pending.take("first", now=NOW) == b"{}"
    await pending.put("third", b"{}", ttl_s=600, now=NOW + timedelta(seconds=60), bound=2)
    assert await pending.take("third", now=NOW + timedelta(seconds=61)) == b"{}"
