"""A sim clock sped up to 60x: prices, stop triggers, candles and expiry all follow it. Real time is a fake
monotonic counter here, so nothing waits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from kitesim.clock import IST, SimClock, format_ist
from kitesim.market import MarketMinute, minute_of
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

MID_SESSION = datetime(2025, 1, 6, 10, 0, 30, tzinfo=IST)


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 500.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def real_time(sim: SimState) -> FakeMonotonic:
    """Puts the app on a clock whose real seconds the test moves by hand."""
    monotonic = FakeMonotonic()
    sim.clock = SimClock(start=MID_SESSION, speed=1.0, monotonic=monotonic)
    return monotonic


async def go_fast(kite: KiteDriver) -> None:
    response = await kite.client.post("/sim/clock", json={"speed": 60})
    assert response.status_code == 200 and response.json()["speed"] == 60.0


async def test_a_minute_of_sim_time_per_real_second(
    kite: KiteDriver, sim: SimState, real_time: FakeMonotonic
) -> None:
    token = await kite.sign_in()
    await go_fast(kite)
    infy = sim.instruments.get("NSE:INFY")
    assert infy is not None
    real_time.value += 45  # three quarters of an hour of market
    now = MID_SESSION + timedelta(minutes=45)
    assert (await kite.client.get("/sim/clock")).json()["now_ist"].startswith("2025-01-06T10:45:30")
    ltp = (await kite.data(token, "/quote/ltp", i="NSE:INFY"))["NSE:INFY"]["last_price"]
    assert ltp == sim.market.last_price(infy, now)
    quote = (await kite.data(token, "/quote", i="NSE:INFY"))["NSE:INFY"]
    assert quote["timestamp"] == format_ist(now)
    window = {"from": "2025-01-06 09:15:00", "to": "2025-01-06 15:30:00"}
    rows = (await kite.data(token, "/instruments/historical/408065/minute", **window))["candles"]
    assert rows[-1][0] == "2025-01-06T10:45:00+0530" and rows[-1][4] == ltp


async def test_a_stop_fires_when_the_fast_clock_reaches_it(
    kite: KiteDriver, sim: SimState, real_time: FakeMonotonic
) -> None:
    token = await kite.sign_in()
    sbin = sim.instruments.get("NSE:SBIN")
    assert sbin is not None
    here = minute_of(MID_SESSION)
    now_price = sim.market.price_at(sbin, here)
    ahead = [(k, sim.market.price_at(sbin, MarketMinute(here.n, here.m + k))) for k in range(1, 200)]
    trigger = max(p for _, p in ahead)
    assert trigger > now_price
    first = next(k for k, p in ahead if p >= trigger)
    await kite.place_ok(
        token,
        exchange="NSE",
        tradingsymbol="SBIN",
        transaction_type="BUY",
        order_type="SL-M",
        trigger_price=trigger,
        quantity=5,
        product="CNC",
    )
    await go_fast(kite)
    real_time.value += first - 1  # one sim minute short
    assert (await kite.data(token, "/orders"))[0]["status"] == "TRIGGER PENDING"
    real_time.value += 1
    (order,) = await kite.data(token, "/orders")
    assert order["status"] == "COMPLETE" and order["average_price"] == dict(ahead)[first]
    (trade,) = await kite.data(token, "/trades")
    assert trade["fill_timestamp"] == format_ist(MarketMinute(here.n, here.m + first).at)


async def test_expiry_follows_the_fast_clock(
    kite: KiteDriver, sim: SimState, real_time: FakeMonotonic
) -> None:
    sim.clock.set_to(datetime(2025, 1, 9, 15, 0, tzinfo=IST))  # expiry day
    token = await kite.sign_in()
    form = {
        "exchange": "NFO",
        "tradingsymbol": "NIFTY2510923500CE",
        "transaction_type": "SELL",
        "order_type": "MARKET",
        "quantity": 75,
        "product": "NRML",
    }
    await kite.place_ok(token, **form)
    await go_fast(kite)
    real_time.value += 31  # 15:31 IST
    refused = await kite.place(token, **form)
    assert refused.status_code == 400 and refused.json()["message"] == "NIFTY2510923500CE has expired."
    (position,) = (await kite.data(token, "/portfolio/positions"))["net"]
    assert position["quantity"] == 0
    close = datetime(2025, 1, 9, 15, 30, tzinfo=IST)
    assert position["last_price"] == pytest.approx(max(0.0, sim.market.spot(close) - 23500), abs=0.05)
