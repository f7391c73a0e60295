"""The IST trading-day calendar (days, ranges, reporting periods) and the per-day statistics of
closed round trips that stored aggregates must agree with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
EARLIEST_DAY = date(2000, 1, 1)
# The NSE session, IST (the broker's calendar has no holidays).
MARKET_OPEN = time(9, 15)
MARKET_CLOSE = time(15, 30)

_ZERO = Decimal(0)
_WIN_RATE_STEP = Decimal("0.0001")


def ist_day(at: datetime) -> date:
    """The IST calendar date of an aware datetime (23:30 UTC is already the next day in IST)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} is a naive datetime; a time zone is required.")
    return at.astimezone(IST).date()


def market_open(at: datetime) -> bool:
    """Whether ``at`` falls in a session: a weekday, from 09:15 up to (not including) 15:30 IST."""
    local = at.astimezone(IST)
    return local.weekday() < 5 and MARKET_OPEN <= local.time() < MARKET_CLOSE


def ist_day_start(day: date) -> datetime:
    """00:00 IST of ``day``, as an aware UTC datetime."""
    return datetime.combine(day, time(0), tzinfo=IST).astimezone(UTC)


def ist_range(from_day: date, to_day: date) -> tuple[datetime, datetime]:
    """The UTC half-open interval [start of ``from_day``, start of the day after ``to_day``) in IST."""
    if from_day > to_day:
        raise ValueError(f"The range starts on {from_day}, after its last day {to_day}.")
    return ist_day_start(from_day), ist_day_start(to_day + timedelta(days=1))


@dataclass(frozen=True, slots=True)
class Periods:
    """First days of the periods that contain ``day``: Monday week, calendar month and year."""

    day: date
    week: date
    month: date
    year: date


def periods_for(today: date) -> Periods:
    return Periods(
        day=today,
        week=today - timedelta(days=today.weekday()),
        month=today.replace(day=1),
        year=today.replace(month=1, day=1),
    )


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        # 29 February has no twin next year.
        return day.replace(year=day.year + 1, day=28)


def validate_range(
    from_day: date | None,
    to_day: date | None,
    *,
    today: date,
    default_days: int,
    max_days: int,
) -> tuple[date, date]:
    """Fill in and check an inclusive range of IST days asked for by a user.

    A missing end is ``today``; a missing start makes the range ``default_days`` long (never reaching
    before the earliest day served). Raises ValueError with a sentence fit to show the user.
    """
    if default_days < 1 or max_days < 1:
        raise ValueError("default_days and max_days must both be at least 1.")
    end = today if to_day is None else to_day
    latest = _one_year_after(today)

    def check(day: date) -> None:
        if day < EARLIEST_DAY:
            raise ValueError(f"{day} is before {EARLIEST_DAY}, the earliest day that can be asked for.")
        if day > latest:
            raise ValueError(f"{day} is more than a year after today ({today}).")

    # The end is checked before a default start is counted back from it: near the calendar's first day
    # that subtraction would leave the calendar.
    check(end)
    start = max(end - timedelta(days=default_days - 1), EARLIEST_DAY) if from_day is None else from_day
    check(start)
    if start > end:
        raise ValueError(f"The range starts on {start}, after its last day {end}.")
    span_days = (end - start).days + 1
    if span_days > max_days:
        raise ValueError(f"The range covers {span_days} days; at most {max_days} days can be asked for.")
    return start, end


@dataclass(frozen=True, slots=True)
class DayStats:
    day: date
    trades: int
    wins: int
    losses: int
    win_rate: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    net: Decimal
    max_drawdown: Decimal


def win_rate(wins: int, count: int) -> Decimal:
    """wins / count to 4 places, 0 with no trades; rounded half up, as PostgreSQL's round(numeric, 4) does."""
    if count == 0:
        return _ZERO.quantize(_WIN_RATE_STEP)
    return (Decimal(wins) / Decimal(count)).quantize(_WIN_RATE_STEP, rounding=ROUND_HALF_UP)


def _day_stats(day: date, pnls: list[Decimal]) -> DayStats:
    wins = sum(1 for pnl in pnls if pnl > 0)
    losses = sum(1 for pnl in pnls if pnl < 0)
    running = peak = drawdown = _ZERO
    for pnl in pnls:
        running += pnl
        peak = max(peak, running)
        drawdown = max(drawdown, peak - running)
    return DayStats(
        day=day,
        trades=len(pnls),
        wins=wins,
        losses=losses,
        win_rate=win_rate(wins, len(pnls)),
        gross_profit=sum((pnl for pnl in pnls if pnl > 0), _ZERO),
        gross_loss=sum((pnl for pnl in pnls if pnl < 0), _ZERO),
        net=sum(pnls, _ZERO),
        max_drawdown=drawdown,
    )


def daily_stats(trips: Iterable[tuple[datetime, Decimal]]) -> list[DayStats]:
    """Statistics per IST day of closed trips given as ``(exit_at, realised_pnl)``, sorted by day.

    The drawdown follows the trips in ``exit_at`` order (trips closed at the same instant keep the
    order given) and counts from the day's start at zero.
    """
    # The day is taken before sorting so a naive datetime fails with ValueError, not a TypeError.
    dated = [(ist_day(exit_at), exit_at, pnl) for exit_at, pnl in trips]
    dated.sort(key=lambda trip: trip[1])
    by_day: dict[date, list[Decimal]] = {}
    for day, _, pnl in dated:
        by_day.setdefault(day, []).append(pnl)
    return [_day_stats(day, by_day[day]) for day in sorted(by_day)]


def cumulative(days: Iterable[tuple[date, Decimal]]) -> list[tuple[date, Decimal, Decimal]]:
    """``(day, net, running total)`` for days given in strictly increasing order."""
    rows: list[tuple[date, Decimal, Decimal]] = []
    total = _ZERO
    for day, net in days:
        if rows and day <= rows[-1][0]:
            raise ValueError(f"Days must be strictly increasing; {day} follows {rows[-1][0]}.")
        total += net
        rows.append((day, net, total))
    return rows
