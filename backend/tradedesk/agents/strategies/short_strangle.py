"""``short_strangle``, the trader's own strategy: sell a NIFTY weekly OTM call and put picked by delta, guard
each leg with a buy stop, trail the stops as the premium decays, re-enter a stopped side, square off
before the close.

Orders are named by intent ids a leg derives from its side and number (``CE1`` is the first call,
``CE2`` its re-entry): ``CE1-SL`` its stop, ``CE1-M1``/``CE1-M2`` the stop's profit-booking moves,
``X-CE1-SL`` a cancel of that stop, ``SQ-CE1`` the buy-back (``SQ2-CE1``… correct a buy-back that
raced a stop fill). Every id is sent once; what became of it is read back from ``snapshot.orders``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, Field, model_validator

from tradedesk.agents.strategies.base import (
    NIFTY_KEY,
    VIX_KEY,
    CancelOrder,
    Decision,
    InstrumentInfo,
    Intent,
    MarketSnapshot,
    ModifyOrder,
    OrderType,
    OrderView,
    PlaceOrder,
    Product,
    TransactionType,
    Watch,
)
from tradedesk.agents.strategies.params import Lots, MarketTime, inconsistent
from tradedesk.agents.strategies.pricing import bs_delta, ceil_to_tick, round_to_tick, years_to_expiry
from tradedesk.kit.calendar import ist_day
from tradedesk.kit.clock import IST

Side = Literal["CE", "PE"]
SIDES: tuple[Side, ...] = ("CE", "PE")
SIDE_NAMES: dict[Side, str] = {"CE": "call", "PE": "put"}
UNDERLYING = "NIFTY"
EXCHANGE = "NFO"
PRODUCT: Product = "MIS"

# Why we are taking a leg off ourselves (None while it runs under its stop).
CloseReason = Literal["stop", "lock", "unprotected", "square_off", "entry_failed"]
# Closings that count as the stop firing: the side is re-entered.
REENTER_AFTER: frozenset[str] = frozenset({"stop", "lock"})


def _minutes(at: time) -> str:
    return at.isoformat("minutes")


class StopLossPct(BaseModel):
    """The stop's distance above the entry fill, in percent of the fill, by weekday."""

    mon: float = Field(30.0, ge=1, le=200, description="Stop loss on Mondays, % above the entry fill.")
    tue: float = Field(30.0, ge=1, le=200, description="Stop loss on Tuesdays, % above the entry fill.")
    wed: float = Field(30.0, ge=1, le=200, description="Stop loss on Wednesdays, % above the entry fill.")
    thu: float = Field(30.0, ge=1, le=200, description="Stop loss on Thursdays, % above the entry fill.")
    fri: float = Field(30.0, ge=1, le=200, description="Stop loss on Fridays, % above the entry fill.")

    def for_day(self, day: date) -> float:
        # A weekend has no session; it borrows Friday's figure rather than failing.
        return (self.mon, self.tue, self.wed, self.thu, self.fri)[min(day.weekday(), 4)]


