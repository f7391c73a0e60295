"""The short strangle's rules on a synthetic NIFTY chain: entry picks by delta and price difference, the
expiry choice, stops per weekday, both profit-booking steps, re-entries and their cap, square-off, the
entry deadline, the daily loss limit, idempotence, and parameter validation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.strategies import broker_view
from tradedesk.agents.strategies.base import (
    NIFTY_KEY,
    VIX_KEY,
    CancelOrder,
    Decision,
    InstrumentInfo,
    Intent,
    MarketSnapshot,
    ModifyOrder,
    OrderStatus,
    OrderView,
    PlaceOrder,
)
from tradedesk.agents.strategies.pricing import bs_delta, years_to_expiry
from tradedesk.agents.strategies.short_strangle import ShortStrangle, StrangleParams, StrangleState
from tradedesk.kit.clock import IST

MONDAY = date(2025, 1, 6)
NEAR = date(2025, 1, 9)  # Thursday weekly expiry
NEXT = date(2025, 1, 16)
LOT = 75
SPOT = 23600.0

strategy = ShortStrangle()


def symbol(expiry: date, strike: int, side: str) -> str:
    # Kite's weekly scheme: NIFTY{YY}{M}{DD}{STRIKE}{CE|PE} (January is month code 1).
    return f"NIFTY{expiry:%y}{expiry.month}{expiry:%d}{strike}{side}"


def key(expiry: date, strike: int, side: str) -> str:
    return f"NFO:{symbol(expiry, strike, side)}"


def make_chain(expiries: Iterable[date]) -> tuple[InstrumentInfo, ...]:
    rows: list[InstrumentInfo] = [
        InstrumentInfo("NSE", "NIFTY 50", 256265, 0, 0.0, "EQ", "NIFTY 50"),
        InstrumentInfo("NSE", "RELIANCE", 738561, 1, 0.05, "EQ", "RELIANCE INDUSTRIES"),
    ]
    token = 10_000
    for expiry in expiries:
        for strike in range(22600, 24601, 50):
            for side in ("CE", "PE"):
                token += 1
                rows.append(
                    InstrumentInfo(
                        "NFO",
                        symbol(expiry, strike, side),
                        token,
                        LOT,
                        0.05,
                        side,
                        "NIFTY",
                        expiry,
                        float(strike),
                    )
                )
    return tuple(rows)


CHAIN = make_chain((NEAR, NEXT))


def at(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=IST)


def trading_days_to(day: date) -> dict[date, int]:
    def weekdays_after(start: date, end: date) -> int:
        return sum(1 for n in range(1, (end - start).days + 1) if (start + timedelta(days=n)).weekday() < 5)

    return {expiry: weekdays_after(day, expiry) for expiry in (NEAR, NEXT) if expiry >= day}


def snapshot(
    now: datetime,
    *,
    quotes: Mapping[str, float] | None = None,
    orders: Mapping[str, OrderView] | None = None,
    spot: float = SPOT,
    vix: float = 14.0,
    option_price: float = 100.0,
    entries_allowed: bool = True,
) -> MarketSnapshot:
    """Every option quoted at ``option_price`` (so any pair passes the price-difference rule) unless
    ``quotes`` says otherwise."""
    prices: dict[str, float] = {NIFTY_KEY: spot, VIX_KEY: vix}
    prices.update({i.key: option_price for i in CHAIN if i.exchange == "NFO"})
    prices.update(quotes or {})
    return MarketSnapshot(
        now=now,
        quotes=prices,
        instruments=CHAIN,
        orders=dict(orders or {}),
        trading_days_to=trading_days_to(now.astimezone(IST).date()),
        entries_allowed=entries_allowed,
    )


view = broker_view


def places(decision: Decision[Any]) -> dict[str, PlaceOrder]:
    return {i.intent_id: i for i in decision.intents if isinstance(i, PlaceOrder)}


def of_type(decision: Decision[Any], kind: type[Intent]) -> list[Any]:
    return [i for i in decision.intents if isinstance(i, kind)]


def fresh(params: StrangleParams, day: date = MONDAY) -> StrangleState:
    return strategy.initial_state(params, now=at(day, 9, 15))


class Book:
    """A day driven through ``decide``: the state so far, every intent sent, and the broker's views."""

    def __init__(self, params: StrangleParams, day: date = MONDAY) -> None:
        self.params = params
        self.state = fresh(params, day)
        self.sent: dict[str, Intent] = {}
        self.orders: dict[str, OrderView] = {}

    def decide(self, snap: MarketSnapshot) -> Decision[StrangleState]:
        decision = strategy.decide(self.params, self.state, replace_orders(snap, self.orders))
        self._take(decision)
        return decision

    def square_off(self, snap: MarketSnapshot) -> Decision[StrangleState]:
        decision = strategy.square_off(self.params, self.state, replace_orders(snap, self.orders))
        self._take(decision)
        return decision

    def _take(self, decision: Decision[StrangleState]) -> None:
        for intent in decision.intents:
            assert intent.intent_id not in self.sent, f"{intent.intent_id} sent twice"
            assert len(intent.intent_id) <= 12
            self.sent[intent.intent_id] = intent
        self.state = decision.state

    def place(self, intent_id: str) -> PlaceOrder:
        found = self.sent[intent_id]
        assert isinstance(found, PlaceOrder)
        return found

    def fill(self, intent_id: str, price: float, *, filled: int | None = None) -> None:
        self.orders[intent_id] = view(self.place(intent_id), average_price=price, filled=filled)

    def rest(self, intent_id: str) -> None:
        intent = self.place(intent_id)
        status: OrderStatus = "TRIGGER PENDING" if intent.order_type in ("SL", "SL-M") else "OPEN"
        self.orders[intent_id] = view(intent, status=status)

    def mark(self, intent_id: str, status: OrderStatus, **changes: Any) -> None:
        self.orders[intent_id] = view(self.place(intent_id), status=status, **changes)

    def key(self, intent_id: str) -> str:
        intent = self.place(intent_id)
        return f"{intent.exchange}:{intent.tradingsymbol}"


