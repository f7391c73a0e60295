"""The order book: every user's orders, fills and positions, matched against the simulated market, and the
events of the trading day (the intraday square-off, the close, expiry settlement).

A MARKET order fills at once at the price of the current minute. A LIMIT order fills at once when it is
marketable (at the market price); otherwise it rests, and fills at its own price at the first session minute
that crosses it. SL / SL-M orders wait in ``TRIGGER PENDING`` until a minute reaches the trigger, then behave
as a LIMIT (SL) or MARKET (SL-M) order. A DAY order still open at the close (15:30 IST) is cancelled.

Each user's account is replayed lazily: whenever that user's orders, trades, positions or margins are read,
or an order is placed, modified or cancelled, the book walks the market from where it last looked for that
user up to the clock, minute by minute while orders rest and from event to event otherwise. Every price is a
pure function of the minute, so doing this late gives the same result as doing it on time, and a request
costs what its own user holds, never what everybody holds.

The day's events, for every account:

- 15:20 IST, auto square-off: open MIS orders are cancelled and every open MIS position is closed by a MARKET
  order at that minute's price (status message ``AUTO_SQUARE_OFF``).
- 15:30 IST, the close: open DAY orders are cancelled; positions in options expiring that day are closed by an
  order and a fill at the settlement price, the intrinsic value at NIFTY's close (``EXPIRY_SETTLEMENT``; the
  price is 0 for a contract that expires worthless).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from kitesim.clock import IST
from kitesim.errors import InputError, NotFoundError
from kitesim.instruments import Instrument
from kitesim.ledger import Ledger, PositionKey
from kitesim.market import (
    SESSION_MINUTES,
    SQUARE_OFF_MINUTE,
    Market,
    MarketMinute,
    minute_of,
    trading_day_date,
    trading_day_index,
)
from kitesim.orders import (
    MAX_MODIFICATIONS,
    ORDER_NOT_FOUND,
    TOO_MANY_MODIFICATIONS,
    Fill,
    Order,
    OrderRequest,
    Product,
    TransactionType,
)

CLOSED_AT_END_OF_DAY = "Order cancelled at the end of the trading session."
CANCELLED_AT_SQUARE_OFF = "Order cancelled by the system: intraday (MIS) orders end at the 15:20 square-off."
AUTO_SQUARE_OFF = "Auto square-off: intraday (MIS) position closed by the system at 15:20."
EXPIRY_SETTLEMENT = "Expiry settlement: option position closed at its intrinsic value at the close."

# (the order as it would be, the price its margin is judged at, the open order it replaces or None) → a
# rejection message, or None to let it in.
MarginCheck = Callable[[OrderRequest, float, Order | None], str | None]


@dataclass(slots=True)
class Position:
    instrument: Instrument
    product: Product
    ledger: Ledger = field(default_factory=Ledger)


@dataclass(slots=True)
class Account:
    """One user's side of the book, indexed so that every read touches only what it shows."""

    user_id: str
    synced: MarketMinute
    orders_by_day: dict[date, list[Order]] = field(default_factory=dict)
    pending: dict[str, Order] = field(default_factory=dict)
    fills_by_day: dict[date, list[Fill]] = field(default_factory=dict)
    fills_by_order: dict[str, list[Fill]] = field(default_factory=dict)
    positions: dict[PositionKey, Position] = field(default_factory=dict)

    def position(self, instrument: Instrument, product: Product) -> Position:
        key = (instrument.exchange, instrument.tradingsymbol, product)
        found = self.positions.get(key)
        if found is None:
            found = self.positions[key] = Position(instrument, product)
        return found

    def held(self, instrument: Instrument, product: Product) -> int:
        found = self.positions.get((instrument.exchange, instrument.tradingsymbol, product))
        return found.ledger.quantity if found else 0


def _ist_day(when: datetime) -> date:
    return when.astimezone(IST).date()


