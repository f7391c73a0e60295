"""Sign-in under tampered input: odd characters never reach a 500, attempts are limited per api_key as
well as per address, pending redirect sign-ins are bounded, and a stored session ip is an IP address."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import (
    API_BASE,
    DEMO_API_KEY,
    DEMO_API_SECRET,
    REDIS_URL,
    SPA_ORIGIN,
    ClientFactory,
    SignIn,
)
from tradedesk.kit.clock import ManualClock

# Kite keys and tokens are ASCII letters and digits; these are what a tampering client sends instead.
ODD_VALUES = [
    "ключ",
    "tok\u00e9n",
    "emoji\U0001f600",
    "nul\x00byte",
    "new\nline",
    "tab\there",
    "del\x7fete",
    "\u200bzero-width",
]


def browser(
    api: object, address: str, *, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api, client=(address, 5555)),  # type: ignore[arg-type]
        base_url=API_BASE,
        headers={"Origin": SPA_ORIGIN, "User-Agent": user_agent},
    )


def assert_clear_refusal(response: httpx.Response, value: str) -> None:
    assert response.status_code in (401, 422), response.text
    body = response.json()
    assert set(body) >= {"error", "detail"}
    assert body["detail"]
    assert value not in response.text


class TestOddCharactersInSignInFields:
    @pytest.mark.parametrize("value", ODD_VALUES)
    @pytest.mark.parametrize("field", ["api_key", "api_secret", "request_token"])
    async def test_authenticate(self, client: httpx.AsyncClient, field: str, value: str) -> None:
        body = {"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": "abc123"}
        body[field] = value
        assert_clear_refusal(await client.post("/api/auth/authenticate", json=body), value)

    @pytest.mark.parametrize("value", ODD_VALUES)
    @pytest.mark.parametrize("field", ["api_key", "access_token"])
    async def test_set_access_token(self, client: httpx.AsyncClient, field: str, value: str) -> None:
        body = {"api_key": DEMO_API_KEY, "access_token": "abc123"}
        body[field] = value
        assert_clear_refusal(await client.post("/api/auth/set-access-token", json=body), value)

    @pytest.mark.parametrize("value", ODD_VALUES)
    @pytest.mark.parametrize("field", ["api_key", "api_secret"])
    async def test_login(self, client: httpx.AsyncClient, field: str, value: str) -> None:
        body = {"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
        body[field] = value
        response = await client.post("/api/auth/login", json=body)
        assert response.status_code == 422, response.text
        assert_clear_refusal(response, value)

    async def test_the_refusal_names_the_field(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/auth/set-access-token", json={"api_key": DEMO_API_KEY, "access_token": "tok\u00e9n"}
        )
        assert response.status_code == 422
        assert response.json()["error"] == "ValidationError"
        assert "access_token" in response.json()["detail"]


class TestOddCharactersOnTheCallback:
    async def _login(self, client: httpx.AsyncClient) -> str:
        response = await client.post(
            "/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
        )
        assert response.status_code == 200
        return str(response.json()["state"])

    @pytest.mark.parametrize(
        "state", ["ünïcode-state", "state\x00", "line\nbreak", "\U0001f600" * 10, "s" * 2000]
    )
    async def test_state_redirects_with_error(self, client: httpx.AsyncClient, state: str) -> None:
        await self._login(client)  # this browser holds a signed sign-in cookie
        response = await client.get(
            f"/api/auth/callback?request_token=abc&status=success&state={quote(state, safe='')}"
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith(f"{SPA_ORIGIN}/?error=invalid_state")

    @pytest.mark.parametrize("token", ["tökén", "tok\x00en", "t" * 2000])
    async def test_request_token_redirects_with_error(self, client: httpx.AsyncClient, token: str) -> None:
        state = await self._login(client)
        response = await client.get(
            f"/api/auth/callback?request_token={quote(token, safe='')}&status=success&state={state}"
        )
        assert response.status_code == 303
        assert "error=" in response.headers["location"]
        assert client.cookies.get("tradedesk") is None


class TestPerKeyRateLimit:
    async def test_rotating_addresses_does_not_buy_more_attempts(self, api: object) -> None:
        limiter = api.state.td.sign_in_limiter  # type: ignore[attr-defined]
        limiter.per_key_limit = 4
        body = {"api_key": DEMO_API_KEY, "api_secret": "wrong", "request_token": "nope"}
        clients = [browser(api, f"198.51.100.{n}") for n in range(1, 7)]
        try:
            for client in clients[:4]:
                assert (await client.post("/api/auth/authenticate", json=body)).status_code == 401
            blocked = await clients[4].post("/api/auth/authenticate", json=body)
            assert blocked.status_code == 429
            assert blocked.json()["error"] == "TooManyRequests"
            assert "api_key" in blocked.json()["detail"]
            assert 1 <= int(blocked.headers["retry-after"]) <= limiter.window_s
            for path, payload in (
                ("/api/auth/login", {"api_key": DEMO_API_KEY, "api_secret": "s"}),
                ("/api/auth/set-access-token", {"api_key": DEMO_API_KEY, "access_token": "x" * 32}),
            ):
                assert (await clients[5].post(path, json=payload)).status_code == 429
            # Another app's key from the same address is not held back.
            other = await clients[5].post(
                "/api/auth/login", json={"api_key": "another-app", "api_secret": "s"}
            )
            assert other.status_code == 200
        finally:
            for client in clients:
                await client.aclose()

    @pytest.mark.parametrize("store_backend", ["redis"], indirect=True)
    async def test_the_limiter_never_sees_the_raw_key(self, api: object, redis_prefix: str) -> None:
        client = browser(api, "198.51.100.77")
        try:
            await client.post("/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": "s"})
        finally:
            await client.aclose()
        redis = Redis.from_url(REDIS_URL)
        try:
            keys = [k.decode() async for k in redis.scan_iter(match=f"{redis_prefix}rl:*")]
        finally:
            await redis.aclose()
        assert len(keys) == 2
        assert not any(DEMO_API_KEY in key for key in keys)


class TestPendingSignInBound:
    async def _login(self, client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
        )

    async def test_full_bound_answers_503_with_retry_after_until_one_expires(
        self, api: object, new_client: ClientFactory, clock: ManualClock
    ) -> None:
        settings = api.state.td.settings  # type: ignore[attr-defined]
        api.state.td.auth.pending_signin_max = 10  # type: ignore[attr-defined]
        client = new_client()
        for _ in range(10):
            assert (await self._login(client)).status_code == 200
            clock.advance(30)
        refused = await self._login(client)
        assert refused.status_code == 503
        assert refused.json()["error"] == "TooManySignInsPending"
        assert "sign-in" in refused.json()["detail"]
        # The oldest was started 300 s ago and lives 600 s.
        assert int(refused.headers["retry-after"]) == settings.pending_signin_ttl_s - 300
        assert "tradedesk_signin" not in refused.cookies
        clock.advance(settings.pending_signin_ttl_s - 300 + 1)
        assert (await self._login(client)).status_code == 200

    async def test_a_finished_sign_in_frees_its_place(self, api: object, new_client: ClientFactory) -> None:
        api.state.td.auth.pending_signin_max = 10  # type: ignore[attr-defined]
        client = new_client()
        states = [(await self._login(client)).json()["state"] for _ in range(10)]
        assert (await self._login(client)).status_code == 503
        # The browser holds the cookie of its latest sign-in; the broker sends it back cancelled.
        back = await client.get(f"/api/auth/callback?status=cancelled&state={states[-1]}")
        assert "error=signin_cancelled" in back.headers["location"]
        assert (await self._login(client)).status_code == 200


class TestStoredIp:
    @pytest.mark.parametrize(
        ("peer", "stored"),
        [
            ("not-an-ip", None),
            ("203.0.113.7, 10.0.0.1", None),
            ("<script>", None),
            ("2001:DB8::1", "2001:db8::1"),
            ("192.0.2.44", "192.0.2.44"),
        ],
    )
    async def test_only_an_ip_address_is_stored(
        self, api: object, sign_in: SignIn, peer: str, stored: str | None
    ) -> None:
        client = browser(api, peer)
        try:
            await sign_in(client)
            sessions = (await client.get("/api/auth/sessions")).json()
        finally:
            await client.aclose()
        assert [s["ip"] for s in sessions] == [stored]