def replace_orders(snap: MarketSnapshot, orders: Mapping[str, OrderView]) -> MarketSnapshot:
    return MarketSnapshot(
        now=snap.now,
        quotes=snap.quotes,
        instruments=snap.instruments,
        orders=dict(orders),
        trading_days_to=snap.trading_days_to,
        entries_allowed=snap.entries_allowed,
    )


def opened(
    params: StrangleParams, day: date = MONDAY, *, ce_fill: float = 60.0, pe_fill: float = 58.0
) -> Book:
    """A strangle sold at 09:40, both legs filled and their stops resting."""
    book = Book(params, day)
    book.decide(snapshot(at(day, 9, 40)))
    book.fill("CE1", ce_fill)
    book.fill("PE1", pe_fill)
    book.decide(snapshot(at(day, 9, 41), quotes={book.key("CE1"): ce_fill, book.key("PE1"): pe_fill}))
    book.rest("CE1-SL")
    book.rest("PE1-SL")
    return book


def leg_quotes(book: Book, ce: float, pe: float) -> dict[str, float]:
    return {book.key("CE1"): ce, book.key("PE1"): pe}


# -- entry ------------------------------------------------------------------------------------------------


class TestEntry:
    def test_sells_the_pair_nearest_the_band_middle(self) -> None:
        params = StrangleParams(call_lots=2, put_lots=1)
        # Monday, three trading days to the 9th: in the 0.29-0.36 band are the 23750 call (0.330) and the
        # 23450 (0.300) and 23500 (0.359) puts; 23450 is nearer the middle.
        quotes = {key(NEAR, 23750, "CE"): 60.0, key(NEAR, 23450, "PE"): 59.5, key(NEAR, 23500, "PE"): 60.2}
        decision = strategy.decide(params, fresh(params), snapshot(at(MONDAY, 9, 40), quotes=quotes))

        sold = places(decision)
        assert set(sold) == {"CE1", "PE1"}
        assert sold["CE1"].tradingsymbol == symbol(NEAR, 23750, "CE")
        assert sold["PE1"].tradingsymbol == symbol(NEAR, 23450, "PE")
        assert (sold["CE1"].quantity, sold["PE1"].quantity) == (2 * LOT, LOT)
        for intent in sold.values():
            assert (intent.transaction_type, intent.order_type, intent.product, intent.exchange) == (
                "SELL",
                "MARKET",
                "MIS",
                "NFO",
            )
        assert decision.notes and "23750CE" in decision.notes[0]
        assert decision.state.expiry == NEAR

    def test_the_picked_strikes_have_their_delta_in_the_band(self) -> None:
        params = StrangleParams()
        now = at(MONDAY, 9, 40)
        decision = strategy.decide(params, fresh(params), snapshot(now))
        years = years_to_expiry(NEAR, now=now)
        for intent in places(decision).values():
            strike = float(intent.tradingsymbol[-7:-2])
            delta = bs_delta(
                spot=SPOT,
                strike=strike,
                years=years,
                vol=0.14,
                rate=0.05,
                call=intent.tradingsymbol.endswith("CE"),
            )
            assert params.delta_low <= abs(delta) <= params.delta_high

    def test_vix_is_read_as_a_percentage_level(self) -> None:
        params = StrangleParams()
        # At 28 % volatility the band moves twice as far from the money as at 14 %.
        decision = strategy.decide(params, fresh(params), snapshot(at(MONDAY, 9, 40), vix=28.0))
        sold = places(decision)
        assert sold["CE1"].tradingsymbol == symbol(NEAR, 23900, "CE")
        assert sold["PE1"].tradingsymbol == symbol(NEAR, 23350, "PE")

    def test_an_in_the_money_strike_is_never_sold(self) -> None:
        params = StrangleParams(delta_low=0.47, delta_high=0.5)
        # Spot 23640 at 30 % volatility: the 23700 call has |delta| 0.476, and the 23650 put, 10 points in
        # the money, 0.494; the nearest out-of-the-money put (23600) has 0.464, outside the band.
        snap = snapshot(at(MONDAY, 9, 40), spot=23640.0, vix=30.0)
        decision = strategy.decide(params, fresh(params), snap)
        assert decision.intents == ()
        assert any("no put" in note.lower() for note in decision.notes)

    def test_nothing_is_sold_before_the_entry_time(self) -> None:
        params = StrangleParams()
        decision = strategy.decide(params, fresh(params), snapshot(at(MONDAY, 9, 39)))
        assert decision.intents == ()
        assert not decision.done_for_day

    def test_price_difference_rejects_the_best_delta_pair(self) -> None:
        params = StrangleParams()
        # 23450 put is nearer the band middle but 60 vs 50 is 16.7 % apart; 23500 at 60.5 is 0.8 %.
        quotes = {key(NEAR, 23750, "CE"): 60.0, key(NEAR, 23450, "PE"): 50.0, key(NEAR, 23500, "PE"): 60.5}
        decision = strategy.decide(params, fresh(params), snapshot(at(MONDAY, 9, 40), quotes=quotes))
        assert places(decision)["PE1"].tradingsymbol == symbol(NEAR, 23500, "PE")

    def test_no_qualifying_pair_is_retried_quietly_until_the_deadline(self) -> None:
        params = StrangleParams()
        quotes = {key(NEAR, 23750, "CE"): 60.0, key(NEAR, 23450, "PE"): 50.0, key(NEAR, 23500, "PE"): 70.0}
        first = strategy.decide(params, fresh(params), snapshot(at(MONDAY, 9, 40), quotes=quotes))
        assert first.intents == ()
        assert len(first.notes) == 1 and "1.5 %" in first.notes[0] and "10:30" in first.notes[0]
        again = strategy.decide(params, first.state, snapshot(at(MONDAY, 9, 41), quotes=quotes))
        assert again.intents == () and again.notes == ()
        assert not again.done_for_day
        # The quotes come into line before the deadline: the retry sells.
        aligned = {**quotes, key(NEAR, 23500, "PE"): 60.5}
        later = strategy.decide(params, again.state, snapshot(at(MONDAY, 10, 29), quotes=aligned))
        assert set(places(later)) == {"CE1", "PE1"}

    def test_after_the_deadline_with_nothing_open_the_day_is_done(self) -> None:
        params = StrangleParams()
        quotes = {key(NEAR, 23750, "CE"): 60.0, key(NEAR, 23450, "PE"): 50.0, key(NEAR, 23500, "PE"): 70.0}
        waiting = strategy.decide(params, fresh(params), snapshot(at(MONDAY, 10, 29), quotes=quotes))
        done = strategy.decide(params, waiting.state, snapshot(at(MONDAY, 10, 30)))
        assert done.intents == ()
        assert done.done_for_day
        assert any("deadline" in note for note in done.notes)
        # Done is final for the day, even if a pair would now qualify.
        after = strategy.decide(params, done.state, snapshot(at(MONDAY, 10, 31)))
        assert after.intents == () and after.done_for_day

    def test_the_same_snapshot_twice_sells_once(self) -> None:
        params = StrangleParams()
        snap = snapshot(at(MONDAY, 9, 40))
        first = strategy.decide(params, fresh(params), snap)
        second = strategy.decide(params, first.state, snap)
        assert len(first.intents) == 2
        assert second.intents == ()

    def test_daily_loss_limit_blocks_the_entry(self) -> None:
        params = StrangleParams()
        decision = strategy.decide(params, fresh(params), snapshot(at(MONDAY, 9, 40), entries_allowed=False))
        assert decision.intents == ()
        assert any("loss limit" in note for note in decision.notes)

    def test_a_rejected_entry_is_not_retried_and_the_other_side_runs(self) -> None:
        book = Book(StrangleParams())
        book.decide(snapshot(at(MONDAY, 9, 40)))
        book.mark("CE1", "REJECTED", message="Insufficient funds")
        book.fill("PE1", 58.0)
        decision = book.decide(snapshot(at(MONDAY, 9, 41), quotes={book.key("PE1"): 58.0}))
        assert set(places(decision)) == {"PE1-SL"}
        assert any("Insufficient funds" in note for note in decision.notes)
        later = book.decide(snapshot(at(MONDAY, 9, 42)))
        assert later.intents == ()


