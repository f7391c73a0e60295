"""GET /user/profile behind the access-token header, and the daily 06:00 IST token expiry on the sim clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

from kitesim.clock import IST
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver

INCORRECT = "Incorrect `api_key` or `access_token`."
EXPIRED = "Token is invalid or has expired."


def assert_token_error(response: httpx.Response, message: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {
        "status": "error",
        "message": message,
        "data": None,
        "error_type": "TokenException",
    }


class TestProfile:
    async def test_returns_the_token_owners_profile(self, kite: KiteDriver) -> None:
        token = await kite.sign_in("DEMO04")
        response = await kite.profile(token)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "success"
        data = body["data"]
        assert data["user_id"] == "DEMO04"
        assert data["user_name"] == "Ananya Reddy"
        assert data["user_shortname"] == "Ananya"
        assert data["email"] == "ananya.reddy@example.com"
        assert data["user_type"] == "individual"
        assert data["broker"] == "ZERODHA"
        assert data["avatar_url"] is None
        assert data["meta"] == {"demat_consent": "physical"}
        assert {"exchanges", "products", "order_types"} <= data.keys()
        assert "access_token" not in data

    async def test_each_user_sees_their_own(self, kite: KiteDriver) -> None:
        first = await kite.sign_in("DEMO01")
        fifth = await kite.sign_in("DEMO05")
        assert (await kite.profile(first)).json()["data"]["user_id"] == "DEMO01"
        assert (await kite.profile(fifth)).json()["data"]["user_id"] == "DEMO05"

    async def test_anonymous_is_refused(self, client: httpx.AsyncClient) -> None:
        assert_token_error(await client.get("/user/profile"), INCORRECT)

    async def test_unknown_token_is_refused(self, kite: KiteDriver) -> None:
        assert_token_error(await kite.profile("a" * 32), INCORRECT)

    async def test_valid_token_with_another_api_key_is_refused(self, kite: KiteDriver) -> None:
        token = await kite.sign_in()
        assert_token_error(await kite.profile(token, api_key="other-app"), INCORRECT)

    @pytest.mark.parametrize(
        "header",
        ["Bearer abc", "token", "token test-app", "token test-app:", "token :abc", "abc:def"],
    )
    async def test_malformed_header_is_refused(self, client: httpx.AsyncClient, header: str) -> None:
        response = await client.get("/user/profile", headers={"Authorization": header})
        assert_token_error(response, INCORRECT)

    async def test_missing_kite_version_header_is_accepted(
        self, client: httpx.AsyncClient, kite: KiteDriver
    ) -> None:
        token = await kite.sign_in()
        response = await client.get("/user/profile", headers={"Authorization": f"token test-app:{token}"})
        assert response.status_code == 200


class TestDailyExpiry:
    async def test_token_dies_at_0600_ist(self, kite: KiteDriver) -> None:
        await kite.set_clock(datetime(2025, 1, 7, 5, 59, tzinfo=IST))
        token = await kite.sign_in()
        assert (await kite.profile(token)).status_code == 200
        await kite.advance(120)
        assert_token_error(await kite.profile(token), EXPIRED)

    async def test_token_from_after_0600_lives_until_the_next_morning(self, kite: KiteDriver) -> None:
        await kite.set_clock(datetime(2025, 1, 7, 6, 1, tzinfo=IST))
        token = await kite.sign_in()
        await kite.advance(timedelta(hours=23, minutes=58).total_seconds())
        assert (await kite.profile(token)).status_code == 200
        await kite.advance(120)
        assert_token_error(await kite.profile(token), EXPIRED)

    async def test_signing_in_again_after_expiry_works(self, kite: KiteDriver) -> None:
        await kite.set_clock(datetime(2025, 1, 7, 5, 59, tzinfo=IST))
        old = await kite.sign_in()
        await kite.advance(120)
        new = await kite.sign_in()
        assert_token_error(await kite.profile(old), EXPIRED)
        assert (await kite.profile(new)).status_code == 200

    async def test_expiry_is_recorded_on_the_token(self, kite: KiteDriver, sim: SimState) -> None:
        await kite.set_clock(datetime(2025, 1, 7, 20, 0, tzinfo=IST))
        token = await kite.sign_in()
        expires_at = sim.sessions.access_tokens[token].expires_at
        assert expires_at.astimezone(IST) == datetime(2025, 1, 8, 6, 0, tzinfo=IST)
