"""Orders, trades, positions and margins against the simulated market, driven by the sim clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from kitesim.market import MarketMinute, minute_of
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

# Monday 2025-01-06 10:00:30 IST.
MID_SESSION = datetime(2025, 1, 6, 4, 30, 30, tzinfo=UTC)
OPTION = "NIFTY2510923500CE"


@pytest.fixture
async def token(kite: KiteDriver) -> str:
    await kite.client.post("/sim/clock", json={"set_to": MID_SESSION.isoformat(), "speed": 0.001})
    return await kite.sign_in()


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


async def data(kite: KiteDriver, token: str, path: str) -> Any:
    response = await kite.get(token, path)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"
    return response.json()["data"]


def future_prices(sim: SimState, key: str, minutes: int) -> list[tuple[int, float]]:
    instrument = sim.instruments.get(key)
    assert instrument is not None
    here = minute_of(sim.clock.now())
    return [
        (k, sim.market.price_at(instrument, MarketMinute(here.n, here.m + k)))
        for k in range(1, minutes + 1)
        if here.m + k < 375
    ]


class TestMarketOrders:
    async def test_fills_at_once_and_shows_everywhere(
        self, kite: KiteDriver, sim: SimState, token: str
    ) -> None:
        infy = sim.instruments.get("NSE:INFY")
        assert infy is not None
        price = sim.market.last_price(infy, sim.clock.now())
        order_id = await kite.place_ok(token, **equity(tag="agent-1"))
        assert order_id.startswith("250106")
        orders = await data(kite, token, "/orders")
        assert len(orders) == 1
        order = orders[0]
        assert order["order_id"] == order_id
        assert order["status"] == "COMPLETE"
        assert order["filled_quantity"] == 10 and order["pending_quantity"] == 0
        assert order["average_price"] == price
        assert order["tag"] == "agent-1" and order["tags"] == ["agent-1"]
        assert order["placed_by"] == "DEMO01"
        assert order["order_timestamp"] == "2025-01-06 10:00:30"
        trades = await data(kite, token, "/trades")
        assert len(trades) == 1
        trade = trades[0]
        assert trade["order_id"] == order_id
        assert trade["average_price"] == price and trade["quantity"] == 10
        assert trade["instrument_token"] == 408065
        assert trade["fill_timestamp"] == trade["exchange_timestamp"] == "2025-01-06 10:00:30"
        assert set(trade) >= {"trade_id", "exchange", "tradingsymbol", "product", "transaction_type"}
        assert await data(kite, token, f"/orders/{order_id}/trades") == trades
        history = await data(kite, token, f"/orders/{order_id}")
        assert [step["status"] for step in history][-2:] == ["OPEN", "COMPLETE"]
        assert history[0]["status"] == "PUT ORDER REQ RECEIVED"

    async def test_trade_ids_are_unique_across_users(self, kite: KiteDriver, token: str) -> None:
        other = await kite.sign_in("DEMO02")
        for access in (token, other, token, other):
            await kite.place_ok(access, **equity("SBIN", quantity=1))
        ids = [t["trade_id"] for a in (token, other) for t in await data(kite, a, "/trades")]
        assert len(ids) == len(set(ids)) == 4

    async def test_option_in_lots(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(
            token,
            exchange="NFO",
            tradingsymbol=OPTION,
            transaction_type="SELL",
            order_type="MARKET",
            quantity=150,
            product="NRML",
        )
        (order,) = await data(kite, token, "/orders")
        assert order["order_id"] == order_id and order["status"] == "COMPLETE"
        (position,) = (await data(kite, token, "/portfolio/positions"))["net"]
        assert position["quantity"] == -150 and position["tradingsymbol"] == OPTION


class TestLimitOrders:
    async def test_rests_until_the_market_crosses(self, kite: KiteDriver, sim: SimState, token: str) -> None:
        key = "NSE:RELIANCE"
        instrument = sim.instruments.get(key)
        assert instrument is not None
        now_price = sim.market.last_price(instrument, sim.clock.now())
        ahead = future_prices(sim, key, 120)
        low_minute, low = min(ahead, key=lambda item: item[1])
        assert low < now_price, "the path should dip within two hours"
        limit = round(low + 0.05, 2)
        first_cross = next(k for k, p in ahead if p <= limit)
        await kite.place_ok(
            token, **equity("RELIANCE", order_type="LIMIT", price=limit, product="CNC", quantity=2)
        )
        (order,) = await data(kite, token, "/orders")
        assert order["status"] == "OPEN" and order["pending_quantity"] == 2
        assert await data(kite, token, "/trades") == []
        await kite.advance((first_cross - 1) * 60)
        assert (await data(kite, token, "/orders"))[0]["status"] == "OPEN"
        await kite.advance(60)
        (order,) = await data(kite, token, "/orders")
        assert order["status"] == "COMPLETE"
        assert order["average_price"] == limit
        (trade,) = await data(kite, token, "/trades")
        expected = MID_SESSION.replace(second=0) + timedelta(minutes=first_cross)
        assert trade["fill_timestamp"] == (expected + timedelta(hours=5, minutes=30)).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        assert low_minute >= first_cross

    async def test_marketable_limit_fills_at_the_market(
        self, kite: KiteDriver, sim: SimState, token: str
    ) -> None:
        tcs = sim.instruments.get("NSE:TCS")
        assert tcs is not None
        price = sim.market.last_price(tcs, sim.clock.now())
        await kite.place_ok(
            token, **equity("TCS", order_type="LIMIT", price=round(price + 50, 2), quantity=1)
        )
        (order,) = await data(kite, token, "/orders")
        assert order["status"] == "COMPLETE" and order["average_price"] == price

    async def test_cancel(self, kite: KiteDriver, sim: SimState, token: str) -> None:
        order_id = await kite.place_ok(token, **equity(order_type="LIMIT", price=1.0))
        response = await kite.client.delete(f"/orders/regular/{order_id}", headers=kite.auth(token))
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"order_id": order_id}
        (order,) = await data(kite, token, "/orders")
        assert order["status"] == "CANCELLED" and order["cancelled_quantity"] == 10
        again = await kite.client.delete(f"/orders/regular/{order_id}", headers=kite.auth(token))
        assert again.status_code == 400
        assert again.json()["error_type"] == "InputException"

    async def test_open_order_expires_at_the_close(self, kite: KiteDriver, token: str) -> None:
        # CNC: an MIS order would already have ended at the 15:20 square-off.
        await kite.place_ok(token, **equity(order_type="LIMIT", price=1.0, product="CNC"))
        await kite.advance(8 * 3600)
        (order,) = await data(kite, token, "/orders")
        assert order["status"] == "CANCELLED"
        assert order["order_timestamp"] == "2025-01-06 15:30:00"


class TestStopLoss:
    async def test_sl_m_triggers(self, kite: KiteDriver, sim: SimState, token: str) -> None:
        key = "NSE:SBIN"
        instrument = sim.instruments.get(key)
        assert instrument is not None
        now_price = sim.market.last_price(instrument, sim.clock.now())
        ahead = future_prices(sim, key, 180)
        high = max(p for _, p in ahead)
        assert high > now_price
        trigger = round(high - 0.05, 2) if high - 0.05 > now_price else high
        first = next(k for k, p in ahead if p >= trigger)
        order_id = await kite.place_ok(token, **equity("SBIN", order_type="SL-M", trigger_price=trigger))
        assert (await data(kite, token, "/orders"))[0]["status"] == "TRIGGER PENDING"
        await kite.advance(first * 60)
        (order,) = await data(kite, token, "/orders")
        assert order["status"] == "COMPLETE"
        assert order["average_price"] == dict(ahead)[first]
        statuses = [step["status"] for step in await data(kite, token, f"/orders/{order_id}")]
        assert statuses[-3:] == ["TRIGGER PENDING", "OPEN", "COMPLETE"]

    async def test_trigger_on_the_wrong_side_is_refused(self, kite: KiteDriver, token: str) -> None:
        response = await kite.place(token, **equity(order_type="SL-M", trigger_price=1.0))
        assert response.status_code == 400
        assert "higher than the last price" in response.json()["message"]


class TestRefusals:
    @pytest.mark.parametrize(
        ("fields", "fragment"),
        [
            (
                {"exchange": "NFO", "tradingsymbol": OPTION, "quantity": 50, "product": "NRML"},
                "lot size (75)",
            ),
            ({"tradingsymbol": "NOSUCH"}, "Invalid `tradingsymbol`"),
            ({"tradingsymbol": "NIFTY 50"}, "index"),
            ({"transaction_type": "HOLD"}, "Invalid `transaction_type`"),
            ({"order_type": "STOP"}, "Invalid `order_type`"),
            ({"product": "XYZ"}, "Invalid `product`"),
            ({"quantity": "ten"}, "Invalid `quantity`"),
            ({"quantity": 0}, "Invalid `quantity`"),
            ({"order_type": "LIMIT"}, "Invalid `price`"),
            ({"order_type": "LIMIT", "price": "100.03"}, "tick size"),
            ({"order_type": "LIMIT", "price": "-5"}, "Invalid `price`"),
            ({"validity": "GTC"}, "Invalid `validity`"),
            ({"tag": "x" * 21}, "Invalid `tag`"),
            ({"exchange": "MCX"}, "Invalid `exchange`"),
            ({"tradingsymbol": ""}, "Missing `tradingsymbol`"),
        ],
    )
    async def test_bad_fields(
        self, kite: KiteDriver, token: str, fields: dict[str, Any], fragment: str
    ) -> None:
        response = await kite.place(token, **equity(**fields))
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["status"] == "error" and body["error_type"] == "InputException"
        assert fragment in body["message"]
        assert await data(kite, token, "/orders") == []

    async def test_other_variety(self, kite: KiteDriver, token: str) -> None:
        response = await kite.client.post("/orders/amo", data=equity(), headers=kite.auth(token))
        assert response.status_code == 400

    async def test_insufficient_funds_is_a_rejected_order(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(token, **equity("MARUTI", product="CNC", quantity=1000))
        (order,) = await data(kite, token, "/orders")
        assert order["order_id"] == order_id
        assert order["status"] == "REJECTED"
        assert order["status_message"].startswith("Insufficient funds.")
        assert await data(kite, token, "/trades") == []

    async def test_needs_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/orders/regular", data=equity())
        assert response.status_code == 403


class TestPositionsAndMargins:
    async def test_buy_then_sell_realises(self, kite: KiteDriver, sim: SimState, token: str) -> None:
        infy = sim.instruments.get("NSE:INFY")
        assert infy is not None
        buy_price = sim.market.last_price(infy, sim.clock.now())
        await kite.place_ok(token, **equity(quantity=10))
        await kite.advance(30 * 60)
        sell_price = sim.market.last_price(infy, sim.clock.now())
        assert sell_price != buy_price
        await kite.place_ok(token, **equity(quantity=4, transaction_type="SELL"))
        body = await data(kite, token, "/portfolio/positions")
        (net,) = body["net"]
        (day,) = body["day"]
        realised = round(4 * (sell_price - buy_price), 2)
        for position in (net, day):
            assert position["quantity"] == 6
            assert position["average_price"] == buy_price
            assert position["realised"] == pytest.approx(realised, abs=0.01)
            assert position["unrealised"] == pytest.approx(6 * (sell_price - buy_price), abs=0.01)
            assert position["pnl"] == pytest.approx(10 * (sell_price - buy_price), abs=0.01)
            assert position["buy_quantity"] == 10 and position["sell_quantity"] == 4
            assert position["last_price"] == sell_price
            assert position["product"] == "MIS"
        assert net["overnight_quantity"] == 0
        await kite.place_ok(token, **equity(quantity=6, transaction_type="SELL"))
        (flat,) = (await data(kite, token, "/portfolio/positions"))["net"]
        assert flat["quantity"] == 0 and flat["unrealised"] == 0
        assert flat["realised"] == pytest.approx(10 * (sell_price - buy_price), abs=0.01)

    async def test_position_carried_overnight(self, kite: KiteDriver, token: str) -> None:
        await kite.place_ok(token, **equity(product="CNC", quantity=3))
        await kite.advance(24 * 3600)
        token = await kite.sign_in()  # yesterday's token died at 06:00
        body = await data(kite, token, "/portfolio/positions")
        (net,) = body["net"]
        assert net["quantity"] == 3 and net["overnight_quantity"] == 3
        assert body["day"] == []
        assert await data(kite, token, "/trades") == []
        assert await data(kite, token, "/orders") == []

    async def test_margins(self, kite: KiteDriver, sim: SimState, token: str) -> None:
        margins = await data(kite, token, "/user/margins")
        assert set(margins) == {"equity", "commodity"}
        equity_segment = margins["equity"]
        assert equity_segment["enabled"] is True
        assert equity_segment["net"] == 500000.0
        assert equity_segment["available"]["opening_balance"] == 500000.0
        assert set(equity_segment["utilised"]) >= {
            "debits",
            "exposure",
            "span",
            "option_premium",
            "m2m_realised",
        }
        assert await data(kite, token, "/user/margins/equity") == equity_segment
        bad = await kite.get(token, "/user/margins/crypto")
        assert bad.status_code == 400

        option = sim.instruments.get(f"NFO:{OPTION}")
        assert option is not None
        premium = sim.market.last_price(option, sim.clock.now())
        await kite.place_ok(
            token,
            exchange="NFO",
            tradingsymbol=OPTION,
            transaction_type="BUY",
            order_type="MARKET",
            quantity=75,
            product="NRML",
        )
        after = await data(kite, token, "/user/margins/equity")
        assert after["utilised"]["option_premium"] == pytest.approx(75 * premium, abs=0.01)
        assert after["net"] == pytest.approx(500000.0 - 75 * premium, abs=0.01)


class TestTags:
    async def test_a_tag_of_twenty_characters_comes_back_everywhere(
        self, kite: KiteDriver, token: str
    ) -> None:
        tag = "strangle:a41f:000123"
        assert len(tag) == 20
        order_id = await kite.place_ok(token, **equity(order_type="LIMIT", price=1.0, tag=tag))
        (order,) = await data(kite, token, "/orders")
        assert order["tag"] == tag and order["tags"] == [tag]
        history = await data(kite, token, f"/orders/{order_id}")
        assert {step["tag"] for step in history} == {tag}

    async def test_no_tag_is_null(self, kite: KiteDriver, token: str) -> None:
        await kite.place_ok(token, **equity(tag="  "))
        (order,) = await data(kite, token, "/orders")
        assert order["tag"] is None and order["tags"] == []


class TestIsolation:
    async def test_another_users_orders_are_invisible(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(token, **equity(order_type="LIMIT", price=1.0))
        other = await kite.sign_in("DEMO02")
        assert await data(kite, other, "/orders") == []
        assert await data(kite, other, "/trades") == []
        assert await data(kite, other, "/portfolio/positions") == {"net": [], "day": []}
        for response in (
            await kite.get(other, f"/orders/{order_id}"),
            await kite.get(other, f"/orders/{order_id}/trades"),
            await kite.client.delete(f"/orders/regular/{order_id}", headers=kite.auth(other)),
        ):
            assert response.status_code == 404
            assert response.json()["message"] == "Couldn't find that `order_id`."
        assert (await data(kite, token, "/orders"))[0]["status"] == "OPEN"