class TestExpiry:
    @pytest.mark.parametrize(
        ("day", "min_days", "expiry", "call", "put"),
        [
            (date(2025, 1, 7), 2, NEAR, 23750, 23500),  # Tuesday: two trading days left, enough
            (date(2025, 1, 8), 2, NEXT, 23850, 23400),  # Wednesday: one day left, the next weekly
            (date(2025, 1, 8), 1, NEAR, 23700, 23500),
            (date(2025, 1, 9), 0, NEAR, None, None),  # expiry day itself is allowed with 0
        ],
    )
    def test_nearest_expiry_unless_too_close(
        self, day: date, min_days: int, expiry: date, call: int | None, put: int | None
    ) -> None:
        params = StrangleParams(min_days_to_expiry=min_days)
        decision = strategy.decide(params, fresh(params, day), snapshot(at(day, 9, 40)))
        assert decision.state.expiry == expiry
        if call is not None and put is not None:
            sold = places(decision)
            assert sold["CE1"].tradingsymbol == symbol(expiry, call, "CE")
            assert sold["PE1"].tradingsymbol == symbol(expiry, put, "PE")


# -- stops ------------------------------------------------------------------------------------------------


class TestStops:
    @pytest.mark.parametrize(
        ("day", "fill", "trigger", "limit"),
        [
            (date(2025, 1, 6), 60.0, 78.0, 81.9),  # Monday 30 %
            (date(2025, 1, 7), 60.0, 75.0, 78.75),  # Tuesday 25 %
            (date(2025, 1, 8), 60.0, 84.0, 88.2),  # Wednesday 40 %
            (date(2025, 1, 9), 60.0, 90.0, 94.5),  # Thursday 50 %
            (date(2025, 1, 10), 60.0, 72.0, 75.6),  # Friday 20 %
            (date(2025, 1, 6), 61.35, 79.75, 83.75),  # 79.755 rounds to the tick
        ],
    )
    def test_stop_level_follows_the_weekday_table(
        self, day: date, fill: float, trigger: float, limit: float
    ) -> None:
        params = StrangleParams.model_validate(
            {"stop_loss_pct": {"mon": 30, "tue": 25, "wed": 40, "thu": 50, "fri": 20}}
        )
        book = Book(params, day)
        book.decide(snapshot(at(day, 9, 40)))
        book.fill("CE1", fill, filled=75)
        decision = book.decide(snapshot(at(day, 9, 41), quotes={book.key("CE1"): fill}))
        (stop,) = of_type(decision, PlaceOrder)
        assert stop.intent_id == "CE1-SL"
        assert (stop.transaction_type, stop.order_type, stop.product) == ("BUY", "SL", "MIS")
        assert stop.tradingsymbol == book.place("CE1").tradingsymbol
        assert stop.quantity == 75
        assert stop.trigger_price == pytest.approx(trigger)
        assert stop.price == pytest.approx(limit)

    def test_a_stop_already_crossed_is_bought_back(self) -> None:
        book = Book(StrangleParams())
        book.decide(snapshot(at(MONDAY, 9, 40)))
        book.fill("CE1", 60.0)
        decision = book.decide(snapshot(at(MONDAY, 9, 41), quotes={book.key("CE1"): 80.0}))
        sold_back = places(decision)
        assert "CE1-SL" not in sold_back
        assert sold_back["SQ-CE1"].transaction_type == "BUY"
        assert sold_back["SQ-CE1"].quantity == LOT

    def test_a_rejected_stop_leaves_no_naked_leg(self) -> None:
        book = opened(StrangleParams())
        book.mark("CE1-SL", "REJECTED", message="Trigger price invalid")
        decision = book.decide(snapshot(at(MONDAY, 10, 0)))
        assert places(decision)["SQ-CE1"].quantity == LOT
        book.fill("SQ-CE1", 61.0)
        after = book.decide(snapshot(at(MONDAY, 10, 1)))
        assert not any(i.intent_id.startswith("CE2") for i in after.intents)


