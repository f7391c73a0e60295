"""Pending redirect sign-ins: kept between /login and the broker's callback under the sha256 of their
``state``, taken once, and bounded (``pending_signin_max``): each holds an encrypted api_secret until
its callback or expiry, so without a bound anyone could fill the store with them.

Redis admits and stores one atomically (a script over an index scored by expiry); SQL counts its live
rows through the database function that may see them all (row-level security hides them from the app).

In Redis every pending sign-in, and the index, share one hash tag (``pend:{signins}:...``): the bound is
global, so the script that admits one reads the index and writes the payload in one step, and on a Redis
Cluster a script or transaction may only touch keys of one slot. A tag per sign-in would scatter them over
the cluster but leave the index on a slot of its own. They are few (at most ``pending_signin_max``), small
and live for minutes, so one node carries them all easily."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Protocol

from redis.exceptions import RedisError
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.errors import ServiceUnavailable, SessionStoreUnavailable
from tradedesk.models import PendingSignIn
from tradedesk.redis import RedisClient
from tradedesk.sessions.sql_store import is_postgres, purge_expired, session_tables_tx


class TooManySignInsPending(ServiceUnavailable):
    default_detail = "Too many sign-ins are in progress right now; try again shortly."


def _refusal(soonest_expiry: datetime | float | None, now: datetime) -> TooManySignInsPending:
    """Retry-After: until the soonest pending sign-in expires and frees its place."""
    if isinstance(soonest_expiry, datetime):
        wait_s = (soonest_expiry - now).total_seconds()
    elif soonest_expiry is not None:
        wait_s = soonest_expiry - now.timestamp()
    else:
        wait_s = 1
    return TooManySignInsPending(retry_after_s=max(1, math.ceil(wait_s)))


class PendingSignInStore(Protocol):
    async def put(self, key_hash: str, payload: bytes, *, ttl_s: int, now: datetime, bound: int) -> None:
        """Keep a pending sign-in for ``ttl_s``; TooManySignInsPending when ``bound`` are live already."""

    async def take(self, key_hash: str, *, now: datetime) -> bytes | None:
        """Return and delete one atomically (single use); None when unknown or expired."""


# KEYS: the index, the payload key. ARGV: now, expires_at (epoch seconds), member, bound, ttl_s, payload.
# Returns nil when stored, else the soonest expiry in the index.
_PUT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[6], 'EX', ARGV[5], 'NX')
return false
"""


def pending_index_key(prefix: str) -> str:
    return f"{prefix}pend:{{signins}}:index"


def pending_key(prefix: str, key_hash: str) -> str:
    return f"{prefix}pend:{{signins}}:{key_hash}"


class RedisPendingSignIns:
    def __init__(self, redis: RedisClient, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._index = pending_index_key(prefix)
        self._put = redis.register_script(_PUT)

    async def put(self, key_hash: str, payload: bytes, *, ttl_s: int, now: datetime, bound: int) -> None:
        try:
            soonest = await self._put(
                keys=[self._index, pending_key(self._prefix, key_hash)],
                args=[now.timestamp(), now.timestamp() + ttl_s, key_hash, bound, ttl_s, payload],
            )
        except RedisError as exc:
            raise SessionStoreUnavailable(store="redis") from exc
        if soonest is not None:
            raise _refusal(float(soonest), now)

    async def take(self, key_hash: str, *, now: datetime) -> bytes | None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.getdel(pending_key(self._prefix, key_hash))
                pipe.zrem(self._index, key_hash)
                raw, _ = await pipe.execute()
        except RedisError as exc:
            raise SessionStoreUnavailable(store="redis") from exc
        if raw is None:
            return None
        return raw if isinstance(raw, bytes) else str(raw).encode("utf-8")


class SqlPendingSignIns:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def put(self, key_hash: str, payload: bytes, *, ttl_s: int, now: datetime, bound: int) -> None:
        # Check-then-insert: concurrent sign-ins may overshoot the bound by a few (Redis is exact).
        live, soonest_expiry = await self.count(now=now)
        if live >= bound:
            raise _refusal(soonest_expiry, now)
        async with session_tables_tx(self._sessionmaker, session_key=key_hash) as db:
            await purge_expired(db, PendingSignIn, now=now)
            db.add(
                PendingSignIn(
                    key_hash=key_hash,
                    payload=payload.decode("utf-8"),
                    expires_at=now + timedelta(seconds=ttl_s),
                )
            )

    async def take(self, key_hash: str, *, now: datetime) -> bytes | None:
        async with session_tables_tx(self._sessionmaker, session_key=key_hash) as db:
            result = await db.execute(
                delete(PendingSignIn)
                .where(PendingSignIn.key_hash == key_hash)
                .returning(PendingSignIn.payload, PendingSignIn.expires_at)
            )
            row = result.first()
        if row is None:
            return None
        payload, expires_at = row
        if expires_at <= now:
            return None
        return str(payload).encode("utf-8")

    async def count(self, *, now: datetime) -> tuple[int, datetime | None]:
        """Pending sign-ins of every user still live at ``now``, and when the soonest of them expires."""
        async with session_tables_tx(self._sessionmaker) as db:
            if is_postgres(db):
                statement = text("select live, next_expires_at from count_pending_signins(:now)")
                row = (await db.execute(statement, {"now": now})).one()
            else:
                live_rows = select(func.count(), func.min(PendingSignIn.expires_at)).where(
                    PendingSignIn.expires_at > now
                )
                row = (await db.execute(live_rows)).one()
        live, next_expires_at = row
        return int(live), next_expires_at
