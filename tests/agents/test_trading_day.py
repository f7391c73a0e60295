"""A whole simulated trading day of the shipped short strangle, for two traders with different
parameters, driven minute by minute on kitesim's clock: entries, a stop hit and its re-entry, profit
booking moving the stops, the square-off; then the synced trades and our P&L equal the broker's fills."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from kitesim.clock import SimClock
from tests.conftest import ClientFactory, SignIn
from tests.support.agents import build_runtime
from tradedesk.kit.calendar import ist_day

# Tight stops for Aarav (they fire, and she re-enters); early profit steps for Rohan (his stops move).
AARAV = {
    "call_lots": 1,
    "put_lots": 1,
    "stop_loss_pct": {day: 2.0 for day in ("mon", "tue", "wed", "thu", "fri")},
    "max_stop_loss_reentries": 3,
}
ROHAN = {
    "call_lots": 1,
    "put_lots": 1,
    "first_profit_points": 3.0,
    "second_profit_points": 5.0,
    "lock_points": 1.0,
    "stop_loss_pct": {day: 60.0 for day in ("mon", "tue", "wed", "thu", "fri")},
}


@pytest.fixture(params=["redis"])
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def book(
    kitesim: Any, sim_clock: SimClock, user_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    sim = kitesim.state.sim
    sim.orders.sync(user_id, sim_clock.now())
    day = ist_day(sim_clock.now())
    orders = [o.as_dict() for o in sim.orders.orders_of_day(user_id, day)]
    fills = [f.as_dict() for f in sim.orders.fills_of_day(user_id, day)]
    return orders, fills


def broker_pnl(fills: list[dict[str, Any]]) -> Decimal:
    """Realised P&L of a flat book: what was sold minus what was bought."""
    total = Decimal(0)
    for fill in fills:
        value = Decimal(str(fill["average_price"])) * fill["quantity"]
        total += value if fill["transaction_type"] == "SELL" else -value
    return total


async def test_a_full_day_for_two_traders(
    api: Any, kitesim: Any, sim_clock: SimClock, new_client: ClientFactory, sign_in: SignIn
) -> None:
    aarav, rohan = new_client(), new_client()
    await sign_in(aarav, "DEMO01")
    await sign_in(rohan, "DEMO03")
    agents: dict[str, int] = {}
    for user, client, params in (("DEMO01", aarav, AARAV), ("DEMO03", rohan, ROHAN)):
        response = await client.post("/api/agents", json={"strategy": "short_strangle", "params": params})
        assert response.status_code == 201, response.text
        agents[user] = response.json()["id"]

    runtime = build_runtime(api)
    # 09:20 to 15:31 IST, one decision a simulated minute.
    for _ in range(372):
        await runtime.tick()
        sim_clock.advance(60)
    await runtime.tick()

    events: dict[str, list[dict[str, Any]]] = {}
    for user, client in (("DEMO01", aarav), ("DEMO03", rohan)):
        page = (await client.get(f"/api/agents/{agents[user]}/events?limit=200")).json()["items"]
        events[user] = page[::-1]

    for user in ("DEMO01", "DEMO03"):
        orders, fills = book(kitesim, sim_clock, user)
        assert all((o["tag"] or "").startswith(f"td{agents[user]}-") for o in orders), (
            "an order without our tag"
        )
        tags = [o["tag"] for o in orders]
        assert len(tags) == len(set(tags))
        entries = [
            o
            for o in orders
            if o["transaction_type"] == "SELL" and o["order_type"] == "MARKET" and o["status"] == "COMPLETE"
        ]
        assert {o["tradingsymbol"][-2:] for o in entries} == {"CE", "PE"}, f"{user}: no strangle sold"
        stops = [o for o in orders if o["order_type"] == "SL" and o["transaction_type"] == "BUY"]
        assert stops, f"{user}: no stop placed"
        # Square-off: flat in every symbol, nothing left working.
        net: dict[str, int] = defaultdict(int)
        for fill in fills:
            net[fill["tradingsymbol"]] += fill["quantity"] * (1 if fill["transaction_type"] == "BUY" else -1)
        assert set(net.values()) == {0}, f"{user}: still holds {dict(net)}"
        assert not [o for o in orders if o["status"] in ("OPEN", "TRIGGER PENDING")]
        lot_size = 75
        call_lots = (AARAV if user == "DEMO01" else ROHAN)["call_lots"]
        assert any(
            o["quantity"] == call_lots * lot_size and o["tradingsymbol"].endswith("CE") for o in entries
        )

    aarav_orders, _ = book(kitesim, sim_clock, "DEMO01")
    fired = [o for o in aarav_orders if o["order_type"] == "SL" and o["status"] == "COMPLETE"]
    assert fired, "no stop of Aarav's fired"
    sold = [
        o
        for o in aarav_orders
        if o["transaction_type"] == "SELL" and o["order_type"] == "MARKET" and o["status"] == "COMPLETE"
    ]
    # The first call and put, then at least one side sold again after its stop fired.
    assert len(sold) > 2, "no re-entry after Aarav's stop"
    first_fire = min(o["order_timestamp"] for o in fired)
    later_entries = [o for o in sold if o["order_timestamp"] >= first_fire]
    assert later_entries, "no re-entry after Aarav's stop"

    modifies = [e for e in events["DEMO03"] if e["kind"] == "order" and "modify" in e["message"]]
    assert modifies, "Rohan's stops never moved"
    assert any("square" in e["message"].lower() for e in events["DEMO03"] if e["kind"] == "decision")

    # Afterwards: sync, and our P&L equals the broker's fills.
    for user, client in (("DEMO01", aarav), ("DEMO03", rohan)):
        synced = await client.post("/api/sync", json={})
        assert synced.status_code == 200, synced.text
        _, fills = book(kitesim, sim_clock, user)
        expected = broker_pnl(fills)
        summary = (await client.get("/api/pnl/summary")).json()
        assert Decimal(str(summary["day"])) == expected
        trades = (await client.get("/api/trades?limit=500")).json()["items"]
        # Trades made by the agent are labelled with its strategy and why each position was closed.
        assert {t["strategy"] for t in trades} == {"short_strangle"}
        reasons = {t["exit_reason"] for t in trades if t["status"] == "closed"}
        assert "square_off" in reasons and reasons <= {"square_off", "stop_loss"}
        if user == "DEMO01":
            assert "stop_loss" in reasons
        assert sum(Decimal(str(t["realised_pnl"])) for t in trades if t["status"] == "closed") == expected
        agent = (await client.get(f"/api/agents/{agents[user]}")).json()
        assert Decimal(agent["realised_pnl_today"]) == expected