# -- profit booking -------------------------------------------------------------------------------------------


class TestProfitBooking:
    def test_first_step_moves_both_stops_to_breakeven(self) -> None:
        book = opened(StrangleParams())
        # 60 + 58 = 118 sold; 40 + 46.05 = 86.05 now: 31.95 decayed, not yet.
        quiet = book.decide(snapshot(at(MONDAY, 10, 0), quotes=leg_quotes(book, 40.0, 46.05)))
        assert quiet.intents == ()
        decision = book.decide(snapshot(at(MONDAY, 10, 1), quotes=leg_quotes(book, 40.0, 46.0)))
        moves = {m.target: m for m in of_type(decision, ModifyOrder)}
        assert set(moves) == {"CE1-SL", "PE1-SL"}
        assert moves["CE1-SL"].intent_id == "CE1-M1"
        assert (moves["CE1-SL"].trigger_price, moves["CE1-SL"].price) == (60.0, 63.0)
        assert (moves["PE1-SL"].trigger_price, moves["PE1-SL"].price) == (58.0, 60.9)
        assert len(decision.intents) == 2
        assert decision.notes
        # Each step once.
        again = book.decide(snapshot(at(MONDAY, 10, 2), quotes=leg_quotes(book, 39.0, 45.0)))
        assert again.intents == ()

    def test_second_step_locks_entry_minus_lock_points(self) -> None:
        book = opened(StrangleParams(lock_points=12))
        book.decide(snapshot(at(MONDAY, 10, 0), quotes=leg_quotes(book, 40.0, 46.0)))
        decision = book.decide(snapshot(at(MONDAY, 10, 5), quotes=leg_quotes(book, 35.0, 43.0)))  # 40 decayed
        moves = {m.target: m for m in of_type(decision, ModifyOrder)}
        assert {m.intent_id for m in moves.values()} == {"CE1-M2", "PE1-M2"}
        assert moves["CE1-SL"].trigger_price == 48.0
        assert moves["PE1-SL"].trigger_price == 46.0
        assert moves["CE1-SL"].price == pytest.approx(50.4)
        again = book.decide(snapshot(at(MONDAY, 10, 6), quotes=leg_quotes(book, 30.0, 40.0)))
        assert again.intents == ()

    def test_with_no_lock_points_the_second_step_sends_nothing_new(self) -> None:
        book = opened(StrangleParams(lock_points=0))
        book.decide(snapshot(at(MONDAY, 10, 0), quotes=leg_quotes(book, 40.0, 46.0)))
        second = book.decide(snapshot(at(MONDAY, 10, 5), quotes=leg_quotes(book, 35.0, 43.0)))
        assert second.intents == ()

    def test_stops_never_move_back_when_the_premium_recovers(self) -> None:
        book = opened(StrangleParams())
        book.decide(snapshot(at(MONDAY, 10, 0), quotes=leg_quotes(book, 35.0, 43.0)))  # straight to step 2
        recovered = book.decide(
            snapshot(at(MONDAY, 10, 5), quotes=leg_quotes(book, 40.0, 44.0))
        )  # 34 decayed
        assert recovered.intents == ()

    def test_a_jump_past_both_steps_goes_straight_to_the_lock(self) -> None:
        book = opened(StrangleParams())
        decision = book.decide(snapshot(at(MONDAY, 10, 0), quotes=leg_quotes(book, 30.0, 40.0)))
        assert {m.intent_id: m.trigger_price for m in of_type(decision, ModifyOrder)} == {
            "CE1-M2": 50.0,
            "PE1-M2": 48.0,
        }

    def test_a_leg_already_above_its_new_stop_is_bought_back_and_re_entered(self) -> None:
        book = opened(StrangleParams())
        # The put decayed 34, the call rose 2: 32 decayed together, but the call trades above breakeven.
        quotes = leg_quotes(book, 62.0, 24.0)
        decision = book.decide(snapshot(at(MONDAY, 11, 0), quotes=quotes))
        assert [m.intent_id for m in of_type(decision, ModifyOrder)] == ["PE1-M1"]
        assert [c.target for c in of_type(decision, CancelOrder)] == ["CE1-SL"]
        assert places(decision)["SQ-CE1"].quantity == LOT
        book.mark("CE1-SL", "CANCELLED")
        book.fill("SQ-CE1", 62.0)
        after = book.decide(snapshot(at(MONDAY, 11, 1), quotes=quotes))
        assert places(after)["CE2"].transaction_type == "SELL"
        assert after.state.reentries == 1


