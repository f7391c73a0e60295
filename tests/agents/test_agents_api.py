"""The strategies and agents endpoints: who may see and change what, and every bad input's answer."""

from __future__ import annotations

import httpx
import pytest

from kitesim.clock import SimClock


class TestAnonymous:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/api/strategies"),
            ("GET", "/api/strategies/short_strangle/params"),
            ("GET", "/api/agents"),
            ("GET", "/api/agents/1"),
            ("GET", "/api/agents/1/events"),
            ("GET", "/api/events"),
        ],
    )
    async def test_needs_a_session(self, client: httpx.AsyncClient, method: str, path: str) -> None:
        response = await client.request(method, path)
        assert response.status_code == 401
        assert response.json()["error"] == "NotAuthenticated"


class TestStrategies:
    async def test_lists_both_with_a_schema_and_defaults(self, trader: httpx.AsyncClient) -> None:
        response = await trader.get("/api/strategies")
        assert response.status_code == 200
        by_name = {s["name"]: s for s in response.json()}
        assert set(by_name) == {"short_strangle", "sma_crossover"}
        strangle = by_name["short_strangle"]
        schema = strangle["params_schema"]["properties"]
        assert schema["delta_low"]["minimum"] >= 0 and schema["delta_high"]["maximum"] <= 1
        assert strangle["defaults"]["call_lots"] >= 1
        assert strangle["defaults"]["delta_low"] == pytest.approx(0.29)
        # From the broker's instrument list: NIFTY options trade in lots of 75, equities in single shares.
        assert strangle["lot_size"] == 75
        assert by_name["sma_crossover"]["lot_size"] == 1

    async def test_unknown_strategy_is_404(self, trader: httpx.AsyncClient) -> None:
        for response in (
            await trader.get("/api/strategies/iron_condor/params"),
            await trader.put("/api/strategies/iron_condor/params", json={"lots": 1}),
            await trader.get("/api/strategies/iron_condor/params/history"),
            await trader.post("/api/agents", json={"strategy": "iron_condor"}),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "StrategyNotFound"


class TestParameters:
    async def test_defaults_until_changed_then_history(self, trader: httpx.AsyncClient) -> None:
        defaults = (await trader.get("/api/strategies/short_strangle/params")).json()
        response = await trader.put(
            "/api/strategies/short_strangle/params", json={"call_lots": 3, "delta_low": 0.3}
        )
        assert response.status_code == 200, response.text
        assert response.json()["call_lots"] == 3
        assert response.json()["put_lots"] == defaults["put_lots"]
        assert (await trader.get("/api/strategies/short_strangle/params")).json()["call_lots"] == 3
        history = (await trader.get("/api/strategies/short_strangle/params/history")).json()
        assert len(history) == 1
        assert history[0]["changes"]["call_lots"] == [defaults["call_lots"], 3]
        assert history[0]["changes"]["delta_low"] == [defaults["delta_low"], 0.3]
        assert history[0]["session_handle"]

    async def test_the_same_values_add_no_history(self, trader: httpx.AsyncClient) -> None:
        defaults = (await trader.get("/api/strategies/short_strangle/params")).json()
        assert (await trader.put("/api/strategies/short_strangle/params", json=defaults)).status_code == 200
        assert (await trader.get("/api/strategies/short_strangle/params/history")).json() == []

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"delta_low": 1.5}, "delta_low"),
            ({"call_lots": "many"}, "call_lots"),
            ({"call_lots": 0}, "call_lots"),
            ({"put_lots": 2.5}, "put_lots"),
            ({"call_lots": 51}, "call_lots"),
            ({"delta_low": 0.4, "delta_high": 0.3}, "delta_low"),
            ({"entry_time": "08:00:00"}, "entry_time"),
            ({"square_off_time": "16:00:00"}, "square_off_time"),
            ({"stop_loss_pct": {"mon": 0}}, "stop_loss_pct.mon"),
            ({"no_such_field": 1}, "no_such_field"),
        ],
    )
    async def test_bad_values_are_422_naming_the_field(
        self, trader: httpx.AsyncClient, body: dict[str, object], field: str
    ) -> None:
        response = await trader.put("/api/strategies/short_strangle/params", json=body)
        assert response.status_code == 422, response.text
        answer = response.json()
        assert answer["error"] == "ValidationError"
        assert field in answer["detail"]
        assert (await trader.get("/api/strategies/short_strangle/params/history")).json() == []

    async def test_users_have_their_own(
        self, trader: httpx.AsyncClient, other_trader: httpx.AsyncClient
    ) -> None:
        await trader.put("/api/strategies/sma_crossover/params", json={"lots": 4})
        assert (await trader.get("/api/strategies/sma_crossover/params")).json()["lots"] == 4
        assert (await other_trader.get("/api/strategies/sma_crossover/params")).json()["lots"] != 4
        assert (await other_trader.get("/api/strategies/sma_crossover/params/history")).json() == []


