"""Instrument dumps (CSV), market quotes and historical candles: ``/instruments``, ``/quote``, ``/quote/ltp``,
``/quote/ohlc``, ``/instruments/historical/{instrument_token}/{interval}``."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from kitesim.accounts import EXCHANGES
from kitesim.candles import INTERVALS, candles_by_day
from kitesim.clock import IST, format_ist
from kitesim.dependencies import CurrentAccess, Sim, check_kite_version
from kitesim.envelope import ERROR_RESPONSES, Envelope
from kitesim.errors import InputError
from kitesim.instruments import Instrument, instruments_csv, round_to_tick
from kitesim.market import Snapshot, minute_of
from kitesim.state import SimState

router = APIRouter(tags=["market"], dependencies=[Depends(check_kite_version)], responses=ERROR_RESPONSES)

MAX_QUOTE = 500
MAX_LTP = 1000
DAYS_BETWEEN_YIELDS = 4
NO_VALID_INSTRUMENT = "No valid instrument in `i`: use EXCHANGE:TRADINGSYMBOL, e.g. NSE:INFY."

_CSV = {"content": {"text/csv": {}}, "description": "Kite's instrument dump"}


def _csv(body: str) -> Response:
    return Response(body, media_type="text/csv; charset=utf-8")


@router.get("/instruments", response_class=Response, responses={200: _CSV}, summary="Every instrument, CSV")
async def all_instruments(sim: Sim) -> Response:
    now = sim.clock.now()
    return _csv(instruments_csv(sim.instruments.listing(now=now, spot=sim.market.spot(now))))


@router.get(
    "/instruments/{exchange}",
    response_class=Response,
    responses={200: _CSV},
    summary="The instruments of one exchange, CSV",
)
async def exchange_instruments(sim: Sim, exchange: str) -> Response:
    wanted = exchange.strip().upper()
    if wanted not in EXCHANGES:
        raise InputError(f"Invalid `exchange`: expected one of {', '.join(EXCHANGES)}.")
    now = sim.clock.now()
    listing = sim.instruments.listing(now=now, spot=sim.market.spot(now), exchange=wanted)
    return _csv(instruments_csv(listing))


QuoteKeys = Annotated[list[str], Query(alias="i", description="EXCHANGE:TRADINGSYMBOL or instrument token")]


def _resolve(sim: SimState, keys: list[str], limit: int) -> list[tuple[str, Instrument]]:
    if len(keys) > limit:
        raise InputError(f"Too many instruments: at most {limit} per request.")
    found: list[tuple[str, Instrument]] = []
    for key in dict.fromkeys(keys):
        instrument = (
            sim.instruments.by_token(int(key)) if key.strip().isdigit() else sim.instruments.get(key.strip())
        )
        if instrument is not None:
            found.append((key, instrument))
    if not found:
        raise InputError(NO_VALID_INSTRUMENT)
    return found


def _ohlc(snapshot: Snapshot) -> dict[str, float]:
    return {
        "open": snapshot.ohlc.open,
        "high": snapshot.ohlc.high,
        "low": snapshot.ohlc.low,
        "close": snapshot.ohlc.close,
    }


def _depth(snapshot: Snapshot) -> dict[str, list[dict[str, Any]]]:
    instrument = snapshot.instrument
    if not instrument.tradable:
        empty = [{"price": 0, "quantity": 0, "orders": 0} for _ in range(5)]
        return {"buy": empty, "sell": [dict(level) for level in empty]}
    tick = instrument.tick_size
    unit = instrument.lot_size

    def level(k: int, sign: int) -> dict[str, Any]:
        return {
            "price": max(tick, round_to_tick(snapshot.last_price + sign * k * tick, tick)),
            "quantity": unit * (10 + 7 * k),
            "orders": 2 + k,
        }

    return {"buy": [level(k, -1) for k in range(1, 6)], "sell": [level(k, 1) for k in range(1, 6)]}


def _quote(snapshot: Snapshot, now: datetime) -> dict[str, Any]:
    instrument = snapshot.instrument
    close = snapshot.ohlc.close
    traded_at = min(now, snapshot.minute.at)
    band = 0.2 if instrument.is_option else 0.1
    return {
        "instrument_token": instrument.instrument_token,
        "timestamp": format_ist(now),
        "last_trade_time": format_ist(traded_at) if instrument.tradable else None,
        "last_price": snapshot.last_price,
        "last_quantity": instrument.lot_size if instrument.tradable else 0,
        "buy_quantity": instrument.lot_size * 1200 if instrument.tradable else 0,
        "sell_quantity": instrument.lot_size * 1100 if instrument.tradable else 0,
        "volume": snapshot.volume,
        "average_price": snapshot.average_price if instrument.tradable else 0,
        "oi": 0,
        "oi_day_high": 0,
        "oi_day_low": 0,
        "net_change": round(snapshot.last_price - close, 2),
        "lower_circuit_limit": round_to_tick(max(close * (1 - band), 0.05)) if instrument.tradable else 0,
        "upper_circuit_limit": round_to_tick(close * (1 + band) + 5 * (instrument.tick_size or 0))
        if instrument.tradable
        else 0,
        "ohlc": _ohlc(snapshot),
        "depth": _depth(snapshot),
    }


@router.get("/quote", summary="Full quotes")
async def quote(sim: Sim, access: CurrentAccess, i: QuoteKeys) -> Envelope[dict[str, dict[str, Any]]]:
    now = sim.clock.now()
    return Envelope(
        data={
            key: _quote(sim.market.snapshot(instrument, now), now)
            for key, instrument in _resolve(sim, i, MAX_QUOTE)
        }
    )


@router.get("/quote/ohlc", summary="Last price and the day's OHLC")
async def quote_ohlc(sim: Sim, access: CurrentAccess, i: QuoteKeys) -> Envelope[dict[str, dict[str, Any]]]:
    now = sim.clock.now()
    data: dict[str, dict[str, Any]] = {}
    for key, instrument in _resolve(sim, i, MAX_LTP):
        snapshot = sim.market.snapshot(instrument, now)
        data[key] = {
            "instrument_token": instrument.instrument_token,
            "last_price": snapshot.last_price,
            "ohlc": _ohlc(snapshot),
        }
    return Envelope(data=data)


@router.get("/quote/ltp", summary="Last traded prices")
async def quote_ltp(sim: Sim, access: CurrentAccess, i: QuoteKeys) -> Envelope[dict[str, dict[str, Any]]]:
    minute = minute_of(sim.clock.now())
    return Envelope(
        data={
            key: {
                "instrument_token": instrument.instrument_token,
                "last_price": sim.market.price_at(instrument, minute),
            }
            for key, instrument in _resolve(sim, i, MAX_LTP)
        }
    )


def _kite_time(name: str, value: str, *, end_of_day: bool) -> datetime:
    """Kite's ``yyyy-mm-dd hh:mm:ss`` (or a bare date: its whole day) in IST."""
    text = value.strip()
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(text, pattern)
        except ValueError:
            continue
        if pattern == "%Y-%m-%d" and end_of_day:
            parsed = datetime.combine(parsed.date(), time(23, 59, 59))
        return parsed.replace(tzinfo=IST)
    raise InputError(f"Invalid `{name}`: use yyyy-mm-dd hh:mm:ss (IST).")


