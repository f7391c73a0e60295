"""Fixed-window rate limits: in Redis when there is one (shared by every instance), else in process.

In Redis each limit is one key, and counting an attempt is one transaction on that key alone, so it runs
on a Redis Cluster as it does on one server (the key's own slot)."""

from __future__ import annotations

import time
from typing import Protocol

from redis.exceptions import RedisError

from tradedesk.errors import ServiceUnavailable
from tradedesk.redis import RedisClient


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window_s: int) -> int | None:
        """Count one attempt; the seconds to wait when the window's limit is exceeded, else None."""


def rate_limit_key(prefix: str, key: str) -> str:
    return f"{prefix}rl:{key}"


class RedisRateLimiter:
    def __init__(self, redis: RedisClient, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def hit(self, key: str, *, limit: int, window_s: int) -> int | None:
        name = rate_limit_key(self._prefix, key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window_s, nx=True)
                pipe.ttl(name)
                count, _, ttl = await pipe.execute()
        except RedisError as exc:
            raise ServiceUnavailable("Rate limiting is unavailable; try again shortly.") from exc
        return max(1, int(ttl)) if int(count) > limit else None


class MemoryRateLimiter:
    """For the embedded single-process setup; windows are pruned as they expire."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, *, limit: int, window_s: int) -> int | None:
        now = time.monotonic()
        if len(self._windows) > 10_000:
            self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
        ends_at, count = self._windows.get(key, (now + window_s, 0))
        if ends_at <= now:
            ends_at, count = now + window_s, 0
        self._windows[key] = (ends_at, count + 1)
        return max(1, int(ends_at - now)) if count + 1 > limit else None
