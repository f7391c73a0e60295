"""The Redis client: short socket timeouts, so an outage fails closed within about a second, and pooled
connections that died while idle (a Redis restart) replaced on first use instead of failing requests."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError
from redis.maint_notifications import MaintNotificationsConfig

# Commands that leave Redis in the same state whether they run once or twice, so one that may or may not
# have run before its connection broke can be sent again. A count in the answer (DEL, ZADD) may then be
# lower than the first run's. Everything else (INCR, GETDEL, XADD, SET NX, ...) is sent once: running it
# twice would count an attempt twice, lose a value, or claim what is already held.
_REPEATABLE = frozenset(
    {
        "PING", "GET", "MGET", "GETEX", "EXISTS", "TTL", "PTTL", "MSET", "DEL", "UNLINK",
        "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "HGET", "HMGET", "HGETALL", "HSET",
        "HDEL", "SMEMBERS", "SISMEMBER", "SADD", "SREM", "ZSCORE", "ZCARD", "ZRANGE", "ZRANGEBYSCORE",
        "ZREM", "ZREMRANGEBYSCORE", "XRANGE", "XREVRANGE", "XLEN",
    }
)  # fmt: skip
_SET_ONCE_OPTIONS = frozenset({"NX", "GET"})  # SET ... NX answers whether this call set it


def _word(part: object) -> str:
    return (part.decode("latin-1") if isinstance(part, bytes) else str(part)).upper()


def is_repeatable(args: tuple[Any, ...]) -> bool:
    """Whether the command ``args`` (name first) may be sent again after its connection broke."""
    if not args:
        return False
    name = _word(args[0])
    if name == "SET":
        return not any(_word(option) in _SET_ONCE_OPTIONS for option in args[3:])
    if name == "ZADD":
        return not any(_word(option) == "INCR" for option in args[2:])
    return name in _REPEATABLE


def _broken_connection(exc: ConnectionError) -> bool:
    # Subclasses name other things (authentication, a full pool, a loading server) that a resend won't fix.
    return type(exc) is ConnectionError


class _ResendingPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        try:
            return await super().execute(raise_on_error)
        except ConnectionError as exc:
            if self.watching or not _broken_connection(exc):
                raise
            if not stack or not all(is_repeatable(args) for args, _ in stack):
                raise
            self.command_stack = stack
            return await super().execute(raise_on_error)


class ResendingRedis(Redis):
    """A client that sends a repeatable command (or a pipeline of them) once more, on a fresh connection,
    when its connection turns out to be broken: the one place a connection that died while idle can still
    fail a request, since the pool replaces any it already knows to be closed before handing it out."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except ConnectionError as exc:
            if not _broken_connection(exc) or not is_repeatable(args):
                raise
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _ResendingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def create_redis(url: str, *, timeout_s: float) -> Redis:
    return ResendingRedis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        # No retries inside redis-py: it would also resend INCR and timeouts (a hung Redis must fail fast).
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
        max_connections=200,
        # While maintenance notifications are on (redis-py's "auto" default) the pool skips its check for
        # connections the server has closed, and hands out the ones a Redis restart left dead.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
