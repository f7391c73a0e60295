"""INDIA VIX: quotable, listed, and the very volatility the option chain is priced with."""

from __future__ import annotations

import csv
import io
import itertools
import math
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from kitesim.clock import IST
from kitesim.instruments import expiry_cutoff
from kitesim.market import RISK_FREE_RATE, black_scholes
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

VIX = "NSE:INDIA VIX"
NIFTY = "NSE:NIFTY 50"
MID_SESSION = datetime(2025, 1, 6, 11, 20, 30, tzinfo=IST)


@pytest.fixture
async def token(kite: KiteDriver) -> str:
    await kite.freeze_at(MID_SESSION)
    return await kite.sign_in()


def implied_vol(*, price: float, spot: float, strike: float, years: float, call: bool) -> float:
    low, high = 0.01, 2.0
    for _ in range(100):
        middle = (low + high) / 2
        value = black_scholes(
            spot=spot, strike=strike, years=years, vol=middle, rate=RISK_FREE_RATE, call=call
        )
        low, high = (middle, high) if value < price else (low, middle)
    return (low + high) / 2


class TestQuotable:
    async def test_ltp_ohlc_and_full_quote(self, kite: KiteDriver, token: str) -> None:
        ltp = (await kite.data(token, "/quote/ltp", i=VIX))[VIX]
        assert ltp["instrument_token"] == 264969
        level = ltp["last_price"]
        assert 8 < level < 40 and round(level, 2) == level
        ohlc = (await kite.data(token, "/quote/ohlc", i=VIX))[VIX]
        assert ohlc["last_price"] == level
        assert ohlc["ohlc"]["low"] <= level <= ohlc["ohlc"]["high"]
        quote = await kite.data(token, "/quote", i=[VIX, "264969"])
        assert quote[VIX]["last_price"] == quote["264969"]["last_price"] == level
        assert quote[VIX]["volume"] == 0 and quote[VIX]["last_quantity"] == 0
        assert quote[VIX]["net_change"] == round(level - quote[VIX]["ohlc"]["close"], 2)

    async def test_listed_as_an_nse_index(self, kite: KiteDriver, token: str) -> None:
        response = await kite.client.get("/instruments/NSE", headers=kite.auth(token))
        rows = list(csv.DictReader(io.StringIO(response.text)))
        (vix,) = [row for row in rows if row["tradingsymbol"] == "INDIA VIX"]
        assert vix == {
            "instrument_token": "264969",
            "exchange_token": "1035",
            "tradingsymbol": "INDIA VIX",
            "name": "INDIA VIX",
            "last_price": "0.0",
            "expiry": "",
            "strike": "0.0",
            "tick_size": "0.0",
            "lot_size": "0",
            "instrument_type": "EQ",
            "segment": "INDICES",
            "exchange": "NSE",
        }

    async def test_not_tradable(self, kite: KiteDriver, token: str) -> None:
        response = await kite.place(
            token,
            exchange="NSE",
            tradingsymbol="INDIA VIX",
            transaction_type="BUY",
            order_type="MARKET",
            quantity=1,
            product="CNC",
        )
        assert response.status_code == 400
        assert "index" in response.json()["message"]


class TestConsistentWithOptions:
    async def test_at_the_money_implied_volatility_is_the_vix(
        self, kite: KiteDriver, sim: SimState, token: str
    ) -> None:
        listed = await kite.client.get("/instruments/NFO", headers=kite.auth(token))
        chain = list(csv.DictReader(io.StringIO(listed.text)))
        quotes = await kite.data(token, "/quote", i=[VIX, NIFTY])
        spot = quotes[NIFTY]["last_price"]
        vix = quotes[VIX]["last_price"]
        nearest = min(chain, key=lambda row: (abs(float(row["strike"]) - spot), row["expiry"]))
        strike = float(nearest["strike"])
        for kind in ("CE", "PE"):
            row = next(
                r
                for r in chain
                if r["strike"] == nearest["strike"]
                and r["expiry"] == nearest["expiry"]
                and r["instrument_type"] == kind
            )
            key = f"NFO:{row['tradingsymbol']}"
            quote = (await kite.data(token, "/quote", i=key))[key]
            priced_at = datetime.strptime(quote["last_trade_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
            expiry = datetime.strptime(row["expiry"], "%Y-%m-%d").date()
            years = (expiry_cutoff(expiry) - priced_at).total_seconds() / (365 * 24 * 3600)
            implied = implied_vol(
                price=quote["last_price"], spot=spot, strike=strike, years=years, call=kind == "CE"
            )
            # The smile adds well under 0.1 vol point this close to the money.
            assert implied == pytest.approx(vix / 100, abs=0.002), kind

    async def test_vix_rises_as_nifty_falls_within_the_day(self, kite: KiteDriver, token: str) -> None:
        await kite.freeze_at(datetime(2025, 1, 7, 16, 0, tzinfo=IST))
        token = await kite.sign_in()
        window = {"from": "2025-01-07 09:15:00", "to": "2025-01-07 15:29:00"}
        nifty = await kite.data(token, "/instruments/historical/256265/minute", **window)
        vix = await kite.data(token, "/instruments/historical/264969/minute", **window)
        nifty_closes = [row[4] for row in nifty["candles"]]
        vix_closes = [row[4] for row in vix["candles"]]
        assert len(nifty_closes) == len(vix_closes) == 375
        nifty_moves = [math.log(b / a) for a, b in itertools.pairwise(nifty_closes)]
        vix_moves = [math.log(b / a) for a, b in itertools.pairwise(vix_closes)]
        mean_n = sum(nifty_moves) / len(nifty_moves)
        mean_v = sum(vix_moves) / len(vix_moves)
        covariance = sum((n - mean_n) * (v - mean_v) for n, v in zip(nifty_moves, vix_moves, strict=True))
        spread_n = math.sqrt(sum((n - mean_n) ** 2 for n in nifty_moves))
        spread_v = math.sqrt(sum((v - mean_v) ** 2 for v in vix_moves))
        assert covariance / (spread_n * spread_v) < -0.5
