"""What an order and a fill are, on the wire and in memory, and the checks a placement or a modification
passes before it reaches the book (book.py matches them against the market).

Regular orders are taken only while the market is open (09:15-15:30 IST, Monday to Friday), intraday (MIS)
ones only until the 15:20 square-off. Every refusal here is an ``InputException`` and leaves no order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from kitesim.clock import format_ist
from kitesim.errors import InputError
from kitesim.instruments import Instrument, InstrumentBook, expiry_cutoff
from kitesim.market import SQUARE_OFF_MINUTE, Market, MarketMinute, market_open, minute_of

TransactionType = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT", "SL", "SL-M"]
Product = Literal["MIS", "NRML", "CNC"]

TRANSACTION_TYPES: tuple[TransactionType, ...] = ("BUY", "SELL")
ORDER_TYPES: tuple[OrderType, ...] = ("MARKET", "LIMIT", "SL", "SL-M")
PRODUCTS: tuple[Product, ...] = ("MIS", "NRML", "CNC")
MAX_TAG_LENGTH = 20
MAX_QUANTITY = 100_000
MAX_MODIFICATIONS = 25

ChoiceT = TypeVar("ChoiceT", bound=str)

PENDING = frozenset({"OPEN", "TRIGGER PENDING"})
ORDER_NOT_FOUND = "Couldn't find that `order_id`."
MARKETS_CLOSED = "Markets are closed right now. Use GTT for placing long standing orders instead."
MIS_AFTER_SQUARE_OFF = (
    "Intraday (MIS) orders cannot be placed after the 15:20 square-off. Use CNC or NRML instead."
)
TOO_MANY_MODIFICATIONS = "Maximum allowed order modifications exceeded."
NOTHING_TO_MODIFY = "Nothing to modify: give `quantity`, `price`, `trigger_price` or `order_type`."


@dataclass(slots=True)
class Fill:
    trade_id: str
    order_id: str
    exchange_order_id: str
    user_id: str
    instrument: Instrument
    product: Product
    transaction_type: TransactionType
    quantity: int
    price: float
    at: datetime

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.transaction_type == "BUY" else -self.quantity

    def as_dict(self) -> dict[str, Any]:
        return {
            "trade_id": self.trade_id,
            "order_id": self.order_id,
            "exchange": self.instrument.exchange,
            "tradingsymbol": self.instrument.tradingsymbol,
            "instrument_token": self.instrument.instrument_token,
            "product": self.product,
            "average_price": self.price,
            "quantity": self.quantity,
            "exchange_order_id": self.exchange_order_id,
            "transaction_type": self.transaction_type,
            "fill_timestamp": format_ist(self.at),
            "order_timestamp": format_ist(self.at)[11:],
            "exchange_timestamp": format_ist(self.at),
        }


@dataclass(slots=True)
class Order:
    order_id: str
    user_id: str
    instrument: Instrument
    transaction_type: TransactionType
    order_type: OrderType
    product: Product
    quantity: int
    price: float
    trigger_price: float
    validity: str
    tag: str | None
    placed_at: datetime
    checked: MarketMinute
    expires: MarketMinute
    status: str = "PUT ORDER REQ RECEIVED"
    status_message: str | None = None
    exchange_order_id: str | None = None
    exchange_timestamp: datetime | None = None
    updated_at: datetime | None = None
    filled_quantity: int = 0
    average_price: float = 0.0
    cancelled_quantity: int = 0
    modifications: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.transaction_type == "BUY" else -self.quantity

    def reference_price(self, last_price: float) -> float:
        return reference_price(self.order_type, self.price, self.trigger_price, last_price)

    def as_dict(self) -> dict[str, Any]:
        stamp = self.updated_at or self.placed_at
        open_quantity = self.quantity - self.filled_quantity - self.cancelled_quantity
        return {
            "placed_by": self.user_id,
            "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id,
            "parent_order_id": None,
            "status": self.status,
            "status_message": self.status_message,
            "status_message_raw": self.status_message,
            "order_timestamp": format_ist(stamp),
            "exchange_update_timestamp": format_ist(stamp) if self.exchange_order_id else None,
            "exchange_timestamp": format_ist(self.exchange_timestamp) if self.exchange_timestamp else None,
            "variety": "regular",
            "modified": self.modifications > 0,
            "exchange": self.instrument.exchange,
            "tradingsymbol": self.instrument.tradingsymbol,
            "instrument_token": self.instrument.instrument_token,
            "order_type": self.order_type,
            "transaction_type": self.transaction_type,
            "validity": self.validity,
            "validity_ttl": 0,
            "product": self.product,
            "quantity": self.quantity,
            "disclosed_quantity": 0,
            "price": self.price,
            "trigger_price": self.trigger_price,
            "average_price": self.average_price,
            "filled_quantity": self.filled_quantity,
            "pending_quantity": open_quantity
            if self.status not in ("COMPLETE", "CANCELLED", "REJECTED")
            else 0,
            "cancelled_quantity": self.cancelled_quantity,
            "market_protection": 0,
            "meta": {},
            "tag": self.tag,
            "tags": [self.tag] if self.tag else [],
            "guid": None,
        }

    def record(self, status: str, at: datetime, message: str | None = None) -> None:
        self.status = status
        self.updated_at = at
        if message is not None:
            self.status_message = message
        self.history.append(self.as_dict())


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A placement (or an order as a modification would leave it) that passed validation."""

    instrument: Instrument
    transaction_type: TransactionType
    order_type: OrderType
    product: Product
    quantity: int
    price: float
    trigger_price: float
    validity: str
    tag: str | None

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.transaction_type == "BUY" else -self.quantity

    def reference_price(self, last_price: float) -> float:
        return reference_price(self.order_type, self.price, self.trigger_price, last_price)