class TestAgents:
    async def test_start_list_get_stop(self, trader: httpx.AsyncClient) -> None:
        response = await trader.post("/api/agents", json={"strategy": "sma_crossover", "params": {"lots": 2}})
        assert response.status_code == 201, response.text
        agent = response.json()
        assert agent["state"] == "starting" and agent["params"]["lots"] == 2 and agent["runtime"] is None
        assert (await trader.get("/api/agents")).json()[0]["id"] == agent["id"]
        assert (await trader.get(f"/api/agents/{agent['id']}")).json()["strategy"] == "sma_crossover"
        # The parameters given at the start were saved first, with their history.
        assert (await trader.get("/api/strategies/sma_crossover/params")).json()["lots"] == 2
        stopped = await trader.post(f"/api/agents/{agent['id']}/stop")
        assert stopped.status_code == 200
        # No runtime ever took it: nothing to square off, stopped at once.
        assert stopped.json()["state"] == "stopped"
        again = await trader.post(f"/api/agents/{agent['id']}/stop")
        assert again.status_code == 200 and again.json()["state"] == "stopped"
        events = (await trader.get(f"/api/agents/{agent['id']}/events")).json()
        assert [e["kind"] for e in events["items"]] == ["state", "state"]

    async def test_one_live_agent_per_strategy(self, trader: httpx.AsyncClient) -> None:
        assert (await trader.post("/api/agents", json={"strategy": "sma_crossover"})).status_code == 201
        second = await trader.post("/api/agents", json={"strategy": "sma_crossover"})
        assert second.status_code == 409
        assert second.json()["error"] == "AgentAlreadyRunning"
        assert (await trader.post("/api/agents", json={"strategy": "short_strangle"})).status_code == 201

    @pytest.mark.parametrize(
        "params",
        [{"call_lots": 0}, {"call_lots": 10_000}, {"put_lots": -1}, {"put_lots": "2x"}, {"call_lots": 1.5}],
    )
    async def test_bad_lots_are_422(self, trader: httpx.AsyncClient, params: dict[str, object]) -> None:
        response = await trader.post("/api/agents", json={"strategy": "short_strangle", "params": params})
        assert response.status_code == 422, response.text
        assert next(iter(params)) in response.json()["detail"]
        assert (await trader.get("/api/agents")).json() == []

    async def test_another_users_agent_is_404(
        self, trader: httpx.AsyncClient, other_trader: httpx.AsyncClient
    ) -> None:
        agent = (await trader.post("/api/agents", json={"strategy": "sma_crossover"})).json()
        for response in (
            await other_trader.get(f"/api/agents/{agent['id']}"),
            await other_trader.get(f"/api/agents/{agent['id']}/events"),
            await other_trader.post(f"/api/agents/{agent['id']}/stop"),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "AgentNotFound"
        assert (await other_trader.get("/api/agents")).json() == []
        assert (await other_trader.post("/api/agents/stop-all")).json()["stopped"] == 0
        assert (await trader.get(f"/api/agents/{agent['id']}")).json()["state"] == "starting"

    async def test_expired_broker_token_cannot_start(
        self, trader: httpx.AsyncClient, sim_clock: SimClock
    ) -> None:
        sim_clock.advance(21 * 3600)  # past 06:00 IST the next morning: Kite has ended the token
        response = await trader.post("/api/agents", json={"strategy": "sma_crossover"})
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "BrokerNotConnected"
        assert "expired" in response.json()["detail"]

    async def test_bad_ids_and_pages(self, trader: httpx.AsyncClient) -> None:
        assert (await trader.get("/api/agents/0")).status_code == 422
        assert (await trader.get("/api/agents/abc")).status_code == 422
        assert (await trader.get("/api/agents/99999")).status_code == 404
        assert (await trader.get("/api/agents/1/events?limit=0")).status_code == 422
        assert (await trader.post("/api/agents", json={"strategy": ""})).status_code == 422
        assert (await trader.post("/api/agents", json={})).status_code == 422
