"""The /sim/clock controls, and the Kite error envelope on routes and failures outside the Kite API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from kitesim.app import create_app
from kitesim.config import KitesimSettings
from kitesim.state import SimState

START = datetime(2025, 1, 6, 3, 45, tzinfo=UTC)
# Real time passes while a test runs, at speed 1 in these tests.
SLACK = timedelta(seconds=5)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


class TestReadClock:
    async def test_shape(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/sim/clock")
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"now", "now_ist", "speed"}
        now, now_ist = parse(body["now"]), parse(body["now_ist"])
        assert now.utcoffset() == timedelta(0)
        assert now_ist.utcoffset() == timedelta(hours=5, minutes=30)
        assert now == now_ist
        assert START <= now < START + SLACK
        assert body["speed"] == 1.0


class TestUpdateClock:
    async def test_advance(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/sim/clock", json={"advance_s": 3600})
        assert response.status_code == 200
        now = parse(response.json()["now"])
        assert START + timedelta(hours=1) <= now < START + timedelta(hours=1) + SLACK

    async def test_set_to_with_offset(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/sim/clock", json={"set_to": "2025-03-10T05:59:00+05:30"})
        assert response.status_code == 200
        body = response.json()
        target = datetime(2025, 3, 10, 0, 29, tzinfo=UTC)
        assert target <= parse(body["now"]) < target + SLACK
        assert body["now_ist"].startswith("2025-03-10T05:59:")

    async def test_set_to_can_go_back(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/sim/clock", json={"set_to": "2024-12-31T00:00:00Z"})
        assert response.json()["now"].startswith("2024-12-31T00:00:")

    async def test_speed(self, client: httpx.AsyncClient, sim: SimState) -> None:
        response = await client.post("/sim/clock", json={"speed": 60})
        assert response.status_code == 200
        assert response.json()["speed"] == 60.0
        assert sim.clock.speed == 60.0
        assert (await client.get("/sim/clock")).json()["speed"] == 60.0

    async def test_all_at_once_applies_set_then_advance(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/sim/clock", json={"set_to": "2025-01-01T00:00:00Z", "advance_s": 60, "speed": 2}
        )
        body = response.json()
        assert body["now"].startswith("2025-01-01T00:01:")
        assert body["speed"] == 2.0

    async def test_moves_the_clock_the_app_uses(self, client: httpx.AsyncClient, sim: SimState) -> None:
        await client.post("/sim/clock", json={"advance_s": 86400})
        assert sim.clock.now() >= START + timedelta(days=1)

    @pytest.mark.parametrize(
        ("body", "fragment"),
        [
            ({"advance_s": -5}, "Invalid `advance_s`: Input should be greater than or equal to 0."),
            ({"advance_s": "soon"}, "Invalid `advance_s`"),
            ({"speed": 0}, "Invalid `speed`: Input should be greater than 0."),
            ({"speed": 20000}, "Invalid `speed`: Input should be less than or equal to 10000"),
            ({"set_to": "2025-01-01T00:00:00"}, "Invalid `set_to`"),
            ({"set_to": "yesterday"}, "Invalid `set_to`"),
            (
                {"set_to": "1900-01-01T00:00:00Z"},
                "Invalid `set_to`: must fall between 2000-01-01 and 2100-01-01.",
            ),
            ({}, "give at least one of `advance_s`, `set_to`, `speed`"),
            ({"advance": 5}, "Invalid `advance`: Extra inputs are not permitted."),
        ],
    )
    async def test_nonsense_is_refused_clearly(
        self, client: httpx.AsyncClient, sim: SimState, body: dict[str, object], fragment: str
    ) -> None:
        before = sim.clock.now()
        response = await client.post("/sim/clock", json=body)
        assert response.status_code == 400
        payload = response.json()
        assert payload["status"] == "error"
        assert payload["error_type"] == "InputException"
        assert fragment in payload["message"]
        assert sim.clock.now() - before < SLACK
        assert sim.clock.speed == 1.0

    async def test_not_json_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/sim/clock", content=b"{advance_s: 5", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["message"] == "The request body is not valid JSON."

    async def test_missing_body_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/sim/clock")
        assert response.status_code == 400
        assert response.json()["message"] == "Missing request body."


class TestEnvelopeEverywhere:
    async def test_unknown_route(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/no/such/thing")
        assert response.status_code == 404
        assert response.json() == {
            "status": "error",
            "message": "Route not found.",
            "data": None,
            "error_type": "GeneralException",
        }

    async def test_wrong_method(self, client: httpx.AsyncClient) -> None:
        response = await client.put("/user/profile")
        assert response.status_code == 405
        assert response.json()["status"] == "error"
        assert response.json()["message"] == "Method not allowed."
        assert "GET" in response.headers["allow"]

    async def test_unexpected_failure_is_a_500_general_exception(self, settings: KitesimSettings) -> None:
        app: FastAPI = create_app(settings)

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("secret detail")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kitesim") as client:
            response = await client.get("/boom")
        assert response.status_code == 500
        assert response.json() == {
            "status": "error",
            "message": "Internal server error.",
            "data": None,
            "error_type": "GeneralException",
        }
