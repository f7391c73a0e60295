"""An agent's orders as the broker reports them: the tag that names the agent and the sequence number,
the strategy's view of each intent, fills seen since the last look, and the agent's P&L from its fills.
Pure functions: the runtime feeds them the broker's order list."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import get_args

from tradedesk.agents.strategies.base import OrderStatus, OrderType, OrderView, TransactionType
from tradedesk.brokers.kite.schemas import KiteOrder

# Kite allows 20 characters in a tag: "td" + agent id + "-" + sequence fits up to ids of 11 digits and
# sequences of 6, far past what one deployment makes.
_TAG = re.compile(r"^td(\d{1,11})-(\d{1,6})$")
FINAL_STATUSES = frozenset({"COMPLETE", "CANCELLED", "REJECTED"})
_KNOWN_STATUSES: frozenset[str] = frozenset(get_args(OrderStatus))
_ORDER_TYPES: frozenset[str] = frozenset(get_args(OrderType))


def order_tag(agent_id: int, seq: int) -> str:
    return f"td{agent_id}-{seq}"


def parse_tag(tag: str | None) -> tuple[int, int] | None:
    """(agent id, sequence) of one of our tags; None for any other order's tag."""
    found = _TAG.match(tag or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def broker_status(order: KiteOrder) -> OrderStatus:
    """Kite's status words folded onto the few a strategy reasons about ("VALIDATION PENDING", "PUT ORDER
    REQ RECEIVED" and the like are all still pending)."""
    status = (order.status or "").upper()
    if status in _KNOWN_STATUSES:
        return status  # type: ignore[return-value]
    if status.startswith("TRIGGER"):
        return "TRIGGER PENDING"
    return "PENDING"


def order_view(intent_id: str, order: KiteOrder) -> OrderView:
    side: TransactionType = "SELL" if (order.transaction_type or "").upper() == "SELL" else "BUY"
    kind = (order.order_type or "MARKET").upper()
    return OrderView(
        intent_id=intent_id,
        order_id=order.order_id,
        status=broker_status(order),
        transaction_type=side,
        order_type=kind if kind in _ORDER_TYPES else "MARKET",  # type: ignore[arg-type]
        tradingsymbol=order.tradingsymbol or "",
        exchange=order.exchange or "",
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        average_price=order.average_price,
        price=order.price,
        trigger_price=order.trigger_price,
        status_message=order.status_message,
    )


def unsent_view(
    intent_id: str, payload: Mapping[str, object], *, status: OrderStatus, message: str | None
) -> OrderView:
    """The view of an intent the broker has no order for: refused when sent, or not yet answered."""

    def text(name: str, default: str = "") -> str:
        value = payload.get(name, default)
        return str(value) if value is not None else default

    def number(name: str) -> float:
        value = payload.get(name, 0)
        return float(value) if isinstance(value, int | float | str) and str(value) else 0.0

    side: TransactionType = "SELL" if text("transaction_type") == "SELL" else "BUY"
    kind = text("order_type", "MARKET")
    return OrderView(
        intent_id=intent_id,
        order_id="",
        status=status,
        transaction_type=side,
        order_type=kind if kind in _ORDER_TYPES else "MARKET",  # type: ignore[arg-type]
        tradingsymbol=text("tradingsymbol"),
        exchange=text("exchange"),
        quantity=int(number("quantity")),
        filled_quantity=0,
        average_price=0.0,
        price=number("price"),
        trigger_price=number("trigger_price"),
        status_message=message,
    )


@dataclass(frozen=True, slots=True)
class NewFill:
    """Quantity an order filled since the runtime last looked at it."""

    order_id: str
    tradingsymbol: str
    exchange: str
    transaction_type: str
    quantity: int
    average_price: float


def new_fills(orders: Iterable[KiteOrder], seen: Mapping[str, int]) -> list[NewFill]:
    """Orders whose filled quantity grew past what ``seen`` (order id -> filled quantity) remembers."""
    found: list[NewFill] = []
    for order in orders:
        grown = order.filled_quantity - seen.get(order.order_id, 0)
        if grown > 0:
            found.append(
                NewFill(
                    order_id=order.order_id,
                    tradingsymbol=order.tradingsymbol or "",
                    exchange=order.exchange or "",
                    transaction_type=(order.transaction_type or "").upper(),
                    quantity=grown,
                    average_price=order.average_price,
                )
            )
    return found


@dataclass(frozen=True, slots=True)
class AgentPnl:
    realised: Decimal
    unrealised: Decimal
    # EXCHANGE:SYMBOL -> signed quantity the agent holds (short < 0)
    open_quantity: Mapping[str, int]


def agent_pnl(orders: Iterable[KiteOrder], last_prices: Mapping[str, float]) -> AgentPnl:
    """P&L of one agent's filled quantity (average cost per instrument): realised on the matched part,
    unrealised on what is still open, marked at ``last_prices`` (unmarked instruments count zero)."""
    bought: dict[str, tuple[int, Decimal]] = {}
    sold: dict[str, tuple[int, Decimal]] = {}
    for order in orders:
        if order.filled_quantity <= 0:
            continue
        key = f"{order.exchange}:{order.tradingsymbol}"
        book = sold if (order.transaction_type or "").upper() == "SELL" else bought
        quantity, value = book.get(key, (0, Decimal(0)))
        book[key] = (
            quantity + order.filled_quantity,
            value + Decimal(str(order.average_price)) * order.filled_quantity,
        )
    realised = Decimal(0)
    unrealised = Decimal(0)
    open_quantity: dict[str, int] = {}
    for key in bought.keys() | sold.keys():
        buy_qty, buy_value = bought.get(key, (0, Decimal(0)))
        sell_qty, sell_value = sold.get(key, (0, Decimal(0)))
        buy_avg = buy_value / buy_qty if buy_qty else Decimal(0)
        sell_avg = sell_value / sell_qty if sell_qty else Decimal(0)
        matched = min(buy_qty, sell_qty)
        realised += (sell_avg - buy_avg) * matched
        net = buy_qty - sell_qty
        if net:
            open_quantity[key] = net
            mark = last_prices.get(key)
            if mark is not None:
                entry = buy_avg if net > 0 else sell_avg
                unrealised += (Decimal(str(mark)) - entry) * net
    return AgentPnl(
        realised=realised.quantize(Decimal("0.0001")),
        unrealised=unrealised.quantize(Decimal("0.0001")),
        open_quantity=open_quantity,
    )
