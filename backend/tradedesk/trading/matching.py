"""FIFO matching of one instrument's executions into round trips (closed and still open), and the
strategy and exit reason read from our order tags."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

Side = Literal["BUY", "SELL"]
Direction = Literal["LONG", "SHORT"]

_DIRECTION_OF_SIDE: dict[str, Direction] = {"BUY": "LONG", "SELL": "SHORT"}
_STOP_LOSS_ORDER_TYPES = frozenset({"SL", "SL-M"})
_KNOWN_REASONS = {"sl": "stop_loss", "target": "target", "sqoff": "square_off"}
_NOT_REASON_CHARS = re.compile(r"[^a-z0-9_]+")


class UnusableInput(ValueError):
    """An execution or open lot that cannot be matched: a price that is negative, NaN, infinite or not a
    Decimal, a quantity below one, an unknown side or direction, or a time without a zone."""


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill as the broker reports it."""

    trade_id: str
    side: Side
    quantity: int
    price: Decimal
    at: datetime
    order_type: str | None
    tag: str | None


@dataclass(frozen=True, slots=True)
class OpenLot:
    """What is still held of a round trip that has not been closed."""

    direction: Direction
    quantity: int
    entry_price: Decimal
    entry_at: datetime
    entry_trade_id: str
    strategy: str | None


@dataclass(frozen=True, slots=True)
class ClosedTrip:
    direction: Direction
    quantity: int
    entry_price: Decimal
    entry_at: datetime
    entry_trade_id: str
    exit_price: Decimal
    exit_at: datetime
    exit_trade_id: str
    realised_pnl: Decimal
    exit_reason: str
    strategy: str | None


def execution_order(execution: Execution) -> tuple[datetime, str]:
    """Sort key for the executions handed to :func:`match_fifo`; the trade id breaks ties in time so
    every run matches the same way."""
    return (execution.at, execution.trade_id)


def _split_tag(tag: str | None) -> tuple[str | None, str | None]:
    if tag is None or ":" not in tag:
        return None, None
    strategy, _, reason = tag.partition(":")
    return strategy.strip() or None, reason.strip() or None


def strategy_of(tag: str | None) -> str | None:
    """The strategy named by a ``"{strategy}:{reason}"`` tag; None for any other tag."""
    return _split_tag(tag)[0]


def exit_reason_of(order_type: str | None, tag: str | None) -> str:
    """Why a position was closed: ``stop_loss`` (SL/SL-M order or reason ``sl``), ``target``,
    ``square_off`` (reason ``sqoff``), another tag reason normalised to ``[a-z0-9_]``, else ``manual``."""
    if order_type is not None and order_type.strip().upper() in _STOP_LOSS_ORDER_TYPES:
        return "stop_loss"
    reason = _split_tag(tag)[1]
    if reason is None:
        return "manual"
    normalised = _NOT_REASON_CHARS.sub("_", reason.lower()).strip("_")
    if not normalised:
        return "manual"
    return _KNOWN_REASONS.get(normalised, normalised)


def _require_aware(at: datetime, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise UnusableInput(f"{what} has a naive datetime ({at.isoformat()}); a time zone is required.")


def _require_price(price: Decimal, what: str) -> None:
    # A float here would silently leak binary rounding into every P&L figure downstream.
    if not isinstance(price, Decimal) or not price.is_finite() or price < 0:
        raise UnusableInput(f"{what} has price {price!r}; a finite, non-negative Decimal is required.")


def _check_open_lots(open_lots: Sequence[OpenLot]) -> None:
    directions = {lot.direction for lot in open_lots}
    if len(directions) > 1:
        raise UnusableInput(
            "Open lots mix LONG and SHORT; one instrument is held in one direction at a time."
        )
    for lot in open_lots:
        what = f"Open lot from trade {lot.entry_trade_id}"
        if lot.direction not in ("LONG", "SHORT"):
            raise UnusableInput(f"{what} has direction {lot.direction!r}; LONG or SHORT is required.")
        if lot.quantity <= 0:
            raise UnusableInput(f"{what} has quantity {lot.quantity}; it must be positive.")
        _require_price(lot.entry_price, what)
        _require_aware(lot.entry_at, what)


def _check_execution(execution: Execution) -> None:
    what = f"Execution {execution.trade_id}"
    if execution.side not in _DIRECTION_OF_SIDE:
        raise UnusableInput(f"{what} has side {execution.side!r}; BUY or SELL is required.")
    if execution.quantity <= 0:
        raise UnusableInput(f"{what} has quantity {execution.quantity}; it must be positive.")
    _require_price(execution.price, what)
    _require_aware(execution.at, what)


def _realised_pnl(direction: Direction, entry_price: Decimal, exit_price: Decimal, quantity: int) -> Decimal:
    if direction == "LONG":
        return (exit_price - entry_price) * quantity
    return (entry_price - exit_price) * quantity


def match_fifo(
    open_lots: Sequence[OpenLot], executions: Iterable[Execution]
) -> tuple[list[OpenLot], list[ClosedTrip]]:
    """Match ``executions`` (already in :func:`execution_order`) against ``open_lots``, oldest first.

    Returns the lots still open afterwards, oldest first, and the round trips closed, in the order
    they closed. A partially closed lot keeps its entry; an execution larger than everything open
    closes it all and opens the rest in the other direction. Inputs are never modified.
    """
    _check_open_lots(open_lots)
    lots: deque[OpenLot] = deque(open_lots)
    closed: list[ClosedTrip] = []

    for execution in executions:
        _check_execution(execution)
        direction = _DIRECTION_OF_SIDE[execution.side]
        remaining = execution.quantity

        if lots and lots[0].direction != direction:
            exit_reason = exit_reason_of(execution.order_type, execution.tag)
            while remaining and lots:
                lot = lots[0]
                matched = min(remaining, lot.quantity)
                closed.append(
                    ClosedTrip(
                        direction=lot.direction,
                        quantity=matched,
                        entry_price=lot.entry_price,
                        entry_at=lot.entry_at,
                        entry_trade_id=lot.entry_trade_id,
                        exit_price=execution.price,
                        exit_at=execution.at,
                        exit_trade_id=execution.trade_id,
                        realised_pnl=_realised_pnl(lot.direction, lot.entry_price, execution.price, matched),
                        exit_reason=exit_reason,
                        strategy=lot.strategy,
                    )
                )
                if matched == lot.quantity:
                    lots.popleft()
                else:
                    lots[0] = replace(lot, quantity=lot.quantity - matched)
                remaining -= matched

        if remaining:
            lots.append(
                OpenLot(
                    direction=direction,
                    quantity=remaining,
                    entry_price=execution.price,
                    entry_at=execution.at,
                    entry_trade_id=execution.trade_id,
                    strategy=strategy_of(execution.tag),
                )
            )

    return list(lots), closed
