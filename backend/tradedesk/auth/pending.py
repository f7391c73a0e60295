"""The bound on pending redirect sign-ins (``pending_signin_max``). Each one holds an encrypted api_secret
until its callback or expiry, so without a bound anyone could fill the store with them.

Redis keeps an index of pending sign-ins scored by expiry (admitted atomically by a script); the SQL
store counts its live rows through the database function that may see them all."""

from __future__ import annotations

import math
from datetime import datetime

from redis.exceptions import RedisError

from tradedesk.errors import ServiceUnavailable, SessionStoreUnavailable
from tradedesk.sessions.sql_store import SqlSessionStore
from tradedesk.state import AppState


class TooManySignInsPending(ServiceUnavailable):
    default_detail = "Too many sign-ins are in progress right now; try again shortly."


# KEYS[1]: the index. ARGV: now, expires_at (epoch seconds), member, bound, ttl_s.
# Returns nil when admitted, else the soonest expiry in the index.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return false
"""


def _index(app: AppState) -> str:
    return f"{app.settings.redis_key_prefix}pend-index"


def _refusal(soonest_expiry: datetime | float | None, now: datetime) -> TooManySignInsPending:
    if isinstance(soonest_expiry, datetime):
        wait_s = (soonest_expiry - now).total_seconds()
    elif soonest_expiry is not None:
        wait_s = soonest_expiry - now.timestamp()
    else:
        wait_s = 1
    return TooManySignInsPending(retry_after_s=max(1, math.ceil(wait_s)))


async def admit(app: AppState, *, key_hash: str, now: datetime, ttl_s: int) -> None:
    """Take a place for a new pending sign-in, or raise TooManySignInsPending (503, Retry-After: until
    the soonest pending one expires)."""
    bound = app.settings.pending_signin_max
    if app.redis is not None:
        expires_at = now.timestamp() + ttl_s
        try:
            soonest = await app.redis.register_script(_ADMIT)(
                keys=[_index(app)], args=[now.timestamp(), expires_at, key_hash, bound, ttl_s]
            )
        except RedisError as exc:
            raise SessionStoreUnavailable(store="redis") from exc
        if soonest is not None:
            raise _refusal(float(soonest), now)
        return
    store = app.sessions.store
    assert isinstance(store, SqlSessionStore), "without Redis, sessions are kept in SQL"
    live, soonest_expiry = await store.count_pending(now=now)
    if live >= bound:
        raise _refusal(soonest_expiry, now)


async def release(app: AppState, *, key_hash: str) -> None:
    """Give back the place of a pending sign-in that was consumed (the SQL row went with it)."""
    if app.redis is not None:
        try:
            await app.redis.zrem(_index(app), key_hash)
        except RedisError as exc:
            raise SessionStoreUnavailable(store="redis") from exc
