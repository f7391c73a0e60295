"""IST calendar: day boundaries, ranges, reporting periods, range checks, and daily statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tradedesk.kit.calendar import (
    IST,
    DayStats,
    Periods,
    cumulative,
    daily_stats,
    ist_day,
    ist_day_start,
    ist_range,
    periods_for,
    validate_range,
)

D = Decimal


# --- days and ranges -------------------------------------------------------------------------------


def test_late_utc_evening_is_the_next_ist_day() -> None:
    assert ist_day(datetime(2025, 3, 3, 23, 30, tzinfo=UTC)) == date(2025, 3, 4)


def test_ist_midnight_is_18_30_utc() -> None:
    assert ist_day(datetime(2025, 3, 3, 18, 29, 59, tzinfo=UTC)) == date(2025, 3, 3)
    assert ist_day(datetime(2025, 3, 3, 18, 30, tzinfo=UTC)) == date(2025, 3, 4)


def test_ist_day_respects_the_given_offset() -> None:
    assert ist_day(datetime(2025, 3, 4, 0, 0, tzinfo=IST)) == date(2025, 3, 4)
    new_york = timezone(timedelta(hours=-5))
    assert ist_day(datetime(2025, 3, 3, 14, 0, tzinfo=new_york)) == date(2025, 3, 4)


def test_ist_day_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        ist_day(datetime(2025, 3, 3, 12, 0))


def test_ist_day_start_is_utc_aware() -> None:
    start = ist_day_start(date(2025, 3, 4))
    assert start == datetime(2025, 3, 3, 18, 30, tzinfo=UTC)
    assert start.utcoffset() == timedelta(0)
    assert ist_day(start) == date(2025, 3, 4)
    assert ist_day(start - timedelta(microseconds=1)) == date(2025, 3, 3)


def test_ist_range_is_half_open_over_whole_days() -> None:
    assert ist_range(date(2025, 3, 1), date(2025, 3, 3)) == (
        datetime(2025, 2, 28, 18, 30, tzinfo=UTC),
        datetime(2025, 3, 3, 18, 30, tzinfo=UTC),
    )
    assert ist_range(date(2025, 12, 31), date(2025, 12, 31)) == (
        datetime(2025, 12, 30, 18, 30, tzinfo=UTC),
        datetime(2025, 12, 31, 18, 30, tzinfo=UTC),
    )


def test_ist_range_rejects_a_reversed_range() -> None:
    with pytest.raises(ValueError, match="after its last day"):
        ist_range(date(2025, 3, 2), date(2025, 3, 1))


# --- periods ---------------------------------------------------------------------------------------


def test_periods_midweek() -> None:
    # 2025-03-06 is a Thursday.
    assert periods_for(date(2025, 3, 6)) == Periods(
        day=date(2025, 3, 6), week=date(2025, 3, 3), month=date(2025, 3, 1), year=date(2025, 1, 1)
    )


def test_week_starts_on_monday_and_may_cross_month_and_year() -> None:
    assert periods_for(date(2025, 3, 3)).week == date(2025, 3, 3)  # a Monday is its own week start
    assert periods_for(date(2025, 3, 9)).week == date(2025, 3, 3)  # Sunday belongs to that week
    # 2026-01-01 is a Thursday: its week began in December 2025.
    periods = periods_for(date(2026, 1, 1))
    assert periods.week == date(2025, 12, 29)
    assert periods.month == date(2026, 1, 1)
    assert periods.year == date(2026, 1, 1)


def test_year_is_the_calendar_year() -> None:
    assert periods_for(date(2025, 4, 1)).year == date(2025, 1, 1)
    assert periods_for(date(2025, 12, 31)).year == date(2025, 1, 1)


# --- validate_range --------------------------------------------------------------------------------

TODAY = date(2025, 3, 6)


def check(from_day: date | None, to_day: date | None, *, today: date = TODAY) -> tuple[date, date]:
    return validate_range(from_day, to_day, today=today, default_days=30, max_days=366)


def test_missing_days_default_to_a_range_ending_today() -> None:
    assert check(None, None) == (date(2025, 2, 5), TODAY)
    assert check(None, date(2025, 1, 31)) == (date(2025, 1, 2), date(2025, 1, 31))
    assert check(date(2025, 3, 1), None) == (date(2025, 3, 1), TODAY)
    assert check(date(2025, 3, 1), date(2025, 3, 1)) == (date(2025, 3, 1), date(2025, 3, 1))


def test_default_start_does_not_reach_before_2000() -> None:
    assert check(None, date(2000, 1, 10)) == (date(2000, 1, 1), date(2000, 1, 10))


def test_start_after_end_is_rejected() -> None:
    with pytest.raises(ValueError) as caught:
        check(date(2025, 3, 5), date(2025, 3, 4))
    assert str(caught.value) == "The range starts on 2025-03-05, after its last day 2025-03-04."


def test_start_after_default_end_is_rejected() -> None:
    with pytest.raises(ValueError, match="after its last day 2025-03-06"):
        check(date(2025, 3, 7), None)


def test_span_longer_than_max_days_is_rejected() -> None:
    assert check(date(2024, 3, 6), TODAY) == (date(2024, 3, 6), TODAY)  # 366 days: the limit
    with pytest.raises(ValueError) as caught:
        check(date(2024, 3, 5), TODAY)
    assert str(caught.value) == "The range covers 367 days; at most 366 days can be asked for."


def test_day_before_2000_is_rejected() -> None:
    with pytest.raises(ValueError) as caught:
        check(date(1999, 12, 31), date(2000, 1, 5))
    assert str(caught.value) == "1999-12-31 is before 2000-01-01, the earliest day that can be asked for."


def test_day_more_than_a_year_ahead_is_rejected() -> None:
    assert check(date(2026, 3, 1), date(2026, 3, 6)) == (date(2026, 3, 1), date(2026, 3, 6))
    with pytest.raises(ValueError) as caught:
        check(date(2026, 3, 1), date(2026, 3, 7))
    assert str(caught.value) == "2026-03-07 is more than a year after today (2025-03-06)."


def test_a_year_after_29_february_is_28_february() -> None:
    leap = date(2024, 2, 29)
    assert check(date(2025, 2, 1), date(2025, 2, 28), today=leap)[1] == date(2025, 2, 28)
    with pytest.raises(ValueError, match="more than a year after today"):
        check(date(2025, 2, 1), date(2025, 3, 1), today=leap)


def test_default_and_max_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        validate_range(None, None, today=TODAY, default_days=0, max_days=10)


# --- daily statistics ------------------------------------------------------------------------------


def ist(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=IST)


def test_no_trips_give_no_days() -> None:
    assert daily_stats([]) == []
    assert cumulative([]) == []


def test_drawdown_example_from_the_running_peak() -> None:
    (stats,) = daily_stats([(ist(3, 10), D("100")), (ist(3, 11), D("-300")), (ist(3, 12), D("50"))])
    assert stats == DayStats(
        day=date(2025, 3, 3),
        trades=3,
        wins=2,
        losses=1,
        win_rate=D("0.6667"),
        gross_profit=D("150"),
        gross_loss=D("-300"),
        net=D("-150"),
        max_drawdown=D("300"),
    )


def test_drawdown_counts_from_the_day_start_at_zero() -> None:
    (stats,) = daily_stats([(ist(3, 10), D("-40")), (ist(3, 11), D("-60")), (ist(3, 12), D("30"))])
    assert stats.max_drawdown == D("100")
    assert stats.win_rate == D("0.3333")


def test_drawdown_is_zero_when_the_day_only_rises() -> None:
    (stats,) = daily_stats([(ist(3, 10), D("10")), (ist(3, 11), D("5"))])
    assert stats.max_drawdown == D("0")
    assert stats.gross_loss == D("0")
    assert stats.win_rate == D("1.0000")


def test_drawdown_follows_exit_time_not_input_order() -> None:
    # By exit time: +100, -80, -50 -> running 100, 20, -30 -> drawdown 130. In the order given it
    # would be -80, +100, -50 -> drawdown 80.
    trips = [(ist(3, 11), D("-80")), (ist(3, 10), D("100")), (ist(3, 12), D("-50"))]
    assert daily_stats(trips)[0].max_drawdown == D("130")


def test_zero_pnl_trip_is_neither_win_nor_loss() -> None:
    (stats,) = daily_stats([(ist(3, 10), D("0")), (ist(3, 11), D("25.50")), (ist(3, 12), D("-10.25"))])
    assert (stats.trades, stats.wins, stats.losses) == (3, 1, 1)
    assert stats.win_rate == D("0.3333")
    assert stats.gross_profit == D("25.50")
    assert stats.gross_loss == D("-10.25")
    assert stats.net == D("15.25")
    assert stats.max_drawdown == D("10.25")


def test_win_rate_rounds_half_up_to_four_places() -> None:
    # 1 win in 32 trades is 0.03125 exactly: half up gives 0.0313 where half even would give 0.0312.
    trips = [(ist(3, 9), D("1"))] + [(ist(3, 10, m), D("-1")) for m in range(31)]
    assert daily_stats(trips)[0].win_rate == D("0.0313")


def test_trips_are_grouped_by_ist_day_and_sorted() -> None:
    late_utc = datetime(2025, 3, 3, 23, 30, tzinfo=UTC)  # 05:00 IST on 4 March
    trips = [
        (ist(5, 15), D("20")),
        (late_utc, D("-5")),
        (datetime(2025, 3, 3, 18, 29, 59, tzinfo=UTC), D("7")),  # 23:59:59 IST on 3 March
        (ist(4, 10), D("10")),
    ]
    stats = daily_stats(trips)
    assert [(s.day, s.trades, s.net, s.max_drawdown) for s in stats] == [
        (date(2025, 3, 3), 1, D("7"), D("0")),
        (date(2025, 3, 4), 2, D("5"), D("5")),
        (date(2025, 3, 5), 1, D("20"), D("0")),
    ]


def test_daily_stats_reject_naive_exit_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        daily_stats([(ist(3, 10), D("1")), (datetime(2025, 3, 3, 12, 0), D("1"))])


def test_cumulative_runs_a_total() -> None:
    rows = cumulative(
        [(date(2025, 3, 3), D("100")), (date(2025, 3, 4), D("-250.50")), (date(2025, 3, 6), D("75"))]
    )
    assert rows == [
        (date(2025, 3, 3), D("100"), D("100")),
        (date(2025, 3, 4), D("-250.50"), D("-150.50")),
        (date(2025, 3, 6), D("75"), D("-75.50")),
    ]


def test_cumulative_over_daily_stats() -> None:
    stats = daily_stats([(ist(3, 10), D("10")), (ist(4, 10), D("-3")), (ist(4, 11), D("1"))])
    assert cumulative((s.day, s.net) for s in stats) == [
        (date(2025, 3, 3), D("10"), D("10")),
        (date(2025, 3, 4), D("-2"), D("8")),
    ]


def test_cumulative_requires_increasing_days() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        cumulative([(date(2025, 3, 4), D("1")), (date(2025, 3, 4), D("1"))])