def reference_price(order_type: OrderType, price: float, trigger_price: float, last_price: float) -> float:
    """The price an order's margin is judged at: its limit, a stop's higher price, or the market's."""
    if order_type == "LIMIT":
        return price
    if order_type in ("SL", "SL-M"):
        return max(price, trigger_price)
    return last_price


def _choice(name: str, value: str, allowed: tuple[ChoiceT, ...]) -> ChoiceT:
    cleaned = value.strip().upper()
    for option in allowed:
        if option == cleaned:
            return option
    raise InputError(f"Invalid `{name}`: expected one of {', '.join(allowed)}.")


def _number(name: str, value: str) -> float:
    try:
        number = float(value) if value.strip() else 0.0
    except ValueError:
        raise InputError(f"Invalid `{name}`: not a number.") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise InputError(f"Invalid `{name}`: must be a finite number, 0 or more.")
    return number


def _on_tick(value: float, tick: float) -> bool:
    return abs(value / tick - round(value / tick)) < 1e-6


def _given(value: str | None) -> str | None:
    """A form field's value, or None when it was left out or left blank."""
    return value.strip() if value is not None and value.strip() else None


def _quantity(value: str, instrument: Instrument) -> int:
    try:
        qty = int(value.strip())
    except ValueError:
        raise InputError("Invalid `quantity`: a whole number is needed.") from None
    if not 0 < qty <= MAX_QUANTITY:
        raise InputError(f"Invalid `quantity`: must be between 1 and {MAX_QUANTITY}.")
    if qty % instrument.lot_size:
        raise InputError(
            f"Quantity should be a multiple of the lot size ({instrument.lot_size}) for "
            f"{instrument.tradingsymbol}."
        )
    return qty


def _validity(value: str) -> str:
    if value.strip().upper() != "DAY":
        raise InputError("Invalid `validity`: only DAY is accepted.")
    return "DAY"


def _prices(
    instrument: Instrument,
    side: TransactionType,
    kind: OrderType,
    *,
    price: str,
    trigger_price: str,
    last_price: float,
) -> tuple[float, float]:
    """(limit price, trigger price) of an order, each 0 where its type has none."""
    limit = _number("price", price)
    trigger = _number("trigger_price", trigger_price)
    tick = instrument.tick_size
    if kind in ("LIMIT", "SL"):
        if limit <= 0:
            raise InputError(f"Invalid `price`: a {kind} order needs a price above 0.")
        if not _on_tick(limit, tick):
            raise InputError(f"Invalid `price`: the tick size of {instrument.tradingsymbol} is {tick}.")
    else:
        limit = 0.0
    if kind in ("SL", "SL-M"):
        if trigger <= 0:
            raise InputError(f"Invalid `trigger_price`: a {kind} order needs a trigger price above 0.")
        if not _on_tick(trigger, tick):
            raise InputError(
                f"Invalid `trigger_price`: the tick size of {instrument.tradingsymbol} is {tick}."
            )
        if side == "BUY" and trigger <= last_price:
            raise InputError("Trigger price for stop-loss buy orders should be higher than the last price.")
        if side == "SELL" and trigger >= last_price:
            raise InputError("Trigger price for stop-loss sell orders should be lower than the last price.")
        if kind == "SL" and side == "BUY" and limit < trigger:
            raise InputError("Invalid `price`: a stop-loss buy order's price cannot be below its trigger.")
        if kind == "SL" and side == "SELL" and limit > trigger:
            raise InputError("Invalid `price`: a stop-loss sell order's price cannot be above its trigger.")
    else:
        trigger = 0.0
    return round(limit, 2), round(trigger, 2)


