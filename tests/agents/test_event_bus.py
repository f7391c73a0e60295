"""The live event bus: order, resume after an id without gaps or repeats, gaps signalled, one user's events
never reaching another, prompt wake-ups, released resources, and a lost Redis ending streams quickly. Both
buses (Redis and in-process) pass the same contract."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.conftest import REDIS_URL
from tests.procs import free_port
from tests.support.tcp_proxy import TcpProxy
from tradedesk.agents.events import (
    READER_TASK_NAME,
    EventBus,
    LiveEvent,
    MemoryEventBus,
    RedisEventBus,
    stream_key,
    valid_event_id,
)
from tradedesk.redis import create_redis

MakeBus = Callable[..., EventBus]
# Longer than any wait below: a subscriber must never depend on the reader's block running out.
BLOCK_MS = 5_000


def reader_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == READER_TASK_NAME and not task.done()]


async def no_reader_left(within_s: float = 2) -> None:
    async with asyncio.timeout(within_s):
        while reader_tasks():
            await asyncio.sleep(0.02)


@pytest.fixture(params=["redis", "memory"])
async def make_bus(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[MakeBus]:
    """Makes buses of one kind; closes them (and their Redis client) afterwards and checks that no reader
    task outlives them."""
    buses: list[EventBus] = []
    clients: list[Redis] = []

    def make(*, maxlen: int = 10_000, buffer: int = 1_000) -> EventBus:
        bus: EventBus
        if request.param == "memory":
            bus = MemoryEventBus(maxlen=maxlen)
        else:
            redis = create_redis(REDIS_URL, timeout_s=0.5)
            clients.append(redis)
            bus = RedisEventBus(redis, prefix=redis_prefix, maxlen=maxlen, block_ms=BLOCK_MS, buffer=buffer)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()
    for redis in clients:
        await redis.aclose()
    assert reader_tasks() == []


async def take(stream: AsyncIterator[LiveEvent], count: int, *, timeout_s: float = 3.0) -> list[LiveEvent]:
    async with asyncio.timeout(timeout_s):
        return [await anext(stream) for _ in range(count)]


async def nothing_more(stream: AsyncIterator[LiveEvent], *, within_s: float = 0.3) -> bool:
    """Whether the stream stays quiet (it is closed by the wait running out, so call this last)."""
    try:
        await asyncio.wait_for(anext(stream), timeout=within_s)
    except TimeoutError:
        return True
    return False


async def live_all(streams: list[AsyncIterator[LiveEvent]]) -> list[asyncio.Task[LiveEvent]]:
    """Starts reading each stream and gives them time to be established, so that "from now" is before the
    caller's next publish."""

    async def first(stream: AsyncIterator[LiveEvent]) -> LiveEvent:
        return await anext(stream)

    tasks = [asyncio.create_task(first(stream)) for stream in streams]
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in tasks)
    return tasks


async def live(stream: AsyncIterator[LiveEvent]) -> asyncio.Task[LiveEvent]:
    [task] = await live_all([stream])
    return task


async def drain(stream: AsyncIterator[LiveEvent], *, quiet_s: float = 0.2) -> list[LiveEvent]:
    """Everything ``stream`` gives until it stays quiet for ``quiet_s`` (which closes it)."""
    events: list[LiveEvent] = []
    while True:
        try:
            events.append(await asyncio.wait_for(anext(stream), timeout=quiet_s))
        except TimeoutError:
            return events


def seqs(events: list[LiveEvent]) -> list[int]:
    return [int(event.data["n"]) for event in events]


def position(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1733490000000-0", True),
        ("0-0", True),
        ("18446744073709551615-18446744073709551615", True),
        ("18446744073709551616-0", False),
        ("1-", False),
        ("-1", False),
        ("1-0 ", False),
        ("1-0\n", False),
        ("1-0-0", False),
        ("١٢-٣", False),  # digits, but not ASCII ones
        ("$", False),
        ("+", False),
        ("1" * 21 + "-0", False),
        ("", False),
    ],
)
def test_last_event_id_validation(value: str, valid: bool) -> None:
    assert valid_event_id(value) is valid


def test_stream_key_names_the_broker_as_hash_tag() -> None:
    assert stream_key("td:", "AB1234") == "td:events:{AB1234}"
    for crafted in ("AB}x{CD", "AB:1", "", "A" * 33, "AB 12", "ÄB12"):
        with pytest.raises(ValueError):
            stream_key("td:", crafted)


