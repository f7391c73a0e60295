"""The per-user live event bus behind ``GET /api/events``: agent status snapshots and agent events, published
by any runtime and read in order, resumable after an id, by the open streams of the same user only. A Redis
stream per user (many processes) or a ring buffer per user (the embedded one-process setup).

How the Redis bus reads: a process runs one reader task, whatever the number of open streams. It holds one
pool connection and issues one ``XREAD BLOCK`` over the stream of every user with a subscriber here, each from
the last id it has handed out, and fans the entries out to bounded per-subscriber buffers. A blocking read
keeps its connection busy, so this bounds what live streams take from the shared pool to one connection per
process. A subscriber whose user is new to the reader appends to the process's own wake-up stream, which the
same ``XREAD`` watches: the read returns at once and is re-issued with the new key. The wake-up stream is read
from the last entry the reader saw, so a wake-up that reaches Redis before the read is not lost, and no admin
command (``CLIENT UNBLOCK``) is needed. The block timeout therefore only bounds how long the reader lingers
after its last subscriber leaves and how long a hung server goes unnoticed: the read's own deadline is the
block plus the client's socket timeout, since the client's timeout alone is shorter than any useful block.

On a Redis Cluster one ``XREAD`` cannot name streams of different slots, and each user's stream has a slot of
its own (``{broker_id}`` is its hash tag). There the reader polls instead: every ``cluster_poll_ms`` it sends
a non-blocking ``XREAD`` per followed stream, all in one pipeline (one round trip to each node, on a pooled
connection), so live streams still take no connection of their own, and an event reaches its browsers
within one poll. A new subscriber needs no wake-up: the next poll includes its stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from itertools import islice
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json, to_jsonable_python
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradedesk.redis import RedisClient, is_cluster

log = logging.getLogger("tradedesk.agents.events")

GAP = "gap"
PUBLISHED_KINDS = frozenset({"agent", "event"})
READER_TASK_NAME = "tradedesk-live-event-reader"

_BROKER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Each half of a Redis stream id is an unsigned 64-bit number: at most 20 digits, and Redis refuses more.
_EVENT_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_U64 = 2**64

Position = tuple[int, int]


class LiveEvent(BaseModel):
    """One message of a user's live stream; ``broker_id`` stays on the server (it is never dumped)."""

    model_config = ConfigDict(frozen=True)

    id: str
    broker_id: str = Field(exclude=True)
    kind: str  # "agent" (an Agent status snapshot), "event" (an Event row), or "gap" (see EventBus.subscribe)
    data: dict[str, Any]


class EventBus(Protocol):
    async def publish(self, broker_id: str, *, kind: str, data: dict[str, Any]) -> str:
        """Append to the user's stream; returns the event's id. ``data`` is stored as JSON (Decimal and
        datetime values arrive as strings), the same for every bus."""
        ...

    def subscribe(self, broker_id: str, *, last_id: str | None) -> AsyncIterator[LiveEvent]:
        """This user's events, in order, strictly after ``last_id``.

        ``last_id=None`` means only events published once iteration has started. When the bus no longer
        holds everything after ``last_id`` (trimmed past ``maxlen``, expired, or an id it never issued, such
        as one from before the in-process bus restarted), the first event is
        ``LiveEvent(kind="gap", id=last_id, data={"last_id": last_id, "oldest_id": <first held id or None>})``
        and the stream goes on from the oldest event held: the caller should reload what it shows.

        The iteration ends (without an error) when the bus closes or when this subscriber fell too far
        behind; either way the caller reconnects with the last id it received. It raises
        ``redis.exceptions.RedisError`` when Redis cannot be reached. Raises ``ValueError`` at once for a
        malformed ``broker_id`` or ``last_id``."""
        ...

    async def close(self) -> None: ...


