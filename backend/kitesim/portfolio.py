"""Positions and margins, computed from a user's fills and the market at the sim clock.

Positions use average cost: a fill that reduces a position realises (fill price - average price) on the
closed quantity; what stays open carries ``unrealised = (last price - average price) x quantity``, and
``pnl = realised + unrealised`` (= sell value - buy value + quantity x last price, Kite's formula). ``net``
covers every fill of the user, ``day`` only the fills of the current IST trading day.

Margins (segment ``equity``; ``commodity`` is present and empty): the demo user's starting margin is the
opening balance, and the open positions use it:

- long options block their premium (``option_premium``); long CNC equity its value (``delivery``);
- short options block ``span`` 9 % and ``exposure`` 3 % of the NIFTY level x quantity;
- MIS equity, long or short, blocks 20 % of its value as ``exposure`` (short CNC: its full value);
- ``m2m_realised`` is minus the realised P&L, ``m2m_unrealised`` minus the unrealised P&L of short options
  and MIS equity (a profit frees margin, a loss uses it).

``debits`` is the sum of those, ``net`` = ``live_balance`` = opening balance - debits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from kitesim.clock import IST
from kitesim.instruments import Instrument
from kitesim.market import Market
from kitesim.orders import Fill, OrderRequest

SHORT_OPTION_SPAN = 0.09
SHORT_OPTION_EXPOSURE = 0.03
MIS_EQUITY_MARGIN = 0.20

PositionKey = tuple[str, str, str]  # exchange, tradingsymbol, product


@dataclass(slots=True)
class Ledger:
    """Average-cost book of one position."""

    quantity: int = 0
    average_price: float = 0.0
    realised: float = 0.0
    buy_quantity: int = 0
    buy_value: float = 0.0
    sell_quantity: int = 0
    sell_value: float = 0.0

    def add(self, signed_quantity: int, price: float) -> None:
        if signed_quantity > 0:
            self.buy_quantity += signed_quantity
            self.buy_value += signed_quantity * price
        else:
            self.sell_quantity -= signed_quantity
            self.sell_value -= signed_quantity * price
        if self.quantity == 0 or (self.quantity > 0) == (signed_quantity > 0):
            total = abs(self.quantity) + abs(signed_quantity)
            self.average_price = (
                self.average_price * abs(self.quantity) + price * abs(signed_quantity)
            ) / total
            self.quantity += signed_quantity
            return
        closing = min(abs(signed_quantity), abs(self.quantity))
        direction = 1 if self.quantity > 0 else -1
        self.realised += closing * (price - self.average_price) * direction
        self.quantity += signed_quantity
        if self.quantity == 0:
            self.average_price = 0.0
        elif (self.quantity > 0) != (direction > 0):
            self.average_price = price  # flipped: what is left was opened by this fill

    def unrealised(self, last_price: float) -> float:
        return (last_price - self.average_price) * self.quantity


def ledger_of(fills: Iterable[Fill]) -> Ledger:
    ledger = Ledger()
    for fill in sorted(fills, key=lambda item: item.at):
        ledger.add(fill.signed_quantity, fill.price)
    return ledger


def _money(value: float) -> float:
    return round(value + 0.0, 2)


def _avg(value: float, quantity: int) -> float:
    return _money(value / quantity) if quantity else 0.0


def _group(fills: Iterable[Fill]) -> dict[PositionKey, list[Fill]]:
    groups: dict[PositionKey, list[Fill]] = {}
    for fill in fills:
        key = (fill.instrument.exchange, fill.instrument.tradingsymbol, fill.product)
        groups.setdefault(key, []).append(fill)
    return groups


def _row(
    instrument: Instrument,
    product: str,
    *,
    ledger: Ledger,
    day: Ledger,
    overnight_quantity: int,
    last_price: float,
    close_price: float,
) -> dict[str, Any]:
    unrealised = ledger.unrealised(last_price)
    m2m = day.sell_value - day.buy_value + ledger.quantity * last_price - overnight_quantity * close_price
    return {
        "tradingsymbol": instrument.tradingsymbol,
        "exchange": instrument.exchange,
        "instrument_token": instrument.instrument_token,
        "product": product,
        "quantity": ledger.quantity,
        "overnight_quantity": overnight_quantity,
        "multiplier": 1,
        "average_price": _money(ledger.average_price),
        "close_price": close_price,
        "last_price": last_price,
        "value": _money(ledger.sell_value - ledger.buy_value),
        "pnl": _money(ledger.realised + unrealised),
        "m2m": _money(m2m),
        "unrealised": _money(unrealised),
        "realised": _money(ledger.realised),
        "buy_quantity": ledger.buy_quantity,
        "buy_price": _avg(ledger.buy_value, ledger.buy_quantity),
        "buy_value": _money(ledger.buy_value),
        "buy_m2m": _money(day.buy_value + max(overnight_quantity, 0) * close_price),
        "sell_quantity": ledger.sell_quantity,
        "sell_price": _avg(ledger.sell_value, ledger.sell_quantity),
        "sell_value": _money(ledger.sell_value),
        "sell_m2m": _money(day.sell_value + max(-overnight_quantity, 0) * close_price),
        "day_buy_quantity": day.buy_quantity,
        "day_buy_price": _avg(day.buy_value, day.buy_quantity),
        "day_buy_value": _money(day.buy_value),
        "day_sell_quantity": day.sell_quantity,
        "day_sell_price": _avg(day.sell_value, day.sell_quantity),
        "day_sell_value": _money(day.sell_value),
    }


def positions(market: Market, fills: list[Fill], *, now: datetime) -> dict[str, list[dict[str, Any]]]:
    today = now.astimezone(IST).date()

    def is_today(fill: Fill) -> bool:
        return fill.at.astimezone(IST).date() == today

    net: list[dict[str, Any]] = []
    day_rows: list[dict[str, Any]] = []
    for (_, _, product), group in _group(fills).items():
        instrument = group[0].instrument
        last_price = market.last_price(instrument, now)
        close_price = market.close_price(instrument, now)
        todays = [fill for fill in group if is_today(fill)]
        earlier = [fill for fill in group if fill.at.astimezone(IST).date() < today]
        overnight = ledger_of(earlier).quantity
        whole = ledger_of(group)
        day = ledger_of(todays)
        if whole.quantity != 0 or todays:
            net.append(
                _row(
                    instrument,
                    product,
                    ledger=whole,
                    day=day,
                    overnight_quantity=overnight,
                    last_price=last_price,
                    close_price=close_price,
                )
            )
        if todays:
            day_rows.append(
                _row(
                    instrument,
                    product,
                    ledger=day,
                    day=day,
                    overnight_quantity=0,
                    last_price=last_price,
                    close_price=close_price,
                )
            )
    return {"net": net, "day": day_rows}


@dataclass(slots=True)
class Utilisation:
    span: float = 0.0
    exposure: float = 0.0
    option_premium: float = 0.0
    delivery: float = 0.0
    m2m_realised: float = 0.0
    m2m_unrealised: float = 0.0

    @property
    def debits(self) -> float:
        return (
            self.span
            + self.exposure
            + self.option_premium
            + self.delivery
            + self.m2m_realised
            + self.m2m_unrealised
        )


def _block(
    use: Utilisation, instrument: Instrument, product: str, quantity: int, price: float, spot: float
) -> None:
    """Margin held by an open ``quantity`` (signed) bought or sold at ``price``."""
    if quantity == 0:
        return
    if instrument.is_option:
        if quantity > 0:
            use.option_premium += quantity * price
        else:
            use.span += SHORT_OPTION_SPAN * spot * -quantity
            use.exposure += SHORT_OPTION_EXPOSURE * spot * -quantity
    elif product == "CNC" and quantity > 0:
        use.delivery += quantity * price
    elif product == "CNC":
        use.exposure += -quantity * price
    else:
        use.exposure += MIS_EQUITY_MARGIN * abs(quantity) * price


def utilisation(market: Market, fills: list[Fill], *, now: datetime) -> Utilisation:
    use = Utilisation()
    spot = market.spot(now)
    for (_, _, product), group in _group(fills).items():
        instrument = group[0].instrument
        ledger = ledger_of(group)
        _block(use, instrument, product, ledger.quantity, ledger.average_price, spot)
        use.m2m_realised -= ledger.realised
        marked = (instrument.is_option and ledger.quantity < 0) or (
            not instrument.is_option and product == "MIS"
        )
        if marked and ledger.quantity:
            use.m2m_unrealised -= ledger.unrealised(market.last_price(instrument, now))
    return use


def required_margin(
    market: Market, fills: list[Fill], request: OrderRequest, price: float, *, now: datetime
) -> float:
    """Extra margin the order would block if it filled at ``price`` (nothing for the part that closes)."""
    key_fills = [
        fill
        for fill in fills
        if fill.instrument.key == request.instrument.key and fill.product == request.product
    ]
    held = ledger_of(key_fills).quantity
    signed = request.quantity if request.transaction_type == "BUY" else -request.quantity
    same_side = held == 0 or (held > 0) == (signed > 0)
    opening = abs(signed) if same_side else max(0, abs(signed) - abs(held))
    if opening == 0:
        return 0.0
    use = Utilisation()
    direction = 1 if signed > 0 else -1
    _block(use, request.instrument, request.product, direction * opening, price, market.spot(now))
    return use.debits


def margin_segment(opening_balance: Decimal, use: Utilisation | None) -> dict[str, Any]:
    use = use or Utilisation()
    opening = float(opening_balance)
    net = _money(opening - use.debits)
    return {
        "enabled": True,
        "net": net,
        "available": {
            "adhoc_margin": 0,
            "cash": _money(opening),
            "opening_balance": _money(opening),
            "live_balance": net,
            "collateral": 0,
            "intraday_payin": 0,
        },
        "utilised": {
            "debits": _money(use.debits),
            "exposure": _money(use.exposure),
            "m2m_realised": _money(use.m2m_realised),
            "m2m_unrealised": _money(use.m2m_unrealised),
            "option_premium": _money(use.option_premium),
            "payout": 0,
            "span": _money(use.span),
            "holding_sales": 0,
            "turnover": 0,
            "liquid_collateral": 0,
            "stock_collateral": 0,
            "delivery": _money(use.delivery),
        },
    }


def margins(market: Market, fills: list[Fill], opening_balance: Decimal, *, now: datetime) -> dict[str, Any]:
    return {
        "equity": margin_segment(opening_balance, utilisation(market, fills, now=now)),
        "commodity": margin_segment(Decimal(0), None),
    }


def today(now: datetime) -> date:
    return now.astimezone(IST).date()
