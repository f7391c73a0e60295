"""The clock a worker keeps from the database's: it tells the reference's time whatever this host's wall
clock says, moves with the monotonic clock between readings, and says when the host's clock is off."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from tradedesk.kit.clock import ReferencedClock

WALL = datetime(2026, 11, 30, 4, 0, 30, tzinfo=UTC)  # this host: 30 s ahead
REFERENCE = datetime(2026, 11, 30, 4, 0, 0, tzinfo=UTC)


class Ticks:
    def __init__(self) -> None:
        self.mono = 1000.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> datetime:
        return WALL + timedelta(seconds=self.mono - 1000.0)


async def test_it_tells_the_references_time_and_moves_with_the_monotonic_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = Ticks()

    async def reference() -> datetime:
        return REFERENCE + timedelta(seconds=ticks.mono - 1000.0)

    clock = ReferencedClock(reference, monotonic=ticks.monotonic, wall=ticks.wall)
    assert clock.now() == WALL  # no reading yet: this host's own time
    with caplog.at_level(logging.WARNING, logger="tradedesk.clock"):
        await clock.read()
    assert clock.now() == REFERENCE
    assert clock.skew_s == pytest.approx(30.0)
    assert "30.0 s ahead of the database's" in caplog.text
    ticks.mono += 90.5
    assert clock.now() == REFERENCE + timedelta(seconds=90.5)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tradedesk.clock"):
        await clock.read()  # the same skew again: said once, not every reading
    assert caplog.text == ""


async def test_a_failed_reading_keeps_the_last_one() -> None:
    ticks = Ticks()
    answers: list[datetime | Exception] = [REFERENCE, OSError("database unreachable")]

    async def reference() -> datetime:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = ReferencedClock(reference, monotonic=ticks.monotonic, wall=ticks.wall)
    await clock.read()
    ticks.mono += 10
    with pytest.raises(OSError):
        await clock.read()
    assert clock.now() == REFERENCE + timedelta(seconds=10)


async def test_it_rereads_in_the_background_past_a_failure_until_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = Ticks()
    calls = 0
    third = asyncio.Event()

    async def reference() -> datetime:
        nonlocal calls
        calls += 1
        if calls == 3:
            third.set()
        if calls == 2:
            raise OSError("database unreachable")
        return REFERENCE + timedelta(seconds=calls)

    clock = ReferencedClock(reference, refresh_s=0.01, monotonic=ticks.monotonic, wall=ticks.wall)
    with caplog.at_level(logging.WARNING, logger="tradedesk.clock"):
        await clock.start()  # the first reading
        await asyncio.wait_for(third.wait(), timeout=2)  # the second fails, the third is read all the same
        await clock.aclose()
    assert "could not be read; keeping the last reading (database unreachable)" in caplog.text
    assert clock.now() >= REFERENCE + timedelta(seconds=3)
    closed_at = calls
    await asyncio.sleep(0.05)
    assert calls == closed_at  # closed: nothing reads any more
