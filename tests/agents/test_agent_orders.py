"""The agent's view of its broker orders, without a broker: tags, statuses, new fills and P&L."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradedesk.agents.orders import agent_pnl, broker_status, new_fills, order_tag, order_view, parse_tag
from tradedesk.brokers.kite.schemas import KiteOrder


def order(
    order_id: str, side: str, filled: int, price: float, *, symbol: str = "INFY", status: str = "COMPLETE"
) -> KiteOrder:
    return KiteOrder(
        order_id=order_id,
        tag=f"td7-{order_id}",
        status=status,
        exchange="NSE",
        tradingsymbol=symbol,
        transaction_type=side,
        order_type="MARKET",
        quantity=filled or 10,
        filled_quantity=filled,
        average_price=price,
    )


class TestTags:
    def test_round_trip_and_the_20_character_limit(self) -> None:
        tag = order_tag(12345678901, 999999)
        assert len(tag) <= 20
        assert parse_tag(tag) == (12345678901, 999999)

    @pytest.mark.parametrize(
        "tag", [None, "", "manual", "td-1", "tdx-1", "td1-", "td1-2-3", "TD1-2", "td1-1234567"]
    )
    def test_other_tags_are_not_ours(self, tag: str | None) -> None:
        assert parse_tag(tag) is None


class TestStatus:
    @pytest.mark.parametrize(
        ("kite", "ours"),
        [
            ("COMPLETE", "COMPLETE"),
            ("REJECTED", "REJECTED"),
            ("TRIGGER PENDING", "TRIGGER PENDING"),
            ("VALIDATION PENDING", "PENDING"),
            ("PUT ORDER REQ RECEIVED", "PENDING"),
            ("MODIFY PENDING", "PENDING"),
            (None, "PENDING"),
        ],
    )
    def test_kite_words_fold_onto_a_few(self, kite: str | None, ours: str) -> None:
        assert broker_status(KiteOrder(order_id="1", status=kite)) == ours

    def test_view_carries_the_broker_figures(self) -> None:
        view = order_view("B1", order("1", "BUY", 10, 1900.5))
        assert view.filled and not view.pending
        assert (view.intent_id, view.filled_quantity, view.average_price) == ("B1", 10, 1900.5)


class TestFillsAndPnl:
    def test_only_growth_since_the_last_look_is_new(self) -> None:
        orders = [order("1", "BUY", 10, 100.0), order("2", "SELL", 4, 101.0, status="OPEN")]
        fresh = new_fills(orders, {"1": 10, "2": 1})
        assert [(f.order_id, f.quantity) for f in fresh] == [("2", 3)]
        assert new_fills(orders, {"1": 10, "2": 4}) == []

    def test_realised_on_the_matched_part_unrealised_on_the_rest(self) -> None:
        orders = [order("1", "BUY", 10, 100.0), order("2", "SELL", 4, 103.0)]
        pnl = agent_pnl(orders, {"NSE:INFY": 99.0})
        assert pnl.realised == Decimal("12.0000")  # 4 x (103 - 100)
        assert pnl.unrealised == Decimal("-6.0000")  # 6 still held, 1 below cost
        assert pnl.open_quantity == {"NSE:INFY": 6}

    def test_a_short_closed_in_two_parts(self) -> None:
        orders = [
            order("1", "SELL", 75, 80.0, symbol="NIFTY26D0325300CE"),
            order("2", "BUY", 50, 60.0, symbol="NIFTY26D0325300CE"),
            order("3", "BUY", 25, 90.0, symbol="NIFTY26D0325300CE"),
        ]
        pnl = agent_pnl(orders, {})
        # Sold 75 at 80 (6000), bought back 50 at 60 and 25 at 90 (5250).
        assert pnl.realised == Decimal("750.0000")
        assert pnl.unrealised == 0 and pnl.open_quantity == {}

    def test_unfilled_orders_count_nothing(self) -> None:
        assert agent_pnl([order("1", "BUY", 0, 0.0, status="OPEN")], {"NSE:INFY": 5.0}).realised == 0