def _check_trading_hours(now: datetime, product: Product) -> None:
    if not market_open(now):
        raise InputError(MARKETS_CLOSED)
    if product == "MIS" and minute_of(now).m >= SQUARE_OFF_MINUTE:
        raise InputError(MIS_AFTER_SQUARE_OFF)


def validate_order(
    instruments: InstrumentBook,
    market: Market,
    *,
    now: datetime,
    exchange: str,
    tradingsymbol: str,
    transaction_type: str,
    order_type: str,
    quantity: str,
    product: str,
    price: str,
    trigger_price: str,
    validity: str,
    tag: str | None,
) -> OrderRequest:
    """Check a placement the way the broker's front line does; every problem is an InputException."""
    if not tradingsymbol.strip():
        raise InputError("Missing `tradingsymbol`.")
    if exchange.strip().upper() not in ("NSE", "NFO"):
        raise InputError("Invalid `exchange`: orders are taken on NSE and NFO.")
    instrument = instruments.lookup(exchange, tradingsymbol)
    if instrument is None:
        raise InputError(
            f"Invalid `tradingsymbol`: no instrument {exchange.upper()}:{tradingsymbol.upper()}."
        )
    if not instrument.tradable:
        raise InputError(f"{instrument.key} is an index and cannot be traded.")
    if instrument.expiry is not None and now >= expiry_cutoff(instrument.expiry):
        raise InputError(f"{instrument.tradingsymbol} has expired.")
    side = _choice("transaction_type", transaction_type, TRANSACTION_TYPES)
    kind = _choice("order_type", order_type, ORDER_TYPES)
    chosen_product = _choice("product", product, PRODUCTS)
    if instrument.exchange == "NFO" and chosen_product == "CNC":
        raise InputError("Invalid `product`: CNC is for equity delivery; use NRML or MIS for F&O.")
    if instrument.exchange == "NSE" and chosen_product == "NRML":
        raise InputError("Invalid `product`: NRML is for F&O; use CNC or MIS for equity.")
    _check_trading_hours(now, chosen_product)
    checked_validity = _validity(validity)
    qty = _quantity(quantity, instrument)
    limit, trigger = _prices(
        instrument,
        side,
        kind,
        price=price,
        trigger_price=trigger_price,
        last_price=market.last_price(instrument, now),
    )
    cleaned_tag = (tag or "").strip() or None
    if cleaned_tag is not None and len(cleaned_tag) > MAX_TAG_LENGTH:
        raise InputError(f"Invalid `tag`: at most {MAX_TAG_LENGTH} characters.")
    return OrderRequest(
        instrument=instrument,
        transaction_type=side,
        order_type=kind,
        product=chosen_product,
        quantity=qty,
        price=limit,
        trigger_price=trigger,
        validity=checked_validity,
        tag=cleaned_tag,
    )


def validate_modification(
    order: Order,
    market: Market,
    *,
    now: datetime,
    quantity: str | None,
    price: str | None,
    trigger_price: str | None,
    order_type: str | None,
    validity: str | None,
) -> OrderRequest:
    """The order as the modification would leave it. A field left out keeps its value; the instrument, side,
    product and tag never change. The result passes the same checks as a placement."""
    new_type, new_quantity, new_price, new_trigger, new_validity = (
        _given(value) for value in (order_type, quantity, price, trigger_price, validity)
    )
    if new_type is None and new_quantity is None and new_price is None and new_trigger is None:
        raise InputError(NOTHING_TO_MODIFY)
    _check_trading_hours(now, order.product)
    kind = _choice("order_type", new_type, ORDER_TYPES) if new_type else order.order_type
    checked_validity = _validity(new_validity) if new_validity else order.validity
    qty = _quantity(new_quantity, order.instrument) if new_quantity else order.quantity
    limit, trigger = _prices(
        order.instrument,
        order.transaction_type,
        kind,
        price=new_price or str(order.price),
        trigger_price=new_trigger or str(order.trigger_price),
        last_price=market.last_price(order.instrument, now),
    )
    return OrderRequest(
        instrument=order.instrument,
        transaction_type=order.transaction_type,
        order_type=kind,
        product=order.product,
        quantity=qty,
        price=limit,
        trigger_price=trigger,
        validity=checked_validity,
        tag=order.tag,
    )
