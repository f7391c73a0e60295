"""GET /instruments/historical/{instrument_token}/{interval}: candles that agree with the quotes at every
instant and never show a minute the clock has not reached."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from kitesim.candles import INTERVALS
from kitesim.candles import candles as build_candles
from kitesim.clock import IST
from kitesim.config import KitesimSettings
from kitesim.instruments import InstrumentBook, option_exchange_token
from kitesim.market import SESSION_MINUTES, Market, trading_day_index

if TYPE_CHECKING:
    from conftest import KiteDriver

INFY = 408065
NIFTY = 256265
MONDAY = datetime(2025, 1, 6, tzinfo=IST)
MID_SESSION = MONDAY.replace(hour=10, minute=0, second=30)
TODAY = {"from": "2025-01-06 09:15:00", "to": "2025-01-06 15:30:00"}
Row = list[Any]


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S+0530")


async def candles(kite: KiteDriver, token: str, instrument: int, interval: str, **window: str) -> list[Row]:
    body = await kite.data(token, f"/instruments/historical/{instrument}/{interval}", **window)
    assert set(body) == {"candles"}
    rows: list[Row] = body["candles"]
    return rows


def aggregate(rows: list[Row]) -> tuple[float, float, float, float, int]:
    return (
        rows[0][1],
        max(r[2] for r in rows),
        min(r[3] for r in rows),
        rows[-1][4],
        sum(r[5] for r in rows),
    )


@pytest.fixture
async def token(kite: KiteDriver) -> str:
    await kite.freeze_at(MID_SESSION)
    return await kite.sign_in()


class TestShape:
    async def test_kite_wire_format(self, kite: KiteDriver, token: str) -> None:
        response = await kite.get(token, f"/instruments/historical/{INFY}/minute", **TODAY)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "success"
        rows = body["data"]["candles"]
        first = rows[0]
        assert first[0] == "2025-01-06T09:15:00+0530"
        assert len(first) == 6
        assert all(isinstance(value, float) for value in first[1:5]) and isinstance(first[5], int)
        assert first[3] <= min(first[1], first[4]) <= max(first[1], first[4]) <= first[2]

    async def test_oi_adds_a_column(self, kite: KiteDriver, token: str) -> None:
        rows = await candles(kite, token, INFY, "5minute", oi="1", **TODAY)
        assert rows and all(len(row) == 7 and row[6] == 0 for row in rows)

    async def test_every_interval_kite_has(self, kite: KiteDriver, token: str) -> None:
        expected = {"minute": 46, "3minute": 16, "5minute": 10, "10minute": 5, "15minute": 4, "30minute": 2}
        for interval, count in {**expected, "60minute": 1, "day": 1}.items():
            rows = await candles(kite, token, INFY, interval, **TODAY)
            assert len(rows) == count, interval


class TestAgreesWithQuotes:
    async def test_at_every_minute_of_a_morning(self, kite: KiteDriver, token: str) -> None:
        """Walk the clock a minute at a time: each quote is the close of the candle in progress, and the day's
        open, high, low and volume are those of the minute candles so far."""
        key = "NSE:INFY"
        await kite.freeze_at(MONDAY.replace(hour=9, minute=15, second=30))
        seen: list[dict[str, Any]] = []
        for _ in range(46):
            seen.append((await kite.data(token, "/quote", i=key))[key])
            rows = await candles(kite, token, INFY, "minute", **TODAY)
            quote = seen[-1]
            assert len(rows) == len(seen)
            assert rows[-1][4] == quote["last_price"]
            opening, high, low, _, volume = aggregate(rows)
            assert (opening, high, low) == (
                quote["ohlc"]["open"],
                quote["ohlc"]["high"],
                quote["ohlc"]["low"],
            )
            assert volume == quote["volume"]
            (day,) = await candles(kite, token, INFY, "day", **TODAY)
            assert day[1:] == [opening, high, low, quote["last_price"], volume]
            await kite.advance(60)
        rows = await candles(kite, token, INFY, "minute", **TODAY)
        assert [row[4] for row in rows[:46]] == [quote["last_price"] for quote in seen]

    async def test_a_minute_opens_where_the_last_one_closed(self, kite: KiteDriver, token: str) -> None:
        rows = await candles(kite, token, INFY, "minute", **TODAY)
        for before, after in itertools.pairwise(rows):
            assert after[1] == before[4]
            assert after[2] == max(after[1], after[4]) and after[3] == min(after[1], after[4])

    async def test_longer_intervals_aggregate_minutes(self, kite: KiteDriver, token: str) -> None:
        await kite.freeze_at(MONDAY.replace(hour=17))
        token = await kite.sign_in()
        minutes = await candles(kite, token, INFY, "minute", **TODAY)
        assert len(minutes) == 375 and minutes[-1][0] == "2025-01-06T15:29:00+0530"
        for interval, size in (("5minute", 5), ("15minute", 15), ("60minute", 60)):
            rows = await candles(kite, token, INFY, interval, **TODAY)
            assert len(rows) == -(-375 // size)
            for k, row in enumerate(rows):
                part = minutes[k * size : (k + 1) * size]
                assert row[0] == part[0][0]
                assert tuple(row[1:]) == aggregate(part), (interval, row[0])
        hourly = await candles(kite, token, INFY, "60minute", **TODAY)
        assert hourly[-1][0] == "2025-01-06T15:15:00+0530"

    async def test_a_day_closes_at_the_price_quotes_show_after_the_session(
        self, kite: KiteDriver, token: str
    ) -> None:
        await kite.freeze_at(MONDAY.replace(hour=18))
        token = await kite.sign_in()
        after_close = (await kite.data(token, "/quote", i="NSE:INFY"))["NSE:INFY"]
        (day,) = await candles(kite, token, INFY, "day", **TODAY)
        assert day[4] == after_close["last_price"]
        assert day[1:4] == [after_close["ohlc"][k] for k in ("open", "high", "low")]
        assert day[5] == after_close["volume"]
        await kite.freeze_at(MONDAY.replace(hour=10) + timedelta(days=1))
        token = await kite.sign_in()
        tuesday = (await kite.data(token, "/quote", i="NSE:INFY"))["NSE:INFY"]
        assert tuesday["ohlc"]["close"] == day[4]


class TestNoFuture:
    async def test_nothing_after_the_clock(self, kite: KiteDriver, token: str) -> None:
        window = {"from": "2025-01-06 09:15:00", "to": "2025-01-10 15:30:00"}
        rows = await candles(kite, token, INFY, "minute", **window)
        assert rows[-1][0] == "2025-01-06T10:00:00+0530"
        days = await candles(kite, token, INFY, "day", **window)
        assert [row[0] for row in days] == ["2025-01-06T00:00:00+0530"]

    async def test_the_bar_in_progress_stops_at_the_clock(self, kite: KiteDriver, token: str) -> None:
        await kite.freeze_at(MONDAY.replace(hour=10, minute=2, second=30))
        window = {"from": "2025-01-06 10:00:00", "to": "2025-01-06 11:00:00"}
        (partial,) = await candles(kite, token, INFY, "5minute", **window)
        so_far = await candles(kite, token, INFY, "minute", **window)
        assert [row[0] for row in so_far] == [stamp(MONDAY.replace(hour=10, minute=m)) for m in (0, 1, 2)]
        assert tuple(partial[1:]) == aggregate(so_far)
        await kite.advance(5 * 60)
        done, _ = await candles(kite, token, INFY, "5minute", **window)
        minutes = await candles(kite, token, INFY, "minute", **window)
        assert tuple(done[1:]) == aggregate(minutes[:5])
        assert minutes[:3] == so_far  # completing a minute never rewrites it

    async def test_before_the_open_today_has_no_candles(self, kite: KiteDriver) -> None:
        await kite.freeze_at(MONDAY.replace(hour=9, minute=10))
        token = await kite.sign_in()
        assert await candles(kite, token, INFY, "minute", **TODAY) == []
        assert await candles(kite, token, INFY, "day", **TODAY) == []
        friday = await candles(kite, token, INFY, "day", **{"from": "2025-01-03", "to": "2025-01-06"})
        assert [row[0] for row in friday] == ["2025-01-03T00:00:00+0530"]

    async def test_weekends_have_no_candles(self, kite: KiteDriver) -> None:
        await kite.freeze_at(MONDAY.replace(hour=12) + timedelta(days=7))
        token = await kite.sign_in()
        week = {"from": "2025-01-06 00:00:00", "to": "2025-01-13 23:59:59"}
        days = [row[0][:10] for row in await candles(kite, token, NIFTY, "day", **week)]
        assert days == ["2025-01-06", "2025-01-07", "2025-01-08", "2025-01-09", "2025-01-10", "2025-01-13"]
        saturday = {"from": "2025-01-11 09:00:00", "to": "2025-01-12 16:00:00"}
        assert await candles(kite, token, NIFTY, "minute", **saturday) == []


class TestInstruments:
    async def test_an_index_has_no_volume(self, kite: KiteDriver, token: str) -> None:
        rows = await candles(kite, token, NIFTY, "5minute", **TODAY)
        assert rows and {row[5] for row in rows} == {0}

    async def test_an_option_trades_from_its_listing_to_its_expiry(self, kite: KiteDriver) -> None:
        await kite.freeze_at(datetime(2025, 1, 10, 12, 0, tzinfo=IST))
        token = await kite.sign_in()
        # Far from the money, so never in a listing: known by its token alone.
        contract = option_exchange_token(datetime(2025, 1, 9).date(), 30000, "PE") * 256 + 2
        window = {"from": "2024-12-01", "to": "2025-01-10"}
        days = await candles(kite, token, contract, "day", **window)
        assert days[0][0] == "2024-12-27T00:00:00+0530"  # the day after the expiry two weeks before
        assert days[-1][0] == "2025-01-09T00:00:00+0530"
        nifty_day = await candles(kite, token, NIFTY, "day", **{"from": "2025-01-09", "to": "2025-01-09"})
        assert days[-1][4] == pytest.approx(30000 - nifty_day[0][4], abs=0.05)  # intrinsic at the close
        assert all(row[5] > 0 for row in days)

    async def test_a_pure_function_of_the_seed(
        self, kite: KiteDriver, token: str, settings: KitesimSettings
    ) -> None:
        ours = await candles(kite, token, INFY, "minute", **TODAY)
        book = InstrumentBook(seed=settings.seed)
        infy = book.by_token(INFY)
        assert infy is not None
        fresh = build_candles(
            Market(book, seed=settings.seed),
            infy,
            INTERVALS["minute"],
            start=MONDAY.replace(hour=9, minute=15),
            end=MONDAY.replace(hour=15, minute=30),
            now=MID_SESSION,
        )
        assert [candle.as_row() for candle in fresh] == ours


class TestDaySummaries:
    def test_a_day_read_aside_equals_the_day_built_minute_by_minute(self, settings: KitesimSettings) -> None:
        """Old days are summarised without the minute caches; both ways must give the same candle."""
        day = MONDAY.date()
        for symbol in ("NSE:INFY", "NSE:NIFTY 50", "NSE:INDIA VIX", "NFO:NIFTY2510923500PE"):
            aside_book, minute_book = InstrumentBook(seed=settings.seed), InstrumentBook(seed=settings.seed)
            aside, by_minute = Market(aside_book, seed=settings.seed), Market(minute_book, seed=settings.seed)
            instrument, twin = aside_book.get(symbol), minute_book.get(symbol)
            assert instrument is not None and twin is not None
            n = trading_day_index(day)
            by_minute.tape(twin, n, SESSION_MINUTES)
            assert aside.day_summary(instrument, n) == by_minute.day_summary(twin, n), symbol


class TestRefused:
    @pytest.mark.parametrize(
        ("path", "params", "message"),
        [
            (f"{INFY}/2minute", TODAY, "Invalid `interval`: expected one of minute, 3minute, 5minute"),
            ("999/minute", TODAY, "Invalid `instrument_token`: no such instrument."),
            ("INFY/minute", TODAY, "Invalid `instrument_token`: no such instrument."),
            (
                "514/minute",
                TODAY,
                "Invalid `instrument_token`: no such instrument.",
            ),  # an NFO token of nothing
            (f"{10**30 * 256 + 2}/minute", TODAY, "Invalid `instrument_token`: no such instrument."),
            (f"{INFY}/minute", {"from": "06-01-2025", "to": TODAY["to"]}, "Invalid `from`"),
            (f"{INFY}/minute", {"from": TODAY["from"], "to": "later"}, "Invalid `to`"),
            (
                f"{INFY}/minute",
                {"from": TODAY["to"], "to": TODAY["from"]},
                "Invalid `from`: it is after `to`.",
            ),
            (f"{INFY}/minute", {"to": TODAY["to"]}, "Missing `from`."),
            (f"{INFY}/minute", {**TODAY, "oi": "yes"}, "Invalid `oi`: expected 0 or 1."),
            (
                f"{INFY}/minute",
                {"from": "2024-11-06 09:15:00", "to": "2025-01-06 09:15:00"},
                "interval exceeds max limit: 60 days",
            ),
            (
                f"{INFY}/5minute",
                {"from": "2024-09-01 09:15:00", "to": "2025-01-06 09:15:00"},
                "interval exceeds max limit: 100 days",
            ),
            (
                f"{INFY}/day",
                {"from": "2019-01-01", "to": "2025-01-06"},
                "interval exceeds max limit: 2000 days",
            ),
        ],
    )
    async def test_bad_requests(
        self, kite: KiteDriver, token: str, path: str, params: dict[str, str], message: str
    ) -> None:
        response = await kite.get(token, f"/instruments/historical/{path}", **params)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["status"] == "error" and body["error_type"] == "InputException"
        assert body["message"].startswith(message)

    async def test_sixty_days_of_minutes_is_allowed(self, kite: KiteDriver, token: str) -> None:
        window = {"from": "2024-11-07 09:15:00", "to": "2025-01-06 09:15:00"}
        rows = await candles(kite, token, INFY, "minute", **window)
        assert rows[0][0] == "2024-11-07T09:15:00+0530" and rows[-1][0] == "2025-01-06T09:15:00+0530"
        assert len(rows) == 42 * 375 + 1  # the weekdays in between, and today's first minute

    async def test_needs_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/instruments/historical/{INFY}/minute", params=TODAY)
        assert response.status_code == 403
        assert response.json()["error_type"] == "TokenException"
