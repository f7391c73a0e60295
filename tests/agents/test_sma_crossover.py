"""The SMA crossover on synthetic minute candles: long on a cross up, flat on a cross down, one position,
idempotent across cycles, squared off at its time, and parameters validated with their bounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.strategies import broker_view
from tradedesk.agents.strategies.base import (
    CancelOrder,
    Candle,
    Decision,
    InstrumentInfo,
    MarketSnapshot,
    OrderStatus,
    OrderView,
    PlaceOrder,
)
from tradedesk.agents.strategies.registry import STRATEGIES, get_strategy
from tradedesk.agents.strategies.sma_crossover import SmaCrossover, SmaParams, SmaState
from tradedesk.kit.clock import IST

DAY = date(2025, 1, 6)
KEY = "NSE:INFY"
INSTRUMENTS = (
    InstrumentInfo("NSE", "RELIANCE", 738561, 1, 0.05, "EQ", "RELIANCE INDUSTRIES"),
    InstrumentInfo("NSE", "INFY", 408065, 1, 0.05, "EQ", "INFOSYS"),
)
PARAMS = SmaParams(tradingsymbol="INFY", fast=2, slow=4, lots=3)

strategy = SmaCrossover()


def at(hour: int, minute: int) -> datetime:
    return datetime.combine(DAY, time(hour, minute), tzinfo=IST)


def candles(closes: Sequence[float], *, last_at: datetime) -> tuple[Candle, ...]:
    start = last_at - timedelta(minutes=len(closes) - 1)
    return tuple(
        Candle(at=start + timedelta(minutes=n), open=c, high=c, low=c, close=c) for n, c in enumerate(closes)
    )


# fast(2) and slow(4) are equal over the first five closes, then the last close lifts fast above slow.
CROSS_UP = (10.0, 10.0, 10.0, 10.0, 10.0, 12.0)
# Falling: fast below slow throughout.
FALLING = (14.0, 13.0, 12.0, 11.0, 10.0, 9.0)


def snapshot(
    now: datetime,
    closes: Sequence[float],
    *,
    orders: Mapping[str, OrderView] | None = None,
    entries_allowed: bool = True,
) -> MarketSnapshot:
    # The runtime hands over completed candles only: the last one started a minute before now.
    series = candles(closes, last_at=now - timedelta(minutes=1))
    return MarketSnapshot(
        now=now,
        quotes={KEY: closes[-1]},
        instruments=INSTRUMENTS,
        orders=dict(orders or {}),
        candles={KEY: series},
        entries_allowed=entries_allowed,
    )


def view(intent: PlaceOrder, *, status: OrderStatus = "COMPLETE", filled: int | None = None) -> OrderView:
    return broker_view(
        intent, status=status, filled=intent.quantity if filled is None else filled, average_price=100.0
    )


def only_place(decision: Decision[Any]) -> PlaceOrder:
    (intent,) = decision.intents
    assert isinstance(intent, PlaceOrder)
    return intent


def fresh() -> SmaState:
    return strategy.initial_state(PARAMS, now=at(9, 15))


def long_position() -> tuple[SmaState, dict[str, OrderView]]:
    bought = strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), CROSS_UP))
    return bought.state, {"B1": view(only_place(bought))}


class TestSignals:
    def test_a_cross_up_buys_lots_times_the_lot_size(self) -> None:
        decision = strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), CROSS_UP))
        buy = only_place(decision)
        assert (buy.intent_id, buy.transaction_type, buy.quantity) == ("B1", "BUY", 3)
        assert (buy.exchange, buy.tradingsymbol, buy.order_type, buy.product) == (
            "NSE",
            "INFY",
            "MARKET",
            "MIS",
        )
        assert decision.notes and "crossed above" in decision.notes[0]

    def test_no_cross_no_order(self) -> None:
        decision = strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), FALLING))
        assert decision.intents == ()

    def test_too_few_candles_no_order(self) -> None:
        decision = strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), CROSS_UP[-4:]))
        assert decision.intents == ()

    def test_the_same_candle_twice_buys_once(self) -> None:
        snap = snapshot(at(10, 0), CROSS_UP)
        first = strategy.decide(PARAMS, fresh(), snap)
        second = strategy.decide(PARAMS, first.state, snap)
        assert len(first.intents) == 1 and second.intents == ()

    def test_nothing_new_while_an_order_is_working(self) -> None:
        state, orders = long_position()
        buy = only_place(strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), CROSS_UP)))
        working = {"B1": view(buy, status="OPEN", filled=0)}
        # A cross down arrives while the buy still works: wait, then act on the next cycle.
        waiting = strategy.decide(PARAMS, state, snapshot(at(10, 1), (*CROSS_UP, 6.0), orders=working))
        assert waiting.intents == ()
        sell = only_place(
            strategy.decide(PARAMS, waiting.state, snapshot(at(10, 1), (*CROSS_UP, 6.0), orders=orders))
        )
        assert (sell.intent_id, sell.transaction_type, sell.quantity) == ("S2", "SELL", 3)

    def test_a_cross_down_sells_what_is_held(self) -> None:
        state, orders = long_position()
        holding = strategy.decide(PARAMS, state, snapshot(at(10, 1), (*CROSS_UP, 12.0), orders=orders))
        assert holding.intents == ()
        decision = strategy.decide(
            PARAMS, holding.state, snapshot(at(10, 2), (*CROSS_UP, 12.0, 6.0), orders=orders)
        )
        sell = only_place(decision)
        assert (sell.transaction_type, sell.quantity) == ("SELL", 3)
        assert "crossed below" in decision.notes[0]

    def test_a_cross_down_while_flat_does_nothing(self) -> None:
        rising = (10.0, 11.0, 12.0, 13.0, 14.0, 15.0)
        first = strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), rising))
        assert first.intents == ()
        down = strategy.decide(PARAMS, first.state, snapshot(at(10, 1), (*rising, 5.0)))
        assert down.intents == ()

    def test_a_cross_missed_between_decisions_is_still_seen(self) -> None:
        first = strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), FALLING))
        # Two minutes later, fast is above slow: it crossed while no decision looked.
        later = strategy.decide(PARAMS, first.state, snapshot(at(10, 2), (*FALLING, 12.0, 14.0)))
        assert only_place(later).transaction_type == "BUY"

    def test_no_entry_once_the_loss_limit_is_reached(self) -> None:
        decision = strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), CROSS_UP, entries_allowed=False))
        assert decision.intents == ()
        assert "loss limit" in decision.notes[0]


class TestSquareOff:
    def test_at_square_off_time_the_position_is_sold_and_the_day_ends(self) -> None:
        state, orders = long_position()
        decision = strategy.decide(PARAMS, state, snapshot(at(15, 15), (*CROSS_UP, 13.0), orders=orders))
        sell = only_place(decision)
        assert (sell.transaction_type, sell.quantity) == ("SELL", 3)
        assert not decision.done_for_day
        orders[sell.intent_id] = view(sell)
        done = strategy.decide(PARAMS, decision.state, snapshot(at(15, 16), (*CROSS_UP, 13.0), orders=orders))
        assert done.intents == () and done.done_for_day

    def test_square_off_cancels_a_working_buy_and_sells_its_fills(self) -> None:
        bought = strategy.decide(PARAMS, fresh(), snapshot(at(10, 0), CROSS_UP))
        orders = {"B1": view(only_place(bought), status="OPEN", filled=2)}
        decision = strategy.square_off(PARAMS, bought.state, snapshot(at(10, 1), CROSS_UP, orders=orders))
        cancels = [i for i in decision.intents if isinstance(i, CancelOrder)]
        sells = [i for i in decision.intents if isinstance(i, PlaceOrder)]
        assert [(c.intent_id, c.target) for c in cancels] == [("X-B1", "B1")]
        assert [(s.transaction_type, s.quantity) for s in sells] == [("SELL", 2)]
        again = strategy.square_off(PARAMS, decision.state, snapshot(at(10, 1), CROSS_UP, orders=orders))
        assert again.intents == ()

    def test_square_off_while_flat_is_done_at_once(self) -> None:
        decision = strategy.square_off(PARAMS, fresh(), snapshot(at(10, 0), FALLING))
        assert decision.intents == () and decision.done_for_day


class TestContract:
    def test_watch_asks_for_one_more_candle_than_the_slow_average(self) -> None:
        watch = strategy.watch(PARAMS, fresh(), now=at(10, 0), instruments=INSTRUMENTS, spot=None)
        assert watch.quotes == {KEY}
        assert watch.minute_candles == {KEY: 5}

    def test_lot_size_of_an_equity_is_one(self) -> None:
        assert strategy.lot_size(INSTRUMENTS) == 1

    def test_registry_names_both_strategies(self) -> None:
        assert set(STRATEGIES) == {"short_strangle", "sma_crossover"}
        assert get_strategy("sma_crossover") is STRATEGIES["sma_crossover"]
        with pytest.raises(KeyError, match="short_strangle"):
            get_strategy("iron_condor")
        for strategy_ in STRATEGIES.values():
            defaults = strategy_.Params()
            assert all(getattr(defaults, name) >= 1 for name in strategy_.lots_fields)
            assert strategy_.State.model_json_schema()["type"] == "object"


class TestParams:
    @pytest.mark.parametrize(
        ("values", "fields"),
        [
            ({"fast": 20, "slow": 5}, ["fast", "slow"]),
            ({"fast": 25}, ["fast", "slow"]),
            ({"fast": 1}, ["fast"]),
            ({"lots": 0}, ["lots"]),
            ({"lots": 51}, ["lots"]),
            ({"exchange": "NFO"}, ["exchange"]),
            ({"tradingsymbol": "infy; drop"}, ["tradingsymbol"]),
            ({"square_off_time": "16:00"}, ["square_off_time"]),
        ],
    )
    def test_bad_values_name_the_field(self, values: dict[str, object], fields: list[str]) -> None:
        with pytest.raises(ValidationError) as raised:
            SmaParams.model_validate(values)
        assert [e["loc"][0] for e in raised.value.errors()] == fields

    def test_json_schema_carries_the_bounds(self) -> None:
        props = SmaParams.model_json_schema()["properties"]
        assert (props["lots"]["minimum"], props["lots"]["maximum"]) == (1, 50)
        assert (props["fast"]["minimum"], props["slow"]["maximum"]) == (2, 200)
        assert props["square_off_time"]["formatMaximum"] == "15:30:00"
        assert all(prop.get("description") for prop in props.values())

    def test_defaults(self) -> None:
        assert SmaParams().model_dump(mode="json") == {
            "tradingsymbol": "RELIANCE",
            "exchange": "NSE",
            "fast": 5,
            "slow": 20,
            "lots": 1,
            "square_off_time": "15:15:00",
        }


def test_state_survives_a_json_round_trip() -> None:
    state, _ = long_position()
    assert SmaState.model_validate(state.model_dump(mode="json")) == state
