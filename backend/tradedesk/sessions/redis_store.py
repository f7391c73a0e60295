"""Sessions in Redis: ``sess:{tag}:<key hash>`` strings with a sliding TTL and a ``usess:{tag}:<broker_id>``
sorted-set index per user. ``tag`` is the user's slot tag (the key hash's first characters), so a user's
sessions and index live in one Redis Cluster slot and change together in one transaction. Reads come from
the process's tracked copy (``TrackedKeys``), so a request costs no Redis command in the steady state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from redis.exceptions import RedisError

from tradedesk.errors import SessionStoreUnavailable
from tradedesk.redis import RedisClient
from tradedesk.redis_tracking import TrackedKeys
from tradedesk.sessions.record import SessionRecord, SessionRecordCodec, slot_tag, slot_tag_of


@asynccontextmanager
async def _redis_guard() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise SessionStoreUnavailable(store="redis") from exc


def _ttl_s(expires_at: datetime, now: datetime) -> int:
    return max(1, int((expires_at - now).total_seconds()) + 1)


class RedisSessionStore:
    def __init__(
        self, redis: RedisClient, *, prefix: str, codec: SessionRecordCodec, timeout_s: float
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._codec = codec
        self.reads = TrackedKeys(redis, prefix=session_key_prefix(prefix), timeout_s=timeout_s)
        # The record last decoded from each tracked value: checking its MAC and parsing it again on every
        # request would cost more than the rest of the read. Records are immutable, so readers share it.
        self._decoded: dict[str, tuple[bytes, SessionRecord]] = {}

    def _key(self, key_hash: str) -> str:
        return session_key(self._prefix, key_hash)

    def _index(self, broker_id: str) -> str:
        return f"{self._prefix}usess:{{{slot_tag(broker_id)}}}:{broker_id}"

    def _forget(self, key: str) -> None:
        """Drop what this process remembers of a key it just changed, ahead of Redis's invalidation."""
        self.reads.forget(key)
        self._decoded.pop(key, None)

    async def create(self, record: SessionRecord, *, expires_at: datetime, now: datetime) -> None:
        index = self._index(record.broker_id)
        async with _redis_guard(), self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(record.key_hash), self._codec.encode(record), ex=_ttl_s(expires_at, now))
            pipe.zadd(index, {record.key_hash: record.absolute_expires_at.timestamp()})
            pipe.zremrangebyscore(index, "-inf", now.timestamp())
            pipe.expireat(index, record.absolute_expires_at, gt=True)
            pipe.expireat(index, record.absolute_expires_at, nx=True)
            await pipe.execute()

    async def load(self, key_hash: str, *, idle_timeout_s: int) -> SessionRecord | None:
        key = self._key(key_hash)
        async with _redis_guard():
            raw = await self.reads.get(key)
        if raw is None:
            return None
        known = self._decoded.get(key)
        if known is not None and known[0] is raw:
            return known[1]
        record = self._codec.decode(raw, key_hash=key_hash)
        if record is not None:
            if len(self._decoded) >= self.reads.max_keys:
                del self._decoded[next(iter(self._decoded))]
            self._decoded[key] = (raw, record)
        return record

    async def save(self, record: SessionRecord, *, expires_at: datetime, now: datetime) -> bool:
        key = self._key(record.key_hash)
        async with _redis_guard():
            done = await self._redis.set(key, self._codec.encode(record), xx=True, ex=_ttl_s(expires_at, now))
        self._forget(key)
        return bool(done)

    async def delete(self, record: SessionRecord) -> None:
        async with _redis_guard(), self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(record.key_hash))
            pipe.zrem(self._index(record.broker_id), record.key_hash)
            await pipe.execute()
        self._forget(self._key(record.key_hash))

    async def _members(self, broker_id: str, now: datetime) -> list[str]:
        index = self._index(broker_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(index, "-inf", now.timestamp())
            pipe.zrange(index, 0, -1)
            _, members = await pipe.execute()
        return [m.decode("ascii") if isinstance(m, bytes) else str(m) for m in members]

    async def list_for_user(self, broker_id: str, *, now: datetime) -> list[SessionRecord]:
        async with _redis_guard():
            members = await self._members(broker_id, now)
            if not members:
                return []
            raws = await self._redis.mget([self._key(m) for m in members])
            records: list[SessionRecord] = []
            gone: list[str] = []
            for member, raw in zip(members, raws, strict=True):
                if raw is None:
                    gone.append(member)
                elif (record := self._codec.decode(raw, key_hash=member)) is not None:
                    records.append(record)
            if gone:
                await self._redis.zrem(self._index(broker_id), *gone)
        return records

    async def delete_for_user(
        self, broker_id: str, *, now: datetime, keep_key_hash: str | None = None
    ) -> int:
        async with _redis_guard():
            members = [m for m in await self._members(broker_id, now) if m != keep_key_hash]
            if not members:
                return 0
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*[self._key(m) for m in members])
                pipe.zrem(self._index(broker_id), *members)
                deleted, _ = await pipe.execute()
        for member in members:
            self._forget(self._key(member))
        return int(deleted)

    async def ping(self) -> None:
        async with _redis_guard():
            await self._redis.ping()

    async def close(self) -> None:
        await self.reads.close()
        await self._redis.aclose()


def session_key_prefix(prefix: str) -> str:
    return f"{prefix}sess:"


def session_key(prefix: str, key_hash: str) -> str:
    return f"{session_key_prefix(prefix)}{{{slot_tag_of(key_hash)}}}:{key_hash}"


def key_hash_of_session_key(prefix: str, key: str) -> str:
    """The key hash a ``session_key`` was made from."""
    return key.rpartition(":")[2] if key.startswith(session_key_prefix(prefix)) else ""
