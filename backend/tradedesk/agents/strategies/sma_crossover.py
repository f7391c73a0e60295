"""``sma_crossover``: one NSE equity, long while a fast simple moving average of completed minute closes is
above a slow one, flat otherwise; squared off before the close. Small and cheap on purpose (the benchmark
runs hundreds of them).

Orders are named ``B1``, ``S2``, ``B3``… (side and sequence); every id is sent once and read back from
``snapshot.orders``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, Field, model_validator

from tradedesk.agents.strategies.base import (
    CancelOrder,
    Candle,
    Decision,
    InstrumentInfo,
    Intent,
    MarketSnapshot,
    PlaceOrder,
    TransactionType,
    Watch,
)
from tradedesk.agents.strategies.params import Lots, MarketTime, inconsistent
from tradedesk.kit.calendar import ist_day
from tradedesk.kit.clock import IST

Relation = Literal["above", "below"]


class SmaParams(BaseModel):
    tradingsymbol: str = Field(
        "RELIANCE",
        min_length=1,
        max_length=32,
        pattern=r"^[A-Z0-9&_-]+$",
        description="The NSE equity traded, as the broker spells it (e.g. RELIANCE).",
    )
    exchange: Literal["NSE"] = Field("NSE", description="Exchange of the equity.")
    fast: int = Field(5, ge=2, le=100, description="Minutes in the fast moving average.")
    slow: int = Field(20, ge=3, le=200, description="Minutes in the slow moving average.")
    lots: Lots = Field(1, description="Lots bought on a cross up; quantity is lots x the lot size (1 share).")
    square_off_time: MarketTime = Field(
        time(15, 15),
        description="When a position still open is sold and the agent is done for the day (IST).",
    )

    @model_validator(mode="after")
    def _slow_is_slower(self) -> Self:
        if self.slow <= self.fast:
            raise inconsistent(self, [(("fast", "slow"), "fast must be fewer minutes than slow")])
        return self

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


class SmaState(BaseModel):
    day: date
    lot_size: int | None = None
    # Every order intent sent today, oldest first; the id's first letter is its side (B or S).
    orders: list[str] = Field(default_factory=list)
    cancelled: list[str] = Field(default_factory=list)
    # Fast versus slow at the last candle decided on, so a cross is seen even across a missed minute.
    relation: Relation | None = None
    last_candle_at: datetime | None = None
    squaring_off: bool = False
    done: bool = False


def sma(candles: Sequence[Candle], periods: int) -> float:
    window = candles[-periods:]
    return sum(c.close for c in window) / len(window)


def relation_at(candles: Sequence[Candle], *, fast: int, slow: int, before: Relation | None) -> Relation:
    """Fast above or below slow at the last candle; a tie keeps the relation it had (no cross)."""
    fast_value, slow_value = sma(candles, fast), sma(candles, slow)
    if fast_value == slow_value and before is not None:
        return before
    return "above" if fast_value > slow_value else "below"


def _side(intent_id: str) -> TransactionType:
    return "BUY" if intent_id.startswith("B") else "SELL"


class SmaCrossover:
    name: ClassVar[str] = "sma_crossover"
    title: ClassVar[str] = "SMA crossover"
    description: ClassVar[str] = (
        "Buys an NSE equity when its fast moving average of minute closes crosses above the slow one and "
        "sells when it crosses back below; one position at most, squared off before the close."
    )
    Params: ClassVar[type[BaseModel]] = SmaParams
    State: ClassVar[type[BaseModel]] = SmaState
    lots_fields: ClassVar[tuple[str, ...]] = ("lots",)

    def initial_state(self, params: SmaParams, *, now: datetime) -> SmaState:
        return SmaState(day=ist_day(now))

    def watch(
        self,
        params: SmaParams,
        state: SmaState,
        *,
        now: datetime,
        instruments: Sequence[InstrumentInfo],
        spot: float | None,
    ) -> Watch:
        # One candle more than the slow average, to see which side of it the fast one was a minute ago.
        return Watch(quotes=frozenset({params.key}), minute_candles={params.key: params.slow + 1})

    def decide(self, params: SmaParams, state: SmaState, snapshot: MarketSnapshot) -> Decision[SmaState]:
        state = self._for_day(params, state, snapshot)
        if state.done:
            return Decision(state=state, done_for_day=True)
        notes: list[str] = []
        if not state.squaring_off and snapshot.now.astimezone(IST).time() >= params.square_off_time:
            state.squaring_off = True
            notes.append(
                f"It is {params.square_off_time.isoformat('minutes')}: closing the position for the day."
            )
        if state.squaring_off:
            return self._flatten(params, state, snapshot, notes)
        if any(self._working(state, snapshot)):
            return Decision(state=state, notes=tuple(notes))
        candles = snapshot.candles.get(params.key, ())
        # Most cycles of a minute see the candle already decided on: no averages are computed again.
        if len(candles) < params.slow + 1 or candles[-1].at == state.last_candle_at:
            return Decision(state=state, notes=tuple(notes))
        before = state.relation or relation_at(candles[:-1], fast=params.fast, slow=params.slow, before=None)
        now_relation = relation_at(candles, fast=params.fast, slow=params.slow, before=before)
        state.relation = now_relation
        state.last_candle_at = candles[-1].at
        if before == now_relation:
            return Decision(state=state, notes=tuple(notes))
        held = self._held(state, snapshot)
        at = candles[-1].at.astimezone(IST).strftime("%H:%M")
        averages = (
            f"SMA({params.fast}) {sma(candles, params.fast):.2f} crossed "
            f"{now_relation} SMA({params.slow}) {sma(candles, params.slow):.2f} on the {at} candle"
        )
        intents: list[Intent] = []
        if now_relation == "above" and held == 0:
            if not snapshot.entries_allowed:
                notes.append(f"{averages}; no entry: the daily loss limit is reached.")
            elif (lot_size := self._lot_size(params, state, snapshot)) is None:
                notes.append(f"{averages}; no entry: {params.key} is not in the instrument list.")
            else:
                quantity = params.lots * lot_size
                intents.append(self._order(params, state, "BUY", quantity))
                notes.append(f"{averages}: buying {quantity} {params.tradingsymbol}.")
        elif now_relation == "below" and held > 0:
            intents.append(self._order(params, state, "SELL", held))
            notes.append(f"{averages}: selling the {held} {params.tradingsymbol} held.")
        return Decision(state=state, intents=tuple(intents), notes=tuple(notes))

    def square_off(self, params: SmaParams, state: SmaState, snapshot: MarketSnapshot) -> Decision[SmaState]:
        state = self._for_day(params, state, snapshot)
        if state.done:
            return Decision(state=state, done_for_day=True)
        notes: list[str] = []
        if not state.squaring_off:
            state.squaring_off = True
            notes.append("Squaring off: cancelling working orders and selling what is held.")
        return self._flatten(params, state, snapshot, notes)

    def lot_size(self, instruments: Sequence[InstrumentInfo]) -> int | None:
        # NSE equities trade in single shares whatever the symbol.
        return 1

    def exit_reason(self, intent_id: str) -> str:
        # Every order is a market order on a crossover (or the day's flattening, named the same way).
        return "signal"

    # -- helpers -------------------------------------------------------------------------------------------
    def _for_day(self, params: SmaParams, state: SmaState, snapshot: MarketSnapshot) -> SmaState:
        if state.day != ist_day(snapshot.now):
            return self.initial_state(params, now=snapshot.now)
        return state.model_copy(deep=True)

    @staticmethod
    def _working(state: SmaState, snapshot: MarketSnapshot) -> list[str]:
        working = []
        for intent_id in state.orders:
            found = snapshot.orders.get(intent_id)
            if found is None or found.pending:
                working.append(intent_id)
        return working

    @staticmethod
    def _held(state: SmaState, snapshot: MarketSnapshot) -> int:
        held = 0
        for intent_id in state.orders:
            found = snapshot.orders.get(intent_id)
            if found is not None:
                held += found.filled_quantity if _side(intent_id) == "BUY" else -found.filled_quantity
        return held

    @staticmethod
    def _lot_size(params: SmaParams, state: SmaState, snapshot: MarketSnapshot) -> int | None:
        if state.lot_size is None:
            for instrument in snapshot.instruments:
                if (
                    instrument.exchange == params.exchange
                    and instrument.tradingsymbol == params.tradingsymbol
                ):
                    state.lot_size = max(1, instrument.lot_size)
                    break
        return state.lot_size

    @staticmethod
    def _order(params: SmaParams, state: SmaState, side: TransactionType, quantity: int) -> PlaceOrder:
        intent_id = f"{side[0]}{len(state.orders) + 1}"
        state.orders.append(intent_id)
        return PlaceOrder(
            intent_id=intent_id,
            exchange=params.exchange,
            tradingsymbol=params.tradingsymbol,
            transaction_type=side,
            quantity=quantity,
            order_type="MARKET",
            product="MIS",
        )

    def _flatten(
        self, params: SmaParams, state: SmaState, snapshot: MarketSnapshot, notes: list[str]
    ) -> Decision[SmaState]:
        """Cancel what is working and sell what is held, in one go (a stop or the kill switch asks only
        once); a later call sells anything a raced fill left behind. Done once flat with nothing working."""
        intents: list[Intent] = []
        working = self._working(state, snapshot)
        for intent_id in working:
            if intent_id not in state.cancelled and intent_id in snapshot.orders:
                state.cancelled.append(intent_id)
                intents.append(CancelOrder(intent_id=f"X-{intent_id}", target=intent_id))
        held = self._held(state, snapshot)
        side: TransactionType = "SELL" if held > 0 else "BUY"
        if held != 0 and not any(_side(intent_id) == side for intent_id in working):
            intents.append(self._order(params, state, side, abs(held)))
            notes.append(
                f"{'Selling' if held > 0 else 'Buying back'} {abs(held)} {params.tradingsymbol} to be flat."
            )
        elif held == 0 and not working:
            state.done = True
            notes.append("Flat with nothing working; done for the day.")
        return Decision(state=state, intents=tuple(intents), notes=tuple(notes), done_for_day=state.done)
