"""The trading day on the sim clock: market hours, the 15:20 intraday square-off, weekly expiry settlement."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from kitesim.clock import IST
from kitesim.market import SQUARE_OFF_MINUTE, MarketMinute, minute_of
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

MONDAY = datetime(2025, 1, 6, tzinfo=IST)
THURSDAY = datetime(2025, 1, 9, tzinfo=IST)  # a weekly expiry
EXPIRING = "NIFTY2510923500CE"
NEXT_WEEK = "NIFTY2511623500PE"
CLOSED = "Markets are closed right now. Use GTT for placing long standing orders instead."


def at(day: datetime, hour: int, minute: int, second: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute, second=second)


def equity(symbol: str = "INFY", **extra: str | int | float) -> dict[str, str | int | float]:
    return {
        "exchange": "NSE",
        "tradingsymbol": symbol,
        "transaction_type": "BUY",
        "order_type": "MARKET",
        "quantity": 10,
        "product": "MIS",
        **extra,
    }


def option(symbol: str, side: str, product: str = "NRML", **extra: str | int | float) -> dict[str, Any]:
    return {
        "exchange": "NFO",
        "tradingsymbol": symbol,
        "transaction_type": side,
        "order_type": "MARKET",
        "quantity": 75,
        "product": product,
        **extra,
    }


def price(sim: SimState, key: str, when: datetime) -> float:
    instrument = sim.instruments.get(key)
    assert instrument is not None
    return sim.market.last_price(instrument, when)


class TestMarketHours:
    @pytest.mark.parametrize(
        "when",
        [
            at(MONDAY, 9, 14, 59),
            at(MONDAY, 15, 30),
            at(MONDAY, 20, 0),
            at(MONDAY, 3, 0),
            at(MONDAY + timedelta(days=5), 11, 0),  # Saturday
            at(MONDAY + timedelta(days=6), 11, 0),  # Sunday
        ],
    )
    async def test_closed_market_refuses_orders(self, kite: KiteDriver, when: datetime) -> None:
        await kite.freeze_at(when)
        token = await kite.sign_in()
        for fields in (equity(), equity(product="CNC", order_type="LIMIT", price=100)):
            response = await kite.place(token, **fields)
            assert response.status_code == 400, response.text
            body = response.json()
            assert body == {
                "status": "error",
                "message": CLOSED,
                "data": None,
                "error_type": "InputException",
            }
        assert await kite.data(token, "/orders") == []

    @pytest.mark.parametrize("when", [at(MONDAY, 9, 15), at(MONDAY, 15, 29, 59)])
    async def test_open_from_the_first_second_to_the_last(self, kite: KiteDriver, when: datetime) -> None:
        await kite.freeze_at(when)
        token = await kite.sign_in()
        await kite.place_ok(token, **equity(product="CNC"))
        (order,) = await kite.data(token, "/orders")
        assert order["status"] == "COMPLETE"

    async def test_no_new_intraday_orders_after_the_square_off(self, kite: KiteDriver) -> None:
        await kite.freeze_at(at(MONDAY, 15, 20))
        token = await kite.sign_in()
        response = await kite.place(token, **equity())
        assert response.status_code == 400
        assert (
            "Intraday (MIS) orders cannot be placed after the 15:20 square-off" in response.json()["message"]
        )
        await kite.place_ok(token, **equity(product="CNC"))
        await kite.place_ok(token, **option(NEXT_WEEK, "BUY"))

    async def test_an_expired_contract_is_refused(self, kite: KiteDriver) -> None:
        await kite.freeze_at(at(THURSDAY + timedelta(days=1), 10, 0))
        token = await kite.sign_in()
        response = await kite.place(token, **option(EXPIRING, "BUY"))
        assert response.status_code == 400
        assert response.json()["message"] == f"{EXPIRING} has expired."


class TestIntradaySquareOff:
    async def test_mis_is_closed_at_1520_and_the_rest_stays(self, kite: KiteDriver, sim: SimState) -> None:
        await kite.freeze_at(at(MONDAY, 14, 0, 30))
        token = await kite.sign_in()
        await kite.place_ok(token, **equity("INFY", quantity=10))
        await kite.place_ok(token, **equity("SBIN", transaction_type="SELL", quantity=20))
        await kite.place_ok(token, **option(NEXT_WEEK, "SELL", product="MIS"))
        await kite.place_ok(token, **equity("TCS", product="CNC", quantity=2))
        resting_mis = await kite.place_ok(token, **equity("ITC", order_type="LIMIT", price=1.0))
        resting_cnc = await kite.place_ok(
            token, **equity("ITC", order_type="LIMIT", price=1.0, product="CNC")
        )

        await kite.advance(85 * 60)  # 15:25:30
        square_off = at(MONDAY, 15, 20)
        orders = {order["order_id"]: order for order in await kite.data(token, "/orders")}
        cancelled = orders[resting_mis]
        assert cancelled["status"] == "CANCELLED" and cancelled["order_timestamp"] == "2025-01-06 15:20:00"
        assert "15:20 square-off" in cancelled["status_message"]
        assert orders[resting_cnc]["status"] == "OPEN"

        system = [order for order in orders.values() if order["order_timestamp"] == "2025-01-06 15:20:00"]
        closing = {o["tradingsymbol"]: o for o in system if o["status"] == "COMPLETE"}
        assert set(closing) == {"INFY", "SBIN", NEXT_WEEK}
        assert closing["INFY"]["transaction_type"] == "SELL" and closing["INFY"]["quantity"] == 10
        assert closing["SBIN"]["transaction_type"] == "BUY" and closing["SBIN"]["quantity"] == 20
        assert closing[NEXT_WEEK]["transaction_type"] == "BUY" and closing[NEXT_WEEK]["quantity"] == 75
        for symbol, order in closing.items():
            exchange = "NFO" if symbol == NEXT_WEEK else "NSE"
            assert order["average_price"] == price(sim, f"{exchange}:{symbol}", square_off)
            assert order["product"] == "MIS" and order["order_type"] == "MARKET"
            assert order["status_message"].startswith("Auto square-off")

        trades = await kite.data(token, "/trades")
        squared = [t for t in trades if t["fill_timestamp"] == "2025-01-06 15:20:00"]
        assert {t["tradingsymbol"] for t in squared} == {"INFY", "SBIN", NEXT_WEEK}

        net = {p["tradingsymbol"]: p for p in (await kite.data(token, "/portfolio/positions"))["net"]}
        for symbol in ("INFY", "SBIN", NEXT_WEEK):
            assert net[symbol]["quantity"] == 0 and net[symbol]["unrealised"] == 0
        opened_at = at(MONDAY, 14, 0, 30)
        infy_pnl = 10 * (price(sim, "NSE:INFY", square_off) - price(sim, "NSE:INFY", opened_at))
        assert net["INFY"]["realised"] == pytest.approx(infy_pnl, abs=0.01)
        assert net["TCS"]["quantity"] == 2 and net["TCS"]["product"] == "CNC"

        await kite.advance(10 * 60)  # past the close
        orders = {order["order_id"]: order for order in await kite.data(token, "/orders")}
        assert orders[resting_cnc]["status"] == "CANCELLED"
        assert orders[resting_cnc]["order_timestamp"] == "2025-01-06 15:30:00"

    async def test_read_late_or_read_every_minute_the_book_is_the_same(
        self, kite: KiteDriver, sim: SimState
    ) -> None:
        await kite.freeze_at(at(MONDAY, 13, 0, 30))
        eager, lazy = await kite.sign_in("DEMO01"), await kite.sign_in("DEMO03")
        infy = sim.instruments.get("NSE:INFY")
        assert infy is not None
        here = minute_of(sim.clock.now())
        sell_above = max(sim.market.price_at(infy, MarketMinute(here.n, here.m + k)) for k in range(30, 120))
        assert sell_above > sim.market.price_at(infy, here), "the limit should rest a while"
        for token in (eager, lazy):
            await kite.place_ok(token, **equity(quantity=5))
            await kite.place_ok(
                token, **equity(quantity=10, transaction_type="SELL", order_type="LIMIT", price=sell_above)
            )
            await kite.place_ok(token, **option(NEXT_WEEK, "SELL", product="MIS"))
        for _ in range(150):  # past 15:20, one read a minute
            await kite.advance(60)
            await kite.data(eager, "/orders")
        assert minute_of(sim.clock.now()).m > SQUARE_OFF_MINUTE

        def shape(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
            return [
                (
                    r["tradingsymbol"],
                    r["transaction_type"],
                    r["quantity"],
                    r["average_price"],
                    r["fill_timestamp"],
                )
                for r in rows
            ]

        trades = await kite.data(lazy, "/trades")
        assert shape(trades) == shape(await kite.data(eager, "/trades"))
        # The buy, the short option, the resting sell when it crosses, then one square-off per position.
        assert [(t["tradingsymbol"], t["transaction_type"], t["quantity"]) for t in trades] == [
            ("INFY", "BUY", 5),
            (NEXT_WEEK, "SELL", 75),
            ("INFY", "SELL", 10),
            ("INFY", "BUY", 5),
            (NEXT_WEEK, "BUY", 75),
        ]
        lazy_net = (await kite.data(lazy, "/portfolio/positions"))["net"]
        eager_net = (await kite.data(eager, "/portfolio/positions"))["net"]
        assert [(p["tradingsymbol"], p["quantity"], p["realised"]) for p in lazy_net] == [
            (p["tradingsymbol"], p["quantity"], p["realised"]) for p in eager_net
        ]


class TestExpirySettlement:
    async def test_expiring_options_settle_at_intrinsic_value_at_the_close(
        self, kite: KiteDriver, sim: SimState
    ) -> None:
        await kite.freeze_at(at(THURSDAY, 11, 0, 30))
        token = await kite.sign_in("DEMO03")  # ten lakh: room for three short lots
        short_entry = price(sim, f"NFO:{EXPIRING}", sim.clock.now())
        await kite.place_ok(token, **option(EXPIRING, "SELL", quantity=150))
        await kite.place_ok(token, **option("NIFTY2510923500PE", "BUY"))
        await kite.place_ok(token, **option(NEXT_WEEK, "SELL"))

        await kite.set_clock(at(THURSDAY, 15, 29, 30))
        assert all(p["quantity"] != 0 for p in (await kite.data(token, "/portfolio/positions"))["net"])

        await kite.set_clock(at(THURSDAY, 16, 0))
        close = at(THURSDAY, 15, 30)
        nifty_close = sim.market.spot(close)
        call_value = round(max(0.0, nifty_close - 23500), 2)
        put_value = round(max(0.0, 23500 - nifty_close), 2)
        net = {p["tradingsymbol"]: p for p in (await kite.data(token, "/portfolio/positions"))["net"]}
        assert net[EXPIRING]["quantity"] == 0 and net["NIFTY2510923500PE"]["quantity"] == 0
        assert net[EXPIRING]["last_price"] == pytest.approx(call_value, abs=0.05)
        assert net[EXPIRING]["realised"] == pytest.approx(150 * (short_entry - call_value), abs=0.05 * 150)
        assert net[EXPIRING]["unrealised"] == 0
        assert net[NEXT_WEEK]["quantity"] == -75  # another expiry: still open

        settled = [
            o for o in await kite.data(token, "/orders") if o["order_timestamp"] == "2025-01-09 15:30:00"
        ]
        assert {o["tradingsymbol"] for o in settled} == {EXPIRING, "NIFTY2510923500PE"}
        for order in settled:
            assert order["status"] == "COMPLETE" and order["status_message"].startswith("Expiry settlement")
        by_symbol = {o["tradingsymbol"]: o for o in settled}
        assert by_symbol[EXPIRING]["transaction_type"] == "BUY" and by_symbol[EXPIRING]["quantity"] == 150
        assert by_symbol[EXPIRING]["average_price"] == pytest.approx(call_value, abs=0.05)
        assert by_symbol["NIFTY2510923500PE"]["average_price"] == pytest.approx(put_value, abs=0.05)
        fills = [t for t in await kite.data(token, "/trades") if t["fill_timestamp"] == "2025-01-09 15:30:00"]
        assert len(fills) == 2

    async def test_a_position_left_for_days_is_settled_when_next_read(
        self, kite: KiteDriver, sim: SimState
    ) -> None:
        await kite.freeze_at(at(MONDAY, 10, 0, 30))
        token = await kite.sign_in()
        await kite.place_ok(token, **option(EXPIRING, "SELL"))
        await kite.set_clock(at(THURSDAY, 18, 0))
        token = await kite.sign_in()  # the old token died at 06:00
        (position,) = (await kite.data(token, "/portfolio/positions"))["net"]
        assert position["tradingsymbol"] == EXPIRING and position["quantity"] == 0
        settlement = price(sim, f"NFO:{EXPIRING}", at(THURSDAY, 15, 30))
        assert position["last_price"] == settlement
        entry = position["sell_price"]
        assert position["realised"] == pytest.approx(75 * (entry - settlement), abs=0.01)
        (fill,) = await kite.data(token, "/trades")
        assert fill["fill_timestamp"] == "2025-01-09 15:30:00" and fill["average_price"] == settlement

        # A position closed on an earlier day is not carried into the next one.
        await kite.set_clock(at(MONDAY + timedelta(days=7), 10, 0))
        token = await kite.sign_in()
        assert await kite.data(token, "/portfolio/positions") == {"net": [], "day": []}
