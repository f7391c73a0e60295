"""Leases: exactly one runtime drives an agent. Redis ``SET NX PX`` with renewal and compare-and-delete
release (many processes), or an in-process table when Redis is not configured (one process).

Each Redis command or script here touches the keys of one hash tag: a user's leases share
``{broker_id}``, and renewing a runtime's leases runs one script per slot, so all of it runs on a Redis
Cluster as on one server."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from redis.crc import key_slot

from tradedesk.redis import RedisClient

# Renew or release only what this runtime holds: another runtime's lease is never touched.
_RENEW = """
local held = {}
for i, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        redis.call('PEXPIRE', key, ARGV[2])
        held[#held + 1] = key
    end
end
return held
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_key(prefix: str, broker_id: str, agent_id: int) -> str:
    # The broker_id is the hash tag: on a Redis Cluster every key of one user lives on one node.
    return f"{prefix}lease:{{{broker_id}}}:agent:{agent_id}"


def runtime_key(prefix: str, runtime_id: str) -> str:
    """Held by the one live process running as ``runtime_id``: agents' leases are owned by that name, so
    two processes under one name would both believe they hold the same agents."""
    return f"{prefix}runtime:{{{runtime_id}}}"


class Leases(Protocol):
    async def claim(self, key: str, owner: str, *, ttl_ms: int) -> bool: ...

    async def renew(self, keys: Sequence[str], owner: str, *, ttl_ms: int) -> set[str]:
        """The keys of ``keys`` still held by ``owner`` (now extended)."""
        ...

    async def holds(self, key: str, owner: str) -> bool: ...

    async def release(self, key: str, owner: str) -> None: ...


class RedisLeases:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def claim(self, key: str, owner: str, *, ttl_ms: int) -> bool:
        return bool(await self._redis.set(key, owner, nx=True, px=ttl_ms))

    async def renew(self, keys: Sequence[str], owner: str, *, ttl_ms: int) -> set[str]:
        held: set[str] = set()
        # One script per slot: on a cluster a script may only touch keys of one slot (a user's share one).
        by_slot: dict[int, list[str]] = {}
        for key in keys:
            by_slot.setdefault(key_slot(key.encode("utf-8")), []).append(key)
        for group in by_slot.values():
            answer = await self._renew(keys=group, args=[owner, ttl_ms])
            held.update(k.decode() if isinstance(k, bytes) else str(k) for k in answer)
        return held

    async def holds(self, key: str, owner: str) -> bool:
        value = await self._redis.get(key)
        return value is not None and (value.decode() if isinstance(value, bytes) else str(value)) == owner

    async def release(self, key: str, owner: str) -> None:
        await self._release(keys=[key], args=[owner])


class MemoryLeases:
    """One process's leases (the embedded setup): the same rules, kept in a dict."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._monotonic = monotonic

    def _owner(self, key: str) -> str | None:
        entry = self._held.get(key)
        if entry is None or entry[1] <= self._monotonic():
            return None
        return entry[0]

    async def claim(self, key: str, owner: str, *, ttl_ms: int) -> bool:
        if self._owner(key) is not None:
            return False
        self._held[key] = (owner, self._monotonic() + ttl_ms / 1000)
        return True

    async def renew(self, keys: Sequence[str], owner: str, *, ttl_ms: int) -> set[str]:
        held = {key for key in keys if self._owner(key) == owner}
        for key in held:
            self._held[key] = (owner, self._monotonic() + ttl_ms / 1000)
        return held

    async def holds(self, key: str, owner: str) -> bool:
        return self._owner(key) == owner

    async def release(self, key: str, owner: str) -> None:
        if self._owner(key) == owner:
            del self._held[key]
