"""POST /sim/users: accounts added for tests and demos sign in like the demo users."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import KiteDriver


def new_user(user_id: str, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "user_id": user_id,
        "user_name": "Test Trader",
        "email": f"{user_id.lower()}@example.com",
        "password": "s3cret",
    }
    return {**body, **extra}


class TestCreateUser:
    async def test_created_user_signs_in_and_trades_alone(
        self, client: httpx.AsyncClient, kite: KiteDriver
    ) -> None:
        user_id = "T" + secrets.token_hex(4).upper()
        response = await client.post("/sim/users", json=new_user(user_id, starting_margin_inr="123456.50"))
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["user_id"] == user_id and body["user_shortname"] == "Test"
        assert "password" not in body
        login = await kite.submit_login(user_id=user_id, password="s3cret")
        assert login.status_code == 302
        wrong = await kite.submit_login(user_id=user_id, password="demo")
        assert wrong.status_code == 401
        login = await kite.submit_login(user_id=user_id.lower(), password="s3cret")
        request_token = parse_qs(urlsplit(login.headers["location"]).query)["request_token"][0]
        session = await kite.exchange(request_token)
        assert session.status_code == 200, session.text
        token = session.json()["data"]["access_token"]
        profile = (await kite.profile(token)).json()["data"]
        assert profile["user_id"] == user_id and profile["email"] == f"{user_id.lower()}@example.com"
        margins = (await kite.get(token, "/user/margins/equity")).json()["data"]
        assert margins["available"]["opening_balance"] == 123456.5
        assert (await kite.get(token, "/orders")).json()["data"] == []

    async def test_many_users(self, client: httpx.AsyncClient) -> None:
        ids = {f"U{secrets.token_hex(5).upper()}" for _ in range(25)}
        for user_id in ids:
            assert (await client.post("/sim/users", json=new_user(user_id))).status_code == 201

    async def test_lower_case_id_is_stored_upper_case(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/sim/users", json=new_user("ab1234"))
        assert response.json()["user_id"] == "AB1234"

    @pytest.mark.parametrize("user_id", ["DEMO01", "demo02"])
    async def test_duplicate_is_a_conflict(self, client: httpx.AsyncClient, user_id: str) -> None:
        response = await client.post("/sim/users", json=new_user(user_id))
        assert response.status_code == 409
        assert response.json()["status"] == "error"
        assert "already exists" in response.json()["message"]

    async def test_second_create_conflicts(self, client: httpx.AsyncClient) -> None:
        assert (await client.post("/sim/users", json=new_user("ZZ99"))).status_code == 201
        assert (await client.post("/sim/users", json=new_user("ZZ99"))).status_code == 409

    @pytest.mark.parametrize(
        ("change", "fragment"),
        [
            ({"user_id": "A"}, "Invalid `user_id`"),
            ({"user_id": "AB-12"}, "Invalid `user_id`"),
            ({"email": "nope"}, "Invalid `email`"),
            ({"password": ""}, "Invalid `password`: must be 1 to 200 characters."),
            ({"user_name": "   "}, "Invalid `user_name`"),
            ({"starting_margin_inr": -1}, "Invalid `starting_margin_inr`"),
            ({"admin": True}, "Invalid `admin`"),
        ],
    )
    async def test_bad_input(
        self, client: httpx.AsyncClient, change: dict[str, object], fragment: str
    ) -> None:
        response = await client.post("/sim/users", json={**new_user("OK123"), **change})
        assert response.status_code == 400
        assert fragment in response.json()["message"]
