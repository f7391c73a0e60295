"""Positions and margins of one account, computed from its book at the sim clock.

Positions use average cost (ledger.py): a fill that reduces a position realises (fill price - average price)
on the closed quantity; what stays open carries ``unrealised = (last price - average price) x quantity``, and
``pnl = realised + unrealised`` (= sell value - buy value + quantity x last price, Kite's formula). ``net``
covers every fill of the user, ``day`` only the fills of the current IST trading day.

Margins (segment ``equity``; ``commodity`` is present and empty) approximate Kite's SPAN + exposure rules,
deliberately simply: the demo user's starting margin is the opening balance, and these use it:

- long options block their premium (``option_premium``); long CNC equity its value (``delivery``);
- short options block ``span`` 9 % and ``exposure`` 3 % of the NIFTY level x quantity, whatever the strike
  (so one lot of 75 short at NIFTY 23,600 blocks about 2.1 lakh, close to Kite's figure for an OTM weekly);
- MIS equity, long or short, blocks 20 % of its value as ``exposure`` (short CNC: its full value);
- an open order blocks what it would if it filled now at its limit (or, for a stop, at the worse of its price
  and trigger); the part of an order that closes an open position blocks nothing;
- ``m2m_realised`` is minus the realised P&L, ``m2m_unrealised`` minus the unrealised P&L of short options
  and MIS equity (a profit frees margin, a loss uses it).

``debits`` is the sum of those, ``net`` = ``live_balance`` = opening balance - debits. An order whose extra
margin exceeds ``net`` is rejected (see trading.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from kitesim.book import Account
from kitesim.clock import IST
from kitesim.instruments import Instrument
from kitesim.ledger import Ledger, PositionKey
from kitesim.market import Market
from kitesim.orders import Fill, Order, OrderRequest, Product

SHORT_OPTION_SPAN = 0.09
SHORT_OPTION_EXPOSURE = 0.03
MIS_EQUITY_MARGIN = 0.20


def _money(value: float) -> float:
    return round(value + 0.0, 2)


def _avg(value: float, quantity: int) -> float:
    return _money(value / quantity) if quantity else 0.0


def _day_ledgers(fills: Iterable[Fill]) -> dict[PositionKey, Ledger]:
    ledgers: dict[PositionKey, Ledger] = {}
    for fill in sorted(fills, key=lambda item: item.at):
        key = (fill.instrument.exchange, fill.instrument.tradingsymbol, fill.product)
        ledgers.setdefault(key, Ledger()).add(fill.signed_quantity, fill.price)
    return ledgers


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


def positions(market: Market, account: Account | None, *, now: datetime) -> dict[str, list[dict[str, Any]]]:
    if account is None:
        return {"net": [], "day": []}
    days = _day_ledgers(account.fills_by_day.get(today(now), []))
    net: list[dict[str, Any]] = []
    day_rows: list[dict[str, Any]] = []
    for key, position in account.positions.items():
        whole = position.ledger
        day = days.get(key)
        if whole.quantity == 0 and day is None:
            continue
        instrument = position.instrument
        last_price = market.last_price(instrument, now)
        close_price = market.close_price(instrument, now)
        day_ledger = day or Ledger()
        common = {"last_price": last_price, "close_price": close_price}
        net.append(
            _row(
                instrument,
                position.product,
                ledger=whole,
                day=day_ledger,
                overnight_quantity=whole.quantity - day_ledger.quantity,
                **common,
            )
        )
        if day is not None:
            day_rows.append(
                _row(instrument, position.product, ledger=day, day=day, overnight_quantity=0, **common)
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


def _opening_quantity(held: int, signed: int) -> int:
    """The signed part of an order for ``signed`` units that opens (rather than closes) a position."""
    if held == 0 or (held > 0) == (signed > 0):
        return signed
    beyond = abs(signed) - abs(held)
    return 0 if beyond <= 0 else (beyond if signed > 0 else -beyond)


def _block_order(
    use: Utilisation,
    account: Account,
    instrument: Instrument,
    product: Product,
    signed: int,
    price: float,
    spot: float,
) -> None:
    held = account.held(instrument, product)
    _block(use, instrument, product, _opening_quantity(held, signed), price, spot)


def utilisation(
    market: Market, account: Account | None, *, now: datetime, leaving_out: Order | None = None
) -> Utilisation:
    use = Utilisation()
    if account is None:
        return use
    spot = market.spot(now)
    for position in account.positions.values():
        ledger = position.ledger
        instrument = position.instrument
        _block(use, instrument, position.product, ledger.quantity, ledger.average_price, spot)
        use.m2m_realised -= ledger.realised
        marked = (instrument.is_option and ledger.quantity < 0) or (
            not instrument.is_option and position.product == "MIS"
        )
        if marked and ledger.quantity:
            use.m2m_unrealised -= ledger.unrealised(market.last_price(instrument, now))
    for order in account.pending.values():
        if order is leaving_out:
            continue
        reference = order.reference_price(market.last_price(order.instrument, now))
        _block_order(use, account, order.instrument, order.product, order.signed_quantity, reference, spot)
    return use


def required_margin(
    market: Market, account: Account | None, request: OrderRequest, price: float, *, now: datetime
) -> float:
    """Extra margin the order would block if it filled at ``price`` (nothing for the part that closes)."""
    use = Utilisation()
    spot = market.spot(now)
    if account is None:
        _block(use, request.instrument, request.product, request.signed_quantity, price, spot)
    else:
        _block_order(use, account, request.instrument, request.product, request.signed_quantity, price, spot)
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


def margins(
    market: Market,
    account: Account | None,
    opening_balance: Decimal,
    *,
    now: datetime,
    leaving_out: Order | None = None,
) -> dict[str, Any]:
    return {
        "equity": margin_segment(
            opening_balance, utilisation(market, account, now=now, leaving_out=leaving_out)
        ),
        "commodity": margin_segment(Decimal(0), None),
    }


def today(now: datetime) -> date:
    return now.astimezone(IST).date()