# -- re-entries -------------------------------------------------------------------------------------------


class TestReentry:
    def test_a_fired_stop_re_enters_that_side_with_a_fresh_pick(self) -> None:
        book = opened(StrangleParams(call_lots=3))
        book.fill("CE1-SL", 78.0)
        decision = book.decide(snapshot(at(MONDAY, 11, 0), spot=23700.0))
        sold = places(decision)
        assert set(sold) == {"CE2"}
        # The market moved up 100 points: the fresh pick is 100 points higher too.
        assert sold["CE2"].tradingsymbol == symbol(NEAR, 23850, "CE")
        assert (sold["CE2"].transaction_type, sold["CE2"].quantity) == ("SELL", 3 * LOT)
        assert decision.state.reentries == 1
        assert any("stop fired" in note for note in decision.notes)
        assert any("Re-entering the call" in note for note in decision.notes)
        # Once sent, never again.
        assert book.decide(snapshot(at(MONDAY, 11, 1), spot=23700.0)).intents == ()

    def test_re_entries_stop_at_the_cap(self) -> None:
        book = opened(StrangleParams(max_stop_loss_reentries=1))
        book.fill("CE1-SL", 78.0)
        book.decide(snapshot(at(MONDAY, 11, 0)))
        book.fill("CE2", 100.0)
        book.decide(snapshot(at(MONDAY, 11, 1)))
        book.rest("CE2-SL")
        book.fill("CE2-SL", 130.0)
        decision = book.decide(snapshot(at(MONDAY, 11, 30)))
        assert not any(isinstance(i, PlaceOrder) for i in decision.intents)
        assert any("re-entries are used" in note for note in decision.notes)
        assert not decision.done_for_day  # the put still runs
        book.fill("PE1-SL", 75.4)
        last = book.decide(snapshot(at(MONDAY, 12, 0)))
        assert last.intents == ()
        assert last.done_for_day

    def test_the_cap_counts_both_sides(self) -> None:
        book = opened(StrangleParams(max_stop_loss_reentries=1))
        book.fill("CE1-SL", 78.0)
        book.fill("PE1-SL", 75.4)
        decision = book.decide(snapshot(at(MONDAY, 11, 0)))
        assert len(places(decision)) == 1

    def test_no_re_entry_after_the_last_re_entry_time(self) -> None:
        book = opened(StrangleParams())
        book.fill("CE1-SL", 78.0)
        decision = book.decide(snapshot(at(MONDAY, 14, 45)))
        assert decision.intents == ()
        assert any("14:45" in note for note in decision.notes)

    def test_no_re_entry_once_the_loss_limit_is_reached(self) -> None:
        book = opened(StrangleParams())
        book.fill("CE1-SL", 78.0)
        decision = book.decide(snapshot(at(MONDAY, 11, 0), entries_allowed=False))
        assert decision.intents == ()
        assert any("loss limit" in note for note in decision.notes)

    def test_a_re_entry_waits_for_a_strike_in_the_band(self) -> None:
        book = opened(StrangleParams())
        book.fill("CE1-SL", 78.0)
        # Volatility so low that no call within the window has a delta in the band.
        waiting = book.decide(snapshot(at(MONDAY, 11, 0), vix=0.5))
        assert waiting.intents == () and len(waiting.notes) == 2
        assert book.decide(snapshot(at(MONDAY, 11, 1), vix=0.5)).notes == ()
        assert set(places(book.decide(snapshot(at(MONDAY, 11, 2))))) == {"CE2"}


