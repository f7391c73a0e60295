"""Time: an injectable clock (tests move it by hand), a clock set by a shared reference, and the IST
calendar of Kite tokens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time as _time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

log = logging.getLogger("tradedesk.clock")

IST = ZoneInfo("Asia/Kolkata")
KITE_TOKEN_EXPIRY_IST = time(6, 0)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; used by tests of expiry rules."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        self._now = when


class Refreshed:
    """Awaits ``refresh`` every ``every_s`` in the background, from ``start`` until ``aclose``: what keeps a
    clock that follows a reference following it. A refresh that fails is logged (``failure`` says what it
    means) and the next one is tried."""

    def __init__(self, refresh: Callable[[], Awaitable[None]], *, every_s: float, failure: str) -> None:
        self._refresh = refresh
        self._every_s = every_s
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self._refresh()
            except Exception as exc:
                log.warning("%s (%s)", self._failure, exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class ReferencedClock:
    """The time of a shared reference (the database's clock), kept by this host's monotonic clock between
    readings: every process that uses it tells the same time, whatever its own wall clock says, so a worker
    on a host whose clock is off still trades, stamps heartbeats and writes events at the time every other
    process sees. Until the first reading (or while none has succeeded) it is this host's wall clock."""

    def __init__(
        self,
        read_reference: Callable[[], Awaitable[datetime]],
        *,
        refresh_s: float = 30.0,
        warn_skew_s: float = 1.0,
        monotonic: Callable[[], float] = _time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._read_reference = read_reference
        self._refreshed = Refreshed(
            self.read,
            every_s=refresh_s,
            failure="the database's clock could not be read; keeping the last reading",
        )
        self._warn_skew_s = warn_skew_s
        self._monotonic = monotonic
        self._wall = wall
        self._base: datetime | None = None
        self._base_mono = 0.0
        self.skew_s = 0.0  # this host's wall clock minus the reference, at the last reading

    def now(self) -> datetime:
        if self._base is None:
            return self._wall()
        return self._base + timedelta(seconds=self._monotonic() - self._base_mono)

    async def read(self) -> None:
        started = self._monotonic()
        reference = await self._read_reference()
        ended = self._monotonic()
        # Half the round trip is the best guess of when the reference read its clock.
        self._base, self._base_mono = reference, (started + ended) / 2
        skew_s = (self._wall() - self.now()).total_seconds()
        if abs(skew_s) >= self._warn_skew_s and abs(skew_s - self.skew_s) >= self._warn_skew_s:
            log.warning(
                "this host's clock is %.1f s %s the database's; times here follow the database",
                abs(skew_s),
                "ahead of" if skew_s > 0 else "behind",
            )
        self.skew_s = skew_s

    async def start(self) -> None:
        try:
            await self.read()
        except Exception as exc:
            log.warning("the database's clock could not be read (%s); using this host's for now", exc)
        self._refreshed.start()

    async def aclose(self) -> None:
        await self._refreshed.aclose()


def next_kite_token_expiry(issued_at: datetime) -> datetime:
    """The first 06:00 IST strictly after ``issued_at``: when Kite kills that day's access tokens."""
    local = issued_at.astimezone(IST)
    candidate = datetime.combine(local.date(), KITE_TOKEN_EXPIRY_IST, tzinfo=IST)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)
