"""Trading data end to end: orders placed through kitesim's Kite API, synced, matched, reported."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from tests.api.conftest import MakeTrader, Trader, fill_price, option_symbol, round_trips
from tradedesk.kit.calendar import daily_stats
from tradedesk.kit.repository import bind_tenant
from tradedesk.models import Trade
from tradedesk.trading.service import encode_cursor


class TestSync:
    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.post("/api/sync", json={})).status_code == 401

    async def test_round_trip_is_matched_and_resync_is_idempotent(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        buy = await trader.order("INFY", "BUY", 10)
        move_clocks(600)
        sell = await trader.order("INFY", "SELL", 10, tag="manual:exit")
        assert await trader.sync() == {"fills_new": 2, "trades_closed": 1}
        assert await trader.sync() == {"fills_new": 0, "trades_closed": 0}
        fills = await trader.broker_fills()
        [trip] = await trader.trades()
        expected = (fill_price(fills, sell) - fill_price(fills, buy)) * 10
        assert trip["status"] == "closed" and trip["direction"] == "LONG" and trip["quantity"] == 10
        assert Decimal(str(trip["realised_pnl"])) == expected
        assert trip["exit_reason"] == "exit"

    async def test_short_first_option_round_trip(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        symbol = await option_symbol(trader, "PE")
        sold = await trader.order(symbol, "SELL", 75, exchange="NFO", product="NRML", tag="strangle:entry")
        move_clocks(3600)
        bought = await trader.order(symbol, "BUY", 75, exchange="NFO", product="NRML", tag="strangle:sl")
        await trader.sync()
        fills = await trader.broker_fills()
        [trip] = await trader.trades()
        assert trip["direction"] == "SHORT" and trip["strategy"] == "strangle"
        assert trip["exit_reason"] == "stop_loss"
        assert (
            Decimal(str(trip["realised_pnl"])) == (fill_price(fills, sold) - fill_price(fills, bought)) * 75
        )

    async def test_partial_fills_leave_an_open_remainder(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        await trader.order("TCS", "BUY", 10)
        move_clocks(60)
        await trader.order("TCS", "BUY", 5)
        move_clocks(60)
        await trader.order("TCS", "SELL", 12)
        assert (await trader.sync())["trades_closed"] == 2
        trades = await trader.trades()
        closed = sorted(t["quantity"] for t in trades if t["status"] == "closed")
        still_open = [t["quantity"] for t in trades if t["status"] == "open"]
        assert closed == [2, 10] and still_open == [3]
        assert [t["quantity"] for t in await trader.trades(status="open")] == [3]
        # Selling the rest later closes the remainder without duplicating anything.
        move_clocks(60)
        await trader.order("TCS", "SELL", 3)
        assert await trader.sync() == {"fills_new": 1, "trades_closed": 1}
        assert await trader.trades(status="open") == []
        assert sum(t["quantity"] for t in await trader.trades(status="closed")) == 15  # type: ignore[misc]

    async def test_concurrent_syncs_store_everything_once(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        for _ in range(5):
            await trader.order("SBIN", "BUY", 4)
            move_clocks(30)
            await trader.order("SBIN", "SELL", 4)
            move_clocks(30)
        results = await asyncio.gather(*(trader.api.post("/api/sync", json={}) for _ in range(3)))
        assert all(r.status_code == 200 for r in results), [r.text for r in results]
        assert sum(r.json()["fills_new"] for r in results) == 10
        assert sum(r.json()["trades_closed"] for r in results) == 5
        assert len(await trader.trades()) == 5

    async def test_bad_body_is_422_and_future_day_400(self, make_trader: MakeTrader) -> None:
        trader = await make_trader()
        assert (await trader.api.post("/api/sync", json={"day": "yesterday"})).status_code == 422
        response = await trader.api.post("/api/sync", json={"day": "2031-01-01"})
        assert response.status_code == 400 and "day" in response.json()["detail"]

    async def test_csrf_is_required(self, make_trader: MakeTrader) -> None:
        trader = await make_trader()
        del trader.api.headers["X-CSRF-Token"]
        assert (await trader.api.post("/api/sync", json={})).status_code == 403


class TestTradesList:
    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/trades")).status_code == 401

    async def test_pages_are_stable_while_new_rows_arrive(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        await round_trips(trader, move_clocks, 7)
        await trader.sync()
        first = (await trader.api.get("/api/trades", params={"limit": 3})).json()
        assert len(first["items"]) == 3 and first["next_cursor"]
        # New executions land between two page reads: the next page neither repeats nor skips.
        await round_trips(trader, move_clocks, 2, symbol="SBIN")
        await trader.sync()
        seen = [t["id"] for t in first["items"]]
        cursor = first["next_cursor"]
        while cursor:
            page = (await trader.api.get("/api/trades", params={"limit": 3, "cursor": cursor})).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
        assert len(seen) == len(set(seen)) == 7
        assert seen == sorted(seen, reverse=True)
        assert len(await trader.trades()) == 9

    async def test_filters(self, make_trader: MakeTrader, move_clocks: Callable[[float], None]) -> None:
        trader = await make_trader()
        await round_trips(trader, move_clocks, 2, symbol="INFY")
        await round_trips(trader, move_clocks, 1, symbol="TCS")
        await trader.order("TCS", "BUY", 1)
        await trader.sync()
        assert {t["tradingsymbol"] for t in await trader.trades(symbol="TCS")} == {"TCS"}
        assert len(await trader.trades(symbol="infy")) == 2
        assert [t["status"] for t in await trader.trades(status="open")] == ["open"]
        today = "2026-11-30"
        assert len(await trader.trades(**{"from": today, "to": today})) == 4
        assert await trader.trades(**{"from": "2026-11-01", "to": "2026-11-29"}) == []

    @pytest.mark.parametrize(
        ("params", "status", "words"),
        [
            ({"from": "2026-12-05", "to": "2026-12-01"}, 400, "after"),
            ({"from": "1999-01-01", "to": "2026-11-30"}, 400, "2000"),
            ({"from": "2010-01-01", "to": "2026-11-30"}, 400, "days"),
            ({"cursor": "not-a-cursor"}, 400, "cursor"),
            ({"cursor": "eyJiZWZvcmUiOiAieCJ9"}, 400, "cursor"),
            ({"limit": 501}, 422, "limit"),
            ({"limit": 0}, 422, "limit"),
            ({"symbol": "NOSUCHSTOCK"}, 404, "NOSUCHSTOCK"),
            ({"symbol": "bad;symbol"}, 400, "symbol"),
            ({"status": "pending"}, 422, "status"),
            ({"from": "yesterday"}, 422, "from"),
        ],
    )
    async def test_bad_queries_get_clear_answers(
        self, make_trader: MakeTrader, params: dict[str, object], status: int, words: str
    ) -> None:
        trader = await make_trader()
        response = await trader.api.get("/api/trades", params=params)  # type: ignore[arg-type]
        assert response.status_code == status, response.text
        assert words.lower() in response.json()["detail"].lower()


async def tagged_trips(trader: Trader, move: Callable[[float], None]) -> None:
    """Two closed INFY trips made by strategies (one a target, one a stop) and one manual TCS trip."""
    await trader.order("INFY", "BUY", 2, tag="momentum:entry")
    move(60)
    await trader.order("INFY", "SELL", 2, tag="momentum:target")
    move(60)
    await trader.order("INFY", "BUY", 1, tag="breakout:entry")
    move(60)
    await trader.order("INFY", "SELL", 1, tag="breakout:sl")
    move(60)
    await trader.order("TCS", "BUY", 1)
    move(60)
    await trader.order("TCS", "SELL", 1)
    await trader.sync()


class TestStrategyAndExitReasonFilters:
    async def test_trades_list_and_csv_filter_by_strategy_and_exit_reason(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        await tagged_trips(trader, move_clocks)
        momentum = await trader.trades(strategy="momentum")
        assert [(t["strategy"], t["exit_reason"]) for t in momentum] == [("momentum", "target")]
        stops = await trader.trades(exit_reason="stop_loss")
        assert [(t["strategy"], t["tradingsymbol"]) for t in stops] == [("breakout", "INFY")]
        assert [t["tradingsymbol"] for t in await trader.trades(exit_reason="manual")] == ["TCS"]
        csv_rows = list(
            csv.DictReader(
                io.StringIO((await trader.api.get("/api/trades.csv", params={"strategy": "breakout"})).text)
            )
        )
        assert [(r["strategy"], r["exit_reason"]) for r in csv_rows] == [("breakout", "stop_loss")]

    async def test_filter_choices_are_what_the_trades_hold(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        other = await make_trader("DEMO02")
        await tagged_trips(trader, move_clocks)
        await other.order("SBIN", "BUY", 1, tag="secret:entry")
        await other.order("SBIN", "SELL", 1, tag="secret:sqoff")
        await other.sync()
        response = await trader.api.get("/api/trades/filters")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "symbols": ["INFY", "TCS"],
            "strategies": ["breakout", "momentum"],
            "exit_reasons": ["manual", "stop_loss", "target"],
        }
        assert (await other.api.get("/api/trades/filters")).json()["strategies"] == ["secret"]

    @pytest.mark.parametrize(
        ("params", "status"),
        [({"strategy": "Bad Name"}, 422), ({"exit_reason": "x" * 65}, 422), ({"strategy": "a;b"}, 422)],
    )
    async def test_bad_filter_values_are_422(
        self, make_trader: MakeTrader, params: dict[str, str], status: int
    ) -> None:
        trader = await make_trader()
        for path in ("/api/trades", "/api/trades.csv", "/api/trades/summary"):
            response = await trader.api.get(path, params=params)
            assert response.status_code == status, (path, response.text)


class TestTradesSummary:
    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/trades/summary")).status_code == 401
        assert (await client.get("/api/trades/filters")).status_code == 401

    async def test_summary_totals_equal_the_filtered_trades(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        await tagged_trips(trader, move_clocks)
        await trader.order("SBIN", "BUY", 1)  # open: no P&L yet, not counted
        await trader.sync()
        for params in ({}, {"symbol": "INFY"}, {"strategy": "breakout"}, {"exit_reason": "manual"}):
            response = await trader.api.get("/api/trades/summary", params=params)
            assert response.status_code == 200, response.text
            summary = response.json()
            closed = [t for t in await trader.trades(**params) if t["status"] == "closed"]
            pnls = [Decimal(str(t["realised_pnl"])) for t in closed]
            wins = sum(1 for p in pnls if p > 0)
            assert summary["count"] == len(closed)
            assert summary["wins"] == wins
            assert summary["losses"] == sum(1 for p in pnls if p < 0)
            assert Decimal(str(summary["net"])) == sum(pnls, Decimal(0))
            assert Decimal(str(summary["gross_profit"])) == sum((p for p in pnls if p > 0), Decimal(0))
            assert Decimal(str(summary["gross_loss"])) == sum((p for p in pnls if p < 0), Decimal(0))
            expected_rate = (Decimal(wins) / len(closed)).quantize(Decimal("0.0001")) if closed else 0
            assert Decimal(str(summary["win_rate"])) == expected_rate

    async def test_nothing_matches_is_zeros_not_an_error(self, make_trader: MakeTrader) -> None:
        trader = await make_trader()
        summary = (await trader.api.get("/api/trades/summary", params={"strategy": "none_yet"})).json()
        assert summary["count"] == 0 and Decimal(str(summary["net"])) == 0
        assert Decimal(str(summary["win_rate"])) == 0

    async def test_another_users_symbol_is_404(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        other = await make_trader("DEMO02")
        await round_trips(other, move_clocks, 1, symbol="SBIN")
        await other.sync()
        response = await trader.api.get("/api/trades/summary", params={"symbol": "SBIN"})
        assert response.status_code == 404


class TestTradesCsv:
    async def test_csv_has_the_same_rows_as_json(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        await round_trips(trader, move_clocks, 4)
        await trader.order("TCS", "SELL", 2)
        await trader.sync()
        response = await trader.api.get("/api/trades.csv", params={"from": "2026-11-30", "to": "2026-11-30"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        items = await trader.trades(**{"from": "2026-11-30", "to": "2026-11-30"})
        assert len(rows) == len(items) == 5
        for row, item in zip(rows, items, strict=True):
            assert row == {k: "" if v is None else str(v) for k, v in item.items()}

    async def test_anonymous_and_bad_range(self, client: httpx.AsyncClient, make_trader: MakeTrader) -> None:
        assert (await client.get("/api/trades.csv")).status_code == 401
        trader = await make_trader()
        bad = await trader.api.get("/api/trades.csv", params={"from": "2026-12-02", "to": "2026-12-01"})
        assert bad.status_code == 400


class TestIstDays:
    async def test_at_0500_ist_today_is_the_next_ist_day_while_utc_is_still_yesterday(
        self,
        make_trader: MakeTrader,
        set_clocks: Callable[[datetime], None],
        move_clocks: Callable[[float], None],
    ) -> None:
        trader = await make_trader()
        set_clocks(datetime(2026, 11, 30, 4, 30, tzinfo=UTC))  # 10:00 IST on Monday 30 November
        await trader.order("INFY", "BUY", 1)
        move_clocks(60)
        await trader.order("INFY", "SELL", 1)
        await trader.sync()
        [trip] = await trader.trades()
        assert trip["day"] == "2026-11-30"
        set_clocks(datetime(2026, 11, 30, 23, 30, tzinfo=UTC))  # 05:00 IST on 1 December, UTC's 30th
        summary = (await trader.api.get("/api/pnl/summary")).json()
        assert summary["as_of"] == "2026-12-01"
        assert Decimal(summary["day"]) == 0
        # Tuesday's week began on the Monday of the trade.
        assert Decimal(summary["week"]) == Decimal(str(trip["realised_pnl"]))
        assert await trader.trades(**{"from": "2026-12-01", "to": "2026-12-01"}) == []


class TestPnlAndStats:
    async def test_summary_cumulative_and_stats_agree_with_the_trades(
        self,
        make_trader: MakeTrader,
        move_clocks: Callable[[float], None],
        set_clocks: Callable[[datetime], None],
    ) -> None:
        trader = await make_trader()
        rng = random.Random(11)
        start = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # Monday of the previous week, 09:30 IST
        for offset in (0, 1, 3, 7):  # Mon, Tue, Thu of last week, then this Monday
            set_clocks(start + timedelta(days=offset))
            for _ in range(4):
                symbol = rng.choice(["INFY", "TCS", "SBIN", "RELIANCE"])
                side, back = rng.choice([("BUY", "SELL"), ("SELL", "BUY")])
                quantity = rng.randint(1, 20)
                await trader.order(symbol, side, quantity)
                move_clocks(rng.randint(5, 60) * 60)
                await trader.order(symbol, back, quantity)
                move_clocks(60)
            await trader.sync()
        closed = [t for t in await trader.trades() if t["status"] == "closed"]
        assert len(closed) == 16
        pairs = [(datetime.fromisoformat(str(t["exit_at"])), Decimal(str(t["realised_pnl"]))) for t in closed]
        oracle = daily_stats(pairs)

        stats = (
            await trader.api.get("/api/stats/daily", params={"from": "2026-11-01", "to": "2026-11-30"})
        ).json()
        assert [row["day"] for row in stats] == [d.day.isoformat() for d in oracle]
        for row, expected in zip(stats, oracle, strict=True):
            assert row["trades"] == expected.trades and row["wins"] == expected.wins
            assert row["losses"] == expected.losses
            for field in ("win_rate", "gross_profit", "gross_loss", "net", "max_drawdown"):
                assert Decimal(row[field]) == getattr(expected, field), field

        cumulative = (
            await trader.api.get("/api/pnl/cumulative", params={"from": "2026-11-01", "to": "2026-11-30"})
        ).json()
        running = Decimal(0)
        for point, expected in zip(cumulative, oracle, strict=True):
            running += expected.net
            assert point["day"] == expected.day.isoformat()
            assert Decimal(point["net"]) == expected.net and Decimal(point["cumulative"]) == running

        summary = (await trader.api.get("/api/pnl/summary")).json()
        today = date(2026, 11, 30)
        by_day = {d.day: d.net for d in oracle}
        total = sum(by_day.values(), Decimal(0))
        assert summary["as_of"] == "2026-11-30"
        assert Decimal(summary["day"]) == by_day.get(today, Decimal(0))
        assert Decimal(summary["week"]) == by_day.get(today, Decimal(0))  # the week began this Monday
        assert Decimal(summary["month"]) == Decimal(summary["year"]) == Decimal(summary["all_time"]) == total

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        for path in ("/api/pnl/summary", "/api/pnl/cumulative", "/api/stats/daily"):
            assert (await client.get(path)).status_code == 401

    async def test_bad_ranges(self, make_trader: MakeTrader) -> None:
        trader = await make_trader()
        for path in ("/api/pnl/cumulative", "/api/stats/daily"):
            response = await trader.api.get(path, params={"from": "2026-11-30", "to": "2026-01-01"})
            assert response.status_code == 400


class TestPositions:
    async def test_live_positions_with_unrealised_pnl(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        await trader.order("INFY", "BUY", 10)
        move_clocks(1800)
        response = await trader.api.get("/api/positions")
        assert response.status_code == 200, response.text
        body = response.json()
        [infy] = [p for p in body["items"] if p["tradingsymbol"] == "INFY"]
        assert infy["quantity"] == 10
        unrealised = (Decimal(infy["last_price"]) - Decimal(infy["average_price"])) * 10
        assert abs(Decimal(infy["unrealised"]) - unrealised) < Decimal("0.01")
        assert Decimal(body["total_pnl"]) == sum(Decimal(p["pnl"]) for p in body["items"])

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/positions")).status_code == 401


class TestRisk:
    async def test_limit_used_and_blocked(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        assert (await trader.api.get("/api/risk")).json() == {
            "daily_loss_limit": None,
            "daily_loss_used": "0",
            "trading_blocked": False,
        }
        # Lose money on purpose until today's realised P&L is negative.
        for _ in range(20):
            await trader.order("RELIANCE", "BUY", 50)
            move_clocks(60)
            await trader.order("RELIANCE", "SELL", 50)
            move_clocks(60)
            await trader.sync()
            if Decimal((await trader.api.get("/api/risk")).json()["daily_loss_used"]) > 0:
                break
        used = Decimal((await trader.api.get("/api/risk")).json()["daily_loss_used"])
        assert used > 0
        roomy = await trader.api.put("/api/risk", json={"daily_loss_limit": str(used + 1000)})
        assert roomy.status_code == 200 and roomy.json()["trading_blocked"] is False
        tight = await trader.api.put(
            "/api/risk", json={"daily_loss_limit": str((used / 2).quantize(Decimal("0.01")))}
        )
        assert tight.json()["trading_blocked"] is True
        cleared = await trader.api.put("/api/risk", json={"daily_loss_limit": None})
        assert cleared.json()["daily_loss_limit"] is None and cleared.json()["trading_blocked"] is False

    @pytest.mark.parametrize(
        "body", [{"daily_loss_limit": -5}, {"daily_loss_limit": "abc"}, {}, {"limit": 5}]
    )
    async def test_bad_bodies_are_422(self, make_trader: MakeTrader, body: dict[str, object]) -> None:
        trader = await make_trader()
        assert (await trader.api.put("/api/risk", json=body)).status_code == 422

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/risk")).status_code == 401
        assert (await client.put("/api/risk", json={"daily_loss_limit": 5})).status_code == 401


class TestTamperedCursor:
    @pytest.mark.parametrize(
        "before", [2**63, 2**63 + 1, 10**30, -(2**63) - 1, 0, -1, 1.5, "9223372036854775808", None, True]
    )
    async def test_out_of_range_cursor_is_a_clean_400(
        self, make_trader: MakeTrader, before: object, caplog: pytest.LogCaptureFixture
    ) -> None:
        trader = await make_trader()
        cursor = base64.urlsafe_b64encode(json.dumps({"before": before}).encode()).decode().rstrip("=")
        with caplog.at_level(logging.WARNING):
            response = await trader.api.get("/api/trades", params={"cursor": cursor})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "BadRequest" and "cursor" in response.json()["detail"]
        # Nothing reached the database, so nothing (with SQL parameters) was logged as an error.
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    async def test_largest_id_cursor_is_accepted(self, make_trader: MakeTrader) -> None:
        trader = await make_trader()
        await trader.order("INFY", "BUY", 1)
        await trader.sync()
        page = await trader.api.get("/api/trades", params={"cursor": encode_cursor(2**63 - 1)})
        assert page.status_code == 200 and len(page.json()["items"]) == 1


class TestSyncRefusesUnusableData:
    @pytest.mark.parametrize("entry_price", ["-12.5", "-0.0001"])
    async def test_an_open_lot_with_a_bad_price_makes_sync_a_502_that_stores_nothing(
        self, api: FastAPI, make_trader: MakeTrader, move_clocks: Callable[[float], None], entry_price: str
    ) -> None:
        """Stored data that matching refuses (a negative entry price on an open lot) is bad broker data:
        502, and the new executions are not stored either."""
        trader = await make_trader()
        await trader.order("INFY", "BUY", 2)
        await trader.sync()
        [lot] = await trader.trades()
        sessionmaker = api.state.td.sessionmaker
        async with sessionmaker() as db, db.begin():
            await bind_tenant(db, trader.user_id)
            await db.execute(
                update(Trade).where(Trade.id == lot["id"]).values(entry_price=Decimal(entry_price))
            )
        move_clocks(60)
        await trader.order("INFY", "SELL", 2)
        for _ in range(2):  # the second try proves the first stored no fill
            response = await trader.api.post("/api/sync", json={})
            assert response.status_code == 502, response.text
            body = response.json()
            assert body["error"] == "BrokerUnavailable" and "price" in body["detail"]
        [still] = await trader.trades()
        assert still["status"] == "open" and still["id"] == lot["id"]


class TestRangesAtTheCalendarsStart:
    @pytest.mark.parametrize("path", ["/api/pnl/cumulative", "/api/stats/daily"])
    @pytest.mark.parametrize("params", [{"to": "0001-01-03"}, {"to": "0001-01-01"}])
    async def test_a_range_ending_in_the_first_days_of_the_calendar_is_a_400(
        self, make_trader: MakeTrader, path: str, params: dict[str, str]
    ) -> None:
        trader = await make_trader()
        response = await trader.api.get(path, params=params)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "BadRequest"
