"""The Redis client: short socket timeouts and no retries, so an outage fails closed within about a second."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError


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


class GetexPipeline:
    """Auto-pipelined GETEX on one dedicated connection: while a batch is on the wire, the reads that
    arrive queue up and leave together as the next batch.

    Every authenticated request reads its session with one GETEX; sent one by one through the pooled
    client, that costs more CPU than the rest of the request. Here each request still costs exactly one
    command and waits for one round trip, but the client-side cost is shared by the whole batch."""

    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool
        self._conn: AbstractConnection | None = None
        self._queue: list[tuple[str, int, asyncio.Future[bytes | None]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def getex(self, key: str, *, ex: int) -> bytes | None:
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._queue.append((key, ex, future))
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send(batch)
        finally:
            self._drainer = None

    async def _send(self, batch: list[tuple[str, int, asyncio.Future[bytes | None]]]) -> None:
        try:
            conn = self._conn
            if conn is None:
                conn = self._pool.make_connection()  # type: ignore[no-untyped-call]
                await conn.connect()
                self._conn = conn
            commands = [("GETEX", key, "EX", ex) for key, ex, _ in batch]
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            results = [await conn.read_response() for _ in batch]
        except (RedisError, OSError, asyncio.CancelledError) as exc:
            # A half-read reply stream cannot be reused: drop the connection, fail this batch.
            await self.close()
            error = exc if isinstance(exc, RedisError) else ConnectionError(f"session read failed: {exc!r}")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result if isinstance(result, bytes) or result is None else bytes(result))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect()
