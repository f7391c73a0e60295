"""Historical candles (``GET /instruments/historical/{token}/{interval}``), built from the very minute prices
the quotes show, so the two agree at every instant.

- A minute candle at hh:mm opens at the previous minute's price (the day's first opens at its own), closes at
  that minute's price, its high and low are the larger and smaller of the two, its volume is that minute's.
- Longer intervals aggregate minute candles in bins counted from 09:15 (the day's last bin ends at 15:30).
- A day candle (stamped 00:00 IST) opens at the first minute's price and closes at the close (15:30), the
  price quotes show after the session; its high, low and volume are the quote's for the whole day.
- A candle is shown once its start has been reached. The one in progress stops at the clock's minute: it
  closes at the quote's last price and never reveals a later minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from kitesim.clock import IST
from kitesim.instruments import Instrument, listed_from
from kitesim.market import SESSION_MINUTES, SESSION_OPEN, DayTape, Market, minute_of, trading_day_index


@dataclass(frozen=True, slots=True)
class Interval:
    name: str
    minutes: int  # 0 for day candles
    max_days: int  # the widest from-to span Kite serves in one request


INTERVALS: dict[str, Interval] = {
    interval.name: interval
    for interval in (
        Interval("minute", 1, 60),
        Interval("3minute", 3, 100),
        Interval("5minute", 5, 100),
        Interval("10minute", 10, 100),
        Interval("15minute", 15, 200),
        Interval("30minute", 30, 200),
        Interval("60minute", 60, 400),
        Interval("day", 0, 2000),
    )
}


# "HH:MM:SS+0530" of every session minute, and of midnight (day candles): formatting is the costly part of
# a long run of candles otherwise.
_MINUTE_LABELS = tuple(
    (datetime.combine(date(2000, 1, 3), SESSION_OPEN) + timedelta(minutes=m)).strftime("%H:%M:%S+0530")
    for m in range(SESSION_MINUTES)
)
_MIDNIGHT_LABEL = "00:00:00+0530"


@dataclass(frozen=True, slots=True)
class Candle:
    timestamp: str  # Kite's form, e.g. "2025-01-06T09:15:00+0530"
    open: float
    high: float
    low: float
    close: float
    volume: int

    def as_row(self, *, with_oi: bool = False) -> list[Any]:
        """Kite's wire form: ``[timestamp, open, high, low, close, volume(, oi)]``."""
        row: list[Any] = [self.timestamp, self.open, self.high, self.low, self.close, self.volume]
        return [*row, 0] if with_oi else row


def _bin(tape: DayTape, stamp: str, first: int, last: int) -> Candle:
    """The candle of minutes ``first`` … ``last`` (inclusive) of one day."""
    prices = tape.prices
    opening = prices[first - 1] if first > 0 else prices[0]
    high = low = opening
    for m in range(first, last + 1):
        price = prices[m]
        high = max(high, price)
        low = min(low, price)
    volume = tape.cum_volume[last] - (tape.cum_volume[first - 1] if first > 0 else 0)
    return Candle(timestamp=stamp, open=opening, high=high, low=low, close=prices[last], volume=volume)


def candles_by_day(
    market: Market,
    instrument: Instrument,
    interval: Interval,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Iterator[list[Candle]]:
    """Candles whose start lies in [start, end], up to ``now``, oldest first, one trading day at a time
    (so that a caller can let other work run between days of a long request)."""
    end = min(end, now)
    first_day = start.astimezone(IST).date()
    last_day = end.astimezone(IST).date()
    if instrument.expiry is not None:
        first_day = max(first_day, listed_from(instrument.expiry))
        last_day = min(last_day, instrument.expiry)
    current = minute_of(now)
    day = first_day
    while day <= last_day:
        n = trading_day_index(day)
        if day.weekday() < 5 and n <= current.n:
            # How far day n has gone: all of it (to the 15:30 close), or up to the clock's minute.
            reached = SESSION_MINUTES if n < current.n else current.m
            if interval.minutes:
                yield _intraday(market, instrument, interval.minutes, day, n, reached, start, end)
            else:
                yield [_day_candle(market, instrument, day, n, reached)]
        day += timedelta(days=1)


def candles(
    market: Market,
    instrument: Instrument,
    interval: Interval,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[Candle]:
    return [
        candle
        for day in candles_by_day(market, instrument, interval, start=start, end=end, now=now)
        for candle in day
    ]


def _intraday(
    market: Market,
    instrument: Instrument,
    size: int,
    day: date,
    n: int,
    reached: int,
    start: datetime,
    end: datetime,
) -> list[Candle]:
    last_minute = min(reached, SESSION_MINUTES - 1)
    opening = datetime.combine(day, SESSION_OPEN, tzinfo=IST)
    wanted = [
        first
        for first in range(0, last_minute + 1, size)
        if start <= opening + timedelta(minutes=first) <= end
    ]
    if not wanted:
        return []
    tape = market.tape(instrument, n, last_minute)
    prefix = f"{day.isoformat()}T"
    return [
        _bin(tape, prefix + _MINUTE_LABELS[first], first, min(first + size - 1, last_minute))
        for first in wanted
    ]


def _day_candle(market: Market, instrument: Instrument, day: date, n: int, reached: int) -> Candle:
    stamp = f"{day.isoformat()}T{_MIDNIGHT_LABEL}"
    if reached == SESSION_MINUTES:
        summary = market.day_summary(instrument, n)
        return Candle(
            timestamp=stamp,
            open=summary.open,
            high=summary.high,
            low=summary.low,
            close=summary.close,
            volume=summary.volume,
        )
    tape = market.tape(instrument, n, reached)
    return Candle(
        timestamp=stamp,
        open=tape.prices[0],
        high=tape.highs[reached],
        low=tape.lows[reached],
        close=tape.prices[reached],
        volume=tape.cum_volume[reached],
    )
