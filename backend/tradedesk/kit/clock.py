"""Time: an injectable clock (tests move it by hand) and the IST calendar of Kite tokens."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

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


def next_kite_token_expiry(issued_at: datetime) -> datetime:
    """The first 06:00 IST strictly after ``issued_at``: when Kite kills that day's access tokens."""
    local = issued_at.astimezone(IST)
    candidate = datetime.combine(local.date(), KITE_TOKEN_EXPIRY_IST, tzinfo=IST)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)