def test_the_broker_id_is_not_serialised() -> None:
    event = LiveEvent(id="5-0", broker_id="AB1234", kind="agent", data={"state": "running"})
    assert event.model_dump() == {"id": "5-0", "kind": "agent", "data": {"state": "running"}}
    assert "AB1234" not in event.model_dump_json()


class TestContract:
    async def test_events_arrive_in_order_and_none_means_only_new_ones(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        await bus.publish("AB1234", kind="event", data={"n": -1})
        async with contextlib.aclosing(bus.subscribe("AB1234", last_id=None)) as stream:
            first = await live(stream)
            ids = [await bus.publish("AB1234", kind="event", data={"n": n}) for n in range(20)]
            events = [await asyncio.wait_for(first, 3), *await take(stream, 19)]
        assert seqs(events) == list(range(20))
        assert [event.id for event in events] == ids
        assert [position(i) for i in ids] == sorted({position(i) for i in ids})
        assert all(valid_event_id(i) for i in ids)
        assert {(event.broker_id, event.kind) for event in events} == {("AB1234", "event")}

    async def test_data_comes_back_as_json(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        await bus.publish("AB1234", kind="agent", data={"id": 7, "pnl": {"today": 1.5}, "tags": ("a", "b")})
        async with contextlib.aclosing(bus.subscribe("AB1234", last_id="0-0")) as stream:
            [event] = await take(stream, 1)
        assert event.kind == "agent"
        assert event.data == {"id": 7, "pnl": {"today": 1.5}, "tags": ["a", "b"]}

    async def test_resume_after_last_id_has_no_gap_and_no_repeat(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        ids = [await bus.publish("AB1234", kind="event", data={"n": n}) for n in range(1, 6)]
        async with contextlib.aclosing(bus.subscribe("AB1234", last_id="0-0")) as stream:
            assert seqs(await take(stream, 2)) == [1, 2]
        stream = bus.subscribe("AB1234", last_id=ids[1])
        try:
            resumed = await take(stream, 3)
            assert seqs(resumed) == [3, 4, 5]
            assert [event.id for event in resumed] == ids[2:]
            for n in (6, 7):
                await bus.publish("AB1234", kind="event", data={"n": n})
            assert seqs(await take(stream, 2)) == [6, 7]
            assert await nothing_more(stream)
        finally:
            await stream.aclose()

    async def test_a_trimmed_last_id_is_signalled_as_a_gap_first(self, make_bus: MakeBus) -> None:
        bus = make_bus(maxlen=10)
        ids = [await bus.publish("AB1234", kind="event", data={"n": n}) for n in range(250)]
        stream = bus.subscribe("AB1234", last_id=ids[0])
        try:
            gap = await anext(stream)
            assert gap.kind == "gap"
            assert gap.data["last_id"] == ids[0]
            oldest = ids.index(gap.data["oldest_id"])
            assert oldest > 1  # the event right after last_id is gone
            held = await take(stream, len(ids) - oldest)
            assert [event.id for event in held] == ids[oldest:]
            assert await nothing_more(stream)
        finally:
            await stream.aclose()
        # A resume from an id still held is no gap.
        async with contextlib.aclosing(bus.subscribe("AB1234", last_id=ids[-3])) as stream:
            assert seqs(await take(stream, 2)) == [248, 249]

    async def test_an_id_the_bus_never_gave_is_a_gap(self, make_bus: MakeBus) -> None:
        """As after the in-process bus restarted, or the stream expired: the caller reloads and reads all."""
        bus = make_bus()
        ids = [await bus.publish("AB1234", kind="event", data={"n": n}) for n in range(3)]
        async with contextlib.aclosing(bus.subscribe("AB1234", last_id="99999999999999-0")) as stream:
            gap, *held = await take(stream, 4)
        assert (gap.kind, gap.data) == ("gap", {"last_id": "99999999999999-0", "oldest_id": ids[0]})
        assert seqs(held) == [0, 1, 2]

    async def test_a_user_sees_only_their_own_events_whatever_the_last_id(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        a_ids, b_ids = [], []
        for n in range(3):
            a_ids.append(await bus.publish("AA0001", kind="event", data={"user": "AA0001", "n": n}))
            b_ids.append(await bus.publish("BB0002", kind="event", data={"user": "BB0002", "n": n}))
        for last_id in ("0-0", a_ids[0], a_ids[-1]):
            events = await drain(bus.subscribe("BB0002", last_id=last_id))
            assert {event.data["user"] for event in events} <= {"BB0002"}
            assert {event.broker_id for event in events} <= {"BB0002"}
            assert [event.id for event in events] == b_ids[len(b_ids) - len(events) :]
            if last_id == "0-0":
                assert len(events) == 3

    async def test_fifty_users_each_see_exactly_their_own(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        users = [f"U{n:05d}" for n in range(50)]
        per_user = 10

        async def read(user: str) -> list[LiveEvent]:
            async with contextlib.aclosing(bus.subscribe(user, last_id="0-0")) as stream:
                return await take(stream, per_user, timeout_s=10)

        readers = [asyncio.create_task(read(user)) for user in users]
        for n in range(per_user):
            await asyncio.gather(
                *(bus.publish(user, kind="event", data={"user": user, "n": n}) for user in users)
            )
            await asyncio.sleep(0)
        results = await asyncio.gather(*readers)
        for user, events in zip(users, results, strict=True):
            assert [(event.data["user"], event.data["n"]) for event in events] == [
                (user, n) for n in range(per_user)
            ]
            assert {event.broker_id for event in events} == {user}

    async def test_a_publish_wakes_a_waiting_subscriber_within_100_ms(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        async with contextlib.aclosing(bus.subscribe("AA0001", last_id=None)) as first:
            waiting = await live(first)
            started = time.monotonic()
            await bus.publish("AA0001", kind="event", data={"n": 0})
            await asyncio.wait_for(waiting, 1)
            latencies = [time.monotonic() - started]
            # A second user arriving while the first one's read is already waiting.
            async with contextlib.aclosing(bus.subscribe("BB0002", last_id=None)) as second:
                for n in range(5):
                    waiting = await live(second)
                    started = time.monotonic()
                    await bus.publish("BB0002", kind="event", data={"n": n})
                    event = await asyncio.wait_for(waiting, 1)
                    latencies.append(time.monotonic() - started)
                    assert event.data == {"n": n}
        assert max(latencies) < 0.1, latencies

    async def test_closed_and_cancelled_subscribers_are_released(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        closed = bus.subscribe("AA0001", last_id=None)
        waiting = await live(closed)
        await bus.publish("AA0001", kind="event", data={"n": 0})
        await asyncio.wait_for(waiting, 1)
        await closed.aclose()
        cancelled = await live(bus.subscribe("BB0002", last_id=None))
        cancelled.cancel()
        await asyncio.wait({cancelled})
        kept = bus.subscribe("AA0001", last_id=None)
        waiting = await live(kept)
        await bus.publish("BB0002", kind="event", data={"n": 0})
        await bus.publish("AA0001", kind="event", data={"n": 1})
        assert (await asyncio.wait_for(waiting, 1)).data == {"n": 1}
        ending = asyncio.create_task(take(kept, 1))
        await asyncio.sleep(0.05)
        await bus.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(ending, 1)
        assert reader_tasks() == []
        with pytest.raises(RuntimeError):
            await bus.publish("AA0001", kind="event", data={})
        with pytest.raises(RuntimeError):
            bus.subscribe("AA0001", last_id=None)

    async def test_a_subscriber_too_far_behind_ends_and_resumes_from_its_last_id(
        self, make_bus: MakeBus
    ) -> None:
        """It is ended rather than buffered without bound; resuming from what it got loses nothing, or
        says so with a gap when the bus no longer holds it."""
        bus = make_bus(maxlen=10, buffer=5)
        stream = bus.subscribe("AA0001", last_id=None)
        waiting = await live(stream)
        ids = [await bus.publish("AA0001", kind="event", data={"n": 0})]
        got = [await asyncio.wait_for(waiting, 1)]
        ids += [await bus.publish("AA0001", kind="event", data={"n": n}) for n in range(1, 200)]
        await asyncio.sleep(0.2)
        async with asyncio.timeout(2):
            got += [event async for event in stream]  # ends by itself
        assert got[0].id == ids[0]
        assert [event.id for event in got] == ids[: len(got)]
        assert len(got) < len(ids)
        async with contextlib.aclosing(bus.subscribe("AA0001", last_id=got[-1].id)) as resumed:
            rest = [event async for event in _until(resumed, ids[-1])]
        if rest[0].kind == "gap":
            assert rest[0].data["last_id"] == got[-1].id
            rest = rest[1:]
            assert [event.id for event in rest] == ids[ids.index(rest[0].id) :]
        else:
            assert [event.id for event in rest] == ids[len(got) :]

    async def test_bad_input_is_refused(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        with pytest.raises(ValueError):
            await bus.publish("AB}x{CD", kind="event", data={})
        with pytest.raises(ValueError):
            await bus.publish("AB1234", kind="gap", data={})
        with pytest.raises(ValueError):
            bus.subscribe("AB:1", last_id=None)
        with pytest.raises(ValueError):
            bus.subscribe("AB1234", last_id="$")


async def _until(stream: AsyncIterator[LiveEvent], last_id: str) -> AsyncIterator[LiveEvent]:
    async with asyncio.timeout(3):
        async for event in stream:
            yield event
            if event.id == last_id:
                return


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    redis = create_redis(REDIS_URL, timeout_s=0.5)
    yield redis
    await redis.aclose()


class TestRedisBus:
    async def test_one_stream_per_user_trimmed_and_expiring(
        self, redis_client: Redis, redis_prefix: str
    ) -> None:
        bus = RedisEventBus(redis_client, prefix=redis_prefix, maxlen=10)
        try:
            for n in range(300):
                await bus.publish("AB1234", kind="event", data={"n": n})
            key = f"{redis_prefix}events:{{AB1234}}"
            assert 10 <= await redis_client.xlen(key) < 300
            assert await redis_client.pttl(key) > 0
            [(_, fields)] = await redis_client.xrevrange(key, count=1)
            assert fields == {b"kind": b"event", b"data": b'{"n":299}'}
        finally:
            await bus.close()

    async def test_one_reader_serves_every_subscriber_and_leaves_with_the_last(
        self, redis_client: Redis, redis_prefix: str
    ) -> None:
        bus = RedisEventBus(redis_client, prefix=redis_prefix, block_ms=200)
        streams = [bus.subscribe(f"U{n:05d}", last_id=None) for n in range(20)]
        try:
            waiting = await live_all(streams)
            assert len(reader_tasks()) == 1
            await asyncio.gather(*(bus.publish(f"U{n:05d}", kind="event", data={"n": n}) for n in range(20)))
            events = await asyncio.wait_for(asyncio.gather(*waiting), 2)
            assert [event.data["n"] for event in events] == list(range(20))
        finally:
            for stream in streams:
                await stream.aclose()
        await no_reader_left()
        # The reader's connection went back to the pool: a new subscriber starts a new reader at once.
        async with contextlib.aclosing(bus.subscribe("U00000", last_id=None)) as stream:
            waiting_again = await live(stream)
            await bus.publish("U00000", kind="event", data={"n": 1})
            assert (await asyncio.wait_for(waiting_again, 1)).data == {"n": 1}
        await bus.close()
        assert reader_tasks() == []

    async def test_unreachable_redis_fails_subscribe_and_publish_fast(self, redis_prefix: str) -> None:
        redis = create_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
        bus = RedisEventBus(redis, prefix=redis_prefix)
        try:
            started = time.monotonic()
            with pytest.raises(RedisError):
                await anext(bus.subscribe("AB1234", last_id=None))
            with pytest.raises(RedisError):
                await bus.publish("AB1234", kind="event", data={})
            assert time.monotonic() - started < 2
        finally:
            await bus.close()
            await redis.aclose()

    async def test_a_hung_redis_fails_subscribe_fast(self, redis_prefix: str) -> None:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # reads and never answers, until the client hangs up
            writer.close()

        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        redis = create_redis(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
        bus = RedisEventBus(redis, prefix=redis_prefix)
        try:
            started = time.monotonic()
            with pytest.raises(RedisError):
                await anext(bus.subscribe("AB1234", last_id="0-0"))
            assert time.monotonic() - started < 2
        finally:
            await bus.close()
            await redis.aclose()
            server.close()
            await server.wait_closed()

    async def test_losing_redis_ends_open_streams_with_an_error(self, redis_prefix: str) -> None:
        upstream_port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
        proxy = await TcpProxy("127.0.0.1", upstream_port).start()
        redis = create_redis(proxy.url_for(REDIS_URL), timeout_s=0.5)
        bus = RedisEventBus(redis, prefix=redis_prefix, block_ms=BLOCK_MS)
        streams = [bus.subscribe(user, last_id=None) for user in ("AA0001", "BB0002")]
        try:
            waiting = await live_all(streams)
            await bus.publish("AA0001", kind="event", data={"n": 0})
            assert (await asyncio.wait_for(waiting[0], 1)).data == {"n": 0}
            still_waiting = asyncio.create_task(take(streams[0], 1))
            started = time.monotonic()
            await proxy.cut()
            for task in (still_waiting, waiting[1]):
                with pytest.raises(RedisError):
                    await asyncio.wait_for(task, 2)
            assert time.monotonic() - started < 2
            await no_reader_left()
        finally:
            for stream in streams:
                await stream.aclose()
            await bus.close()
            await redis.aclose()
            await proxy.aclose()
