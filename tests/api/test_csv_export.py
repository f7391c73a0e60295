"""GET /api/trades.csv opened in a spreadsheet: text that would run as a formula is shown as text, and
numbers stay numbers (a negative P&L is not quoted)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tests.api.conftest import MakeTrader
from tradedesk.trading.schemas import TradeRead
from tradedesk.trading.service import CSV_COLUMNS, csv_text_cell, trade_csv_row

# A classic DDE payload, as an order tag ("{strategy}:{reason}", at most 20 characters at the broker).
FORMULA_TAG = "=cmd|'/c calc'!A1:x"
FORMULA_STRATEGY = "=cmd|'/c calc'!A1"


def trade(**changes: object) -> TradeRead:
    values: dict[str, object] = {
        "id": 7,
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "product": "MIS",
        "direction": "LONG",
        "status": "closed",
        "quantity": 3,
        "entry_price": Decimal("1500.5000"),
        "entry_at": datetime(2026, 11, 30, 4, 0, tzinfo=UTC),
        "exit_price": Decimal("1450.3333"),
        "exit_at": datetime(2026, 11, 30, 5, 0, tzinfo=UTC),
        "realised_pnl": Decimal("-150.5000"),
        "exit_reason": "stop_loss",
        "strategy": "strangle",
        "day": date(2026, 11, 30),
    }
    values.update(changes)
    return TradeRead.model_validate(values)


def cells(read: TradeRead) -> dict[str, str]:
    return dict(zip(CSV_COLUMNS, trade_csv_row(read), strict=True))


class TestCsvCells:
    @pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
    @pytest.mark.parametrize("column", ["strategy", "exit_reason", "tradingsymbol", "exchange", "product"])
    def test_text_starting_like_a_formula_gets_a_leading_quote(self, start: str, column: str) -> None:
        text = f"{start}HYPERLINK(1)"
        assert cells(trade(**{column: text}))[column] == "'" + text

    def test_the_ddes_payload_is_quoted(self) -> None:
        assert cells(trade(strategy=FORMULA_STRATEGY))["strategy"] == "'" + FORMULA_STRATEGY

    @pytest.mark.parametrize("text", ["strangle", "a=b", "x-1", "", "'already", " =spaced"])
    def test_other_text_is_untouched(self, text: str) -> None:
        assert csv_text_cell(text) == text

    def test_numbers_stay_numbers_even_negative(self) -> None:
        row = cells(trade(realised_pnl=Decimal("-150.5"), exit_price=Decimal("0"), quantity=1))
        assert row["realised_pnl"] == "-150.5"
        assert row["exit_price"] == "0" and row["quantity"] == "1" and row["id"] == "7"
        assert row["entry_price"] == "1500.5000"

    def test_empty_values_are_empty_cells(self) -> None:
        row = cells(trade(status="open", exit_price=None, exit_at=None, realised_pnl=None, exit_reason=None))
        assert row["exit_price"] == row["exit_at"] == row["realised_pnl"] == row["exit_reason"] == ""

    def test_dates_and_times_are_as_in_json(self) -> None:
        row = cells(trade())
        assert row["entry_at"] == "2026-11-30T04:00:00Z" and row["day"] == "2026-11-30"


class TestCsvExportEndToEnd:
    async def test_a_formula_in_an_order_tag_reaches_the_file_as_text(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        await trader.order("INFY", "BUY", 3, tag=FORMULA_TAG)
        move_clocks(300)
        await trader.order("INFY", "SELL", 3, tag="=1+1:-2+3")
        await trader.order("TCS", "SELL", 2, tag="@SUM(A1:A9):+x")
        await trader.sync()

        items = {item["tradingsymbol"]: item for item in await trader.trades()}
        assert items["INFY"]["strategy"] == FORMULA_STRATEGY  # the JSON API reports it as it is
        response = await trader.api.get("/api/trades.csv")
        assert response.status_code == 200
        rows = {row["tradingsymbol"]: row for row in csv.DictReader(io.StringIO(response.text))}
        assert rows["INFY"]["strategy"] == "'" + FORMULA_STRATEGY
        assert rows["INFY"]["exit_reason"] == "2_3"  # reasons are normalised to [a-z0-9_] anyway
        assert rows["TCS"]["strategy"] == "'@SUM(A1"
        for symbol, row in rows.items():
            for cell in row.values():
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (symbol, cell)
            for column in ("id", "quantity", "entry_price", "exit_price", "realised_pnl"):
                expected = items[symbol][column]
                assert row[column] == ("" if expected is None else str(expected))
                if row[column]:
                    Decimal(row[column])  # a number a spreadsheet reads as a number

    async def test_a_negative_pnl_is_written_as_a_number(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None]
    ) -> None:
        trader = await make_trader()
        losing: list[dict[str, object]] = []
        for _ in range(20):  # the simulated market moves at random: trade until a round trip loses
            await trader.order("RELIANCE", "BUY", 50)
            move_clocks(60)
            await trader.order("RELIANCE", "SELL", 50)
            move_clocks(60)
            await trader.sync()
            losing = [t for t in await trader.trades(status="closed") if Decimal(str(t["realised_pnl"])) < 0]
            if losing:
                break
        assert losing
        rows = {
            row["id"]: row
            for row in csv.DictReader(io.StringIO((await trader.api.get("/api/trades.csv")).text))
        }
        for item in losing:
            cell = rows[str(item["id"])]["realised_pnl"]
            assert cell == str(item["realised_pnl"]) and cell.startswith("-")