# -- square-off -----------------------------------------------------------------------------------------


class TestSquareOff:
    def test_at_square_off_time_stops_are_cancelled_and_legs_bought_back(self) -> None:
        book = opened(StrangleParams(call_lots=2))
        snap = snapshot(at(MONDAY, 15, 15))
        decision = book.decide(snap)
        assert {(c.intent_id, c.target) for c in of_type(decision, CancelOrder)} == {
            ("X-CE1-SL", "CE1-SL"),
            ("X-PE1-SL", "PE1-SL"),
        }
        buys = places(decision)
        assert {k: (v.transaction_type, v.quantity, v.product) for k, v in buys.items()} == {
            "SQ-CE1": ("BUY", 2 * LOT, "MIS"),
            "SQ-PE1": ("BUY", LOT, "MIS"),
        }
        assert buys["SQ-CE1"].tradingsymbol == book.place("CE1").tradingsymbol
        assert not decision.done_for_day
        assert book.decide(snap).intents == ()
        book.mark("CE1-SL", "CANCELLED")
        book.mark("PE1-SL", "CANCELLED")
        book.fill("SQ-CE1", 20.0)
        book.fill("SQ-PE1", 25.0)
        done = book.decide(snapshot(at(MONDAY, 15, 16)))
        assert done.intents == ()
        assert done.done_for_day

    def test_square_off_cancels_a_working_entry_and_buys_back_its_fills(self) -> None:
        book = Book(StrangleParams(call_lots=2))
        book.decide(snapshot(at(MONDAY, 9, 40)))
        book.mark("CE1", "OPEN", filled=LOT, average_price=60.0)
        book.mark("PE1", "OPEN")
        decision = book.square_off(snapshot(at(MONDAY, 9, 41)))
        assert {c.target for c in of_type(decision, CancelOrder)} == {"CE1", "PE1"}
        assert {k: v.quantity for k, v in places(decision).items()} == {"SQ-CE1": LOT}
        book.mark("CE1", "CANCELLED", filled=LOT, average_price=60.0)
        book.mark("PE1", "CANCELLED")
        book.fill("SQ-CE1", 61.0)
        done = book.square_off(snapshot(at(MONDAY, 9, 42)))
        assert done.intents == () and done.done_for_day
        # A squared-off agent sells nothing more that day.
        assert book.decide(snapshot(at(MONDAY, 9, 43))).intents == ()

    def test_a_buy_back_that_raced_the_stop_is_sold_back(self) -> None:
        book = opened(StrangleParams())
        book.square_off(snapshot(at(MONDAY, 12, 0)))
        book.fill("CE1-SL", 78.0)  # the stop filled before the cancel reached it
        book.fill("SQ-CE1", 78.5)
        book.mark("PE1-SL", "CANCELLED")
        book.fill("SQ-PE1", 30.0)
        decision = book.square_off(snapshot(at(MONDAY, 12, 1)))
        correction = places(decision)["SQ2-CE1"]
        assert (correction.transaction_type, correction.quantity) == ("SELL", LOT)
        assert not decision.done_for_day
        book.fill("SQ2-CE1", 78.0)
        assert book.square_off(snapshot(at(MONDAY, 12, 2))).done_for_day

    def test_square_off_with_nothing_open_is_done_at_once(self) -> None:
        params = StrangleParams()
        decision = strategy.square_off(params, fresh(params), snapshot(at(MONDAY, 11, 0)))
        assert decision.intents == ()
        assert decision.done_for_day


