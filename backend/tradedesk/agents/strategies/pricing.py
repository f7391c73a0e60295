"""Option maths the strategies reason with: Black-Scholes delta, time to an NSE expiry, and prices on the
exchange's tick grid."""

from __future__ import annotations

import math
from datetime import date, datetime

from tradedesk.kit.calendar import MARKET_CLOSE
from tradedesk.kit.clock import IST

# Weekly options expire at the session's close.
EXPIRY_CUTOFF_IST = MARKET_CLOSE
SECONDS_PER_YEAR = 365.0 * 24 * 3600


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def years_to_expiry(expiry: date, *, now: datetime) -> float:
    """Calendar years from ``now`` to 15:30 IST of the expiry day (never negative)."""
    cutoff = datetime.combine(expiry, EXPIRY_CUTOFF_IST, tzinfo=IST)
    return max(0.0, (cutoff - now).total_seconds() / SECONDS_PER_YEAR)


def bs_delta(*, spot: float, strike: float, years: float, vol: float, rate: float, call: bool) -> float:
    """Black-Scholes delta of a European option (no dividends): N(d1) for a call, N(d1) - 1 for a put.
    ``vol`` and ``rate`` are annual fractions (0.14, 0.05)."""
    if spot <= 0 or strike <= 0:
        raise ValueError("spot and strike must be positive")
    if years <= 0 or vol <= 0:
        # At expiry the option is all or nothing.
        in_the_money = spot > strike if call else spot < strike
        return (1.0 if in_the_money else 0.0) * (1.0 if call else -1.0)
    sqrt_t = math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / (vol * sqrt_t)
    return norm_cdf(d1) if call else norm_cdf(d1) - 1.0


def round_to_tick(price: float, tick: float) -> float:
    """The nearest price on the tick grid (two decimals, as the exchange quotes)."""
    if tick <= 0:
        return round(price, 2)
    return round(round(price / tick) * tick, 2)


def ceil_to_tick(price: float, tick: float) -> float:
    """The lowest price on the tick grid at or above ``price``."""
    if tick <= 0:
        return round(price, 2)
    # The epsilon keeps a price already on the grid (23.15 / 0.05 = 462.99999…) where it is.
    return round(math.ceil(price / tick - 1e-9) * tick, 2)
