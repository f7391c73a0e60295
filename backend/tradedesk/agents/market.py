"""Market data for one runtime's cycle, fetched once per instrument and shared by every agent it drives:
the instrument list (once per IST day and exchange), batched last prices, completed minute candles
(once per instrument and minute)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta

from tradedesk.agents.strategies.base import NIFTY_KEY, VIX_KEY, Candle, InstrumentInfo
from tradedesk.brokers.credentials import BrokerCredentialsPlain
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.kit.calendar import ist_day
from tradedesk.kit.clock import IST

log = logging.getLogger("tradedesk.agents")

LTP_BATCH = 1000  # Kite's limit of instruments per /quote/ltp call
EXCHANGES = ("NFO", "NSE")
ALWAYS_QUOTED = frozenset({NIFTY_KEY, VIX_KEY})


def trading_days_between(start: date, end: date) -> int:
    """Weekdays after ``start`` up to and including ``end`` (the broker's calendar has no holidays)."""
    if end <= start:
        return 0
    days = 0
    current = start
    while current < end:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days += 1
    return days


class MarketData:
    def __init__(self, kite: KiteClient) -> None:
        self._kite = kite
        self._instruments: tuple[InstrumentInfo, ...] = ()
        self._instruments_day: date | None = None
        self._tokens: dict[str, int] = {}
        self._candles: dict[str, tuple[datetime, tuple[Candle, ...]]] = {}

    async def instruments(
        self, credentials: BrokerCredentialsPlain, *, now: datetime
    ) -> Sequence[InstrumentInfo]:
        day = ist_day(now)
        if self._instruments_day == day:
            return self._instruments
        rows: list[InstrumentInfo] = []
        for exchange in EXCHANGES:
            listed = await self._kite.instruments(
                api_key=credentials.api_key, access_token=credentials.access_token, exchange=exchange
            )
            rows.extend(
                InstrumentInfo(
                    exchange=i.exchange,
                    tradingsymbol=i.tradingsymbol,
                    instrument_token=i.instrument_token,
                    lot_size=i.lot_size,
                    tick_size=i.tick_size,
                    instrument_type=i.instrument_type,
                    name=i.name,
                    expiry=i.expiry,
                    strike=i.strike or None,
                )
                for i in listed
            )
        self._instruments = tuple(rows)
        self._tokens = {i.key: i.instrument_token for i in rows}
        self._instruments_day = day
        return self._instruments

    def trading_days_to(self, *, now: datetime) -> dict[date, int]:
        today = ist_day(now)
        expiries = {i.expiry for i in self._instruments if i.expiry is not None}
        return {expiry: trading_days_between(today, expiry) for expiry in expiries}

    async def last_prices(self, credentials: BrokerCredentialsPlain, keys: Iterable[str]) -> dict[str, float]:
        wanted = sorted(set(keys) | ALWAYS_QUOTED)
        prices: dict[str, float] = {}
        for start in range(0, len(wanted), LTP_BATCH):
            answer = await self._kite.ltp(
                api_key=credentials.api_key,
                access_token=credentials.access_token,
                keys=wanted[start : start + LTP_BATCH],
            )
            prices.update({key: quote.last_price for key, quote in answer.items()})
        return prices

    async def minute_candles(
        self, credentials: BrokerCredentialsPlain, wanted: Mapping[str, int], *, now: datetime
    ) -> dict[str, Sequence[Candle]]:
        """The last ``n`` completed minute candles of each key, fetched at most once per key per minute."""
        minute = now.astimezone(IST).replace(second=0, microsecond=0)
        found: dict[str, Sequence[Candle]] = {}
        for key, count in wanted.items():
            cached = self._candles.get(key)
            if cached is not None and cached[0] == minute:
                found[key] = cached[1][-count:]
                continue
            token = self._tokens.get(key)
            if token is None:
                continue
            # Most minutes, the last ``count`` session minutes are the last ``count`` clock minutes: ask
            # for just those. Near the open they reach into an earlier session (across a night or a
            # weekend), so the wider window is asked for only then.
            completed = await self._completed(
                credentials, token, start=minute - timedelta(minutes=count + 1), minute=minute
            )
            if len(completed) < count:
                completed = await self._completed(
                    credentials, token, start=minute - timedelta(days=4 if count > 60 else 3), minute=minute
                )
            self._candles[key] = (minute, completed[-max(count, 1) * 2 :])
            found[key] = completed[-count:]
        return found

    async def _completed(
        self, credentials: BrokerCredentialsPlain, token: int, *, start: datetime, minute: datetime
    ) -> tuple[Candle, ...]:
        rows = await self._kite.historical(
            api_key=credentials.api_key,
            access_token=credentials.access_token,
            instrument_token=token,
            interval="minute",
            start=start,
            end=minute,
        )
        return tuple(
            Candle(at=r.at, open=r.open, high=r.high, low=r.low, close=r.close, volume=r.volume)
            for r in rows
            if r.at + timedelta(minutes=1) <= minute
        )