# Unknown keys are dropped rather than refused (pydantic's default, kept on purpose): a stored parameter
# snapshot that still carries a field a later version retired must keep loading.
class StrangleParams(BaseModel):
    call_lots: Lots = Field(1, description="Lots of the call sold; quantity is lots x the lot size.")
    put_lots: Lots = Field(1, description="Lots of the put sold; quantity is lots x the lot size.")
    entry_time: MarketTime = Field(time(9, 40), description="When the strangle is first sold (IST).")
    entry_deadline: MarketTime = Field(
        time(10, 30),
        description="Until when the first entry is retried while no pair qualifies (IST).",
    )
    last_reentry_time: MarketTime = Field(
        time(14, 45), description="No re-entry after a stop is sent after this time (IST)."
    )
    square_off_time: MarketTime = Field(
        time(15, 15),
        description="When open stops are cancelled and every open leg is bought back (IST); "
        "keep it before the broker's 15:20 MIS square-off.",
    )
    min_days_to_expiry: int = Field(
        2, ge=0, le=5, description="Use the next weekly expiry when fewer trading days than this remain."
    )
    strike_window: int = Field(500, ge=50, le=2000, description="Strikes considered: ATM ± this many points.")
    delta_low: float = Field(0.29, ge=0.01, le=0.5, description="Lowest |delta| a sold strike may have.")
    delta_high: float = Field(0.36, ge=0.01, le=0.5, description="Highest |delta| a sold strike may have.")
    risk_free_rate: float = Field(5.0, ge=0, le=20, description="Risk-free rate for Black-Scholes, % a year.")
    max_price_diff_pct: float = Field(
        1.5,
        ge=0,
        le=100,
        description="Largest |call - put| / max(call, put) of the pair sold, in %.",
    )
    stop_loss_pct: StopLossPct = Field(
        default_factory=StopLossPct, description="Stop trigger above the entry fill, % by weekday."
    )
    stop_limit_buffer_pct: float = Field(
        5.0,
        ge=0,
        le=50,
        description="A stop's limit price sits this many % above its trigger, room to fill in a spike.",
    )
    first_profit_points: float = Field(
        32.0,
        gt=0,
        le=1000,
        description="Combined premium decay (points per unit) that moves both stops to breakeven.",
    )
    second_profit_points: float = Field(
        40.0,
        gt=0,
        le=1000,
        description="Combined premium decay (points per unit) that moves both stops to entry - lock points.",
    )
    lock_points: float = Field(
        10.0, ge=0, le=1000, description="Profit locked per unit at the second step (points below entry)."
    )
    max_stop_loss_reentries: int = Field(
        6, ge=0, le=20, description="Re-entries after a stop, at most, per day (both sides together)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[tuple[str, ...], str]] = []
        if self.delta_high <= self.delta_low:
            problems.append((("delta_low", "delta_high"), "delta_low must be below delta_high"))
        times = (
            ("entry_time", "entry_deadline", self.entry_time < self.entry_deadline),
            ("entry_time", "last_reentry_time", self.entry_time < self.last_reentry_time),
            ("entry_deadline", "square_off_time", self.entry_deadline < self.square_off_time),
            ("last_reentry_time", "square_off_time", self.last_reentry_time <= self.square_off_time),
        )
        for earlier, later, ordered in times:
            if not ordered:
                problems.append(
                    (
                        (earlier, later),
                        f"{later} ({_minutes(getattr(self, later))}) must come after "
                        f"{earlier} ({_minutes(getattr(self, earlier))})",
                    )
                )
        if self.second_profit_points <= self.first_profit_points:
            problems.append(
                (
                    ("first_profit_points", "second_profit_points"),
                    "second_profit_points must be greater than first_profit_points",
                )
            )
        if problems:
            raise inconsistent(self, problems)
        return self


class Leg(BaseModel):
    """One option sold: its entry order, its stop and whatever took it off."""

    side: Side
    number: int
    exchange: str
    tradingsymbol: str
    strike: float
    quantity: int
    tick_size: float
    entry_price: float | None = None
    stop_placed: bool = False
    stop_trigger: float | None = None
    # The last profit-booking step applied to the stop (0 none, 1 breakeven, 2 locked).
    profit_step: int = 0
    closing: CloseReason | None = None
    cancelled: list[str] = Field(default_factory=list)
    exits: list[str] = Field(default_factory=list)
    # Flat with nothing pending, and its outcome (a re-entry or not) already acted on.
    settled: bool = False

    @property
    def id(self) -> str:
        return f"{self.side}{self.number}"

    @property
    def stop_id(self) -> str:
        return f"{self.id}-SL"

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"

    def next_exit_id(self) -> str:
        return f"SQ-{self.id}" if not self.exits else f"SQ{len(self.exits) + 1}-{self.id}"


class StrangleState(BaseModel):
    day: date
    expiry: date | None = None
    entered: bool = False
    legs: list[Leg] = Field(default_factory=list)
    reentries: int = 0
    reentry_sides: list[Side] = Field(default_factory=list)
    squaring_off: bool = False
    done: bool = False
    # topic -> the waiting note last said, so a condition retried every cycle is reported once.
    waiting: dict[str, str] = Field(default_factory=dict)


# -- the option chain --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chain:
    """NIFTY weekly options by expiry and side, sorted by strike."""

    options: dict[date, dict[Side, tuple[InstrumentInfo, ...]]]

    def expiries(self, *, on_or_after: date) -> list[date]:
        return sorted(expiry for expiry in self.options if expiry >= on_or_after)

    def window(self, expiry: date, side: Side, *, spot: float, points: float) -> tuple[InstrumentInfo, ...]:
        """The contracts within ``points`` of the strike nearest the spot."""
        listed = self.options.get(expiry, {}).get(side, ())
        if not listed:
            return ()
        atm = min((i.strike or 0.0 for i in listed), key=lambda strike: abs(strike - spot))
        return tuple(i for i in listed if abs((i.strike or 0.0) - atm) <= points)

    def lot_size(self) -> int | None:
        for sides in self.options.values():
            for listed in sides.values():
                if listed:
                    return listed[0].lot_size
        return None


def build_chain(instruments: Sequence[InstrumentInfo]) -> Chain:
    options: dict[date, dict[Side, list[InstrumentInfo]]] = {}
    for item in instruments:
        if (
            item.exchange == EXCHANGE
            and item.name == UNDERLYING
            and item.instrument_type in SIDES
            and item.expiry is not None
            and item.strike is not None
        ):
            side: Side = "CE" if item.instrument_type == "CE" else "PE"
            options.setdefault(item.expiry, {"CE": [], "PE": []})[side].append(item)
    return Chain(
        {
            expiry: {
                side: tuple(sorted(listed, key=lambda i: i.strike or 0.0)) for side, listed in sides.items()
            }
            for expiry, sides in options.items()
        }
    )


# The runtime hands every agent the same instrument tuple for a whole day, and on the real exchange it
# holds tens of thousands of rows: the chain is built once per tuple, not once per agent per cycle.
_chain_memo: list[tuple[Sequence[InstrumentInfo], Chain]] = []


def nifty_chain(instruments: Sequence[InstrumentInfo]) -> Chain:
    if _chain_memo and _chain_memo[0][0] is instruments:
        return _chain_memo[0][1]
    chain = build_chain(instruments)
    _chain_memo[:] = [(instruments, chain)]
    return chain


def choose_expiry(
    chain: Chain, *, now: datetime, trading_days_to: Mapping[date, int], min_days: int
) -> date | None:
    """The nearest expiry with at least ``min_days`` trading days left (so the next one once the
    nearest is too close); expiries the runtime's calendar does not know are skipped."""
    for expiry in chain.expiries(on_or_after=ist_day(now)):
        days = trading_days_to.get(expiry)
        if days is None or years_to_expiry(expiry, now=now) <= 0:
            continue
        if days >= min_days:
            return expiry
    return None


@dataclass(frozen=True, slots=True)
class Candidate:
    instrument: InstrumentInfo
    delta: float  # |delta|
    price: float


# -- one decision ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Cycle:
    """One decision: a private copy of the state that the steps below update, plus what they say and
    send. Nothing here survives the call except the returned Decision."""

    params: StrangleParams
    state: StrangleState
    snapshot: MarketSnapshot
    intents: list[Intent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- reading the snapshot --------------------------------------------------------------------------
    @property
    def now_ist(self) -> time:
        return self.snapshot.now.astimezone(IST).time()

    def view(self, intent_id: str) -> OrderView | None:
        return self.snapshot.orders.get(intent_id)

    def in_flight(self, intent_id: str) -> bool:
        """Sent and not yet final: either the broker has not answered for it or it is still working."""
        found = self.view(intent_id)
        return found is None or found.pending

    def open_short(self, leg: Leg) -> int:
        """Quantity of the leg still sold, from fills: entry minus stop and buy-backs (plus corrections)."""
        entry = self.view(leg.id)
        short = entry.filled_quantity if entry is not None else 0
        closers = ([leg.stop_id] if leg.stop_placed else []) + leg.exits
        for intent_id in closers:
            found = self.view(intent_id)
            if found is not None:
                short += -found.filled_quantity if found.transaction_type == "BUY" else found.filled_quantity
        return short

    def live_legs(self) -> Iterator[Leg]:
        return (leg for leg in self.state.legs if not leg.settled)

    # -- saying things ---------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.notes.append(text)

    def wait(self, topic: str, text: str) -> None:
        if self.state.waiting.get(topic) != text:
            self.state.waiting[topic] = text
            self.notes.append(text)

    def stop_waiting(self, topic: str) -> None:
        self.state.waiting.pop(topic, None)

    # -- orders ----------------------------------------------------------------------------------------
    def stop_limit(self, trigger: float, tick: float) -> float:
        return max(trigger, ceil_to_tick(trigger * (1 + self.params.stop_limit_buffer_pct / 100), tick))

    def cancel(self, leg: Leg, target: str) -> None:
        if target in leg.cancelled:
            return
        leg.cancelled.append(target)
        self.intents.append(CancelOrder(intent_id=f"X-{target}", target=target))

    def place(
        self,
        leg: Leg,
        intent_id: str,
        side: TransactionType,
        quantity: int,
        *,
        order_type: OrderType = "MARKET",
        price: float = 0.0,
        trigger_price: float = 0.0,
    ) -> None:
        """An order in the leg's option."""
        self.intents.append(
            PlaceOrder(
                intent_id=intent_id,
                exchange=leg.exchange,
                tradingsymbol=leg.tradingsymbol,
                transaction_type=side,
                quantity=quantity,
                order_type=order_type,
                product=PRODUCT,
                price=price,
                trigger_price=trigger_price,
            )
        )

    def send_exit(self, leg: Leg, quantity: int, side: TransactionType) -> None:
        intent_id = leg.next_exit_id()
        leg.exits.append(intent_id)
        self.place(leg, intent_id, side, quantity)

    def sell(self, side: Side, pick: Candidate, lots: int) -> Leg:
        number = 1 + max((leg.number for leg in self.state.legs if leg.side == side), default=0)
        instrument = pick.instrument
        leg = Leg(
            side=side,
            number=number,
            exchange=instrument.exchange,
            tradingsymbol=instrument.tradingsymbol,
            strike=instrument.strike or 0.0,
            quantity=lots * instrument.lot_size,
            tick_size=instrument.tick_size,
        )
        self.state.legs.append(leg)
        self.place(leg, leg.id, "SELL", leg.quantity)
        return leg

    # -- the steps -------------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Read each running leg's orders: guard a fresh fill with its stop, notice a stop that fired or
        vanished, and an entry the broker refused."""
        for leg in self.live_legs():
            if leg.closing is not None:
                continue
            entry = self.view(leg.id)
            if entry is None or entry.pending:
                continue
            if entry.filled_quantity <= 0:
                leg.closing = "entry_failed"
                self.say(
                    f"{leg.id} ({leg.tradingsymbol}) was not filled ({entry.status.lower()}"
                    f"{': ' + entry.status_message if entry.status_message else ''}); "
                    f"the {SIDE_NAMES[leg.side]} side stays flat and is not retried."
                )
                continue
            if not leg.stop_placed:
                if not self.state.squaring_off:
                    self.place_stop(leg, entry)
                continue
            stop = self.view(leg.stop_id)
            if stop is None:
                continue
            if stop.filled:
                leg.closing = "stop"
                self.say(
                    f"{leg.id}'s stop fired: {leg.tradingsymbol} bought back at {stop.average_price:.2f} "
                    f"(sold at {leg.entry_price or entry.average_price:.2f})."
                )
            elif not stop.pending and leg.stop_id not in leg.cancelled:
                leg.closing = "unprotected"
                self.say(
                    f"{leg.id}'s stop was {stop.status.lower()}"
                    f"{' (' + stop.status_message + ')' if stop.status_message else ''}; "
                    f"a sold option is never left without a stop, so {leg.tradingsymbol} is bought back."
                )

    def place_stop(self, leg: Leg, entry: OrderView) -> None:
        fill = entry.average_price
        leg.entry_price = fill
        pct = self.params.stop_loss_pct.for_day(self.state.day)
        trigger = round_to_tick(fill * (1 + pct / 100), leg.tick_size)
        last = self.snapshot.price(leg.key)
        if last is not None and last >= trigger:
            # The broker refuses a buy stop at or below the last price: the stop is already crossed.
            leg.closing = "stop"
            self.say(
                f"{leg.id} ({leg.tradingsymbol}) filled at {fill:.2f} but already trades at {last:.2f}, "
                f"past its {pct:g} % stop at {trigger:.2f}; it is bought back as a stop-out."
            )
            return
        leg.stop_placed = True
        leg.stop_trigger = trigger
        # SL with a limit rather than SL-M: the broker refuses SL-M orders on options, and the limit's
        # buffer above the trigger leaves room to fill in a fast move.
        self.place(
            leg,
            leg.stop_id,
            "BUY",
            entry.filled_quantity,
            order_type="SL",
            price=self.stop_limit(trigger, leg.tick_size),
            trigger_price=trigger,
        )
        self.say(
            f"{leg.id} sold {entry.filled_quantity} {leg.tradingsymbol} at {fill:.2f}; stop at {trigger:.2f} "
            f"({pct:g} % on {self.state.day.strftime('%A')})."
        )

    def book_profits(self) -> None:
        """Move both stops to breakeven once the pair has decayed by the first step, to entry - lock at
        the second. Evaluated only while both a call and a put run under a resting stop."""
        running: dict[Side, Leg] = {}
        for leg in self.live_legs():
            stop = self.view(leg.stop_id) if leg.stop_placed else None
            if leg.closing is None and stop is not None and stop.status == "TRIGGER PENDING":
                running[leg.side] = leg
        if len(running) < 2:
            return
        marks = {side: self.snapshot.price(leg.key) for side, leg in running.items()}
        entries = {side: leg.entry_price for side, leg in running.items()}
        if any(v is None for v in marks.values()) or any(v is None for v in entries.values()):
            return
        decay = sum(e or 0.0 for e in entries.values()) - sum(m or 0.0 for m in marks.values())
        params = self.params
        reached = (
            2 if decay >= params.second_profit_points else 1 if decay >= params.first_profit_points else 0
        )
        for side, leg in running.items():
            if leg.profit_step >= reached:
                continue
            leg.profit_step = reached
            entry_price = leg.entry_price or 0.0
            target = entry_price if reached == 1 else entry_price - params.lock_points
            trigger = max(leg.tick_size, round_to_tick(target, leg.tick_size))
            label = "breakeven" if reached == 1 else f"entry - {params.lock_points:g}"
            last = marks[side] or 0.0
            if last >= trigger:
                leg.closing = "lock"
                self.say(
                    f"The pair has decayed {decay:.2f} points; {leg.id}'s new stop ({label}, "
                    f"{trigger:.2f}) is already crossed at {last:.2f}, so it is bought back as if its "
                    "stop had fired."
                )
                continue
            if trigger == leg.stop_trigger:
                continue
            leg.stop_trigger = trigger
            self.intents.append(
                ModifyOrder(
                    intent_id=f"{leg.id}-M{reached}",
                    target=leg.stop_id,
                    trigger_price=trigger,
                    price=self.stop_limit(trigger, leg.tick_size),
                )
            )
            self.say(
                f"The pair has decayed {decay:.2f} points per unit; {leg.id}'s stop moves to {label} "
                f"({trigger:.2f})."
            )

    def begin_square_off(self, why: str) -> None:
        if not self.state.squaring_off:
            self.state.squaring_off = True
            self.say(why)
        self.state.reentry_sides.clear()
        for leg in self.live_legs():
            if leg.closing is None:
                leg.closing = "square_off"

    def flatten(self) -> None:
        """Take off every leg that is closing: cancel its working orders and buy back what is sold (sell
        back what a raced buy-back overbought); a leg flat with nothing working is settled."""
        for leg in self.live_legs():
            if leg.closing is None:
                continue
            entry = self.view(leg.id)
            stop = self.view(leg.stop_id) if leg.stop_placed else None
            if entry is None or (leg.stop_placed and stop is None):
                continue  # not answered yet: there is no broker order to cancel or count until there is
            if entry.pending:
                self.cancel(leg, leg.id)
            stop_working = stop is not None and stop.pending
            if stop_working:
                self.cancel(leg, leg.stop_id)
            if any(self.in_flight(intent_id) for intent_id in leg.exits):
                continue
            short = self.open_short(leg)
            if short > 0:
                self.send_exit(leg, short, "BUY")
            elif short < 0:
                self.send_exit(leg, -short, "SELL")
                self.say(
                    f"{leg.id}'s stop filled while it was being bought back; {-short} sold back to flat."
                )
            elif not entry.pending and not stop_working:
                self.settle(leg)

    def settle(self, leg: Leg) -> None:
        """The leg is flat with nothing working; a stopped side is queued for re-entry (whose rules
        ``reenter`` applies)."""
        leg.settled = True
        if leg.closing in REENTER_AFTER and not self.state.squaring_off:
            self.state.reentry_sides.append(leg.side)

    def enter(self) -> None:
        params = self.params
        if self.state.entered or self.now_ist < params.entry_time or self.now_ist >= params.entry_deadline:
            return
        if not self.snapshot.entries_allowed:
            self.wait("entry", "No entry: the daily loss limit is reached.")
            return
        expiry = self.expiry()
        if expiry is None:
            return
        picked = self.pick_pair(expiry)
        if isinstance(picked, str):
            self.wait("entry", f"{picked}; retrying every cycle until {_minutes(params.entry_deadline)}.")
            return
        call, put = picked
        self.stop_waiting("entry")
        self.state.entered = True
        self.sell("CE", call, params.call_lots)
        self.sell("PE", put, params.put_lots)
        diff = abs(call.price - put.price) / max(call.price, put.price) * 100
        self.say(
            f"Selling the {expiry.isoformat()} strangle: {call.instrument.tradingsymbol} "
            f"(|Δ| {call.delta:.3f}, {call.price:.2f}) and {put.instrument.tradingsymbol} "
            f"(|Δ| {put.delta:.3f}, {put.price:.2f}), "
            f"prices {diff:.2f} % apart: the pair nearest the middle of "
            f"{params.delta_low:g}-{params.delta_high:g}."
        )

    def reenter(self) -> None:
        params = self.params
        for side in list(self.state.reentry_sides):
            name = SIDE_NAMES[side]
            topic = f"reentry-{side}"
            refusal: str | None = None
            if self.now_ist >= params.last_reentry_time:
                refusal = f"it is past {_minutes(params.last_reentry_time)}"
            elif not self.snapshot.entries_allowed:
                refusal = "the daily loss limit is reached"
            elif self.state.reentries >= params.max_stop_loss_reentries:
                refusal = f"the day's {params.max_stop_loss_reentries} re-entries are used"
            if refusal is not None:
                self.state.reentry_sides.remove(side)
                self.stop_waiting(topic)
                self.say(f"No re-entry of the {name}: {refusal}.")
                continue
            expiry = self.state.expiry
            picked = self.pick_one(expiry, side) if expiry is not None else "the expiry is not known"
            if isinstance(picked, str):
                self.wait(topic, f"Re-entry of the {name} waits: {picked}.")
                continue
            self.stop_waiting(topic)
            self.state.reentry_sides.remove(side)
            self.state.reentries += 1
            lots = params.call_lots if side == "CE" else params.put_lots
            leg = self.sell(side, picked, lots)
            # A single side has no partner to compare prices with: the price-difference rule is for pairs.
            self.say(
                f"Re-entering the {name} ({leg.id}, re-entry {self.state.reentries} of "
                f"{params.max_stop_loss_reentries}): selling {leg.tradingsymbol} (|Δ| {picked.delta:.3f}, "
                f"{picked.price:.2f})."
            )

    # -- picking strikes -------------------------------------------------------------------------------
    def expiry(self) -> date | None:
        if self.state.expiry is not None:
            return self.state.expiry
        found = choose_expiry(
            nifty_chain(self.snapshot.instruments),
            now=self.snapshot.now,
            trading_days_to=self.snapshot.trading_days_to,
            min_days=self.params.min_days_to_expiry,
        )
        if found is None:
            self.wait("expiry", "No NIFTY weekly expiry is listed with its trading days known yet.")
            return None
        self.stop_waiting("expiry")
        self.state.expiry = found
        return found

    def candidates(self, expiry: date, side: Side) -> list[Candidate] | str:
        """Out-of-the-money strikes within the window whose |delta| is in the band, with their quotes."""
        params = self.params
        spot = self.snapshot.price(NIFTY_KEY)
        vix = self.snapshot.price(VIX_KEY)
        if spot is None or spot <= 0 or vix is None or vix <= 0:
            return "no NIFTY spot or India VIX quote yet"
        years = years_to_expiry(expiry, now=self.snapshot.now)
        found: list[Candidate] = []
        for instrument in nifty_chain(self.snapshot.instruments).window(
            expiry, side, spot=spot, points=params.strike_window
        ):
            strike = instrument.strike or 0.0
            out_of_the_money = strike > spot if side == "CE" else strike < spot
            price = self.snapshot.price(instrument.key)
            if not out_of_the_money or price is None or price <= 0:
                continue
            # India VIX is quoted as a level in percent (14.0 = 14 % a year).
            delta = abs(
                bs_delta(
                    spot=spot,
                    strike=strike,
                    years=years,
                    vol=vix / 100,
                    rate=params.risk_free_rate / 100,
                    call=side == "CE",
                )
            )
            if params.delta_low <= delta <= params.delta_high:
                found.append(Candidate(instrument=instrument, delta=delta, price=price))
        if not found:
            return (
                f"no {SIDE_NAMES[side]} within ATM ± {params.strike_window} has |Δ| in "
                f"{params.delta_low:g}-{params.delta_high:g}"
            )
        return found

    def pick_pair(self, expiry: date) -> tuple[Candidate, Candidate] | str:
        calls = self.candidates(expiry, "CE")
        if isinstance(calls, str):
            return calls[0].upper() + calls[1:]
        puts = self.candidates(expiry, "PE")
        if isinstance(puts, str):
            return puts[0].upper() + puts[1:]
        middle = (self.params.delta_low + self.params.delta_high) / 2
        limit = self.params.max_price_diff_pct / 100
        pairs = [
            (call, put)
            for call in calls
            for put in puts
            if abs(call.price - put.price) / max(call.price, put.price) <= limit
        ]
        if not pairs:
            return (
                f"No call/put pair in the delta band is priced within {self.params.max_price_diff_pct:g} % "
                "of each other"
            )
        return min(
            pairs,
            key=lambda pair: (
                abs(pair[0].delta - middle) + abs(pair[1].delta - middle),
                abs(pair[0].price - pair[1].price),
                pair[0].instrument.strike or 0.0,
            ),
        )

    def pick_one(self, expiry: date, side: Side) -> Candidate | str:
        found = self.candidates(expiry, side)
        if isinstance(found, str):
            return found
        middle = (self.params.delta_low + self.params.delta_high) / 2
        return min(found, key=lambda c: (abs(c.delta - middle), c.instrument.strike or 0.0))

    # -- the decision ----------------------------------------------------------------------------------
    def finish(self) -> Decision[StrangleState]:
        state = self.state
        everything_settled = all(leg.settled for leg in state.legs)
        if state.squaring_off:
            if everything_settled:
                state.done = True
                self.say("Squared off: nothing open, nothing pending; done for the day.")
        elif not state.entered:
            if self.now_ist >= self.params.entry_deadline:
                state.done = True
                self.say(
                    f"No strangle was sold by the {_minutes(self.params.entry_deadline)} deadline; "
                    "done for the day."
                )
        elif everything_settled and not state.reentry_sides:
            state.done = True
            self.say("Nothing is open and no re-entry is due; done for the day.")
        return Decision(
            state=state, intents=tuple(self.intents), notes=tuple(self.notes), done_for_day=state.done
        )


class ShortStrangle:
    name: ClassVar[str] = "short_strangle"
    title: ClassVar[str] = "NIFTY short strangle"
    description: ClassVar[str] = (
        "Sells a NIFTY weekly OTM call and put picked by Black-Scholes delta at the entry time, guards each "
        "with a stop, moves the stops to breakeven and then into profit as the premium decays, re-enters a "
        "stopped side, and squares off before the close."
    )
    Params: ClassVar[type[BaseModel]] = StrangleParams
    State: ClassVar[type[BaseModel]] = StrangleState
    lots_fields: ClassVar[tuple[str, ...]] = ("call_lots", "put_lots")

    def initial_state(self, params: StrangleParams, *, now: datetime) -> StrangleState:
        return StrangleState(day=ist_day(now))

    def watch(
        self,
        params: StrangleParams,
        state: StrangleState,
        *,
        now: datetime,
        instruments: Sequence[InstrumentInfo],
        spot: float | None,
    ) -> Watch:
        keys = {NIFTY_KEY, VIX_KEY}
        keys.update(leg.key for leg in state.legs if not leg.settled)
        if spot is not None and self._may_sell(params, state, now=now):
            chain = nifty_chain(instruments)
            # Before the first decision has chosen the expiry, both candidates' chains are watched.
            expiries = (
                [state.expiry] if state.expiry is not None else chain.expiries(on_or_after=ist_day(now))[:2]
            )
            for expiry in expiries:
                for side in SIDES:
                    keys.update(
                        i.key for i in chain.window(expiry, side, spot=spot, points=params.strike_window)
                    )
        return Watch(quotes=frozenset(keys))

    def decide(
        self, params: StrangleParams, state: StrangleState, snapshot: MarketSnapshot
    ) -> Decision[StrangleState]:
        state = self._for_day(params, state, snapshot)
        if state.done:
            return Decision(state=state, done_for_day=True)
        cycle = _Cycle(params=params, state=state, snapshot=snapshot)
        if cycle.now_ist >= params.square_off_time:
            cycle.begin_square_off(
                f"It is {_minutes(params.square_off_time)}: cancelling the stops and buying back what is "
                "open."
            )
        cycle.reconcile()
        if not state.squaring_off:
            cycle.book_profits()
        cycle.flatten()
        if not state.squaring_off:
            cycle.enter()
            cycle.reenter()
        return cycle.finish()

    def square_off(
        self, params: StrangleParams, state: StrangleState, snapshot: MarketSnapshot
    ) -> Decision[StrangleState]:
        state = self._for_day(params, state, snapshot)
        if state.done:
            return Decision(state=state, done_for_day=True)
        cycle = _Cycle(params=params, state=state, snapshot=snapshot)
        cycle.begin_square_off("Squaring off: cancelling every working order and buying back every open leg.")
        cycle.flatten()
        return cycle.finish()

    def lot_size(self, instruments: Sequence[InstrumentInfo]) -> int | None:
        return nifty_chain(instruments).lot_size()

    def exit_reason(self, intent_id: str) -> str:
        # Exits are buy-backs named "SQ…" (the day's square-off, a loss limit, a stop, or a stop that
        # profit booking would have crossed); a fired stop-loss order is told apart by its order type.
        return "square_off" if intent_id.startswith("SQ") else "signal"

    def _for_day(
        self, params: StrangleParams, state: StrangleState, snapshot: MarketSnapshot
    ) -> StrangleState:
        """A private copy of the state for this decision; a state from an earlier day starts afresh."""
        if state.day != ist_day(snapshot.now):
            return self.initial_state(params, now=snapshot.now)
        return state.model_copy(deep=True)

    @staticmethod
    def _may_sell(params: StrangleParams, state: StrangleState, *, now: datetime) -> bool:
        """Whether an entry or a re-entry may still happen today (so candidate strikes are worth quoting)."""
        at = now.astimezone(IST).time()
        if state.done or state.squaring_off or at >= params.square_off_time:
            return False
        if not state.entered:
            return at < params.entry_deadline
        return at < params.last_reentry_time and state.reentries < params.max_stop_loss_reentries
