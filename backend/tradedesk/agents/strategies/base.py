"""The contract between a strategy and the runtime that drives it. A strategy is pure: it reads a
market snapshot, its own state and its parameters, and answers a new state plus order intents. It never
does I/O; the runtime fetches, sends, retries and logs.

Orders are named by the strategy's own *intent ids* (unique within one agent's trading day, at most 12
characters, e.g. ``CE1``, ``CE1-SL``); the runtime maps each intent to the broker order it became and hands
it back, by intent id, in the next snapshot. An intent id is sent at most once: the runtime records it
before sending and tags the broker order with it, so a resumed agent adopts the order instead of sending
it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

TransactionType = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT", "SL", "SL-M"]
Product = Literal["MIS", "NRML", "CNC"]
OrderStatus = Literal["PENDING", "OPEN", "TRIGGER PENDING", "COMPLETE", "CANCELLED", "REJECTED"]
MAX_INTENT_ID_LENGTH = 12

NIFTY_KEY = "NSE:NIFTY 50"
VIX_KEY = "NSE:INDIA VIX"


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """One instrument of the broker's list (the fields a strategy reasons about)."""

    exchange: str
    tradingsymbol: str
    instrument_token: int
    lot_size: int
    tick_size: float
    instrument_type: str  # "CE" | "PE" | "FUT" | "EQ"
    name: str  # underlying name, e.g. "NIFTY"
    expiry: date | None = None
    strike: float | None = None

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


@dataclass(frozen=True, slots=True)
class Candle:
    """A completed candle; ``at`` is its start."""

    at: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int = 0


@dataclass(frozen=True, slots=True)
class OrderView:
    """What the broker says of the order an intent became."""

    intent_id: str
    order_id: str
    status: OrderStatus
    transaction_type: TransactionType
    order_type: OrderType
    tradingsymbol: str
    exchange: str
    quantity: int
    filled_quantity: int
    average_price: float
    price: float
    trigger_price: float
    status_message: str | None = None

    @property
    def pending(self) -> bool:
        return self.status in ("PENDING", "OPEN", "TRIGGER PENDING")

    @property
    def filled(self) -> bool:
        return self.status == "COMPLETE"


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Everything a decision may look at, fetched by the runtime for this cycle.

    ``quotes`` holds last prices by ``EXCHANGE:SYMBOL`` for the keys the strategy asked for (plus the NIFTY
    spot and India VIX, always); ``candles`` completed minute candles (oldest first) of the keys it asked
    for; ``orders`` the broker's view of this agent's intents. ``trading_days_to`` counts trading days from
    ``now``'s IST day to an expiry (today not counted, the expiry day counted), by the runtime's
    calendar.
    """

    now: datetime
    quotes: Mapping[str, float]
    instruments: Sequence[InstrumentInfo]
    orders: Mapping[str, OrderView]
    candles: Mapping[str, Sequence[Candle]] = field(default_factory=dict)
    trading_days_to: Mapping[date, int] = field(default_factory=dict)
    # False once the user's daily loss limit is reached: no new positions, exits still allowed.
    entries_allowed: bool = True

    def price(self, key: str) -> float | None:
        return self.quotes.get(key)


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    intent_id: str
    exchange: str
    tradingsymbol: str
    transaction_type: TransactionType
    quantity: int
    order_type: OrderType
    product: Product
    price: float = 0.0
    trigger_price: float = 0.0


@dataclass(frozen=True, slots=True)
class ModifyOrder:
    """Change a pending order, named by the intent that placed it. ``intent_id`` names this change
    itself (unique, like every intent id), so the runtime sends it once."""

    intent_id: str
    target: str
    price: float | None = None
    trigger_price: float | None = None
    quantity: int | None = None
    order_type: OrderType | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    intent_id: str
    target: str


Intent = PlaceOrder | ModifyOrder | CancelOrder

P = TypeVar("P", bound=BaseModel, contravariant=True)
S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Decision(Generic[S]):
    state: S
    intents: tuple[Intent, ...] = ()
    # Human sentences explaining what was decided and why (they become "decision" events).
    notes: tuple[str, ...] = ()
    # The strategy has nothing more to do today (squared off, or past its deadline with nothing open).
    done_for_day: bool = False


@dataclass(frozen=True, slots=True)
class Watch:
    """What the runtime should fetch for this agent's next snapshot."""

    quotes: frozenset[str] = frozenset()
    # keys whose completed minute candles are wanted, with how many of them
    minute_candles: Mapping[str, int] = field(default_factory=dict)


class Strategy(Protocol[P, S]):
    """A strategy class. ``Params`` bounds become the SPA's JSON Schema; ``State`` is persisted by the
    runtime between cycles (and across runtimes) as JSON."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    State: ClassVar[type[BaseModel]]
    # The lots fields of Params (``call_lots``/``put_lots``, or ``lots``), checked against the
    # configured maximum.
    lots_fields: ClassVar[tuple[str, ...]]

    def initial_state(self, params: P, *, now: datetime) -> S: ...

    def watch(
        self, params: P, state: S, *, now: datetime, instruments: Sequence[InstrumentInfo], spot: float | None
    ) -> Watch: ...

    def decide(self, params: P, state: S, snapshot: MarketSnapshot) -> Decision[S]: ...

    def square_off(self, params: P, state: S, snapshot: MarketSnapshot) -> Decision[S]:
        """Cancel every pending order of this agent and buy/sell back every open position it holds."""
        ...

    def lot_size(self, instruments: Sequence[InstrumentInfo]) -> int | None:
        """The lot size the SPA validates lots against (None when the instrument list is not known)."""
        ...

    def exit_reason(self, intent_id: str) -> str:
        """Why an order this strategy placed (named by its intent id) closes a position, as the trades
        list shows it (``square_off``, ``signal``…); stop orders are ``stop_loss`` whatever this says."""
        ...


def as_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
