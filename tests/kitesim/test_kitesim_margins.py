"""GET /user/margins as short options are opened, open orders block margin, and orders beyond it are rejected."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from kitesim.clock import IST
from kitesim.portfolio import SHORT_OPTION_EXPOSURE, SHORT_OPTION_SPAN
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

MID_SESSION = datetime(2025, 1, 6, 11, 0, 30, tzinfo=IST)
CALL = "NIFTY2510923800CE"
PUT = "NIFTY2510923300PE"


def option(symbol: str, side: str, **extra: str | int | float) -> dict[str, Any]:
    return {
        "exchange": "NFO",
        "tradingsymbol": symbol,
        "transaction_type": side,
        "order_type": "MARKET",
        "quantity": 75,
        "product": "NRML",
        **extra,
    }


async def equity_margins(kite: KiteDriver, token: str) -> dict[str, Any]:
    segment: dict[str, Any] = await kite.data(token, "/user/margins/equity")
    return segment


def short_block(sim: SimState, quantity: int) -> float:
    return (SHORT_OPTION_SPAN + SHORT_OPTION_EXPOSURE) * sim.market.spot(sim.clock.now()) * quantity


def premium(sim: SimState, symbol: str) -> float:
    instrument = sim.instruments.get(f"NFO:{symbol}")
    assert instrument is not None
    return sim.market.last_price(instrument, sim.clock.now())


@pytest.fixture
async def token(kite: KiteDriver) -> str:
    await kite.freeze_at(MID_SESSION)
    return await kite.sign_in()  # DEMO01: five lakh


class TestShortOptions:
    async def test_available_falls_with_each_short_lot(
        self, kite: KiteDriver, sim: SimState, token: str
    ) -> None:
        start = await equity_margins(kite, token)
        assert start["net"] == 500000.0 and start["utilised"]["span"] == 0
        await kite.place_ok(token, **option(CALL, "SELL"))
        one = await equity_margins(kite, token)
        assert one["net"] == pytest.approx(500000.0 - short_block(sim, 75), abs=0.02)
        assert one["utilised"]["span"] == pytest.approx(
            SHORT_OPTION_SPAN * sim.market.spot(sim.clock.now()) * 75, abs=0.01
        )
        assert one["available"]["live_balance"] == one["net"]
        await kite.place_ok(token, **option(PUT, "SELL"))
        two = await equity_margins(kite, token)
        assert two["net"] == pytest.approx(500000.0 - short_block(sim, 150), abs=0.02)
        assert two["net"] < one["net"] < start["net"]
        assert two["utilised"]["debits"] == pytest.approx(500000.0 - two["net"], abs=0.02)

    async def test_a_short_beyond_the_margin_is_rejected(self, kite: KiteDriver, sim: SimState) -> None:
        await kite.freeze_at(MID_SESSION)
        token = await kite.sign_in("DEMO04")  # 1.5 lakh: less than one short lot needs
        assert short_block(sim, 75) > 150000
        order_id = await kite.place_ok(token, **option(CALL, "SELL"))
        (order,) = await kite.data(token, "/orders")
        assert order["order_id"] == order_id and order["status"] == "REJECTED"
        assert order["status_message"] == (
            f"Insufficient funds. Required margin is {short_block(sim, 75):.2f} but available margin is "
            "150000.00. Check the orderbook for open orders."
        )
        assert await kite.data(token, "/trades") == []
        assert await kite.data(token, "/portfolio/positions") == {"net": [], "day": []}
        assert (await equity_margins(kite, token))["net"] == 150000.0

    async def test_the_lot_that_no_longer_fits(self, kite: KiteDriver, sim: SimState) -> None:
        await kite.freeze_at(MID_SESSION)
        token = await kite.sign_in("DEMO02")  # 2.5 lakh: one short lot fits, two do not
        assert short_block(sim, 75) < 250000 < short_block(sim, 150)
        await kite.place_ok(token, **option(CALL, "SELL"))
        await kite.place_ok(token, **option(PUT, "SELL"))
        statuses = [order["status"] for order in await kite.data(token, "/orders")]
        assert statuses == ["COMPLETE", "REJECTED"]

    async def test_closing_needs_no_margin(self, kite: KiteDriver, sim: SimState) -> None:
        await kite.freeze_at(MID_SESSION)
        token = await kite.sign_in("DEMO02")
        await kite.place_ok(token, **option(CALL, "SELL"))
        left = (await equity_margins(kite, token))["net"]
        assert left < 50000
        # A stop-loss buy for the short leg closes it: accepted, and it blocks nothing while it waits.
        trigger = round(premium(sim, CALL) * 1.3, 1)
        await kite.place_ok(token, **option(CALL, "BUY", order_type="SL-M", trigger_price=trigger))
        assert (await equity_margins(kite, token))["net"] == pytest.approx(left, abs=0.01)
        await kite.place_ok(token, **option(CALL, "BUY"))
        orders = await kite.data(token, "/orders")
        assert [order["status"] for order in orders] == ["COMPLETE", "TRIGGER PENDING", "COMPLETE"]
        assert (await equity_margins(kite, token))["utilised"]["span"] == 0


class TestOpenOrders:
    async def test_a_resting_short_blocks_until_cancelled(
        self, kite: KiteDriver, sim: SimState, token: str
    ) -> None:
        limit = round(premium(sim, CALL) * 2, 1)
        order_id = await kite.place_ok(token, **option(CALL, "SELL", order_type="LIMIT", price=limit))
        (order,) = await kite.data(token, "/orders")
        assert order["status"] == "OPEN"
        blocked = await equity_margins(kite, token)
        assert blocked["net"] == pytest.approx(500000.0 - short_block(sim, 75), abs=0.02)
        response = await kite.client.delete(f"/orders/regular/{order_id}", headers=kite.auth(token))
        assert response.status_code == 200
        assert (await equity_margins(kite, token))["net"] == 500000.0

    async def test_open_orders_count_against_new_ones(self, kite: KiteDriver, sim: SimState) -> None:
        await kite.freeze_at(MID_SESSION)
        token = await kite.sign_in("DEMO02")
        limit = round(premium(sim, CALL) * 2, 1)
        await kite.place_ok(token, **option(CALL, "SELL", order_type="LIMIT", price=limit))
        rejected = await kite.place_ok(token, **option(PUT, "SELL"))
        order = next(o for o in await kite.data(token, "/orders") if o["order_id"] == rejected)
        assert order["status"] == "REJECTED" and order["status_message"].startswith("Insufficient funds.")

    async def test_a_long_option_blocks_its_premium(
        self, kite: KiteDriver, sim: SimState, token: str
    ) -> None:
        cost = premium(sim, PUT) * 75
        await kite.place_ok(token, **option(PUT, "BUY"))
        after = await equity_margins(kite, token)
        assert after["utilised"]["option_premium"] == pytest.approx(cost, abs=0.01)
        assert after["net"] == pytest.approx(500000.0 - cost, abs=0.01)
