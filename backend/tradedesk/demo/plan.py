"""What the demo history holds, as plain data and functions: who trades it with which parameters, on
which past trading days, when their agents decide, and which days an account already has."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel

from tradedesk.kit.calendar import IST, MARKET_OPEN, ist_day

STRATEGY = "short_strangle"
# Past trading days traded when not told otherwise: three weeks.
DEFAULT_DAYS = 15
# Each day: sign in at the open, decide on the grid below, stop the agent once every square-off (the
# strategy's and the broker's at 15:20) is behind it, then sync and sign out.
SIGN_IN_AT = time(9, 15)
FIRST_DECISION_AT = time(9, 20)
DAY_END_AT = time(15, 25)
# A decision every quarter of an hour, at each time of day the parameters name (the entry, the
# square-off) and a minute after one that sent a MARKET order (which fills at once: the fill is guarded
# by its stop, a leg bought back is settled). Stops rest at the broker and fire on their own minute; the
# decisions that matter come on time, at a fraction of the cost of deciding every minute.
DECISION_GRID_MIN = 15
FOLLOW_UP = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class DemoTrader:
    """A demo account of kitesim and the short strangle parameters it trades the history with."""

    user_id: str
    params: Mapping[str, Any] = field(default_factory=dict)


# Three temperaments, so that the histories differ: the shipped rules on a looser price match, a bigger
# book that books profit early, and a lopsided book with stops by weekday that squares off early. (DEMO02
# and DEMO04 sit this out: their margin cannot carry a strangle of one lot a side, which kitesim prices
# at about 2.2 lakh a lot sold.)
DEMO_TRADERS: tuple[DemoTrader, ...] = (
    DemoTrader("DEMO01", {"max_price_diff_pct": 5.0}),
    DemoTrader(
        "DEMO03",
        {
            "call_lots": 2,
            "put_lots": 2,
            "entry_time": "09:45",
            "max_price_diff_pct": 4.0,
            "first_profit_points": 20.0,
            "second_profit_points": 30.0,
            "lock_points": 8.0,
        },
    ),
    DemoTrader(
        "DEMO05",
        {
            "call_lots": 2,
            "put_lots": 1,
            "entry_time": "09:35",
            "max_price_diff_pct": 5.0,
            "square_off_time": "15:10",
            "stop_loss_pct": {"mon": 25.0, "tue": 25.0, "wed": 30.0, "thu": 40.0, "fri": 30.0},
            "max_stop_loss_reentries": 3,
        },
    ),
)


def history_days(today: date, count: int) -> list[date]:
    """The ``count`` trading days (Monday to Friday: the broker's calendar has no holidays) before ``today``,
    oldest first."""
    days: list[date] = []
    day = today
    while len(days) < count:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days[::-1]


def at_ist(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=IST)


def next_decision(at: datetime, *, sent_orders: bool, marks: Iterable[time] = ()) -> datetime:
    """When the agents decide next: a minute on after a decision that sent orders; otherwise at the next
    point of the grid counted from the open, or at a time of day in ``marks`` if one comes first (an
    entry or square-off time is met exactly)."""
    if sent_orders:
        return at + FOLLOW_UP
    local = at.astimezone(IST)
    opening = at_ist(local.date(), MARKET_OPEN)
    minutes = int((local - opening).total_seconds() // 60)
    grid = opening + timedelta(minutes=(minutes // DECISION_GRID_MIN + 1) * DECISION_GRID_MIN)
    later = [at_ist(local.date(), mark) for mark in marks if at_ist(local.date(), mark) > at]
    return min([grid, *later])


def times_of_day(params: BaseModel) -> list[time]:
    """The times of day a strategy's parameters name (for the short strangle: entry, entry deadline,
    last re-entry, square-off)."""
    values = (getattr(params, name) for name in type(params).model_fields)
    return sorted({value for value in values if isinstance(value, time)})


@dataclass(frozen=True, slots=True)
class AgentRun:
    """An agent of the history's strategy as the account's records show it."""

    started_at: datetime
    stopped_at: datetime | None


def days_done(fill_days: Iterable[date], agents: Iterable[AgentRun]) -> set[date]:
    """The days an account already has: a day with synced fills, or one whose agent ran the whole
    trading day (started that day, stopped at the day's end or later that day: a day the strategy found
    nothing to sell). An agent stopped earlier, or on a later day, was cut off by an interrupted run
    before its day was synced; that day is traded again."""
    done = set(fill_days)
    for agent in agents:
        if agent.stopped_at is None:
            continue
        day = ist_day(agent.started_at)
        if ist_day(agent.stopped_at) == day and agent.stopped_at >= at_ist(day, DAY_END_AT):
            done.add(day)
    return done