def valid_event_id(value: str) -> bool:
    """Whether ``value`` (a ``Last-Event-ID`` header) is a stream id: ``<ms>-<seq>``, ASCII digits only."""
    match = _EVENT_ID.fullmatch(value)
    return match is not None and int(match[1]) < _U64 and int(match[2]) < _U64


def stream_key(prefix: str, broker_id: str) -> str:
    # The broker_id is the hash tag: on a Redis Cluster every key of one user lives on one node.
    return f"{prefix}events:{{{_checked_broker_id(broker_id)}}}"


def _checked_broker_id(broker_id: str) -> str:
    if not _BROKER_ID.fullmatch(broker_id):
        raise ValueError(f"not a broker id: {broker_id!r}")
    return broker_id


def _checked_kind(kind: str) -> str:
    if kind not in PUBLISHED_KINDS:
        raise ValueError(f"unknown live event kind {kind!r}; expected one of {sorted(PUBLISHED_KINDS)}")
    return kind


def _position(event_id: str) -> Position:
    if not valid_event_id(event_id):
        raise ValueError(f"not an event id: {event_id!r}")
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def _format(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _gap(broker_id: str, last_id: str, oldest_id: str | None) -> LiveEvent:
    return LiveEvent(
        id=last_id, broker_id=broker_id, kind=GAP, data={"last_id": last_id, "oldest_id": oldest_id}
    )


class _Subscriber:
    """One open stream's buffer on the Redis bus: filled by the reader, drained by the stream."""

    def __init__(self, capacity: int) -> None:
        self.buffer: deque[LiveEvent] = deque()
        self.capacity = capacity
        self.wake = asyncio.Event()
        self.ended = False
        self.failure: BaseException | None = None

    def offer(self, event: LiveEvent) -> bool:
        if len(self.buffer) >= self.capacity:
            # Too slow to keep up: end it rather than buffer without bound. Resuming from its last id loses
            # nothing while the stream still holds what it missed.
            self.end()
            return False
        self.buffer.append(event)
        self.wake.set()
        return True

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def fail(self, exc: BaseException) -> None:
        self.failure = exc
        self.wake.set()


class _Topic:
    """One user's stream as the reader follows it: how far it has read, and who is listening."""

    def __init__(self, broker_id: str, position: Position) -> None:
        self.broker_id = broker_id
        self.position = position
        self.subscribers: set[_Subscriber] = set()


class RedisEventBus:
    """The bus of the distributed setup: a Redis stream per user, ``XADD ... MAXLEN ~ maxlen``, read by one
    reader task per process (see the module docstring). A stream with no new event for ``idle_expiry_s`` is
    removed, so users who stopped trading do not keep ``maxlen`` events in Redis memory. Needs Redis 7
    (``XINFO STREAM`` reports ``entries-added``, which tells a trimmed stream from an untouched one)."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str,
        maxlen: int = 10_000,
        block_ms: int = 1_000,
        buffer: int = 1_000,
        idle_expiry_s: int = 3 * 24 * 3600,
        read_count: int = 200,
        cluster_poll_ms: int = 100,
    ) -> None:
        if min(maxlen, block_ms, buffer, idle_expiry_s, read_count, cluster_poll_ms) < 1:
            raise ValueError(
                "maxlen, block_ms, buffer, idle_expiry_s, read_count and cluster_poll_ms must be positive"
            )
        self._redis = redis
        self._prefix = prefix
        self._maxlen = maxlen
        self._block_ms = block_ms
        self._buffer = buffer
        self._idle_expiry_ms = idle_expiry_s * 1000
        self._read_count = read_count
        self._cluster = is_cluster(redis)
        self._poll_s = cluster_poll_ms / 1000
        socket_timeout_s = redis.get_connection_kwargs().get("socket_timeout")
        self._read_deadline_s = block_ms / 1000 + float(socket_timeout_s or 1.0)
        self._wake_key = f"{prefix}events-wake:{uuid.uuid4().hex}"
        self._wake_id = "0-0"
        self._topics: dict[str, _Topic] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    async def publish(self, broker_id: str, *, kind: str, data: dict[str, Any]) -> str:
        self._check_open()
        key = stream_key(self._prefix, broker_id)
        fields = {"kind": _checked_kind(kind), "data": to_json(data)}
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
            pipe.pexpire(key, self._idle_expiry_ms)
            event_id, _ = await pipe.execute()
        return _text(event_id)

    def subscribe(self, broker_id: str, *, last_id: str | None) -> AsyncGenerator[LiveEvent, None]:
        self._check_open()
        key = stream_key(self._prefix, broker_id)
        after = None if last_id is None else _position(last_id)
        return self._stream(broker_id, key, after)

    async def close(self) -> None:
        """Ends every open stream and stops the reader; the Redis client stays open (its owner closes it)."""
        self._closed = True
        reader, self._reader = self._reader, None
        for topic in self._topics.values():
            for subscriber in topic.subscribers:
                subscriber.end()
        self._topics.clear()
        if reader is not None:
            reader.cancel()
            await asyncio.wait({reader})

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the live event bus is closed")

    async def _stream(
        self, broker_id: str, key: str, after: Position | None
    ) -> AsyncGenerator[LiveEvent, None]:
        tip, oldest_id, trimmed = await self._describe(key)
        gap: LiveEvent | None = None
        if after is None:
            last = tip
        elif after > tip or (trimmed and (oldest_id is None or after < _position(oldest_id))):
            # An id this stream never issued (it expired, or Redis lost it), or one older than what it holds
            # after trimming. Redis does not keep the trimmed ids, so an id that was exactly the last one
            # trimmed also counts as a gap: the caller reloads once more than needed, never once less.
            gap = _gap(broker_id, _format(after), oldest_id)
            last = after if after <= tip else (0, 0)
        else:
            last = after
        if self._closed:
            return
        subscriber = _Subscriber(self._buffer)
        joined_at, wake = self._join(broker_id, key, subscriber, tip)
        try:
            if wake:
                # Otherwise the running XREAD would first wait out its block on the old set of keys.
                await self._wake_reader()
            if gap is not None:
                yield gap
            # The reader hands out only what follows the point where this subscriber joined; what lies
            # between the requested start and that point is read here, page by page.
            while last < joined_at:
                page = await self._redis.xrange(
                    key, min=f"({_format(last)}", max=_format(joined_at), count=500
                )
                if not page:
                    break
                for raw_id, fields in page:
                    last = _position(_text(raw_id))
                    if fields is not None:  # None only for an entry deleted under a consumer group
                        yield _decode(broker_id, _format(last), fields)
            while True:
                while subscriber.buffer:
                    event = subscriber.buffer.popleft()
                    position = _position(event.id)
                    if position <= last:
                        continue  # already read while catching up
                    last = position
                    yield event
                if subscriber.failure is not None:
                    raise RedisConnectionError(
                        f"live events stopped: {subscriber.failure}"
                    ) from subscriber.failure
                if subscriber.ended:
                    return
                subscriber.wake.clear()
                await subscriber.wake.wait()
        finally:
            self._leave(key, subscriber)

    async def _describe(self, key: str) -> tuple[Position, str | None, bool]:
        """The stream's last generated id, its oldest held id, and whether entries were ever trimmed."""
        try:
            info = await self._redis.xinfo_stream(key)
        except ResponseError:
            # XINFO refuses a missing key; a publish may have created it since, so look once more.
            if not await self._redis.exists(key):
                return (0, 0), None, False
            info = await self._redis.xinfo_stream(key)
        first = info.get("first-entry")
        oldest_id = _text(first[0]) if first else None
        trimmed = int(info["entries-added"]) > int(info["length"])
        return _position(_text(info["last-generated-id"])), oldest_id, trimmed

    def _join(
        self, broker_id: str, key: str, subscriber: _Subscriber, tip: Position
    ) -> tuple[Position, bool]:
        """Registers ``subscriber``: the position after which the reader will hand it events, and whether
        the running reader must be woken to add this user's stream to its read."""
        wake = False
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = _Topic(broker_id, tip)
            if self._reader is None:
                reader = self._poll() if self._cluster else self._read()
                self._reader = asyncio.get_running_loop().create_task(reader, name=READER_TASK_NAME)
            else:
                wake = not self._cluster
        topic.subscribers.add(subscriber)
        return topic.position, wake

    async def _wake_reader(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
            pipe.pexpire(self._wake_key, 60_000)
            await pipe.execute()

    def _leave(self, key: str, subscriber: _Subscriber) -> None:
        topic = self._topics.get(key)
        if topic is not None:
            topic.subscribers.discard(subscriber)
            if not topic.subscribers:
                del self._topics[key]

    async def _read(self) -> None:
        assert isinstance(self._redis, Redis)
        pool = self._redis.connection_pool
        connection: AbstractConnection | None = None
        try:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            while self._topics:
                self._dispatch(await self._xread(connection))
            # Decided in the same step as the check above: a subscriber arriving from now on starts a reader.
            self._reader = None
        except Exception as exc:
            self._reader = None
            log.warning("live event reader stopped, ending its streams: %s", exc)
            self._fail_all(exc)
        finally:
            if connection is not None:
                await pool.release(connection)

    async def _xread(self, connection: AbstractConnection) -> Any:
        keys = list(self._topics)
        positions = [_format(self._topics[key].position) for key in keys]
        await connection.send_command(
            "XREAD", "COUNT", self._read_count, "BLOCK", self._block_ms, "STREAMS",
            *keys, self._wake_key, *positions, self._wake_id,
        )  # fmt: skip
        try:
            async with asyncio.timeout(self._read_deadline_s):
                return await connection.read_response(timeout=math.inf)
        except TimeoutError as exc:
            await connection.disconnect(nowait=True)
            raise RedisTimeoutError("Redis did not answer the live event read in time") from exc
        except BaseException:
            # A reply may still be on its way: the connection cannot go back to the pool as it is.
            await connection.disconnect(nowait=True)
            raise

    async def _poll(self) -> None:
        """The reader on a Redis Cluster (see the module docstring)."""
        try:
            while self._topics:
                keys = list(self._topics)
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        position = _format(self._topics[key].position)
                        pipe.execute_command("XREAD", "COUNT", self._read_count, "STREAMS", key, position)
                    replies = await pipe.execute()
                full = False
                for reply in replies:
                    full = full or any(len(entries) >= self._read_count for _, entries in _streams(reply))
                    self._dispatch(reply)
                if not full:  # else a stream has more waiting: read on at once
                    await asyncio.sleep(self._poll_s)
            # Decided in the same step as the check above: a subscriber arriving from now on starts a reader.
            self._reader = None
        except Exception as exc:
            self._reader = None
            log.warning("live event reader stopped, ending its streams: %s", exc)
            self._fail_all(exc)

    def _dispatch(self, reply: Any) -> None:
        for raw_key, entries in _streams(reply):
            key = _text(raw_key)
            if key == self._wake_key:
                if entries:
                    self._wake_id = _text(entries[-1][0])
                continue
            topic = self._topics.get(key)
            if topic is None:
                continue  # its last subscriber left while the read was out
            for raw_id, raw_fields in entries:
                event_id = _text(raw_id)
                position = _position(event_id)
                if position <= topic.position:
                    continue
                topic.position = position
                # Flat name/value pairs as read off the connection; a dict once a client's callback parsed it.
                fields = (
                    raw_fields
                    if isinstance(raw_fields, dict)
                    else dict(zip(raw_fields[::2], raw_fields[1::2], strict=True))
                )
                event = _decode(topic.broker_id, event_id, fields)
                for subscriber in list(topic.subscribers):
                    if not subscriber.offer(event):
                        topic.subscribers.discard(subscriber)
            if not topic.subscribers:
                del self._topics[key]

    def _fail_all(self, exc: BaseException) -> None:
        for topic in self._topics.values():
            for subscriber in topic.subscribers:
                subscriber.fail(exc)
        self._topics.clear()


def _streams(reply: Any) -> Iterable[Any]:
    """The ``(key, entries)`` pairs of an ``XREAD`` reply: a RESP3 map, RESP2 pairs, or nothing new."""
    if not reply:
        return ()
    return reply.items() if isinstance(reply, dict) else reply


def _decode(broker_id: str, event_id: str, fields: dict[Any, Any]) -> LiveEvent:
    values = {_text(name): value for name, value in fields.items()}
    return LiveEvent(
        id=event_id, broker_id=broker_id, kind=_text(values["kind"]), data=json.loads(values["data"])
    )


class _Ring:
    """One user's recent events in the in-process bus; event n has id ``"<n>-0"``."""

    def __init__(self, maxlen: int) -> None:
        self.events: deque[LiveEvent] = deque(maxlen=maxlen)
        self.last_seq = 0
        self.changed = asyncio.Event()

    @property
    def first_seq(self) -> int:
        """The sequence number of the oldest event held (``last_seq + 1`` while empty)."""
        return self.last_seq - len(self.events) + 1

    def notify(self) -> None:
        # A fresh event per change: every waiter of the old one wakes, later waiters wait for the next.
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class MemoryEventBus:
    """The bus of the embedded one-process setup: a ring of the last ``maxlen`` events per user. Readers keep
    no buffer of their own, so a slow one costs nothing; one whose next event left the ring is ended."""

    def __init__(self, maxlen: int = 10_000) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be positive")
        self._maxlen = maxlen
        self._rings: dict[str, _Ring] = {}
        self._closed = False

    async def publish(self, broker_id: str, *, kind: str, data: dict[str, Any]) -> str:
        self._check_open()
        ring = self._ring(_checked_broker_id(broker_id))
        kind = _checked_kind(kind)
        payload = to_jsonable_python(data)  # the same JSON shapes the Redis bus hands back
        ring.last_seq += 1
        event = LiveEvent(id=f"{ring.last_seq}-0", broker_id=broker_id, kind=kind, data=payload)
        ring.events.append(event)
        ring.notify()
        return event.id

    def subscribe(self, broker_id: str, *, last_id: str | None) -> AsyncGenerator[LiveEvent, None]:
        self._check_open()
        _checked_broker_id(broker_id)
        after = None if last_id is None else _position(last_id)
        return self._stream(broker_id, after)

    async def close(self) -> None:
        self._closed = True
        for ring in self._rings.values():
            ring.notify()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the live event bus is closed")

    def _ring(self, broker_id: str) -> _Ring:
        ring = self._rings.get(broker_id)
        if ring is None:
            ring = self._rings[broker_id] = _Ring(self._maxlen)
        return ring

    async def _stream(self, broker_id: str, after: Position | None) -> AsyncGenerator[LiveEvent, None]:
        ring = self._ring(broker_id)
        if after is None:
            last = ring.last_seq
        else:
            # Ids are "<n>-0": an id of the same n with a later sequence still comes after event n.
            last = after[0]
            if last > ring.last_seq or last < ring.first_seq - 1:
                oldest_id = ring.events[0].id if ring.events else None
                yield _gap(broker_id, _format(after), oldest_id)
                last = ring.first_seq - 1
        while not self._closed:
            changed = ring.changed
            index = last - ring.first_seq + 1
            if index < 0:
                return  # its next event has left the ring
            if index < len(ring.events):
                # A snapshot: these were published in order with nothing between them, whatever the ring
                # does while they are being read.
                for event in list(islice(ring.events, index, None)):
                    last += 1
                    yield event
                continue
            await changed.wait()
