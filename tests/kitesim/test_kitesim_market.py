"""Quotes: deterministic at one sim minute, moving with the clock, shaped like Kite's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

from kitesim.instruments import InstrumentBook
from kitesim.market import Market, black_scholes, minute_of
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

# Monday 2025-01-06 10:00:30 IST, half a minute into a minute so real time in a test does not cross it.
MID_SESSION = datetime(2025, 1, 6, 4, 30, 30, tzinfo=UTC)
OPTION = "NFO:NIFTY2510923500CE"


@pytest.fixture
async def token(kite: KiteDriver) -> str:
    await kite.client.post("/sim/clock", json={"set_to": MID_SESSION.isoformat(), "speed": 0.001})
    return await kite.sign_in()


class TestQuotes:
    async def test_full_quote_shape(self, kite: KiteDriver, token: str) -> None:
        response = await kite.get(token, "/quote", i=["NSE:INFY", OPTION, "NSE:NIFTY 50"])
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert set(data) == {"NSE:INFY", OPTION, "NSE:NIFTY 50"}
        infy = data["NSE:INFY"]
        assert infy["instrument_token"] == 408065
        assert infy["timestamp"] == "2025-01-06 10:00:30"
        assert infy["last_trade_time"] == "2025-01-06 10:00:00"
        assert set(infy["ohlc"]) == {"open", "high", "low", "close"}
        assert infy["ohlc"]["low"] <= infy["last_price"] <= infy["ohlc"]["high"]
        assert infy["net_change"] == round(infy["last_price"] - infy["ohlc"]["close"], 2)
        assert len(infy["depth"]["buy"]) == len(infy["depth"]["sell"]) == 5
        assert infy["depth"]["buy"][0]["price"] < infy["last_price"] < infy["depth"]["sell"][0]["price"]
        for key in ("volume", "average_price", "oi", "lower_circuit_limit", "upper_circuit_limit"):
            assert key in infy
        assert data["NSE:NIFTY 50"]["instrument_token"] == 256265
        assert data[OPTION]["last_price"] > 0

    async def test_stable_at_one_time_and_moving_with_the_clock(self, kite: KiteDriver, token: str) -> None:
        keys = ["NSE:INFY", "NSE:RELIANCE", OPTION, "NSE:NIFTY 50"]
        first = (await kite.get(token, "/quote/ltp", i=keys)).json()["data"]
        second = (await kite.get(token, "/quote/ltp", i=keys)).json()["data"]
        assert first == second
        await kite.advance(15 * 60)
        later = (await kite.get(token, "/quote/ltp", i=keys)).json()["data"]
        assert [later[k]["last_price"] for k in keys] != [first[k]["last_price"] for k in keys]
        assert sum(later[k]["last_price"] != first[k]["last_price"] for k in keys) >= 3

    async def test_ltp_and_ohlc_shapes(self, kite: KiteDriver, token: str) -> None:
        ltp = (await kite.get(token, "/quote/ltp", i="NSE:SBIN")).json()
        assert ltp["status"] == "success"
        assert set(ltp["data"]["NSE:SBIN"]) == {"instrument_token", "last_price"}
        ohlc = (await kite.get(token, "/quote/ohlc", i="NSE:SBIN")).json()["data"]["NSE:SBIN"]
        assert set(ohlc) == {"instrument_token", "last_price", "ohlc"}
        assert ohlc["last_price"] == ltp["data"]["NSE:SBIN"]["last_price"]

    async def test_instrument_token_as_key(self, kite: KiteDriver, token: str) -> None:
        data = (await kite.get(token, "/quote/ltp", i="408065")).json()["data"]
        assert data["408065"]["instrument_token"] == 408065

    async def test_unknown_instruments_are_left_out(self, kite: KiteDriver, token: str) -> None:
        response = await kite.get(token, "/quote", i=["NSE:INFY", "NSE:NOSUCH", "XYZ"])
        assert set(response.json()["data"]) == {"NSE:INFY"}

    async def test_nothing_valid_is_an_input_error(self, kite: KiteDriver, token: str) -> None:
        response = await kite.get(token, "/quote/ltp", i=["NSE:NOSUCH"])
        assert response.status_code == 400
        assert response.json()["error_type"] == "InputException"
        missing = await kite.get(token, "/quote")
        assert missing.status_code == 400
        assert missing.json()["message"] == "Missing `i`."

    async def test_needs_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/quote/ltp", params={"i": "NSE:INFY"})
        assert response.status_code == 403
        assert response.json()["error_type"] == "TokenException"


class TestModel:
    def test_same_seed_same_prices_other_seed_other_prices(self) -> None:
        book = InstrumentBook(seed=7)
        infy = book.get("NSE:INFY")
        assert infy is not None
        at = MID_SESSION + timedelta(days=3)
        one = Market(book, seed=7).last_price(infy, at)
        assert one == Market(InstrumentBook(seed=7), seed=7).last_price(infy, at)
        other_book = InstrumentBook(seed=8)
        other_infy = other_book.get("NSE:INFY")
        assert other_infy is not None
        assert Market(other_book, seed=8).last_price(other_infy, at) != one

    def test_prices_hold_still_outside_the_session(self, sim: SimState) -> None:
        infy = sim.instruments.get("NSE:INFY")
        assert infy is not None
        friday_close = datetime(2025, 1, 10, 10, 0, tzinfo=UTC)  # 15:30 IST
        saturday = datetime(2025, 1, 11, 6, 0, tzinfo=UTC)
        monday_early = datetime(2025, 1, 13, 2, 0, tzinfo=UTC)  # 07:30 IST
        price = sim.market.last_price(infy, friday_close)
        assert sim.market.last_price(infy, saturday) == price
        assert sim.market.last_price(infy, monday_early) == price
        assert minute_of(monday_early) == minute_of(friday_close)

    def test_option_prices_follow_black_scholes_and_settle_at_intrinsic(self, sim: SimState) -> None:
        call = sim.instruments.get(OPTION)
        put = sim.instruments.get("NFO:NIFTY2510923500PE")
        assert call is not None and put is not None
        at = MID_SESSION
        spot = sim.market.spot(at)
        c, p = sim.market.last_price(call, at), sim.market.last_price(put, at)
        # Put-call parity, within rounding and the small rate term.
        assert abs((c - p) - (spot - 23500)) < 30
        after = datetime(2025, 1, 9, 10, 0, tzinfo=UTC)
        settle = sim.market.spot(after)
        assert sim.market.last_price(call, after + timedelta(days=1)) == pytest.approx(
            max(0.0, settle - 23500), abs=0.05
        )

    def test_black_scholes_sane(self) -> None:
        call = black_scholes(spot=100, strike=100, years=1, vol=0.2, rate=0.0, call=True)
        assert call == pytest.approx(7.9656, abs=1e-3)
        assert black_scholes(spot=100, strike=90, years=0, vol=0.2, rate=0.0, call=True) == 10
