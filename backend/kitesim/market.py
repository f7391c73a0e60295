"""The simulated market: every price is a pure function of (seed, instrument, simulated minute).

- Each underlying (the equities and the NIFTY 50 index) has a daily closing level: a mean-reverting AR(1) walk
  in log space over trading days (Monday-Friday), truncated to its last 250 shocks so any day can be computed
  directly. Within a session (09:15-15:30 IST) the price follows a Brownian bridge from the previous close to
  the day's close, one step per minute. Outside a session the price stays at the last close.
- NIFTY options are priced by Black-Scholes on the NIFTY level at that minute, with a VIX-like volatility
  (around 14 %, varying by day, plus a small smile), until 15:30 IST on expiry day; afterwards they are worth
  their intrinsic value at that close.

Two reads at the same simulated minute always agree, whatever happened in between.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from kitesim.clock import IST
from kitesim.instruments import (
    TICK_SIZE,
    Instrument,
    InstrumentBook,
    expiry_cutoff,
    round_to_tick,
)

SESSION_OPEN = time(9, 15)
SESSION_CLOSE = time(15, 30)
SESSION_MINUTES = 375
PHI = 0.98
HORIZON = 250
EQUITY_DAILY_SIGMA = 0.015
INDEX_DAILY_SIGMA = 0.009
BASE_VIX = 0.14
RISK_FREE_RATE = 0.065
MINUTES_PER_YEAR = 365.0 * 24 * 60
PRICE_CACHE_SIZE = 500_000
_MONDAY = date(1970, 1, 5)


def _normal(seed: int, label: str, n: int, j: int = 0) -> float:
    """A standard normal draw that depends only on its arguments (Box-Muller over a hash)."""
    digest = hashlib.blake2b(f"{seed}|{label}|{n}|{j}".encode(), digest_size=16).digest()
    u1 = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 1)
    u2 = int.from_bytes(digest[8:], "big") / 2**64
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def trading_day_index(day: date) -> int:
    """Monday-Friday are numbered consecutively; a Saturday or Sunday maps to the Friday before."""
    days = (day - _MONDAY).days
    return (days // 7) * 5 + min(days % 7, 4)


def trading_day_date(n: int) -> date:
    return _MONDAY + timedelta(days=(n // 5) * 7 + n % 5)


@lru_cache(maxsize=65_536)
def _close_level(seed: int, label: str, sigma: float, n: int) -> float:
    """Log deviation of the close of trading day ``n`` from the base price."""
    return sum(PHI**k * sigma * _normal(seed, label, n - k) for k in range(HORIZON))


@lru_cache(maxsize=4_096)
def _day_path(seed: int, label: str, sigma: float, n: int) -> tuple[float, ...]:
    """Log deviations at minutes 0…375 of trading day ``n`` (375 is the close)."""
    start = _close_level(seed, label, sigma, n - 1)
    end = _close_level(seed, label, sigma, n)
    step = sigma / math.sqrt(SESSION_MINUTES)
    walk = [0.3 * sigma * _normal(seed, f"{label}#gap", n)]
    for j in range(1, SESSION_MINUTES + 1):
        walk.append(walk[-1] + step * _normal(seed, f"{label}#min", n, j))
    last = walk[-1]
    return tuple(
        start + (end - start) * m / SESSION_MINUTES + walk[m] - last * m / SESSION_MINUTES
        for m in range(SESSION_MINUTES + 1)
    )


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(*, spot: float, strike: float, years: float, vol: float, rate: float, call: bool) -> float:
    if years <= 0 or vol <= 0:
        return max(0.0, spot - strike) if call else max(0.0, strike - spot)
    sqrt_t = math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / (vol * sqrt_t)
    d2 = d1 - vol * sqrt_t
    discount = math.exp(-rate * years)
    if call:
        return spot * _norm_cdf(d1) - strike * discount * _norm_cdf(d2)
    return strike * discount * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


@dataclass(frozen=True, slots=True)
class MarketMinute:
    """A point of the market's minute grid: trading day ``n``, minute ``m`` after 09:15 (375 = the close)."""

    n: int
    m: int

    @property
    def at(self) -> datetime:
        day = trading_day_date(self.n)
        opening = datetime.combine(day, SESSION_OPEN, tzinfo=IST)
        return opening + timedelta(minutes=self.m)

    @property
    def in_session(self) -> bool:
        return self.m < SESSION_MINUTES

    def next(self) -> MarketMinute:
        if self.m < SESSION_MINUTES:
            return MarketMinute(self.n, self.m + 1)
        return MarketMinute(self.n + 1, 0)