# -- a whole day ------------------------------------------------------------------------------------------


def test_a_day_of_entries_stops_booking_and_square_off() -> None:
    book = opened(StrangleParams())
    book.decide(snapshot(at(MONDAY, 10, 0), quotes=leg_quotes(book, 40.0, 46.0)))  # breakeven
    book.fill("CE1-SL", 60.0)  # the call came back to breakeven
    reentry = book.decide(snapshot(at(MONDAY, 11, 0), quotes={book.key("PE1"): 45.0}))
    assert set(places(reentry)) == {"CE2"}
    book.fill("CE2", 55.0)
    book.decide(snapshot(at(MONDAY, 11, 1), quotes={book.key("CE2"): 55.0, book.key("PE1"): 45.0}))
    assert book.place("CE2-SL").trigger_price == 71.5
    book.rest("CE2-SL")
    # Step one for the new pair (55 + 58 entries): the re-entered call's stop moves; the put's is there.
    quotes = {book.key("CE2"): 40.0, book.key("PE1"): 41.0}
    booked = book.decide(snapshot(at(MONDAY, 12, 0), quotes=quotes))
    assert [(m.intent_id, m.trigger_price) for m in of_type(booked, ModifyOrder)] == [("CE2-M1", 55.0)]
    closing = book.decide(snapshot(at(MONDAY, 15, 15), quotes=quotes))
    assert {c.target for c in of_type(closing, CancelOrder)} == {"CE2-SL", "PE1-SL"}
    assert set(places(closing)) == {"SQ-CE2", "SQ-PE1"}
    assert all(len(intent_id) <= 12 for intent_id in book.sent)


# -- watch -----------------------------------------------------------------------------------------------------


class TestWatch:
    def test_before_the_expiry_is_chosen_both_weeklies_are_watched(self) -> None:
        params = StrangleParams()
        watch = strategy.watch(params, fresh(params), now=at(MONDAY, 9, 30), instruments=CHAIN, spot=23612.0)
        expected = {
            key(expiry, strike, side)
            for expiry in (NEAR, NEXT)
            for strike in range(23100, 24101, 50)
            for side in ("CE", "PE")
        }
        assert watch.quotes == expected | {NIFTY_KEY, VIX_KEY}

    def test_after_entry_the_chosen_expiry_and_the_open_legs_are_watched(self) -> None:
        book = opened(StrangleParams())
        watch = strategy.watch(book.params, book.state, now=at(MONDAY, 10, 0), instruments=CHAIN, spot=SPOT)
        assert book.key("CE1") in watch.quotes and book.key("PE1") in watch.quotes
        assert key(NEAR, 23100, "PE") in watch.quotes
        assert key(NEXT, 23600, "CE") not in watch.quotes
        late = strategy.watch(book.params, book.state, now=at(MONDAY, 15, 0), instruments=CHAIN, spot=SPOT)
        assert late.quotes == {NIFTY_KEY, VIX_KEY, book.key("CE1"), book.key("PE1")}


def test_lot_size_comes_from_the_chain() -> None:
    assert strategy.lot_size(CHAIN) == LOT
    assert strategy.lot_size(()) is None


def test_a_state_of_yesterday_starts_a_new_day() -> None:
    book = opened(StrangleParams())
    tuesday = date(2025, 1, 7)
    decision = strategy.decide(book.params, book.state, snapshot(at(tuesday, 9, 40)))
    assert decision.state.day == tuesday
    assert set(places(decision)) == {"CE1", "PE1"}


def test_utc_times_are_read_in_ist() -> None:
    params = StrangleParams()
    decision = strategy.decide(params, fresh(params), snapshot(datetime(2025, 1, 6, 4, 10, tzinfo=UTC)))
    assert set(places(decision)) == {"CE1", "PE1"}  # 04:10 UTC is 09:40 IST


# -- parameters -----------------------------------------------------------------------------------------------


