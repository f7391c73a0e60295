"""The Redis client: short socket timeouts and no retries, so an outage fails closed within about a second."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def create_redis(url: str, *, timeout_s: float) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
        max_connections=200,
    )


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
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            protocol = await self._connect()
        reply = await self._request(protocol, _pack("GETEX", key, "EX", str(ex)))
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
                            ssl=ssl.create_default_context() if tls else None,
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
