"""The simulator's clock (faster than real time, movable by hand) and the IST calendar of Kite tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
TOKEN_EXPIRY_IST = time_of_day(6, 0)


def _require_aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is needed (naive times are ambiguous)")
    return when.astimezone(UTC)


def next_token_expiry(issued_at: datetime) -> datetime:
    """The first 06:00 IST strictly after ``issued_at`` (in UTC): when Kite kills that day's access tokens."""
    local = _require_aware(issued_at).astimezone(IST)
    candidate = datetime.combine(local.date(), TOKEN_EXPIRY_IST, tzinfo=IST)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), TOKEN_EXPIRY_IST, tzinfo=IST)
    return candidate.astimezone(UTC)


def format_ist(when: datetime) -> str:
    """Kite's timestamp format: ``YYYY-MM-DD HH:MM:SS`` in IST, without a zone."""
    return _require_aware(when).astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


class SimClock:
    """Simulated time: ``now = base + real monotonic time elapsed since base * speed``."""

    def __init__(
        self,
        *,
        start: datetime | None = None,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._speed = _check_speed(speed)
        self._base = _require_aware(start) if start is not None else datetime.now(UTC)
        self._base_mono = monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed_s = self._monotonic() - self._base_mono
        return self._base + timedelta(seconds=elapsed_s * self._speed)

    def advance(self, seconds: float) -> datetime:
        # A negative advance is nearly always a sign slip; jumping back is explicit, through set_to.
        if not seconds >= 0:
            raise ValueError("the clock only moves forward; use set_to to jump to an earlier time")
        self._base += timedelta(seconds=seconds)
        return self.now()

    def set_to(self, when: datetime) -> datetime:
        self._base = _require_aware(when)
        self._base_mono = self._monotonic()
        return self._base

    def set_speed(self, speed: float) -> None:
        # Fold the time elapsed at the old speed into the base so that changing speed never jumps the clock.
        checked = _check_speed(speed)
        mono = self._monotonic()
        self._base += timedelta(seconds=(mono - self._base_mono) * self._speed)
        self._base_mono = mono
        self._speed = checked


def _check_speed(speed: float) -> float:
    if not 0 < speed < float("inf"):
        raise ValueError("speed must be a finite number greater than 0")
    return float(speed)
