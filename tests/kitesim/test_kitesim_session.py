"""POST /session/token and DELETE /session/token: the request_token exchange, its failures, and logout."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import SecretStr

from kitesim.accounts import DemoApp
from kitesim.config import KitesimSettings
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver


def assert_kite_error(response: httpx.Response, status: int, error_type: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"status": "error", "message": message, "data": None, "error_type": error_type}


class TestExchange:
    async def test_happy_path_returns_a_kite_session(
        self, kite: KiteDriver, settings: KitesimSettings
    ) -> None:
        token = await kite.request_token("DEMO02")
        response = await kite.exchange(token)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "success"
        data = body["data"]
        assert data["user_id"] == "DEMO02"
        assert data["user_name"] == "Priya Venkataraman"
        assert data["user_shortname"] == "Priya"
        assert data["email"] == "priya.venkataraman@example.com"
        assert data["user_type"] == "individual"
        assert data["broker"] == "ZERODHA"
        assert data["api_key"] == settings.api_key
        assert re.fullmatch(r"[A-Za-z0-9]{32}", data["access_token"])
        assert data["public_token"] and data["public_token"] != data["access_token"]
        assert data["enctoken"]
        assert data["refresh_token"] == ""
        assert "NFO" in data["exchanges"]
        assert "NRML" in data["products"]
        assert data["order_types"] == ["MARKET", "LIMIT", "SL", "SL-M"]
        assert "avatar_url" in data
        assert data["meta"] == {"demat_consent": "physical"}
        # The test app's clock starts at 09:15 IST.
        assert re.fullmatch(r"2025-01-06 09:15:\d\d", data["login_time"])

    async def test_access_token_works_right_away(self, kite: KiteDriver) -> None:
        access_token = await kite.sign_in("DEMO03")
        response = await kite.profile(access_token)
        assert response.status_code == 200
        assert response.json()["data"]["user_id"] == "DEMO03"

    async def test_wrong_checksum_is_refused_and_does_not_use_up_the_token(self, kite: KiteDriver) -> None:
        token = await kite.request_token()
        wrong = await kite.exchange(token, api_secret="not-the-secret")
        assert_kite_error(wrong, 403, "TokenException", "Invalid checksum.")
        assert (await kite.exchange(token)).status_code == 200

    async def test_garbage_checksum_is_refused(self, kite: KiteDriver) -> None:
        token = await kite.request_token()
        response = await kite.exchange(token, checksum_override="ü" * 64)
        assert_kite_error(response, 403, "TokenException", "Invalid checksum.")

    async def test_token_is_single_use(self, kite: KiteDriver) -> None:
        token = await kite.request_token()
        assert (await kite.exchange(token)).status_code == 200
        again = await kite.exchange(token)
        assert_kite_error(again, 403, "TokenException", "Request token has already been used.")

    async def test_unknown_token_is_refused(self, kite: KiteDriver) -> None:
        response = await kite.exchange("x" * 32)
        assert_kite_error(response, 403, "TokenException", "Request token is invalid.")

    async def test_token_expires_after_its_ttl_on_the_sim_clock(self, kite: KiteDriver) -> None:
        token = await kite.request_token()
        await kite.advance(301)
        response = await kite.exchange(token)
        assert_kite_error(response, 403, "TokenException", "Request token has expired.")

    async def test_token_is_still_good_just_inside_its_ttl(self, kite: KiteDriver) -> None:
        token = await kite.request_token()
        await kite.advance(295)
        assert (await kite.exchange(token)).status_code == 200

    async def test_unknown_api_key_is_refused(self, kite: KiteDriver) -> None:
        token = await kite.request_token()
        response = await kite.exchange(token, api_key="nobody")
        assert_kite_error(response, 403, "TokenException", "Invalid `api_key`.")

    async def test_token_is_bound_to_the_app_it_was_issued_for(self, kite: KiteDriver, sim: SimState) -> None:
        sim.accounts.add_app(
            DemoApp(
                api_key="other", api_secret=SecretStr("other-secret"), redirect_url="http://other.test/cb"
            )
        )
        token = await kite.request_token()
        response = await kite.exchange(token, api_key="other", api_secret="other-secret")
        assert_kite_error(response, 403, "TokenException", "Request token is invalid.")
        assert (await kite.exchange(token)).status_code == 200

    @pytest.mark.parametrize("field", ["api_key", "request_token", "checksum"])
    async def test_missing_field_is_an_input_error(self, client: httpx.AsyncClient, field: str) -> None:
        form = {"api_key": "test-app", "request_token": "abc", "checksum": "0" * 64}
        del form[field]
        response = await client.post("/session/token", data=form)
        assert_kite_error(response, 400, "InputException", f"Missing `{field}`.")

    async def test_empty_field_counts_as_missing(self, client: httpx.AsyncClient) -> None:
        form = {"api_key": "test-app", "request_token": "abc", "checksum": ""}
        response = await client.post("/session/token", data=form)
        assert_kite_error(response, 400, "InputException", "Missing `checksum`.")

    async def test_other_kite_version_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/session/token",
            data={"api_key": "test-app", "request_token": "abc", "checksum": "0" * 64},
            headers={"X-Kite-Version": "2"},
        )
        assert_kite_error(response, 400, "InputException", "Unsupported `X-Kite-Version`: only 3 is served.")

    async def test_missing_kite_version_is_accepted(
        self, client: httpx.AsyncClient, kite: KiteDriver, settings: KitesimSettings
    ) -> None:
        token = await kite.request_token()
        form = {
            "api_key": settings.api_key,
            "request_token": token,
            "checksum": hashlib.sha256(
                f"{settings.api_key}{token}{settings.api_secret.get_secret_value()}".encode()
            ).hexdigest(),
        }
        response = await client.post("/session/token", data=form)
        assert response.status_code == 200

    async def test_a_user_can_hold_several_tokens(self, kite: KiteDriver) -> None:
        first = await kite.sign_in("DEMO01")
        second = await kite.sign_in("DEMO01")
        assert first != second
        assert (await kite.profile(first)).status_code == 200
        assert (await kite.profile(second)).status_code == 200


class TestLogout:
    async def test_logout_invalidates_only_that_token(
        self, client: httpx.AsyncClient, kite: KiteDriver, settings: KitesimSettings
    ) -> None:
        doomed = await kite.sign_in("DEMO01")
        kept = await kite.sign_in("DEMO01")
        response = await client.delete(
            "/session/token", params={"api_key": settings.api_key, "access_token": doomed}
        )
        assert response.status_code == 200
        assert response.json() == {"status": "success", "data": True}
        assert_kite_error(
            await kite.profile(doomed), 403, "TokenException", "Incorrect `api_key` or `access_token`."
        )
        assert (await kite.profile(kept)).status_code == 200

    async def test_logout_twice_is_refused(
        self, client: httpx.AsyncClient, kite: KiteDriver, settings: KitesimSettings
    ) -> None:
        token = await kite.sign_in()
        params = {"api_key": settings.api_key, "access_token": token}
        assert (await client.delete("/session/token", params=params)).status_code == 200
        again = await client.delete("/session/token", params=params)
        assert_kite_error(again, 403, "TokenException", "Incorrect `api_key` or `access_token`.")

    async def test_unknown_token_is_refused(
        self, client: httpx.AsyncClient, settings: KitesimSettings
    ) -> None:
        response = await client.delete(
            "/session/token", params={"api_key": settings.api_key, "access_token": "nope"}
        )
        assert_kite_error(response, 403, "TokenException", "Incorrect `api_key` or `access_token`.")

    async def test_unknown_api_key_is_refused(self, client: httpx.AsyncClient, kite: KiteDriver) -> None:
        token = await kite.sign_in()
        response = await client.delete("/session/token", params={"api_key": "nobody", "access_token": token})
        assert_kite_error(response, 403, "TokenException", "Invalid `api_key`.")
        assert (await kite.profile(token)).status_code == 200

    async def test_missing_access_token_is_an_input_error(
        self, client: httpx.AsyncClient, settings: KitesimSettings
    ) -> None:
        response = await client.delete("/session/token", params={"api_key": settings.api_key})
        assert_kite_error(response, 400, "InputException", "Missing `access_token`.")


async def test_login_time_follows_the_sim_clock(kite: KiteDriver) -> None:
    await kite.set_clock(datetime(2025, 2, 3, 18, 30, tzinfo=UTC))
    response = await kite.exchange(await kite.request_token())
    assert re.fullmatch(r"2025-02-04 00:00:\d\d", response.json()["data"]["login_time"])
