"""Sessions in Redis: ``sess:{sha256}`` strings with a sliding TTL, ``usess:{broker_id}`` sorted-set index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tradedesk.errors import SessionStoreUnavailable
from tradedesk.redis import SessionReadChannel
from tradedesk.sessions.record import SessionRecord, SessionRecordCodec


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
        self, redis: Redis, *, prefix: str, reads: SessionReadChannel, codec: SessionRecordCodec
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._reads = reads
        self._codec = codec

    def _key(self, key_hash: str) -> str:
        return f"{self._prefix}sess:{key_hash}"

    def _index(self, broker_id: str) -> str:
        return f"{self._prefix}usess:{broker_id}"

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
        async with _redis_guard():
            raw = await self._reads.getex(self._key(key_hash), ex=idle_timeout_s)
        return self._codec.decode(raw, key_hash=key_hash) if raw is not None else None

    async def save(self, record: SessionRecord, *, expires_at: datetime) -> bool:
        async with _redis_guard():
            done = await self._redis.set(
                self._key(record.key_hash), self._codec.encode(record), xx=True, keepttl=True
            )
        return bool(done)

    async def delete(self, record: SessionRecord) -> None:
        async with _redis_guard(), self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(record.key_hash))
            pipe.zrem(self._index(record.broker_id), record.key_hash)
            await pipe.execute()

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
        return int(deleted)

    async def ping(self) -> None:
        async with _redis_guard():
            await self._redis.ping()

    async def close(self) -> None:
        await self._reads.close()
        await self._redis.aclose()