def _flag(name: str, value: str) -> bool:
    if value.strip() not in ("0", "1"):
        raise InputError(f"Invalid `{name}`: expected 0 or 1.")
    return value.strip() == "1"


@router.get(
    "/instruments/historical/{instrument_token}/{interval}",
    summary="Historical candles: [timestamp, open, high, low, close, volume] up to the sim clock",
)
async def historical(
    sim: Sim,
    access: CurrentAccess,
    instrument_token: str,
    interval: str,
    start: Annotated[str, Query(alias="from", description="yyyy-mm-dd hh:mm:ss, IST")],
    end: Annotated[str, Query(alias="to", description="yyyy-mm-dd hh:mm:ss, IST")],
    continuous: Annotated[str, Query(description="0 or 1; there are no futures to stitch")] = "0",
    oi: Annotated[str, Query(description="0 or 1: add open interest (always 0) to each candle")] = "0",
) -> Envelope[dict[str, list[list[Any]]]]:
    instrument = (
        sim.instruments.by_token(int(instrument_token)) if instrument_token.strip().isdigit() else None
    )
    if instrument is None:
        raise InputError("Invalid `instrument_token`: no such instrument.")
    chosen = INTERVALS.get(interval)
    if chosen is None:
        raise InputError(f"Invalid `interval`: expected one of {', '.join(INTERVALS)}.")
    since = _kite_time("from", start, end_of_day=False)
    until = _kite_time("to", end, end_of_day=True)
    _flag("continuous", continuous)
    with_oi = _flag("oi", oi)
    if since > until:
        raise InputError("Invalid `from`: it is after `to`.")
    if until - since > timedelta(days=chosen.max_days):
        raise InputError(f"interval exceeds max limit: {chosen.max_days} days")
    rows: list[list[Any]] = []
    by_day = candles_by_day(sim.market, instrument, chosen, start=since, end=until, now=sim.clock.now())
    for count, day in enumerate(by_day, start=1):
        rows.extend(candle.as_row(with_oi=with_oi) for candle in day)
        if count % DAYS_BETWEEN_YIELDS == 0:
            # Years of day candles take a while to compute the first time; quotes must not wait for them.
            await asyncio.sleep(0)
    return Envelope(data={"candles": rows})
