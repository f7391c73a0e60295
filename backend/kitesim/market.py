"""The simulated market: every price is a pure function of (seed, instrument, simulated minute).

- Each underlying (the equities and the NIFTY 50 index) has a daily closing level: a mean-reverting AR(1) walk
  in log space over trading days (Monday-Friday, no holidays), truncated to its last 250 shocks so any day can
  be computed directly. Within a session (09:15-15:30 IST) the price follows a Brownian bridge from the
  previous close to the day's close, one step per minute. Outside a session it stays at the last close.
- INDIA VIX is a level per day (around 14, varying by day) that moves against NIFTY within the day: about 5 %
  up for each 1 % NIFTY is below its previous close. It is published to two decimals.
- NIFTY options are priced by Black-Scholes on the NIFTY level at that minute, with the published INDIA VIX
  / 100 as the at-the-money volatility (plus a small smile away from the money), until 15:30 IST on expiry
  day; afterwards they are worth their intrinsic value at that close.
- Volume is a deterministic amount per minute (busier at the open, into the close and when the price moves);
  a quote's volume and average price add up the minutes so far, so they agree with the minute candles.

Two reads at the same simulated minute always agree, whatever happened in between.
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array
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
SQUARE_OFF_MINUTE = 365  # 15:20 IST, when intraday (MIS) positions are closed
PHI = 0.98
HORIZON = 250
EQUITY_DAILY_SIGMA = 0.015
INDEX_DAILY_SIGMA = 0.009
BASE_VIX = 0.14
VIX_DAILY_SIGMA = 0.08
VIX_BETA = 5.0
RISK_FREE_RATE = 0.065
MINUTES_PER_YEAR = 365.0 * 24 * 60
PRICE_CACHE_SIZE = 500_000
TAPE_CACHE_SIZE = 4_096
DAY_CACHE_SIZE = 200_000
TURNOVER_PER_MINUTE_INR = 2_000_000.0
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


@lru_cache(maxsize=262_144)
def _daily_shock(seed: int, label: str, n: int) -> float:
    # Each day's shock is summed into the next 250 closes: hashing it once saves 249 hashes.
    return _normal(seed, label, n)


def _minute_shocks(seed: int, label: str, n: int) -> list[float]:
    """The 375 minute shocks of trading day ``n``: one hash seeds a stream, rather than a hash per minute."""
    digest = hashlib.blake2b(f"{seed}|{label}#min|{n}".encode(), digest_size=16).digest()
    # Random.random() is the one stream Python promises to keep the same across versions for an int seed.
    stream = random.Random(int.from_bytes(digest, "big"))  # noqa: S311 -- a reproducible simulation
    shocks: list[float] = []
    for _ in range(SESSION_MINUTES):
        u1 = 1.0 - stream.random()
        u2 = stream.random()
        shocks.append(math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2))
    return shocks


_DECAY = tuple(PHI**k for k in range(HORIZON))


@lru_cache(maxsize=65_536)
def _close_level(seed: int, label: str, sigma: float, n: int) -> float:
    """Log deviation of the close of trading day ``n`` from the base price."""
    return sum(_DECAY[k] * sigma * _daily_shock(seed, label, n - k) for k in range(HORIZON))


@lru_cache(maxsize=4_096)
def _day_path(seed: int, label: str, sigma: float, n: int) -> tuple[float, ...]:
    """Log deviations at minutes 0…375 of trading day ``n`` (375 is the close)."""
    start = _close_level(seed, label, sigma, n - 1)
    end = _close_level(seed, label, sigma, n)
    step = sigma / math.sqrt(SESSION_MINUTES)
    walk = [0.3 * sigma * _normal(seed, f"{label}#gap", n)]
    for shock in _minute_shocks(seed, label, n):
        walk.append(walk[-1] + step * shock)
    last = walk[-1]
    return tuple(
        start + (end - start) * m / SESSION_MINUTES + walk[m] - last * m / SESSION_MINUTES
        for m in range(SESSION_MINUTES + 1)
    )


def minute_volume(*, m: int, price: float, previous: float, lot_size: int, day_factor: float) -> int:
    """Units traded in session minute ``m`` of a tradable instrument."""
    # A U-shaped day (busy at the open and into the close, quiet at lunch), busier when the price moves.
    x = (m - SESSION_MINUTES / 2) / (SESSION_MINUTES / 2)
    shape = 0.6 + 1.2 * x * x
    activity = 1.0 + 400.0 * min(abs(math.log(price / previous)), 0.005)
    lot = max(lot_size, 1)
    units = TURNOVER_PER_MINUTE_INR / max(price, 1.0) * shape * activity * day_factor
    return max(lot, int(units // lot) * lot)


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


@dataclass(frozen=True, slots=True, order=True)
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

    def next_at(self, m: int) -> MarketMinute:
        """The first grid point after this one whose minute of the day is ``m``."""
        return MarketMinute(self.n if self.m < m else self.n + 1, m)


def market_open(when: datetime) -> bool:
    """Whether ``when`` falls in a regular session: 09:15 to 15:30 IST, Monday to Friday."""
    local = when.astimezone(IST)
    return local.weekday() < 5 and SESSION_OPEN <= local.time() < SESSION_CLOSE


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


@dataclass(frozen=True, slots=True)
class DaySummary:
    open: float
    high: float
    low: float
    close: float
    volume: int


class DayTape:
    """One instrument's trading day, minute by minute (0 … 375), computed only as far as it was asked for:
    each minute's price, and running totals of volume, value, high and low from the open."""

    __slots__ = ("cum_value", "cum_volume", "highs", "lows", "prices")

    def __init__(self) -> None:
        self.prices: array[float] = array("d")
        self.cum_volume: array[int] = array("q")
        self.cum_value: array[float] = array("d")
        self.highs: array[float] = array("d")
        self.lows: array[float] = array("d")

    def __len__(self) -> int:
        return len(self.prices)

    def append(self, price: float, volume: int) -> None:
        first = not self.prices
        self.prices.append(price)
        self.cum_volume.append(volume + (0 if first else self.cum_volume[-1]))
        self.cum_value.append(price * volume + (0.0 if first else self.cum_value[-1]))
        self.highs.append(price if first else max(price, self.highs[-1]))
        self.lows.append(price if first else min(price, self.lows[-1]))


