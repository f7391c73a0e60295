"""PUT /orders/{variety}/{order_id}: modifying a resting order's price, trigger, quantity and type."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from kitesim.clock import IST
from kitesim.market import MarketMinute, minute_of
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

MID_SESSION = datetime(2025, 1, 6, 10, 0, 30, tzinfo=IST)
OPTION = "NIFTY2510923500CE"


@pytest.fixture
async def token(kite: KiteDriver) -> str:
    await kite.freeze_at(MID_SESSION)
    return await kite.sign_in()


def equity(symbol: str = "INFY", **extra: str | int | float) -> dict[str, str | int | float]:
    return {
        "exchange": "NSE",
        "tradingsymbol": symbol,
        "transaction_type": "BUY",
        "order_type": "LIMIT",
        "price": 1.0,
        "quantity": 10,
        "product": "CNC",
        **extra,
    }


def last_price(sim: SimState, key: str) -> float:
    instrument = sim.instruments.get(key)
    assert instrument is not None
    return sim.market.last_price(instrument, sim.clock.now())


async def the_order(kite: KiteDriver, token: str, order_id: str) -> dict[str, Any]:
    orders = await kite.data(token, "/orders")
    found: dict[str, Any] = next(order for order in orders if order["order_id"] == order_id)
    return found


def assert_input_error(response: httpx.Response, fragment: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["error_type"] == "InputException"
    assert body["data"] is None
    assert fragment in body["message"]


class TestModifyResting:
    async def test_new_price_is_kept_and_history_shows_the_modification(
        self, kite: KiteDriver, token: str
    ) -> None:
        order_id = await kite.place_ok(token, **equity())
        response = await kite.modify(token, order_id, price=2.5)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "success", "data": {"order_id": order_id}}
        order = await the_order(kite, token, order_id)
        assert order["status"] == "OPEN"
        assert order["price"] == 2.5 and order["quantity"] == 10
        assert order["modified"] is True
        history = await kite.data(token, f"/orders/{order_id}")
        statuses = [step["status"] for step in history]
        assert statuses[-4:] == ["MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED", "OPEN"]
        before = history[statuses.index("MODIFY VALIDATION PENDING") - 1]
        assert before["price"] == 1.0 and before["modified"] is False
        assert history[-1]["price"] == 2.5

    async def test_a_marketable_price_fills_at_once_at_the_market(
        self, kite: KiteDriver, sim: SimState, token: str
    ) -> None:
        price = last_price(sim, "NSE:INFY")
        order_id = await kite.place_ok(token, **equity())
        assert (await kite.modify(token, order_id, price=round(price + 20, 2))).status_code == 200
        order = await the_order(kite, token, order_id)
        assert order["status"] == "COMPLETE" and order["average_price"] == price
        (trade,) = await kite.data(token, "/trades")
        assert trade["order_id"] == order_id and trade["quantity"] == 10

    async def test_quantity_and_type(self, kite: KiteDriver, sim: SimState, token: str) -> None:
        order_id = await kite.place_ok(token, **equity())
        assert (await kite.modify(token, order_id, quantity=4)).status_code == 200
        assert (await the_order(kite, token, order_id))["quantity"] == 4
        assert (await kite.modify(token, order_id, order_type="MARKET")).status_code == 200
        order = await the_order(kite, token, order_id)
        assert order["status"] == "COMPLETE" and order["order_type"] == "MARKET"
        assert order["filled_quantity"] == 4 and order["price"] == 0
        assert order["average_price"] == last_price(sim, "NSE:INFY")

    async def test_moved_stop_fires_at_its_new_trigger(
        self, kite: KiteDriver, sim: SimState, token: str
    ) -> None:
        instrument = sim.instruments.get("NSE:SBIN")
        assert instrument is not None
        here = minute_of(sim.clock.now())
        now_price = sim.market.price_at(instrument, here)
        ahead = [
            (k, sim.market.price_at(instrument, MarketMinute(here.n, here.m + k))) for k in range(1, 240)
        ]
        high = max(p for _, p in ahead)
        assert high > now_price + 0.1, "the path should rise within four hours"
        far = round(high + 50, 2)
        order_id = await kite.place_ok(
            token, **equity("SBIN", order_type="SL-M", price=0, trigger_price=far, product="MIS")
        )
        near = round(high - 0.05, 2) if high - 0.05 > now_price else high
        first = next(k for k, p in ahead if p >= near)
        assert (await kite.modify(token, order_id, trigger_price=near)).status_code == 200
        order = await the_order(kite, token, order_id)
        assert order["status"] == "TRIGGER PENDING" and order["trigger_price"] == near
        await kite.advance(first * 60)
        order = await the_order(kite, token, order_id)
        assert order["status"] == "COMPLETE"
        assert order["average_price"] == dict(ahead)[first]

    async def test_tag_survives_a_modification(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(token, **equity(tag="strangle:7:sl-ce"))
        assert (await kite.modify(token, order_id, price=1.5)).status_code == 200
        order = await the_order(kite, token, order_id)
        assert order["tag"] == "strangle:7:sl-ce" and order["tags"] == ["strangle:7:sl-ce"]
        history = await kite.data(token, f"/orders/{order_id}")
        assert {step["tag"] for step in history} == {"strangle:7:sl-ce"}


class TestModifyRefused:
    @pytest.mark.parametrize(
        ("final", "status"),
        [("complete", "COMPLETE"), ("cancelled", "CANCELLED"), ("rejected", "REJECTED")],
    )
    async def test_an_order_that_is_done(self, kite: KiteDriver, token: str, final: str, status: str) -> None:
        if final == "complete":
            order_id = await kite.place_ok(token, **equity(order_type="MARKET", price=0))
        elif final == "cancelled":
            order_id = await kite.place_ok(token, **equity())
            await kite.client.delete(f"/orders/regular/{order_id}", headers=kite.auth(token))
        else:
            order_id = await kite.place_ok(
                token, **equity("MARUTI", order_type="MARKET", price=0, quantity=1000)
            )
        response = await kite.modify(token, order_id, price=2)
        assert_input_error(response, f"Order cannot be modified as it is {status}.")
        assert (await the_order(kite, token, order_id))["status"] == status

    async def test_an_order_ended_by_the_close(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(token, **equity())
        await kite.advance(6 * 3600)
        response = await kite.modify(token, order_id, price=2)
        assert_input_error(response, "as it is CANCELLED")

    @pytest.mark.parametrize(
        ("fields", "fragment"),
        [
            ({"price": "1.03"}, "tick size"),
            ({"price": "-1"}, "Invalid `price`"),
            ({"quantity": "0"}, "Invalid `quantity`"),
            ({"quantity": "lots"}, "Invalid `quantity`"),
            ({"order_type": "STOP"}, "Invalid `order_type`"),
            ({"order_type": "SL-M"}, "needs a trigger price"),
            ({"validity": "IOC", "price": "2"}, "Invalid `validity`"),
            ({}, "Nothing to modify"),
            ({"price": " "}, "Nothing to modify"),
        ],
    )
    async def test_bad_fields_leave_the_order_as_it_was(
        self, kite: KiteDriver, token: str, fields: dict[str, str], fragment: str
    ) -> None:
        order_id = await kite.place_ok(token, **equity())
        assert_input_error(await kite.modify(token, order_id, **fields), fragment)
        order = await the_order(kite, token, order_id)
        assert order["status"] == "OPEN" and order["price"] == 1.0 and order["modified"] is False

    async def test_stop_trigger_on_the_wrong_side(self, kite: KiteDriver, sim: SimState, token: str) -> None:
        price = last_price(sim, "NSE:INFY")
        trigger = round(price + 30, 2)
        order_id = await kite.place_ok(token, **equity(order_type="SL-M", price=0, trigger_price=trigger))
        response = await kite.modify(token, order_id, trigger_price=round(price - 30, 2))
        assert_input_error(response, "should be higher than the last price")
        assert (await the_order(kite, token, order_id))["trigger_price"] == trigger

    async def test_lot_size_of_an_option(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(
            token,
            exchange="NFO",
            tradingsymbol=OPTION,
            transaction_type="BUY",
            order_type="LIMIT",
            price=0.05,
            quantity=75,
            product="NRML",
        )
        assert_input_error(await kite.modify(token, order_id, quantity=100), "lot size (75)")
        assert (await kite.modify(token, order_id, quantity=150)).status_code == 200

    async def test_at_most_25_modifications(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(token, **equity())
        for step in range(25):
            response = await kite.modify(token, order_id, price=round(1.0 + 0.05 * (step + 1), 2))
            assert response.status_code == 200, response.text
        assert_input_error(await kite.modify(token, order_id, price=5), "Maximum allowed order modifications")

    async def test_more_margin_than_available(self, kite: KiteDriver, sim: SimState) -> None:
        await kite.freeze_at(MID_SESSION)
        token = await kite.sign_in("DEMO04")  # 1.5 lakh
        order_id = await kite.place_ok(token, **equity("TCS", price=100.0, quantity=1))
        response = await kite.modify(token, order_id, quantity=2000)
        assert_input_error(response, "Insufficient funds. Required margin is 200000.00")
        assert (await the_order(kite, token, order_id))["quantity"] == 1

    async def test_unknown_and_other_users_orders(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(token, **equity())
        other = await kite.sign_in("DEMO02")
        for who, target in ((other, order_id), (token, "250106999999999")):
            response = await kite.modify(who, target, price=2)
            assert response.status_code == 404
            assert response.json()["message"] == "Couldn't find that `order_id`."
        assert (await the_order(kite, token, order_id))["price"] == 1.0

    async def test_other_variety_and_no_token(self, kite: KiteDriver, token: str) -> None:
        order_id = await kite.place_ok(token, **equity())
        response = await kite.client.put(
            f"/orders/co/{order_id}", data={"price": "2"}, headers=kite.auth(token)
        )
        assert_input_error(response, "Invalid `variety`")
        anonymous = await kite.client.put(f"/orders/regular/{order_id}", data={"price": "2"})
        assert anonymous.status_code == 403
        assert anonymous.json()["error_type"] == "TokenException"
