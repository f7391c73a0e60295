"""Leases: one owner at a time, renewal only by the owner, release only by the owner, expiry hands over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.conftest import REDIS_URL
from tradedesk.agents.leases import Leases, MemoryLeases, RedisLeases, lease_key


@pytest.fixture(params=["redis", "memory"])
async def leases(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Leases]:
    if request.param == "memory":
        yield MemoryLeases()
        return
    redis = Redis.from_url(REDIS_URL)
    try:
        yield RedisLeases(redis)
    finally:
        await redis.aclose()


def test_key_names_the_broker_as_hash_tag() -> None:
    assert lease_key("td:", "AB1234", 7) == "td:lease:{AB1234}:agent:7"


class TestLeases:
    async def test_only_one_runtime_claims(self, leases: Leases, redis_prefix: str) -> None:
        key = lease_key(redis_prefix, "AB1234", 1)
        assert await leases.claim(key, "runtime-a", ttl_ms=5000)
        assert not await leases.claim(key, "runtime-b", ttl_ms=5000)
        assert await leases.holds(key, "runtime-a")
        assert not await leases.holds(key, "runtime-b")

    async def test_renewal_and_release_belong_to_the_owner(self, leases: Leases, redis_prefix: str) -> None:
        mine = lease_key(redis_prefix, "AB1234", 1)
        other = lease_key(redis_prefix, "CD5678", 2)
        assert await leases.claim(mine, "runtime-a", ttl_ms=5000)
        assert await leases.claim(other, "runtime-b", ttl_ms=5000)
        assert await leases.renew([mine, other], "runtime-a", ttl_ms=5000) == {mine}
        await leases.release(other, "runtime-a")
        assert await leases.holds(other, "runtime-b")
        await leases.release(mine, "runtime-a")
        assert not await leases.holds(mine, "runtime-a")
        assert await leases.claim(mine, "runtime-b", ttl_ms=5000)

    async def test_an_expired_lease_passes_to_another_runtime(
        self, leases: Leases, redis_prefix: str
    ) -> None:
        key = lease_key(redis_prefix, "AB1234", 3)
        assert await leases.claim(key, "runtime-a", ttl_ms=150)
        await asyncio.sleep(0.3)
        assert not await leases.holds(key, "runtime-a")
        assert await leases.renew([key], "runtime-a", ttl_ms=5000) == set()
        assert await leases.claim(key, "runtime-b", ttl_ms=5000)