class Market:
    def __init__(self, instruments: InstrumentBook, *, seed: int) -> None:
        self.instruments = instruments
        self.seed = seed
        self._prices: dict[tuple[int, int, int], float] = {}
        self._tapes: dict[tuple[int, int], DayTape] = {}
        self._days: dict[tuple[int, int], DaySummary] = {}

    # -- underlyings ---------------------------------------------------------------------------------------
    def _sigma(self, instrument: Instrument) -> float:
        return INDEX_DAILY_SIGMA if instrument.segment == "INDICES" else EQUITY_DAILY_SIGMA

    def _path(self, instrument: Instrument, n: int) -> tuple[float, ...]:
        return _day_path(self.seed, instrument.tradingsymbol, self._sigma(instrument), n)

    def _underlying(self, instrument: Instrument, minute: MarketMinute) -> float:
        return instrument.base_price * math.exp(self._path(instrument, minute.n)[minute.m])

    def spot(self, when: datetime) -> float:
        """The NIFTY 50 level (not rounded)."""
        return self._underlying(self.instruments.nifty, minute_of(when))

    def _vix(self, minute: MarketMinute) -> float:
        nifty = self.instruments.nifty.tradingsymbol
        path = _day_path(self.seed, nifty, INDEX_DAILY_SIGMA, minute.n)
        move = path[minute.m] - _close_level(self.seed, nifty, INDEX_DAILY_SIGMA, minute.n - 1)
        day_level = 100 * BASE_VIX * math.exp(VIX_DAILY_SIGMA * _normal(self.seed, "INDIA VIX", minute.n))
        return day_level * math.exp(-VIX_BETA * move)

    def volatility(self, minute: MarketMinute) -> float:
        """The at-the-money volatility options are priced with: the published INDIA VIX / 100."""
        return self.price_at(self.instruments.vix, minute) / 100

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
        smile = 0.6 * abs(moneyness) + (0.03 * -moneyness if moneyness < 0 else 0.0)
        vol = self.volatility(minute) + smile
        value = black_scholes(
            spot=spot, strike=instrument.strike, years=years, vol=vol, rate=RISK_FREE_RATE, call=call
        )
        return max(TICK_SIZE, value)

    # -- public reads --------------------------------------------------------------------------------------
    def raw_price(self, instrument: Instrument, minute: MarketMinute) -> float:
        if instrument.is_option:
            return self._option(instrument, minute)
        if instrument is self.instruments.vix:
            return self._vix(minute)
        return self._underlying(instrument, minute)

    def price_at(self, instrument: Instrument, minute: MarketMinute) -> float:
        """The traded price at a grid point, on the tick grid (memoised: prices never change)."""
        key = (instrument.instrument_token, minute.n, minute.m)
        price = self._prices.get(key)
        if price is None:
            if len(self._prices) >= PRICE_CACHE_SIZE:
                self._prices.clear()
            price = round_to_tick(self.raw_price(instrument, minute), instrument.price_step)
            self._prices[key] = price
        return price

    def last_price(self, instrument: Instrument, when: datetime) -> float:
        return self.price_at(instrument, minute_of(when))

    def close_price(self, instrument: Instrument, when: datetime) -> float:
        """The previous session's close, as Kite reports it in ``ohlc.close`` and ``close_price``."""
        minute = minute_of(when)
        return self.price_at(instrument, MarketMinute(minute.n - 1, SESSION_MINUTES))

    def _day_factor(self, instrument: Instrument, n: int) -> float:
        return math.exp(0.3 * _normal(self.seed, f"{instrument.tradingsymbol}#volume", n))

    def _prices_of_day(self, instrument: Instrument, n: int) -> list[float]:
        """All 376 prices of a day without going through the memo (for one-off reads of old days)."""
        step = instrument.price_step
        if instrument.is_option or instrument is self.instruments.vix:
            minutes = (MarketMinute(n, m) for m in range(SESSION_MINUTES + 1))
            return [round_to_tick(self.raw_price(instrument, minute), step) for minute in minutes]
        # What _underlying gives minute by minute, without looking the day's path up 376 times.
        base = instrument.base_price
        return [round_to_tick(base * math.exp(x), step) for x in self._path(instrument, n)]

    def tape(self, instrument: Instrument, n: int, upto: int) -> DayTape:
        """Trading day ``n`` of ``instrument``, computed at least to minute ``upto``."""
        key = (instrument.instrument_token, n)
        tape = self._tapes.get(key)
        if tape is None:
            if len(self._tapes) >= TAPE_CACHE_SIZE:
                self._tapes.clear()
            tape = self._tapes[key] = DayTape()
        if len(tape) <= upto:
            self._extend(tape, instrument, n, upto)
        return tape

    def _extend(self, tape: DayTape, instrument: Instrument, n: int, upto: int) -> None:
        day_factor = self._day_factor(instrument, n)
        for m in range(len(tape), upto + 1):
            price = self.price_at(instrument, MarketMinute(n, m))
            volume = 0
            # Indices trade nothing, and the close (minute 375) is a price, not a minute of trading.
            if instrument.tradable and m < SESSION_MINUTES:
                previous = tape.prices[-1] if len(tape) else price
                volume = minute_volume(
                    m=m, price=price, previous=previous, lot_size=instrument.lot_size, day_factor=day_factor
                )
            tape.append(price, volume)

    def day_summary(self, instrument: Instrument, n: int) -> DaySummary:
        """Open, high, low, close (at 15:30) and volume of a whole trading day."""
        key = (instrument.instrument_token, n)
        summary = self._days.get(key)
        if summary is not None:
            return summary
        tape = self._tapes.get(key)
        if tape is not None and len(tape) > SESSION_MINUTES:
            summary = DaySummary(
                open=tape.prices[0],
                high=tape.highs[SESSION_MINUTES],
                low=tape.lows[SESSION_MINUTES],
                close=tape.prices[SESSION_MINUTES],
                volume=tape.cum_volume[SESSION_MINUTES],
            )
        else:
            # An old day read once (a run of day candles): computed aside, so that it pushes neither the
            # price memo nor today's tapes out of their caches.
            prices = self._prices_of_day(instrument, n)
            volume = 0
            if instrument.tradable:
                day_factor = self._day_factor(instrument, n)
                lot = instrument.lot_size
                volume = sum(
                    minute_volume(
                        m=m,
                        price=prices[m],
                        previous=prices[m - 1] if m else prices[0],
                        lot_size=lot,
                        day_factor=day_factor,
                    )
                    for m in range(SESSION_MINUTES)
                )
            summary = DaySummary(
                open=prices[0], high=max(prices), low=min(prices), close=prices[-1], volume=volume
            )
        if len(self._days) >= DAY_CACHE_SIZE:
            self._days.clear()
        self._days[key] = summary
        return summary

    def snapshot(self, instrument: Instrument, when: datetime) -> Snapshot:
        minute = minute_of(when)
        tape = self.tape(instrument, minute.n, minute.m)
        m = minute.m
        volume = tape.cum_volume[m]
        previous_close = self.price_at(instrument, MarketMinute(minute.n - 1, SESSION_MINUTES))
        return Snapshot(
            instrument=instrument,
            minute=minute,
            last_price=tape.prices[m],
            ohlc=Ohlc(open=tape.prices[0], high=tape.highs[m], low=tape.lows[m], close=previous_close),
            volume=volume,
            average_price=round(tape.cum_value[m] / volume, 2) if volume else tape.prices[m],
        )
