"""The Redis client: short socket timeouts, so an outage fails closed within about a second, and pooled
connections that died while idle (a Redis restart) replaced on first use instead of failing requests."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
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


def tls_context(params: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS of a ``rediss://`` URL, read the way redis-py reads it (``ssl_ca_certs``, ``ssl_cert_reqs``):
    the server's certificate is verified against the given CA (else the system's) and its name checked,
    unless the URL itself says ``ssl_cert_reqs=none``."""
    context = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
    requirement = str(params.get("ssl_cert_reqs", "required")).lower()
    if requirement in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif requirement in ("optional", "cert_optional"):
        context.verify_mode = ssl.CERT_OPTIONAL
    check = params.get("ssl_check_hostname")
    if (
        check is not None
        and str(check).lower() in ("false", "0", "no")
        and context.verify_mode != ssl.CERT_NONE
    ):
        context.check_hostname = False
    return context


class _RespProtocol(asyncio.Protocol):
    """Replies are matched to waiters in order: Redis answers a connection's commands in sequence."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: deque[asyncio.Future[object]] = deque()
        self.sent_at: deque[float] = deque()
        self.transport: asyncio.Transport | None = None
        self._outbox: list[bytes] = []

    def send(self, packed: bytes, loop: asyncio.AbstractEventLoop) -> None:
        """Queue a command; everything queued in one loop tick leaves in one write, so Redis reads,
        and answers, a whole burst of session reads at once (one wake-up instead of one per request)."""
        if not self._outbox:
            loop.call_soon(self._flush)
        self._outbox.append(packed)

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        if self.transport is not None:
            self.transport.write(b"".join(outbox))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiters.popleft()
            self.sent_at.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(ResponseError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.sent_at.clear()
        error = ConnectionError(f"Redis connection lost: {exc!r}" if exc else "Redis connection closed")
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(error)


def _pack(*parts: str | bytes) -> bytes:
    chunks = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        chunks.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(chunks)


class SessionReadChannel:
    """The session read of every authenticated request: GETEX, pipelined on one dedicated connection.

    Each request writes its one command at once and waits for its own reply; concurrent requests share
    the connection, so there is no pool checkout and no per-command client machinery. Sent through the
    general-purpose client, this single read cost more CPU than the rest of the request. Timeouts and
    lost connections fail the waiting reads with redis-py's own errors, so callers handle one family."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self._params = parse_url(url)
        self._timeout_s = timeout_s
        self._protocol: _RespProtocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._watchdog_task: asyncio.Task[None] | None = None

    async def getex(self, key: str, *, ex: int) -> bytes | None:
        packed = _pack("GETEX", key, "EX", str(ex))
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            reply = await self._request(await self._connect(), packed)
        else:
            try:
                reply = await self._request(protocol, packed)
            except ConnectionError:
                # The connection died while idle (a Redis restart, a proxy's idle timeout) and this read is
                # the first to hear of it. GETEX may run twice harmlessly: send it once more, on a new one.
                reply = await self._request(await self._connect(), packed)
        if reply is None or isinstance(reply, bytes):
            return reply
        raise ResponseError(f"unexpected GETEX reply type {type(reply).__name__}")

    async def _request(self, protocol: _RespProtocol, packed: bytes) -> object:
        transport = protocol.transport
        if transport is None:
            raise ConnectionError("Redis connection closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        protocol.waiters.append(future)
        protocol.sent_at.append(loop.time())
        protocol.send(packed, loop)
        return await future

    async def _watchdog(self, protocol: _RespProtocol) -> None:
        """One timer per connection instead of one per read: when the oldest unanswered command is older
        than the timeout, every waiter fails and the connection is dropped (its replies would be out of
        step). Reads therefore fail within 1.5 x the timeout."""
        loop = asyncio.get_running_loop()
        while protocol.transport is not None:
            await asyncio.sleep(self._timeout_s / 2)
            if protocol.sent_at and loop.time() - protocol.sent_at[0] > self._timeout_s:
                transport = protocol.transport
                error = RedisTimeoutError("Redis did not answer the session read in time")
                while protocol.waiters:
                    waiter = protocol.waiters.popleft()
                    if not waiter.done():
                        waiter.set_exception(error)
                protocol.sent_at.clear()
                if transport is not None:
                    transport.abort()
                return

    async def _connect(self) -> _RespProtocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and self._protocol.transport is not None:
                return self._protocol
            loop = asyncio.get_running_loop()
            params = self._params
            try:
                async with asyncio.timeout(self._timeout_s):
                    if "path" in params:
                        _, protocol = await loop.create_unix_connection(_RespProtocol, str(params["path"]))
                    else:
                        tls = params.get("connection_class") is SSLConnection
                        _, protocol = await loop.create_connection(
                            _RespProtocol,
                            str(params.get("host", "localhost")),
                            int(params.get("port", 6379)),
                            ssl=tls_context(params) if tls else None,
                        )
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(f"cannot reach Redis: {exc!r}") from exc
            self._watchdog_task = loop.create_task(self._watchdog(protocol))
            try:
                async with asyncio.timeout(self._timeout_s):
                    if params.get("password"):
                        auth = [str(params["username"])] if params.get("username") else []
                        await self._request(protocol, _pack("AUTH", *auth, str(params["password"])))
                    if int(params.get("db", 0)):
                        await self._request(protocol, _pack("SELECT", str(params["db"])))
            except TimeoutError as exc:
                if protocol.transport is not None:
                    protocol.transport.abort()
                raise ConnectionError("Redis did not complete the connection handshake") from exc
            self._protocol = protocol
            return protocol

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
            self._watchdog_task = None
