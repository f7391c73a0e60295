"""A process-local copy of the Redis keys under one prefix, kept honest by Redis itself: a connection of its
own turns on RESP3 client tracking in broadcast mode for the prefix, and every change any client makes to such
a key (a write, a delete, an expiry, a flush) drops it here. While that connection is not known to be alive,
nothing is kept and every read goes to Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

logger = logging.getLogger(__name__)

_MISSING = object()


@dataclass
class TrackingStats:
    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    flushes: int = 0


def _tracking_connection(
    connection_class: type[AbstractConnection], connection_kwargs: Mapping[str, Any]
) -> AbstractConnection:
    """A connection like the client's own (address, TLS, credentials, timeouts; for Sentinel, the current
    master) that speaks RESP3, the protocol invalidation messages arrive in."""
    return connection_class(**{**connection_kwargs, "protocol": 3})


class TrackedKeys:
    """Reads of keys under ``prefix``: answered from memory while invalidation messages flow, from Redis
    otherwise. Staleness is bounded by the invalidation's trip from Redis (well under the 100 ms a revoke may
    take to reach every instance); a hung Redis is noticed by a heartbeat within 1.5 x ``timeout_s``, and a
    closed connection at once, and either empties the copy before the next read.

    A value read from Redis is kept only if no invalidation (of any key) and no loss of the tracking
    connection happened while the read was in flight: the read and the invalidation travel on different
    connections, so one about a write just after the read can arrive before the read's reply."""

    def __init__(
        self, redis: Redis | RedisCluster, *, prefix: str, timeout_s: float, max_keys: int = 100_000
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._timeout_s = timeout_s
        self.max_keys = max_keys
        self._values: dict[str, bytes | None] = {}
        self._generation = 0
        self._live = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = TrackingStats()

    @property
    def live(self) -> bool:
        """Whether reads are being answered from memory (invalidation messages are flowing)."""
        return self._live

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, key: str) -> bytes | None:
        value = self._values.get(key, _MISSING) if self._live else _MISSING
        if value is not _MISSING:
            self.stats.hits += 1
            return value  # type: ignore[return-value]
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._track(), name="redis-tracking")
        self.stats.misses += 1
        generation = self._generation
        raw = await self._redis.get(key)
        value = raw if raw is None or isinstance(raw, bytes) else str(raw).encode("utf-8")
        if self._live and generation == self._generation:
            if len(self._values) >= self.max_keys:
                del self._values[next(iter(self._values))]
            self._values[key] = value
        return value

    def forget(self, key: str) -> None:
        """Drop one key at once, ahead of its invalidation message (after this process changed it)."""
        self._generation += 1
        self._values.pop(key, None)

    def _flush(self) -> None:
        self._generation += 1
        if self._values:
            self.stats.flushes += 1
        self._values.clear()

    async def _on_invalidate(self, message: list[Any]) -> None:
        self._generation += 1
        keys = message[1] if len(message) > 1 else None
        if keys is None:  # FLUSHDB / FLUSHALL, or the server's tracking table overflowed
            self._flush()
            return
        for key in keys:
            self.stats.invalidations += 1
            self._values.pop(key.decode("utf-8") if isinstance(key, bytes) else str(key), None)

    async def _track(self) -> None:
        backoff_s = self._timeout_s / 2
        while not self._closed:
            try:
                await self._listen_all()
            except (RedisError, OSError, TimeoutError) as exc:
                if self._live:
                    logger.warning("session cache off: lost Redis invalidation messages (%s)", exc)
            finally:
                was_live, self._live = self._live, False
                self._flush()
            backoff_s = self._timeout_s / 2 if was_live else min(backoff_s * 2, 2.0)
            await asyncio.sleep(backoff_s)

    async def _listen_all(self) -> None:
        """One tracking connection per primary; the copy is trusted only while every one of them is alive."""
        if isinstance(self._redis, RedisCluster):
            await self._redis.initialize()
            connections = [
                _tracking_connection(
                    node.connection_class, {**node.connection_kwargs, "host": node.host, "port": node.port}
                )
                for node in self._redis.get_primaries()
            ]
        else:
            pool = self._redis.connection_pool
            connections = [_tracking_connection(pool.connection_class, pool.connection_kwargs)]
        try:
            for connection in connections:
                await self._subscribe(connection)
            self._flush()
            self._live = True
            logger.info("session cache on: tracking %s on %d Redis node(s)", self._prefix, len(connections))
            await _first_failure([self._heartbeat(connection) for connection in connections])
        finally:
            for connection in connections:
                with contextlib.suppress(Exception):
                    await connection.disconnect(nowait=True)

    async def _subscribe(self, connection: AbstractConnection) -> None:
        await connection.connect()  # type: ignore[no-untyped-call]
        cast(Any, connection._parser).set_invalidation_push_handler(self._on_invalidate)
        await connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self._prefix)
        reply = await connection.read_response(timeout=self._timeout_s)
        if reply not in (b"OK", "OK"):
            raise ResponseError(f"CLIENT TRACKING was refused: {reply!r}")

    async def _heartbeat(self, connection: AbstractConnection) -> None:
        """Reads invalidation messages, and sends a PING whenever half the timeout passed without one: a
        Redis that stops answering is taken for gone within 1.5 x the timeout."""
        loop = asyncio.get_running_loop()
        interval_s = self._timeout_s / 2
        pinged_at = loop.time()
        while not self._closed:
            await connection.read_response(timeout=interval_s, push_request=True)
            if loop.time() - pinged_at < interval_s:
                continue
            await connection.send_command("PING")
            if await connection.read_response(timeout=self._timeout_s) is None:
                raise TimeoutError("Redis did not answer the tracking connection's PING in time")
            pinged_at = loop.time()

    async def close(self) -> None:
        self._closed = True
        self._live = False
        self._flush()
        task, self._task = self._task, None
        if task is not None:
            # The loops also stop on ``_closed``: redis-py's timed reads can take a cancellation that lands
            # as their timeout expires for that timeout, and carry on.
            task.cancel()
            await asyncio.wait({task}, timeout=self._timeout_s * 2)
            if not task.done():
                logger.warning("the Redis tracking connection did not close in time")


async def _first_failure(coroutines: list[Awaitable[None]]) -> None:
    """Runs the coroutines until one of them ends; the rest are cancelled and its error raised."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