class TestParams:
    @pytest.mark.parametrize(
        ("values", "fields"),
        [
            ({"entry_time": "09:00"}, ["entry_time"]),
            ({"entry_time": "09:40+00:00"}, ["entry_time"]),
            ({"square_off_time": "15:45"}, ["square_off_time"]),
            ({"call_lots": 0}, ["call_lots"]),
            ({"put_lots": 51}, ["put_lots"]),
            ({"call_lots": 1.5}, ["call_lots"]),
            ({"delta_low": 0.6}, ["delta_low"]),
            ({"max_price_diff_pct": -1}, ["max_price_diff_pct"]),
        ],
    )
    def test_bad_values_name_the_field(self, values: dict[str, object], fields: list[str]) -> None:
        with pytest.raises(ValidationError) as raised:
            StrangleParams.model_validate(values)
        assert [e["loc"][0] for e in raised.value.errors()] == fields

    @pytest.mark.parametrize(
        ("values", "fields"),
        [
            ({"delta_low": 0.36, "delta_high": 0.29}, ["delta_low", "delta_high"]),
            ({"delta_low": 0.4}, ["delta_low", "delta_high"]),
            ({"entry_time": "10:00", "entry_deadline": "09:50"}, ["entry_time", "entry_deadline"]),
            # A changed entry time is checked against the default deadline too.
            ({"entry_time": "10:45"}, ["entry_time", "entry_deadline"]),
            ({"last_reentry_time": "09:30"}, ["entry_time", "last_reentry_time"]),
            ({"last_reentry_time": "15:20"}, ["last_reentry_time", "square_off_time"]),
            (
                {"entry_deadline": "14:00", "square_off_time": "13:00"},
                ["entry_deadline", "square_off_time", "last_reentry_time", "square_off_time"],
            ),
            (
                {"first_profit_points": 40, "second_profit_points": 32},
                ["first_profit_points", "second_profit_points"],
            ),
        ],
    )
    def test_inconsistent_values_name_every_field_involved(
        self, values: dict[str, object], fields: list[str]
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            StrangleParams.model_validate(values)
        errors = raised.value.errors()
        assert [e["loc"][0] for e in errors] == fields
        assert all(e["type"] == "inconsistent" for e in errors)
        assert fields[-1] in errors[-1]["msg"]

    def test_the_weekday_table_names_the_day(self) -> None:
        with pytest.raises(ValidationError) as raised:
            StrangleParams.model_validate({"stop_loss_pct": {"wed": 0}})
        assert raised.value.errors()[0]["loc"] == ("stop_loss_pct", "wed")

    def test_defaults_are_the_traders(self) -> None:
        params = StrangleParams()
        assert params.model_dump(mode="json") == {
            "call_lots": 1,
            "put_lots": 1,
            "entry_time": "09:40:00",
            "entry_deadline": "10:30:00",
            "last_reentry_time": "14:45:00",
            "square_off_time": "15:15:00",
            "min_days_to_expiry": 2,
            "strike_window": 500,
            "delta_low": 0.29,
            "delta_high": 0.36,
            "risk_free_rate": 5.0,
            "max_price_diff_pct": 1.5,
            "stop_loss_pct": {"mon": 30.0, "tue": 30.0, "wed": 30.0, "thu": 30.0, "fri": 30.0},
            "stop_limit_buffer_pct": 5.0,
            "first_profit_points": 32.0,
            "second_profit_points": 40.0,
            "lock_points": 10.0,
            "max_stop_loss_reentries": 6,
        }
        assert StrangleParams.model_validate(params.model_dump(mode="json")) == params

    def test_a_retired_field_in_a_stored_snapshot_is_dropped(self) -> None:
        stored = {**StrangleParams(call_lots=4).model_dump(mode="json"), "vix_regime": "calendar"}
        loaded = StrangleParams.model_validate(stored)
        assert loaded.call_lots == 4
        assert "vix_regime" not in loaded.model_dump()

    def test_an_ist_offset_is_accepted(self) -> None:
        assert StrangleParams.model_validate({"entry_time": "09:45+05:30"}).entry_time == time(9, 45)

    def test_json_schema_carries_the_bounds(self) -> None:
        schema = StrangleParams.model_json_schema()
        props = schema["properties"]
        assert (props["call_lots"]["minimum"], props["call_lots"]["maximum"]) == (1, 50)
        assert (props["put_lots"]["minimum"], props["put_lots"]["maximum"]) == (1, 50)
        assert (props["delta_low"]["minimum"], props["delta_low"]["maximum"]) == (0.01, 0.5)
        assert (props["strike_window"]["minimum"], props["strike_window"]["maximum"]) == (50, 2000)
        assert props["max_stop_loss_reentries"]["maximum"] == 20
        assert props["entry_time"]["format"] == "time"
        assert (props["entry_time"]["formatMinimum"], props["entry_time"]["formatMaximum"]) == (
            "09:15:00",
            "15:30:00",
        )
        weekday = schema["$defs"]["StopLossPct"]["properties"]["mon"]
        assert (weekday["minimum"], weekday["maximum"]) == (1, 200)
        assert all(prop.get("description") for prop in props.values())


class TestState:
    def test_state_survives_a_json_round_trip(self) -> None:
        book = opened(StrangleParams())
        book.decide(snapshot(at(MONDAY, 10, 0), quotes=leg_quotes(book, 40.0, 46.0)))
        stored = book.state.model_dump(mode="json")
        assert StrangleState.model_validate(stored) == book.state
