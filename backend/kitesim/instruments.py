"""The instrument universe: NSE equities, the NIFTY 50 and INDIA VIX indices and NIFTY weekly options on NFO.

Trading symbols of NIFTY options follow Kite's scheme:

- monthly expiry (last Thursday of its month): ``NIFTY{YY}{MON}{STRIKE}{CE|PE}``, e.g. ``NIFTY25JAN23500CE``;
- any other weekly expiry: ``NIFTY{YY}{M}{DD}{STRIKE}{CE|PE}`` where ``M`` is ``1``…``9`` for
  January…September and ``O``, ``N``, ``D`` for October…December, e.g. ``NIFTY2510923500PE``
  (expiry 2025-01-09).

Instrument tokens are ``exchange_token * 256 + segment`` (NSE 1, NFO 2, indices 9), as on Kite (NIFTY 50 is
256265 and INDIA VIX 264969 there too). An option's exchange token is a function of its expiry, strike and
type, so a contract keeps its token for good and the token alone names the contract.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from kitesim.clock import IST

InstrumentType = Literal["EQ", "CE", "PE"]

NIFTY_NAME = "NIFTY 50"
NIFTY_KEY = f"NSE:{NIFTY_NAME}"
VIX_NAME = "INDIA VIX"
VIX_KEY = f"NSE:{VIX_NAME}"
VIX_EXCHANGE_TOKEN = 1035
NIFTY_LOT_SIZE = 75
NIFTY_STRIKE_STEP = 50
NIFTY_STRIKE_SPAN = 1000  # listed strikes: ATM ± this many points
WEEKLY_EXPIRIES_LISTED = 2
TICK_SIZE = 0.05

CSV_HEADER = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)

_SEGMENT_IDS = {"NSE": 1, "NFO": 2, "INDICES": 9}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKLY_MONTH_CODES = "123456789OND"
_OPTION_TOKEN_BASE = 1_000_000
_EXPIRY_DAYS_ENCODED = 4000  # an option token names its expiry within this many days of _EPOCH
_EPOCH = date(2020, 1, 1)


@dataclass(frozen=True, slots=True)
class Instrument:
    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    exchange: str
    segment: str
    instrument_type: InstrumentType
    tick_size: float
    lot_size: int
    base_price: float = 0.0
    expiry: date | None = None
    strike: float = 0.0
    tradable: bool = True
    # Prices are rounded to this step: the tick size, or for an index (tick 0) how finely it is published.
    price_step: float = TICK_SIZE

    @property
    def key(self) -> str:
        """``EXCHANGE:TRADINGSYMBOL``, the way quotes are asked for."""
        return f"{self.exchange}:{self.tradingsymbol}"

    @property
    def is_option(self) -> bool:
        return self.instrument_type in ("CE", "PE")


# (tradingsymbol, name, exchange token, indicative price in rupees)
EQUITIES: tuple[tuple[str, str, int, float], ...] = (
    ("RELIANCE", "RELIANCE INDUSTRIES", 2885, 1250.0),
    ("TCS", "TATA CONSULTANCY SERV LT", 11536, 4100.0),
    ("INFY", "INFOSYS", 1594, 1900.0),
    ("HDFCBANK", "HDFC BANK", 1333, 1750.0),
    ("ICICIBANK", "ICICI BANK", 4963, 1300.0),
    ("SBIN", "STATE BANK OF INDIA", 3045, 800.0),
    ("AXISBANK", "AXIS BANK", 5900, 1080.0),
    ("KOTAKBANK", "KOTAK MAHINDRA BANK", 1922, 1780.0),
    ("ITC", "ITC", 1660, 480.0),
    ("LT", "LARSEN & TOUBRO", 11483, 3650.0),
    ("WIPRO", "WIPRO", 3787, 300.0),
    ("HINDUNILVR", "HINDUSTAN UNILEVER", 1394, 2350.0),
    ("BHARTIARTL", "BHARTI AIRTEL", 10604, 1600.0),
    ("MARUTI", "MARUTI SUZUKI INDIA", 10999, 11800.0),
    ("SUNPHARMA", "SUN PHARMACEUTICAL IND L", 3351, 1800.0),
    ("TATAMOTORS", "TATA MOTORS", 3456, 760.0),
    ("TATASTEEL", "TATA STEEL", 3499, 135.0),
    ("ASIANPAINT", "ASIAN PAINTS", 236, 2300.0),
    ("BAJFINANCE", "BAJAJ FINANCE", 317, 7200.0),
    ("NTPC", "NTPC", 11630, 330.0),
    ("IOC", "INDIAN OIL CORP", 1624, 135.0),
    ("BHEL", "BHEL", 438, 215.0),
)
NIFTY_EXCHANGE_TOKEN = 1001
NIFTY_BASE_PRICE = 23600.0


def _seeded_unit(seed: int, label: str) -> float:
    """A number in [0, 1) that depends only on (seed, label)."""
    digest = hashlib.blake2b(f"{seed}|{label}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def round_to_tick(price: float, tick: float = TICK_SIZE) -> float:
    return round(round(price / tick) * tick, 2)


def is_monthly_expiry(expiry: date) -> bool:
    """The last Thursday of its month."""
    return expiry.weekday() == 3 and (expiry + timedelta(days=7)).month != expiry.month


def option_symbol(expiry: date, strike: int, option_type: Literal["CE", "PE"]) -> str:
    yy = f"{expiry.year % 100:02d}"
    if is_monthly_expiry(expiry):
        return f"NIFTY{yy}{_MONTHS[expiry.month - 1]}{strike}{option_type}"
    return f"NIFTY{yy}{_WEEKLY_MONTH_CODES[expiry.month - 1]}{expiry.day:02d}{strike}{option_type}"


def option_exchange_token(expiry: date, strike: int, option_type: Literal["CE", "PE"]) -> int:
    days = (expiry - _EPOCH).days % _EXPIRY_DAYS_ENCODED
    return (
        _OPTION_TOKEN_BASE
        + ((days * 1000 + (strike // NIFTY_STRIKE_STEP) % 1000) * 2)
        + (0 if option_type == "CE" else 1)
    )


def expiry_cutoff(expiry: date) -> datetime:
    """Options stop trading at 15:30 IST on their expiry day."""
    return datetime(expiry.year, expiry.month, expiry.day, 15, 30, tzinfo=IST)


def listed_from(expiry: date) -> date:
    """The first day a contract trades: the day after the expiry ``WEEKLY_EXPIRIES_LISTED`` weeks before."""
    return expiry - timedelta(days=7 * WEEKLY_EXPIRIES_LISTED - 1)


def weekly_expiries(now: datetime, count: int = WEEKLY_EXPIRIES_LISTED) -> list[date]:
    """The next ``count`` Thursdays whose 15:30 IST cut-off is still ahead of ``now``."""
    today = now.astimezone(IST).date()
    first = today + timedelta(days=(3 - today.weekday()) % 7)
    if now >= expiry_cutoff(first):
        first += timedelta(days=7)
    return [first + timedelta(days=7 * i) for i in range(count)]


def make_option(expiry: date, strike: int, option_type: Literal["CE", "PE"]) -> Instrument:
    exchange_token = option_exchange_token(expiry, strike, option_type)
    return Instrument(
        instrument_token=exchange_token * 256 + _SEGMENT_IDS["NFO"],
        exchange_token=exchange_token,
        tradingsymbol=option_symbol(expiry, strike, option_type),
        name="NIFTY",
        exchange="NFO",
        segment="NFO-OPT",
        instrument_type=option_type,
        tick_size=TICK_SIZE,
        lot_size=NIFTY_LOT_SIZE,
        expiry=expiry,
        strike=float(strike),
    )


class InstrumentBook:
    """Equities and the index are fixed at start; option contracts are listed as the clock reaches them and
    stay known afterwards (an open position in an expired contract can still be looked up)."""

    def __init__(self, *, seed: int) -> None:
        self.seed = seed
        self.nifty = Instrument(
            instrument_token=NIFTY_EXCHANGE_TOKEN * 256 + _SEGMENT_IDS["INDICES"],
            exchange_token=NIFTY_EXCHANGE_TOKEN,
            tradingsymbol=NIFTY_NAME,
            name=NIFTY_NAME,
            exchange="NSE",
            segment="INDICES",
            instrument_type="EQ",
            tick_size=0.0,
            lot_size=0,
            base_price=round_to_tick(NIFTY_BASE_PRICE * (0.97 + 0.06 * _seeded_unit(seed, NIFTY_NAME))),
            tradable=False,
        )
        # Its level is not a walk of its own: the market derives it from NIFTY (see market.py).
        self.vix = Instrument(
            instrument_token=VIX_EXCHANGE_TOKEN * 256 + _SEGMENT_IDS["INDICES"],
            exchange_token=VIX_EXCHANGE_TOKEN,
            tradingsymbol=VIX_NAME,
            name=VIX_NAME,
            exchange="NSE",
            segment="INDICES",
            instrument_type="EQ",
            tick_size=0.0,
            lot_size=0,
            tradable=False,
            price_step=0.01,
        )
        self.equities: list[Instrument] = [
            Instrument(
                instrument_token=token * 256 + _SEGMENT_IDS["NSE"],
                exchange_token=token,
                tradingsymbol=symbol,
                name=name,
                exchange="NSE",
                segment="NSE",
                instrument_type="EQ",
                tick_size=TICK_SIZE,
                lot_size=1,
                base_price=round_to_tick(price * (0.9 + 0.2 * _seeded_unit(seed, symbol))),
            )
            for symbol, name, token, price in EQUITIES
        ]
        self._by_key: dict[str, Instrument] = {}
        self._by_token: dict[int, Instrument] = {}
        for instrument in (self.nifty, self.vix, *self.equities):
            self._remember(instrument)

    def _remember(self, instrument: Instrument) -> None:
        self._by_key[instrument.key] = instrument
        self._by_token[instrument.instrument_token] = instrument

    def get(self, key: str) -> Instrument | None:
        """By ``EXCHANGE:TRADINGSYMBOL``; option contracts are recognised even before they are listed."""
        found = self._by_key.get(key)
        if found is None and key.startswith("NFO:"):
            found = self._parse_option(key.removeprefix("NFO:"))
        return found

    def lookup(self, exchange: str, tradingsymbol: str) -> Instrument | None:
        return self.get(f"{exchange.strip().upper()}:{tradingsymbol.strip().upper()}")

    def by_token(self, instrument_token: int) -> Instrument | None:
        """Any known instrument, or an option contract decoded from its token even before it is listed."""
        found = self._by_token.get(instrument_token)
        if found is None and instrument_token % 256 == _SEGMENT_IDS["NFO"]:
            found = self._decode_option(instrument_token // 256)
        return found

    def options(self, *, now: datetime, spot: float) -> list[Instrument]:
        """The listed chain: the next weekly expiries, strikes every 50 within ±1000 of the spot."""
        atm = round(spot / NIFTY_STRIKE_STEP) * NIFTY_STRIKE_STEP
        strikes = range(atm - NIFTY_STRIKE_SPAN, atm + NIFTY_STRIKE_SPAN + 1, NIFTY_STRIKE_STEP)
        listed: list[Instrument] = []
        for expiry in weekly_expiries(now):
            for strike in strikes:
                for option_type in ("CE", "PE"):
                    listed.append(self._option(expiry, strike, option_type))
        return listed

    def listing(self, *, now: datetime, spot: float, exchange: str | None = None) -> list[Instrument]:
        everything = [self.nifty, self.vix, *self.equities, *self.options(now=now, spot=spot)]
        if exchange is None:
            return everything
        return [instrument for instrument in everything if instrument.exchange == exchange]

    def _option(self, expiry: date, strike: int, option_type: Literal["CE", "PE"]) -> Instrument:
        key = f"NFO:{option_symbol(expiry, strike, option_type)}"
        known = self._by_key.get(key)
        if known is None:
            known = make_option(expiry, strike, option_type)
            self._remember(known)
        return known

    def _decode_option(self, exchange_token: int) -> Instrument | None:
        code, kind = divmod(exchange_token - _OPTION_TOKEN_BASE, 2)
        days, step = divmod(code, 1000)
        if not 0 <= days < _EXPIRY_DAYS_ENCODED:
            return None
        expiry = _EPOCH + timedelta(days=days)
        if expiry.weekday() != 3 or step == 0:
            return None
        option_type: Literal["CE", "PE"] = "CE" if kind == 0 else "PE"
        strike = step * NIFTY_STRIKE_STEP
        # A strike too large for the token's three digits wraps; such a token is nobody's.
        if option_exchange_token(expiry, strike, option_type) != exchange_token:
            return None
        return self._option(expiry, strike, option_type)

    def _parse_option(self, symbol: str) -> Instrument | None:
        if not symbol.startswith("NIFTY") or symbol[-2:] not in ("CE", "PE"):
            return None
        option_type: Literal["CE", "PE"] = "CE" if symbol.endswith("CE") else "PE"
        body = symbol[5:-2]
        if len(body) < 6 or not body[:2].isdigit():
            return None
        year = 2000 + int(body[:2])
        rest = body[2:]
        expiry: date | None = None
        strike_text = ""
        try:
            if rest[:3] in _MONTHS:
                month = _MONTHS.index(rest[:3]) + 1
                expiry = _last_thursday(year, month)
                strike_text = rest[3:]
            elif rest[0] in _WEEKLY_MONTH_CODES and rest[1:3].isdigit():
                expiry = date(year, _WEEKLY_MONTH_CODES.index(rest[0]) + 1, int(rest[1:3]))
                strike_text = rest[3:]
                if is_monthly_expiry(expiry):
                    return None  # a monthly expiry is only ever spelt with the month's name
        except ValueError:
            return None
        if expiry is None or expiry.weekday() != 3 or not strike_text.isdigit():
            return None
        strike = int(strike_text)
        if strike <= 0 or strike % NIFTY_STRIKE_STEP:
            return None
        return self._option(expiry, strike, option_type)


def _last_thursday(year: int, month: int) -> date:
    first_next = date(year + month // 12, month % 12 + 1, 1)
    last = first_next - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 3) % 7)


def instruments_csv(instruments: Iterable[Instrument]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for item in instruments:
        writer.writerow(
            (
                item.instrument_token,
                item.exchange_token,
                item.tradingsymbol,
                item.name,
                "0.0",
                item.expiry.isoformat() if item.expiry else "",
                f"{item.strike:.1f}",
                f"{item.tick_size:g}" if item.tick_size else "0.0",
                item.lot_size,
                item.instrument_type,
                item.segment,
                item.exchange,
            )
        )
    return out.getvalue()
