"""Fixtures for trading tests: traders who place orders through kitesim's Kite API, and clocks that move
together."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from tests.conftest import DEMO_API_KEY, ClientFactory, SignIn, kite_access_token
from tradedesk.kit.clock import ManualClock


@dataclass
class Trader:
    """A signed-in browser plus the same user's own Kite token, to place orders as the broker sees them."""

    user_id: str
    api: httpx.AsyncClient
    kite: httpx.AsyncClient
    access_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {DEMO_API_KEY}:{self.access_token}", "X-Kite-Version": "3"}

    async def order(
        self,
        symbol: str,
        side: str,
        quantity: int,
        *,
        exchange: str = "NSE",
        product: str = "MIS",
        order_type: str = "MARKET",
        tag: str | None = None,
        **extra: str,
    ) -> str:
        form = {
            "tradingsymbol": symbol,
            "exchange": exchange,
            "transaction_type": side,
            "quantity": str(quantity),
            "product": product,
            "order_type": order_type,
            "validity": "DAY",
            **extra,
        }
        if tag:
            form["tag"] = tag
        response = await self.kite.post("/orders/regular", data=form, headers=self.auth)
        assert response.status_code == 200, response.text
        return str(response.json()["data"]["order_id"])

    async def broker_fills(self) -> list[dict[str, object]]:
        response = await self.kite.get("/trades", headers=self.auth)
        assert response.status_code == 200, response.text
        fills: list[dict[str, object]] = response.json()["data"]
        return fills

    async def sync(self) -> dict[str, int]:
        response = await self.api.post("/api/sync", json={})
        assert response.status_code == 200, response.text
        result: dict[str, int] = response.json()
        return result

    async def trades(self, **params: str | int) -> list[dict[str, object]]:
        items: list[dict[str, object]] = []
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            response = await self.api.get("/api/trades", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items


MakeTrader = Callable[..., Awaitable[Trader]]


@pytest.fixture
def make_trader(new_client: ClientFactory, sign_in: SignIn, kite_client: httpx.AsyncClient) -> MakeTrader:
    async def make(user_id: str = "DEMO01") -> Trader:
        api = new_client()
        await sign_in(api, user_id)
        return Trader(user_id, api, kite_client, await kite_access_token(kite_client, user_id))

    return make


@pytest.fixture
def move_clocks(clock: ManualClock, kitesim: object) -> Callable[[float], None]:
    """Moves our clock and the broker's together, as real time would."""

    def move(seconds: float) -> None:
        clock.advance(seconds)
        kitesim.state.sim.clock.advance(seconds)  # type: ignore[attr-defined]

    return move


@pytest.fixture
def set_clocks(clock: ManualClock, kitesim: object) -> Callable[[datetime], None]:
    def set_to(when: datetime) -> None:
        clock.set(when)
        kitesim.state.sim.clock.set_to(when)  # type: ignore[attr-defined]

    return set_to


async def option_symbol(trader: Trader, kind: str = "CE") -> str:
    response = await trader.kite.get("/instruments/NFO")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    return next(r["tradingsymbol"] for r in rows if r["instrument_type"] == kind)


def fill_price(fills: list[dict[str, object]], order_id: str) -> Decimal:
    return Decimal(str(next(f["average_price"] for f in fills if f["order_id"] == order_id)))


async def round_trips(
    trader: Trader, move: Callable[[float], None], count: int, *, symbol: str = "INFY", gap_s: float = 120
) -> None:
    for _ in range(count):
        await trader.order(symbol, "BUY", 3)
        move(gap_s / 2)
        await trader.order(symbol, "SELL", 3)
        move(gap_s / 2)