def minute_of(when: datetime) -> MarketMinute:
    """The grid point whose price holds at ``when``."""
    local = when.astimezone(IST)
    day = local.date()
    n = trading_day_index(day)
    if day.weekday() >= 5:
        return MarketMinute(n, SESSION_MINUTES)
    if local.time() < SESSION_OPEN:
        return MarketMinute(n - 1, SESSION_MINUTES)
    if local.time() >= SESSION_CLOSE:
        return MarketMinute(n, SESSION_MINUTES)
    opening = datetime.combine(day, SESSION_OPEN, tzinfo=IST)
    return MarketMinute(n, int((local - opening).total_seconds() // 60))


@dataclass(frozen=True, slots=True)
class Ohlc:
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a quote shows at a minute: last price, the day's OHLC (close = previous close), volume stats."""

    instrument: Instrument
    minute: MarketMinute
    last_price: float
    ohlc: Ohlc
    volume: int
    average_price: float


class Market:
    def __init__(self, instruments: InstrumentBook, *, seed: int) -> None:
        self.instruments = instruments
        self.seed = seed
        self._prices: dict[tuple[int, int, int], float] = {}

    # -- underlyings ---------------------------------------------------------------------------------------
    def _sigma(self, instrument: Instrument) -> float:
        return INDEX_DAILY_SIGMA if instrument.segment == "INDICES" else EQUITY_DAILY_SIGMA

    def _underlying(self, instrument: Instrument, minute: MarketMinute) -> float:
        path = _day_path(self.seed, instrument.tradingsymbol, self._sigma(instrument), minute.n)
        return instrument.base_price * math.exp(path[minute.m])

    def spot(self, when: datetime) -> float:
        """The NIFTY 50 level (not rounded)."""
        return self._underlying(self.instruments.nifty, minute_of(when))

    def vix(self, n: int) -> float:
        return BASE_VIX * math.exp(0.08 * _normal(self.seed, "INDIA VIX", n))

    # -- options -------------------------------------------------------------------------------------------
    def _option(self, instrument: Instrument, minute: MarketMinute) -> float:
        assert instrument.expiry is not None
        cutoff = expiry_cutoff(instrument.expiry)
        call = instrument.instrument_type == "CE"
        if minute.at >= cutoff:
            settle = MarketMinute(trading_day_index(instrument.expiry), SESSION_MINUTES)
            spot = self._underlying(self.instruments.nifty, settle)
            return black_scholes(spot=spot, strike=instrument.strike, years=0, vol=0, rate=0, call=call)
        spot = self._underlying(self.instruments.nifty, minute)
        years = (cutoff - minute.at).total_seconds() / 60 / MINUTES_PER_YEAR
        moneyness = math.log(instrument.strike / spot)
        vol = self.vix(minute.n) + 0.6 * abs(moneyness) + (0.03 * -moneyness if moneyness < 0 else 0.0)
        value = black_scholes(
            spot=spot, strike=instrument.strike, years=years, vol=vol, rate=RISK_FREE_RATE, call=call
        )
        return max(TICK_SIZE, value)

    # -- public reads --------------------------------------------------------------------------------------
    def raw_price(self, instrument: Instrument, minute: MarketMinute) -> float:
        if instrument.is_option:
            return self._option(instrument, minute)
        return self._underlying(instrument, minute)

    def price_at(self, instrument: Instrument, minute: MarketMinute) -> float:
        """The traded price at a grid point, on the tick grid (memoised: prices never change)."""
        key = (instrument.instrument_token, minute.n, minute.m)
        price = self._prices.get(key)
        if price is None:
            if len(self._prices) >= PRICE_CACHE_SIZE:
                self._prices.clear()
            price = round_to_tick(self.raw_price(instrument, minute), instrument.tick_size or TICK_SIZE)
            self._prices[key] = price
        return price

    def last_price(self, instrument: Instrument, when: datetime) -> float:
        return self.price_at(instrument, minute_of(when))

    def close_price(self, instrument: Instrument, when: datetime) -> float:
        """The previous session's close, as Kite reports it in ``ohlc.close`` and ``close_price``."""
        minute = minute_of(when)
        return self.price_at(instrument, MarketMinute(minute.n - 1, SESSION_MINUTES))

    def snapshot(self, instrument: Instrument, when: datetime) -> Snapshot:
        minute = minute_of(when)
        prices = [self.price_at(instrument, MarketMinute(minute.n, m)) for m in range(minute.m + 1)]
        previous_close = self.price_at(instrument, MarketMinute(minute.n - 1, SESSION_MINUTES))
        # Deterministic, plausible activity: a steady number of shares per minute, more for cheap stocks.
        per_minute = 0 if not instrument.tradable else max(1, int(2_000_000 / max(prices[-1], 1.0)))
        volume = per_minute * (minute.m + 1) if instrument.tradable else 0
        return Snapshot(
            instrument=instrument,
            minute=minute,
            last_price=prices[-1],
            ohlc=Ohlc(open=prices[0], high=max(prices), low=min(prices), close=previous_close),
            volume=volume,
            average_price=round(sum(prices) / len(prices), 2),
        )
