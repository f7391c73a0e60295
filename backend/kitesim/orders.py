"""Orders and fills of every user, matched against the simulated market.

A MARKET order fills at once at the price of the current minute. A LIMIT order fills at once when it is
marketable (at the market price); otherwise it rests, and the book replays the market minute by minute from
where it last looked whenever that user's orders, trades, positions or margins are read: a resting limit fills
at its own price at the first session minute that crosses it. SL / SL-M orders wait in ``TRIGGER PENDING``
until a minute reaches the trigger, then behave as a LIMIT (SL) or MARKET (SL-M) order. A DAY order still open
at the close of its session (15:30 IST) is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from kitesim.clock import IST, format_ist
from kitesim.errors import InputError, NotFoundError
from kitesim.instruments import Instrument, InstrumentBook, expiry_cutoff
from kitesim.market import SESSION_MINUTES, Market, MarketMinute, minute_of

TransactionType = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT", "SL", "SL-M"]
Product = Literal["MIS", "NRML", "CNC"]

TRANSACTION_TYPES: tuple[TransactionType, ...] = ("BUY", "SELL")
ORDER_TYPES: tuple[OrderType, ...] = ("MARKET", "LIMIT", "SL", "SL-M")
PRODUCTS: tuple[Product, ...] = ("MIS", "NRML", "CNC")
MAX_TAG_LENGTH = 20
MAX_QUANTITY = 100_000

ChoiceT = TypeVar("ChoiceT", bound=str)

PENDING = frozenset({"OPEN", "TRIGGER PENDING"})
ORDER_NOT_FOUND = "Couldn't find that `order_id`."
CLOSED_AT_END_OF_DAY = "Order cancelled at the end of the trading session."


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
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.status in PENDING

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
            "modified": False,
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
    """A placement that passed validation."""

    instrument: Instrument
    transaction_type: TransactionType
    order_type: OrderType
    product: Product
    quantity: int
    price: float
    trigger_price: float
    validity: str
    tag: str | None


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
    if validity.strip().upper() != "DAY":
        raise InputError("Invalid `validity`: only DAY is accepted.")
    try:
        qty = int(quantity.strip())
    except ValueError:
        raise InputError("Invalid `quantity`: a whole number is needed.") from None
    if not 0 < qty <= MAX_QUANTITY:
        raise InputError(f"Invalid `quantity`: must be between 1 and {MAX_QUANTITY}.")
    if qty % instrument.lot_size:
        raise InputError(
            f"Quantity should be a multiple of the lot size ({instrument.lot_size}) for "
            f"{instrument.tradingsymbol}."
        )
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
        last = market.last_price(instrument, now)
        if side == "BUY" and trigger <= last:
            raise InputError("Trigger price for stop-loss buy orders should be higher than the last price.")
        if side == "SELL" and trigger >= last:
            raise InputError("Trigger price for stop-loss sell orders should be lower than the last price.")
        if kind == "SL" and side == "BUY" and limit < trigger:
            raise InputError("Invalid `price`: a stop-loss buy order's price cannot be below its trigger.")
        if kind == "SL" and side == "SELL" and limit > trigger:
            raise InputError("Invalid `price`: a stop-loss sell order's price cannot be above its trigger.")
    else:
        trigger = 0.0
    cleaned_tag = (tag or "").strip() or None
    if cleaned_tag is not None and len(cleaned_tag) > MAX_TAG_LENGTH:
        raise InputError(f"Invalid `tag`: at most {MAX_TAG_LENGTH} characters.")
    return OrderRequest(
        instrument=instrument,
        transaction_type=side,
        order_type=kind,
        product=chosen_product,
        quantity=qty,
        price=round(limit, 2),
        trigger_price=round(trigger, 2),
        validity="DAY",
        tag=cleaned_tag,
    )


# Called with (user_id, request, reference price); answers a rejection message, or None to let the order in.
MarginCheck = Callable[[str, OrderRequest, float], str | None]


class OrderBook:
    """Every user's orders and fills. Ids are unique across the whole simulator."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.orders: dict[str, Order] = {}
        self.user_orders: dict[str, list[Order]] = {}
        self.user_fills: dict[str, list[Fill]] = {}
        self._order_seq = 0
        self._trade_seq = 0

    # -- ids -----------------------------------------------------------------------------------------------
    def _next_order_id(self, now: datetime) -> str:
        self._order_seq += 1
        return f"{now.astimezone(IST):%y%m%d}{self._order_seq:09d}"

    def _next_exchange_order_id(self) -> str:
        return f"13{self._order_seq:014d}"

    def _next_trade_id(self) -> str:
        self._trade_seq += 1
        return str(10_000_000 + self._trade_seq)

    # -- placing, cancelling ------------------------------------------------------------------------------
    def place(
        self, user_id: str, request: OrderRequest, *, now: datetime, margin_check: MarginCheck | None = None
    ) -> Order:
        self.sync(user_id, now)
        here = minute_of(now)
        # A DAY order lives until the close of the session it was placed in, or of the next one after hours.
        expires = MarketMinute(here.n if here.in_session else here.n + 1, SESSION_MINUTES)
        order = Order(
            order_id=self._next_order_id(now),
            user_id=user_id,
            instrument=request.instrument,
            transaction_type=request.transaction_type,
            order_type=request.order_type,
            product=request.product,
            quantity=request.quantity,
            price=request.price,
            trigger_price=request.trigger_price,
            validity=request.validity,
            tag=request.tag,
            placed_at=now,
            checked=here,
            expires=expires,
        )
        self.orders[order.order_id] = order
        self.user_orders.setdefault(user_id, []).append(order)
        order.record("PUT ORDER REQ RECEIVED", now)
        order.record("VALIDATION PENDING", now)
        last = self.market.last_price(request.instrument, now)
        reference = request.price if request.order_type == "LIMIT" else last
        if request.order_type in ("SL", "SL-M"):
            reference = max(request.price, request.trigger_price)
        rejection = margin_check(user_id, request, reference) if margin_check else None
        if rejection is not None:
            order.record("REJECTED", now, rejection)
            return order
        order.record("OPEN PENDING", now)
        order.exchange_order_id = self._next_exchange_order_id()
        order.exchange_timestamp = now
        if request.order_type in ("SL", "SL-M"):
            order.record("TRIGGER PENDING", now)
            return order
        order.record("OPEN", now)
        if request.order_type == "MARKET" or self._crosses(order, last):
            self._fill(order, last, now)
        return order

    def cancel(self, user_id: str, order_id: str, *, now: datetime) -> Order:
        self.sync(user_id, now)
        order = self.get(user_id, order_id)
        if not order.pending:
            raise InputError(f"Order cannot be cancelled as it is {order.status}.")
        order.cancelled_quantity = order.quantity - order.filled_quantity
        order.record("CANCELLED", now)
        return order

    # -- reading -------------------------------------------------------------------------------------------
    def get(self, user_id: str, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.user_id != user_id:
            raise NotFoundError(ORDER_NOT_FOUND)
        return order

    def orders_of_day(self, user_id: str, day: date) -> list[Order]:
        return [
            order
            for order in self.user_orders.get(user_id, [])
            if order.pending or order.placed_at.astimezone(IST).date() == day
        ]

    def fills(self, user_id: str) -> list[Fill]:
        return list(self.user_fills.get(user_id, []))

    def fills_of_day(self, user_id: str, day: date) -> list[Fill]:
        return [fill for fill in self.user_fills.get(user_id, []) if fill.at.astimezone(IST).date() == day]

    def fills_of_order(self, user_id: str, order_id: str) -> list[Fill]:
        order = self.get(user_id, order_id)
        return [fill for fill in self.user_fills.get(user_id, []) if fill.order_id == order.order_id]

    # -- matching ------------------------------------------------------------------------------------------
    def sync(self, user_id: str, now: datetime) -> None:
        """Replay the market up to ``now`` for this user's resting orders."""
        end = minute_of(now)
        for order in self.user_orders.get(user_id, []):
            if order.pending:
                self._replay(order, end, now)

    def _replay(self, order: Order, end: MarketMinute, now: datetime) -> None:
        minute = order.checked.next()
        while (minute.n, minute.m) <= (end.n, end.m) and order.pending:
            order.checked = minute
            if (minute.n, minute.m) >= (order.expires.n, order.expires.m):
                order.cancelled_quantity = order.quantity - order.filled_quantity
                order.record("CANCELLED", minute.at, CLOSED_AT_END_OF_DAY)
                return
            if minute.in_session:
                self._step(order, minute)
            minute = minute.next()

    def _step(self, order: Order, minute: MarketMinute) -> None:
        price = self.market.price_at(order.instrument, minute)
        at = minute.at
        if order.status == "TRIGGER PENDING":
            hit = (
                price >= order.trigger_price
                if order.transaction_type == "BUY"
                else price <= order.trigger_price
            )
            if not hit:
                return
            order.record("OPEN", at)
            if order.order_type == "SL-M" or self._crosses(order, price):
                self._fill(order, price, at)
            return
        if self._crosses(order, price):
            # A resting limit trades at its own price; at the opening minute a gap gives the better price.
            fill_price = price if minute.m == 0 else order.price
            if order.order_type == "SL-M":
                fill_price = price
            self._fill(order, fill_price, at)

    @staticmethod
    def _crosses(order: Order, price: float) -> bool:
        if order.order_type in ("MARKET", "SL-M"):
            return True
        if order.transaction_type == "BUY":
            return price <= order.price
        return price >= order.price

    def _fill(self, order: Order, price: float, at: datetime) -> None:
        quantity = order.quantity - order.filled_quantity
        assert order.exchange_order_id is not None
        fill = Fill(
            trade_id=self._next_trade_id(),
            order_id=order.order_id,
            exchange_order_id=order.exchange_order_id,
            user_id=order.user_id,
            instrument=order.instrument,
            product=order.product,
            transaction_type=order.transaction_type,
            quantity=quantity,
            price=price,
            at=at,
        )
        self.user_fills.setdefault(order.user_id, []).append(fill)
        order.filled_quantity += quantity
        order.average_price = price
        order.record("COMPLETE", at)
