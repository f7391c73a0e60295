"""The instrument universe and its CSV dump: equities, the NIFTY 50 index and the weekly option chain."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import httpx

from kitesim.instruments import InstrumentBook, option_symbol, weekly_expiries
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

HEADER = [
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
]


def rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text))
    assert reader.fieldnames == HEADER
    return list(reader)


class TestDump:
    async def test_all_instruments(self, client: httpx.AsyncClient, sim: SimState) -> None:
        listed = rows(await client.get("/instruments"))
        by_symbol = {row["tradingsymbol"]: row for row in listed}
        assert {"INFY", "RELIANCE", "TCS", "SBIN", "HDFCBANK"} <= set(by_symbol)
        equities = [row for row in listed if row["exchange"] == "NSE" and row["segment"] == "NSE"]
        assert len(equities) >= 20
        for row in equities:
            assert row["lot_size"] == "1"
            assert row["tick_size"] == "0.05"
            assert row["instrument_type"] == "EQ"
            assert int(row["instrument_token"]) == int(row["exchange_token"]) * 256 + 1
        index = by_symbol["NIFTY 50"]
        assert index["instrument_token"] == "256265"
        assert index["segment"] == "INDICES"
        options = [row for row in listed if row["exchange"] == "NFO"]
        # Two weekly expiries x 41 strikes (ATM ± 1000 every 50) x CE/PE.
        assert len(options) == 2 * 41 * 2
        assert {row["lot_size"] for row in options} == {"75"}
        assert {row["segment"] for row in options} == {"NFO-OPT"}
        assert {row["expiry"] for row in options} == {"2025-01-09", "2025-01-16"}
        strikes = sorted({float(row["strike"]) for row in options})
        assert all(b - a == 50 for a, b in itertools.pairwise(strikes))
        spot = sim.market.spot(sim.clock.now())
        assert strikes[0] <= spot <= strikes[-1]
        assert len({row["instrument_token"] for row in listed}) == len(listed)

    async def test_per_exchange(self, client: httpx.AsyncClient) -> None:
        nfo = rows(await client.get("/instruments/NFO"))
        assert nfo and all(row["exchange"] == "NFO" for row in nfo)
        assert "NIFTY2510923500CE" in {row["tradingsymbol"] for row in nfo}
        nse = rows(await client.get("/instruments/nse"))
        assert nse and all(row["exchange"] == "NSE" for row in nse)
        assert rows(await client.get("/instruments/MCX")) == []

    async def test_unknown_exchange(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/instruments/MOON")
        assert response.status_code == 400
        assert response.json()["error_type"] == "InputException"

    async def test_chain_rolls_with_the_clock(self, client: httpx.AsyncClient, kite: KiteDriver) -> None:
        await kite.set_clock(datetime(2025, 1, 9, 10, 0, tzinfo=UTC))  # Thursday 15:30 IST: expired
        expiries = {row["expiry"] for row in rows(await client.get("/instruments/NFO"))}
        assert expiries == {"2025-01-16", "2025-01-23"}


class TestSymbols:
    def test_weekly_and_monthly_spelling(self) -> None:
        assert option_symbol(date(2025, 1, 9), 23500, "CE") == "NIFTY2510923500CE"
        assert option_symbol(date(2025, 1, 30), 23500, "PE") == "NIFTY25JAN23500PE"
        assert option_symbol(date(2025, 10, 2), 25000, "CE") == "NIFTY25O0225000CE"
        assert option_symbol(date(2025, 12, 11), 26000, "PE") == "NIFTY25D1126000PE"
        assert option_symbol(date(2025, 8, 7), 24400, "CE") == "NIFTY2580724400CE"

    def test_expiries_are_the_next_thursdays(self) -> None:
        monday = datetime(2025, 1, 6, 4, 0, tzinfo=UTC)
        assert weekly_expiries(monday) == [date(2025, 1, 9), date(2025, 1, 16)]
        thursday_morning = datetime(2025, 1, 9, 4, 0, tzinfo=UTC)
        assert weekly_expiries(thursday_morning)[0] == date(2025, 1, 9)

    def test_contracts_are_recognised_by_name_and_keep_their_token(self) -> None:
        book = InstrumentBook(seed=7)
        option = book.lookup("nfo", "nifty2510923500ce")
        assert option is not None
        assert option.lot_size == 75
        assert option.strike == 23500.0
        assert option.expiry == date(2025, 1, 9)
        again = InstrumentBook(seed=99).get("NFO:NIFTY2510923500CE")
        assert again is not None and again.instrument_token == option.instrument_token
        assert book.get("NFO:NIFTY2510923525CE") is None  # not a strike
        assert book.get("NFO:NIFTY2510823500CE") is None  # a Wednesday
        assert book.get("NFO:NIFTY2513023500CE") is None  # a monthly spelt as a weekly
        assert book.get("NSE:NOSUCH") is None

    def test_universe_depends_on_the_seed_only(self) -> None:
        one, two, other = InstrumentBook(seed=7), InstrumentBook(seed=7), InstrumentBook(seed=8)
        assert [i.base_price for i in one.equities] == [i.base_price for i in two.equities]
        assert [i.base_price for i in one.equities] != [i.base_price for i in other.equities]
