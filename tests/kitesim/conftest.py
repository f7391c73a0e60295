"""Fixtures for kitesim tests: an in-process app on a fixed sim clock and a driver for its sign-in flow."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from kitesim.app import create_app
from kitesim.config import KitesimSettings
from kitesim.state import SimState

API_KEY = "test-app"
API_SECRET = "test-app-secret"
REDIRECT_URL = "http://tradedesk.test/api/auth/callback"
# Monday 2025-01-06 09:15 IST: market open, far from the 06:00 token cut-off.
START_AT = datetime(2025, 1, 6, 3, 45, tzinfo=UTC)


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    return hashlib.sha256(f"{api_key}{request_token}{api_secret}".encode()).hexdigest()


class KiteDriver:
    """Walks the browser and API steps of a Kite sign-in against kitesim."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def submit_login(
        self,
        *,
        user_id: str = "DEMO01",
        password: str = "demo",
        api_key: str = API_KEY,
        redirect_params: str = "",
    ) -> httpx.Response:
        form = {
            "user_id": user_id,
            "password": password,
            "api_key": api_key,
            "redirect_params": redirect_params,
        }
        return await self.client.post("/connect/login", data=form)

    async def request_token(self, user_id: str = "DEMO01", *, api_key: str = API_KEY) -> str:
        response = await self.submit_login(user_id=user_id, api_key=api_key)
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        return query["request_token"][0]

    async def exchange(
        self,
        request_token: str,
        *,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        checksum_override: str | None = None,
    ) -> httpx.Response:
        form = {
            "api_key": api_key,
            "request_token": request_token,
            "checksum": checksum_override or checksum(api_key, request_token, api_secret),
        }
        return await self.client.post("/session/token", data=form, headers={"X-Kite-Version": "3"})

    async def sign_in(self, user_id: str = "DEMO01") -> str:
        response = await self.exchange(await self.request_token(user_id))
        assert response.status_code == 200, response.text
        token: str = response.json()["data"]["access_token"]
        return token

    @staticmethod
    def auth(access_token: str, api_key: str = API_KEY) -> dict[str, str]:
        return {"Authorization": f"token {api_key}:{access_token}", "X-Kite-Version": "3"}

    async def profile(self, access_token: str, api_key: str = API_KEY) -> httpx.Response:
        return await self.client.get("/user/profile", headers=self.auth(access_token, api_key))

    async def get(self, access_token: str, path: str, **params: str | list[str]) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth(access_token))

    async def place(self, access_token: str, **fields: str | int | float) -> httpx.Response:
        form = {"validity": "DAY", **{key: str(value) for key, value in fields.items()}}
        return await self.client.post("/orders/regular", data=form, headers=self.auth(access_token))

    async def place_ok(self, access_token: str, **fields: str | int | float) -> str:
        response = await self.place(access_token, **fields)
        assert response.status_code == 200, response.text
        order_id: str = response.json()["data"]["order_id"]
        return order_id

    async def modify(self, access_token: str, order_id: str, **fields: str | int | float) -> httpx.Response:
        form = {key: str(value) for key, value in fields.items()}
        return await self.client.put(
            f"/orders/regular/{order_id}", data=form, headers=self.auth(access_token)
        )

    async def data(self, access_token: str, path: str, **params: str | list[str]) -> Any:
        """The ``data`` of a successful Kite answer."""
        response = await self.get(access_token, path, **params)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "success"
        return response.json()["data"]

    async def set_clock(self, when: datetime) -> None:
        response = await self.client.post("/sim/clock", json={"set_to": when.isoformat()})
        assert response.status_code == 200, response.text

    async def freeze_at(self, when: datetime) -> None:
        """Jump to ``when`` and nearly stop the clock, so real time in a test does not cross a minute."""
        response = await self.client.post("/sim/clock", json={"set_to": when.isoformat(), "speed": 0.001})
        assert response.status_code == 200, response.text

    async def advance(self, seconds: float) -> None:
        response = await self.client.post("/sim/clock", json={"advance_s": seconds})
        assert response.status_code == 200, response.text


@pytest.fixture
def settings() -> KitesimSettings:
    return KitesimSettings(
        _env_file=None,
        api_key=API_KEY,
        api_secret=SecretStr(API_SECRET),
        redirect_url=REDIRECT_URL,
        request_token_ttl_s=300,
        speed=1.0,
        seed=7,
        start_at=START_AT,
    )


@pytest.fixture
def app(settings: KitesimSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def sim(app: FastAPI) -> SimState:
    state = app.state.sim
    assert isinstance(state, SimState)
    return state


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kitesim") as http:
        yield http


@pytest.fixture
def kite(client: httpx.AsyncClient) -> KiteDriver:
    return KiteDriver(client)
