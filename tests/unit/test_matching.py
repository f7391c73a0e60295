"""FIFO round-trip matching: worked examples, tag reading, input checks, and properties against an
independent unit-by-unit oracle."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradedesk.trading.matching import (
    ClosedTrip,
    Execution,
    OpenLot,
    Side,
    UnusableInput,
    execution_order,
    exit_reason_of,
    match_fifo,
    strategy_of,
)

T0 = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)


def fill(
    trade_id: str,
    side: Side,
    quantity: int,
    price: str,
    minute: int,
    *,
    order_type: str | None = "MARKET",
    tag: str | None = None,
) -> Execution:
    return Execution(
        trade_id=trade_id,
        side=side,
        quantity=quantity,
        price=Decimal(price),
        at=T0 + timedelta(minutes=minute),
        order_type=order_type,
        tag=tag,
    )


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


# --- worked examples -------------------------------------------------------------------------------


def test_simple_long_round_trip() -> None:
    lots, trips = match_fifo([], [fill("1", "BUY", 10, "100.50", 0), fill("2", "SELL", 10, "103.25", 5)])
    assert lots == []
    assert trips == [
        ClosedTrip(
            direction="LONG",
            quantity=10,
            entry_price=Decimal("100.50"),
            entry_at=at(0),
            entry_trade_id="1",
            exit_price=Decimal("103.25"),
            exit_at=at(5),
            exit_trade_id="2",
            realised_pnl=Decimal("27.50"),
            exit_reason="manual",
            strategy=None,
        )
    ]


def test_option_sold_first_then_bought_back_is_a_short_trip() -> None:
    lots, trips = match_fifo(
        [],
        [
            fill("s1", "SELL", 75, "120.00", 0, order_type="LIMIT", tag="strangle:entry"),
            fill("b1", "BUY", 75, "80.40", 30, order_type="LIMIT", tag="strangle:target"),
        ],
    )
    assert lots == []
    (trip,) = trips
    assert trip.direction == "SHORT"
    assert trip.quantity == 75
    assert trip.realised_pnl == Decimal("2970.00")  # (120.00 - 80.40) * 75
    assert trip.exit_reason == "target"
    assert trip.strategy == "strangle"


def test_short_trip_that_loses_has_negative_pnl() -> None:
    _, trips = match_fifo(
        [], [fill("s", "SELL", 50, "10.00", 0), fill("b", "BUY", 50, "14.05", 1, order_type="SL-M")]
    )
    assert trips[0].realised_pnl == Decimal("-202.50")
    assert trips[0].exit_reason == "stop_loss"


def test_partial_exits_split_the_lot_and_keep_its_entry() -> None:
    lots, trips = match_fifo(
        [],
        [
            fill("b", "BUY", 100, "50.00", 0, tag="sma:entry"),
            fill("s1", "SELL", 30, "52.00", 1),
            fill("s2", "SELL", 50, "49.00", 2),
        ],
    )
    assert [(t.quantity, t.exit_trade_id, t.realised_pnl) for t in trips] == [
        (30, "s1", Decimal("60.00")),
        (50, "s2", Decimal("-50.00")),
    ]
    assert all(t.entry_trade_id == "b" and t.entry_at == at(0) for t in trips)
    assert lots == [OpenLot("LONG", 20, Decimal("50.00"), at(0), "b", "sma")]


def test_partial_entries_are_closed_by_one_exit_in_fifo_order() -> None:
    lots, trips = match_fifo(
        [],
        [
            fill("b1", "BUY", 25, "10.00", 0),
            fill("b2", "BUY", 25, "11.00", 1),
            fill("b3", "BUY", 25, "12.00", 2),
            fill("s", "SELL", 60, "13.00", 3),
        ],
    )
    assert [(t.entry_trade_id, t.quantity, t.entry_price, t.realised_pnl) for t in trips] == [
        ("b1", 25, Decimal("10.00"), Decimal("75.00")),
        ("b2", 25, Decimal("11.00"), Decimal("50.00")),
        ("b3", 10, Decimal("12.00"), Decimal("10.00")),
    ]
    assert lots == [OpenLot("LONG", 15, Decimal("12.00"), at(2), "b3", None)]


def test_reversal_closes_everything_and_opens_the_rest_the_other_way() -> None:
    lots, trips = match_fifo(
        [],
        [
            fill("b1", "BUY", 10, "100", 0, tag="sma:entry"),
            fill("b2", "BUY", 5, "102", 1, tag="sma:add"),
            fill("s", "SELL", 40, "105", 2, tag="rev:flip"),
        ],
    )
    assert [(t.entry_trade_id, t.quantity, t.realised_pnl, t.strategy, t.exit_reason) for t in trips] == [
        ("b1", 10, Decimal("50"), "sma", "flip"),
        ("b2", 5, Decimal("15"), "sma", "flip"),
    ]
    assert lots == [OpenLot("SHORT", 25, Decimal("105"), at(2), "s", "rev")]

    lots, trips = match_fifo(lots, [fill("b3", "BUY", 25, "101", 3, order_type="SL")])
    assert lots == []
    assert [(t.direction, t.realised_pnl, t.exit_reason, t.strategy) for t in trips] == [
        ("SHORT", Decimal("100"), "stop_loss", "rev")
    ]


def test_several_lots_with_different_prices_close_oldest_first() -> None:
    executions = [
        fill("s1", "SELL", 75, "200.00", 0),
        fill("s2", "SELL", 150, "180.00", 1),
        fill("s3", "SELL", 75, "220.00", 2),
        fill("b1", "BUY", 100, "150.00", 3),
        fill("b2", "BUY", 150, "190.00", 4),
    ]
    lots, trips = match_fifo([], executions)
    assert [(t.entry_trade_id, t.exit_trade_id, t.quantity, t.realised_pnl) for t in trips] == [
        ("s1", "b1", 75, Decimal("3750.00")),
        ("s2", "b1", 25, Decimal("750.00")),
        ("s2", "b2", 125, Decimal("-1250.00")),
        ("s3", "b2", 25, Decimal("750.00")),
    ]
    assert lots == [OpenLot("SHORT", 50, Decimal("220.00"), at(2), "s3", None)]


def test_same_side_execution_adds_a_lot_at_the_end() -> None:
    start = [OpenLot("LONG", 5, Decimal("1.00"), at(0), "old", "x")]
    lots, trips = match_fifo(start, [fill("new", "BUY", 3, "2.00", 1, tag="y:entry")])
    assert trips == []
    assert lots == [start[0], OpenLot("LONG", 3, Decimal("2.00"), at(1), "new", "y")]


def test_inputs_are_not_modified() -> None:
    start = [OpenLot("LONG", 5, Decimal("1.00"), at(0), "old", None)]
    executions = [fill("s", "SELL", 2, "3.00", 1)]
    start_copy, executions_copy = list(start), list(executions)
    lots, _ = match_fifo(start, executions)
    assert start == start_copy and executions == executions_copy
    assert lots is not start
    assert lots == [OpenLot("LONG", 3, Decimal("1.00"), at(0), "old", None)]


def test_executions_may_be_any_iterable() -> None:
    lots, trips = match_fifo([], iter([fill("1", "BUY", 1, "1", 0), fill("2", "SELL", 1, "2", 1)]))
    assert lots == [] and trips[0].realised_pnl == Decimal("1")


def test_execution_order_sorts_by_time_then_trade_id() -> None:
    a = fill("B", "BUY", 1, "1", 1)
    b = fill("A", "BUY", 1, "1", 1)
    c = fill("Z", "BUY", 1, "1", 0)
    assert sorted([a, b, c], key=execution_order) == [c, b, a]


# --- tags ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("strangle:sl", "strangle"),
        ("sma:entry", "sma"),
        (" sma : entry ", "sma"),
        ("a:b:c", "a"),
        ("strangle:", "strangle"),
        (":sl", None),
        ("nocolon", None),
        ("", None),
        (None, None),
    ],
)
def test_strategy_of(tag: str | None, expected: str | None) -> None:
    assert strategy_of(tag) == expected


@pytest.mark.parametrize(
    ("order_type", "tag", "expected"),
    [
        ("SL", None, "stop_loss"),
        ("SL-M", "strangle:target", "stop_loss"),
        ("sl-m", None, "stop_loss"),
        ("MARKET", "strangle:sl", "stop_loss"),
        ("LIMIT", "strangle:target", "target"),
        ("MARKET", "strangle:sqoff", "square_off"),
        ("MARKET", "strangle:SQOFF", "square_off"),
        ("MARKET", "sma:Trail-Stop", "trail_stop"),
        ("MARKET", "sma:exit!", "exit"),
        ("MARKET", "sma:!!", "manual"),
        ("MARKET", "sma:", "manual"),
        ("MARKET", "nocolon", "manual"),
        ("LIMIT", None, "manual"),
        (None, None, "manual"),
    ],
)
def test_exit_reason_of(order_type: str | None, tag: str | None, expected: str) -> None:
    assert exit_reason_of(order_type, tag) == expected


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [0, -5])
def test_execution_quantity_must_be_positive(quantity: int) -> None:
    with pytest.raises(ValueError, match="quantity"):
        match_fifo([], [fill("1", "BUY", quantity, "1", 0)])


def test_open_lot_quantity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="quantity"):
        match_fifo([OpenLot("LONG", 0, Decimal("1"), at(0), "x", None)], [])


def test_open_lots_must_share_a_direction() -> None:
    lots = [
        OpenLot("LONG", 1, Decimal("1"), at(0), "x", None),
        OpenLot("SHORT", 1, Decimal("1"), at(1), "y", None),
    ]
    with pytest.raises(ValueError, match="mix LONG and SHORT"):
        match_fifo(lots, [])


def test_naive_execution_time_is_rejected() -> None:
    naive = Execution("1", "BUY", 1, Decimal("1"), datetime(2025, 1, 1, 9, 15), None, None)
    with pytest.raises(ValueError, match="naive"):
        match_fifo([], [naive])


def test_naive_open_lot_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        match_fifo([OpenLot("LONG", 1, Decimal("1"), datetime(2025, 1, 1), "x", None)], [])


def test_float_price_is_rejected() -> None:
    bad = Execution("1", "BUY", 1, 1.5, at(0), None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="price"):
        match_fifo([], [bad])


UNUSABLE_PRICES = ["-0.05", "-150.5", "NaN", "-NaN", "sNaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("price", UNUSABLE_PRICES)
def test_execution_with_an_unusable_price_is_refused(price: str) -> None:
    with pytest.raises(UnusableInput, match="Execution bad has price"):
        match_fifo([], [fill("ok", "BUY", 1, "10", 0), fill("bad", "SELL", 1, price, 1)])


@pytest.mark.parametrize("price", UNUSABLE_PRICES)
def test_open_lot_with_an_unusable_price_is_refused(price: str) -> None:
    lot = OpenLot("LONG", 5, Decimal(price), at(0), "stored", None)
    with pytest.raises(UnusableInput, match="Open lot from trade stored has price"):
        match_fifo([lot], [])
    # Also when nothing is executed against it, and when it would be closed.
    with pytest.raises(UnusableInput):
        match_fifo([lot], [fill("s", "SELL", 5, "10", 1)])


def test_zero_price_is_accepted() -> None:
    """Options can expire worthless: a fill at 0 is a real fill."""
    lots, trips = match_fifo([], [fill("b", "BUY", 75, "12.40", 0), fill("s", "SELL", 75, "0", 1)])
    assert lots == [] and trips[0].realised_pnl == Decimal("-930.00")


@pytest.mark.parametrize("quantity", [0, -5])
def test_open_lot_quantity_below_one_is_refused(quantity: int) -> None:
    with pytest.raises(UnusableInput, match="quantity"):
        match_fifo([OpenLot("SHORT", quantity, Decimal("1"), at(0), "x", None)], [])


# --- properties ------------------------------------------------------------------------------------

TAGS = st.sampled_from([None, "strangle:sl", "strangle:target", "sma:entry", "manual-order"])


@st.composite
def executions(draw: st.DrawFn, max_size: int = 30) -> list[Execution]:
    count = draw(st.integers(min_value=0, max_value=max_size))
    result: list[Execution] = []
    moment = T0
    for index in range(count):
        moment += timedelta(seconds=draw(st.integers(min_value=1, max_value=3600)))
        result.append(
            Execution(
                trade_id=f"T{index:04d}",
                side=draw(st.sampled_from(("BUY", "SELL"))),
                quantity=draw(st.integers(min_value=1, max_value=500)),
                price=Decimal(draw(st.integers(min_value=5, max_value=500_000))) / 100,
                at=moment,
                order_type=draw(st.sampled_from([None, "MARKET", "LIMIT", "SL", "SL-M"])),
                tag=draw(TAGS),
            )
        )
    return result


@dataclass(frozen=True)
class Unit:
    side: Side
    price: Decimal
    trade_id: str


def unit_oracle(execs: list[Execution]) -> tuple[Decimal, list[Unit]]:
    """Cash received minus cash paid over the units that were matched, and the unmatched units."""
    queue: deque[Unit] = deque()
    cash = Decimal(0)
    for e in execs:
        for _ in range(e.quantity):
            if queue and queue[0].side != e.side:
                opening = queue.popleft()
                for unit_side, unit_price in ((opening.side, opening.price), (e.side, e.price)):
                    cash += unit_price if unit_side == "SELL" else -unit_price
            else:
                queue.append(Unit(e.side, e.price, e.trade_id))
    return cash, list(queue)


def signed(side_or_direction: str, quantity: int) -> int:
    return quantity if side_or_direction in ("BUY", "LONG") else -quantity


UNUSABLE_DECIMALS = st.one_of(
    st.decimals(max_value=Decimal("-0.0001"), allow_nan=False, allow_infinity=False, places=4),
    st.sampled_from(
        [Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")]
    ),
)


@settings(max_examples=200, deadline=None)
@given(executions(max_size=10), st.data())
def test_an_unusable_price_anywhere_is_refused(execs: list[Execution], data: st.DataObject) -> None:
    where = data.draw(st.integers(min_value=0, max_value=len(execs)))
    price = data.draw(UNUSABLE_DECIMALS)
    bad = Execution("BAD", data.draw(st.sampled_from(("BUY", "SELL"))), 1, price, T0, None, None)
    with pytest.raises(UnusableInput, match="Execution BAD has price"):
        match_fifo([], [*execs[:where], bad, *execs[where:]])


@settings(max_examples=200, deadline=None)
@given(executions(max_size=10), st.data())
def test_an_unusable_open_lot_is_refused_whatever_follows(
    execs: list[Execution], data: st.DataObject
) -> None:
    lots, _ = match_fifo([], execs)
    good = OpenLot("SHORT", 1, Decimal("1"), T0, "good", None)
    lots = lots or [good]
    where = data.draw(st.integers(min_value=0, max_value=len(lots) - 1))
    broken = replace(lots[where], entry_price=data.draw(UNUSABLE_DECIMALS), entry_trade_id="BROKEN")
    lots[where] = broken
    with pytest.raises(UnusableInput, match="Open lot from trade BROKEN has price"):
        match_fifo(lots, execs)


@settings(max_examples=200, deadline=None)
@given(executions(max_size=10), st.integers(max_value=0), st.data())
def test_a_quantity_below_one_anywhere_is_refused(
    execs: list[Execution], quantity: int, data: st.DataObject
) -> None:
    where = data.draw(st.integers(min_value=0, max_value=len(execs)))
    bad = Execution("BAD", "BUY", quantity, Decimal("1"), T0, None, None)
    with pytest.raises(UnusableInput, match="Execution BAD has quantity"):
        match_fifo([], [*execs[:where], bad, *execs[where:]])


@settings(max_examples=200, deadline=None)
@given(executions())
def test_realised_pnl_equals_cash_flow_of_matched_units(execs: list[Execution]) -> None:
    lots, trips = match_fifo([], execs)
    cash, unmatched = unit_oracle(execs)
    assert sum((t.realised_pnl for t in trips), Decimal(0)) == cash
    for t in trips:
        expected = (t.exit_price - t.entry_price) * t.quantity
        assert t.realised_pnl == (expected if t.direction == "LONG" else -expected)
    # What is left open is exactly the oracle's unmatched units, in the same FIFO order.
    expanded = [
        Unit("BUY" if lot.direction == "LONG" else "SELL", lot.entry_price, lot.entry_trade_id)
        for lot in lots
        for _ in range(lot.quantity)
    ]
    assert expanded == unmatched


@settings(max_examples=200, deadline=None)
@given(executions())
def test_open_quantity_is_conserved(execs: list[Execution]) -> None:
    lots, _ = match_fifo([], execs)
    assert sum(signed(e.side, e.quantity) for e in execs) == sum(
        signed(lot.direction, lot.quantity) for lot in lots
    )
    assert len({lot.direction for lot in lots}) <= 1
    assert all(lot.quantity > 0 for lot in lots)


@settings(max_examples=200, deadline=None)
@given(executions())
def test_closed_quantities_never_exceed_what_was_executed(execs: list[Execution]) -> None:
    _, trips = match_fifo([], execs)
    by_id = {e.trade_id: e for e in execs}
    bought = sum(e.quantity for e in execs if e.side == "BUY")
    sold = sum(e.quantity for e in execs if e.side == "SELL")
    closed = sum(t.quantity for t in trips)
    assert closed <= min(bought, sold)
    used_as_entry: dict[str, int] = {}
    used_as_exit: dict[str, int] = {}
    for t in trips:
        assert t.quantity > 0
        assert t.entry_at <= t.exit_at
        used_as_entry[t.entry_trade_id] = used_as_entry.get(t.entry_trade_id, 0) + t.quantity
        used_as_exit[t.exit_trade_id] = used_as_exit.get(t.exit_trade_id, 0) + t.quantity
    for trade_id in by_id:
        # One execution can close older lots and open a new one, but never beyond its own size.
        total = used_as_entry.get(trade_id, 0) + used_as_exit.get(trade_id, 0)
        assert total <= by_id[trade_id].quantity


@settings(max_examples=200, deadline=None)
@given(executions(), st.data())
def test_incremental_matching_equals_one_shot(execs: list[Execution], data: st.DataObject) -> None:
    split = data.draw(st.integers(min_value=0, max_value=len(execs)))
    all_lots, all_trips = match_fifo([], execs)
    first_lots, first_trips = match_fifo([], execs[:split])
    later_lots, later_trips = match_fifo(first_lots, execs[split:])
    assert first_trips + later_trips == all_trips
    assert later_lots == all_lots


# --- what callers rely on ----------------------------------------------------------------------------


def test_directions_read_from_storage_compare_by_value() -> None:
    # A direction read back from the database is an equal string, not the same object as the literal.
    stored = "".join(["LO", "NG"])
    held = OpenLot(
        direction=stored,  # type: ignore[arg-type]
        quantity=5,
        entry_price=Decimal("100"),
        entry_at=at(0),
        entry_trade_id="1",
        strategy=None,
    )
    lots, trips = match_fifo([held], [fill("2", "BUY", 5, "101", 1)])
    assert trips == []
    assert [(lot.entry_trade_id, lot.quantity) for lot in lots] == [("1", 5), ("2", 5)]


def test_records_are_immutable_values() -> None:
    lots, trips = match_fifo([], [fill("1", "BUY", 10, "100", 0), fill("2", "SELL", 4, "101", 1)])
    for record in (fill("9", "BUY", 1, "1", 0), lots[0], trips[0]):
        with pytest.raises(AttributeError):
            record.quantity = 99  # type: ignore[misc]
        # Slotted: thousands of them per sync carry no per-object dict.
        assert not hasattr(record, "__dict__")


def test_an_exact_close_of_a_large_lot_leaves_nothing_open() -> None:
    # Quantities parsed from the broker's JSON are equal ints, not the same objects (beyond the small ints).
    bought, sold = int("1500"), int("1500")
    assert bought == sold and bought is not sold
    lots, trips = match_fifo([], [fill("1", "BUY", bought, "100", 0), fill("2", "SELL", sold, "101", 1)])
    assert lots == []
    assert [(t.quantity, t.realised_pnl) for t in trips] == [(1500, Decimal("1500"))]