class OrderBook:
    """Every user's account. Order and trade ids are unique across the whole simulator; trade ids also
    across its runs (they count on from the microsecond the book was made), since a client keeps fills
    by trade id and would take a fill of a later run for one it stored before a restart."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.orders: dict[str, Order] = {}
        self.accounts: dict[str, Account] = {}
        self._order_seq = 0
        self._trade_seq = time.time_ns() // 1_000

    # -- ids -----------------------------------------------------------------------------------------------
    def _next_order_id(self, at: datetime) -> str:
        self._order_seq += 1
        return f"{at.astimezone(IST):%y%m%d}{self._order_seq:09d}"

    def _next_exchange_order_id(self) -> str:
        return f"13{self._order_seq:014d}"

    def _next_trade_id(self) -> str:
        self._trade_seq += 1
        return str(self._trade_seq)

    # -- placing, modifying, cancelling -------------------------------------------------------------------
    def place(
        self, user_id: str, request: OrderRequest, *, now: datetime, margin_check: MarginCheck | None = None
    ) -> Order:
        self.sync(user_id, now)
        here = minute_of(now)
        account = self.accounts.get(user_id)
        if account is None:
            account = self.accounts[user_id] = Account(user_id=user_id, synced=here)
        elif here < account.synced:
            # The clock was set back: walk again from here (orders remember how far they were checked).
            account.synced = here
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
            expires=MarketMinute(here.n, SESSION_MINUTES),
        )
        self._add(account, order)
        order.record("PUT ORDER REQ RECEIVED", now)
        order.record("VALIDATION PENDING", now)
        last = self.market.last_price(request.instrument, now)
        rejection = margin_check(request, request.reference_price(last), None) if margin_check else None
        if rejection is not None:
            order.record("REJECTED", now, rejection)
            return order
        order.record("OPEN PENDING", now)
        order.exchange_order_id = self._next_exchange_order_id()
        order.exchange_timestamp = now
        account.pending[order.order_id] = order
        self._arm(account, order, last, now)
        return order

    def modifiable(self, user_id: str, order_id: str, *, now: datetime) -> Order:
        """The user's order, brought up to ``now``, if it can still be modified (an InputException if not)."""
        self.sync(user_id, now)
        order = self.get(user_id, order_id)
        if not order.pending:
            raise InputError(f"Order cannot be modified as it is {order.status}.")
        if order.modifications >= MAX_MODIFICATIONS:
            raise InputError(TOO_MANY_MODIFICATIONS)
        return order

    def modify(
        self, order: Order, request: OrderRequest, *, now: datetime, margin_check: MarginCheck | None = None
    ) -> Order:
        """Apply a checked modification to an order from ``modifiable``; it then waits or fills as if new."""
        account = self.accounts[order.user_id]
        last = self.market.last_price(order.instrument, now)
        rejection = margin_check(request, request.reference_price(last), order) if margin_check else None
        if rejection is not None:
            # The order stays as it was, as on Kite when a modification fails the margin check.
            raise InputError(rejection)
        order.order_type = request.order_type
        order.quantity = request.quantity
        order.price = request.price
        order.trigger_price = request.trigger_price
        order.validity = request.validity
        order.modifications += 1
        for status in ("MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED"):
            order.record(status, now)
        self._arm(account, order, last, now)
        return order

    def cancel(self, user_id: str, order_id: str, *, now: datetime) -> Order:
        self.sync(user_id, now)
        order = self.get(user_id, order_id)
        if not order.pending:
            raise InputError(f"Order cannot be cancelled as it is {order.status}.")
        self._cancel(self.accounts[user_id], order, now)
        return order

    # -- reading -------------------------------------------------------------------------------------------
    def get(self, user_id: str, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.user_id != user_id:
            raise NotFoundError(ORDER_NOT_FOUND)
        return order

    def account(self, user_id: str) -> Account | None:
        return self.accounts.get(user_id)

    def orders_of_day(self, user_id: str, day: date) -> list[Order]:
        account = self.accounts.get(user_id)
        if account is None:
            return []
        todays = account.orders_by_day.get(day, [])
        earlier = [order for order in account.pending.values() if _ist_day(order.placed_at) != day]
        return [*earlier, *todays]

    def fills_of_day(self, user_id: str, day: date) -> list[Fill]:
        account = self.accounts.get(user_id)
        return list(account.fills_by_day.get(day, [])) if account else []

    def fills_of_order(self, user_id: str, order_id: str) -> list[Fill]:
        order = self.get(user_id, order_id)
        return list(self.accounts[user_id].fills_by_order.get(order.order_id, []))

    # -- the market replay ---------------------------------------------------------------------------------
    def sync(self, user_id: str, now: datetime) -> None:
        """Bring this user's account up to ``now``: resting orders, the square-off, the close, expiries."""
        account = self.accounts.get(user_id)
        if account is None:
            return
        end = minute_of(now)
        minute = account.synced
        while minute < end:
            if account.pending:
                minute = minute.next()
            else:
                upcoming = self._next_event(account, minute)
                if upcoming is None or upcoming > end:
                    break
                minute = upcoming
            self._at(account, minute)
            account.synced = minute
        if account.synced < end:
            account.synced = end

    def _next_event(self, account: Account, after: MarketMinute) -> MarketMinute | None:
        """When, after ``after``, the day's events next touch this account's open positions."""
        upcoming: MarketMinute | None = None
        for position in account.positions.values():
            if position.ledger.quantity == 0:
                continue
            candidates: list[MarketMinute] = []
            if position.product == "MIS":
                candidates.append(after.next_at(SQUARE_OFF_MINUTE))
            expiry = position.instrument.expiry
            if expiry is not None:
                settlement = MarketMinute(trading_day_index(expiry), SESSION_MINUTES)
                if settlement > after:
                    candidates.append(settlement)
            for candidate in candidates:
                if upcoming is None or candidate < upcoming:
                    upcoming = candidate
        return upcoming

    def _at(self, account: Account, minute: MarketMinute) -> None:
        if minute.m == SQUARE_OFF_MINUTE:
            self._square_off(account, minute)
        for order in list(account.pending.values()):
            if minute <= order.checked:
                continue
            order.checked = minute
            if minute >= order.expires:
                self._cancel(account, order, minute.at, CLOSED_AT_END_OF_DAY)
            elif minute.in_session:
                self._step(account, order, minute)
        if minute.m == SESSION_MINUTES:
            self._settle_expiries(account, minute)

    def _square_off(self, account: Account, minute: MarketMinute) -> None:
        for order in list(account.pending.values()):
            if order.product == "MIS":
                order.checked = minute
                self._cancel(account, order, minute.at, CANCELLED_AT_SQUARE_OFF)
        for position in list(account.positions.values()):
            if position.product == "MIS" and position.ledger.quantity:
                price = self.market.price_at(position.instrument, minute)
                self._close_by_system(account, position, price, minute, AUTO_SQUARE_OFF)

    def _settle_expiries(self, account: Account, minute: MarketMinute) -> None:
        day = trading_day_date(minute.n)
        for position in list(account.positions.values()):
            if position.instrument.expiry == day and position.ledger.quantity:
                # At the close the market prices an expiring contract at its intrinsic value.
                price = self.market.price_at(position.instrument, minute)
                self._close_by_system(account, position, price, minute, EXPIRY_SETTLEMENT)

    def _step(self, account: Account, order: Order, minute: MarketMinute) -> None:
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
            if self._crosses(order, price):
                self._fill(account, order, price, at)
            return
        if self._crosses(order, price):
            # A resting limit trades at its own price; at the opening minute a gap gives the better price.
            fill_price = price if minute.m == 0 or order.order_type in ("MARKET", "SL-M") else order.price
            self._fill(account, order, fill_price, at)

    # -- state changes -------------------------------------------------------------------------------------
    def _add(self, account: Account, order: Order) -> None:
        self.orders[order.order_id] = order
        account.orders_by_day.setdefault(_ist_day(order.placed_at), []).append(order)

    def _arm(self, account: Account, order: Order, last_price: float, at: datetime) -> None:
        """An accepted (or just modified) order waits for its trigger, or is open and fills if marketable."""
        if order.order_type in ("SL", "SL-M"):
            order.record("TRIGGER PENDING", at)
            return
        order.record("OPEN", at)
        if self._crosses(order, last_price):
            self._fill(account, order, last_price, at)

    def _cancel(self, account: Account, order: Order, at: datetime, message: str | None = None) -> None:
        order.cancelled_quantity = order.quantity - order.filled_quantity
        order.record("CANCELLED", at, message)
        account.pending.pop(order.order_id, None)

    def _close_by_system(
        self, account: Account, position: Position, price: float, minute: MarketMinute, message: str
    ) -> None:
        at = minute.at
        held = position.ledger.quantity
        side: TransactionType = "SELL" if held > 0 else "BUY"
        order = Order(
            order_id=self._next_order_id(at),
            user_id=account.user_id,
            instrument=position.instrument,
            transaction_type=side,
            order_type="MARKET",
            product=position.product,
            quantity=abs(held),
            price=0.0,
            trigger_price=0.0,
            validity="DAY",
            tag=None,
            placed_at=at,
            checked=minute,
            expires=minute,
            status_message=message,
        )
        self._add(account, order)
        for status in ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING"):
            order.record(status, at)
        order.exchange_order_id = self._next_exchange_order_id()
        order.exchange_timestamp = at
        order.record("OPEN", at)
        self._fill(account, order, price, at)

    @staticmethod
    def _crosses(order: Order, price: float) -> bool:
        if order.order_type in ("MARKET", "SL-M"):
            return True
        if order.transaction_type == "BUY":
            return price <= order.price
        return price >= order.price

    def _fill(self, account: Account, order: Order, price: float, at: datetime) -> None:
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
        account.fills_by_day.setdefault(_ist_day(at), []).append(fill)
        account.fills_by_order.setdefault(order.order_id, []).append(fill)
        account.position(order.instrument, order.product).ledger.add(fill.signed_quantity, price)
        order.filled_quantity += quantity
        order.average_price = price
        order.record("COMPLETE", at)
        account.pending.pop(order.order_id, None)
