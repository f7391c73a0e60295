"""/api/auth end to end: kitesim in process, real PostgreSQL and Redis, a clock moved by hand."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SPA_ORIGIN,
    ClientFactory,
    SignIn,
    kite_access_token,
    request_token_for,
)
from tradedesk.kit.clock import ManualClock


async def stored_credentials(state: object, broker_id: str) -> object:
    from tradedesk.auth.repository import BrokerCredentialsRepository
    from tradedesk.kit.repository import bind_tenant

    async with state.sessionmaker() as db:  # type: ignore[attr-defined]
        await bind_tenant(db, broker_id)
        return await BrokerCredentialsRepository(db, broker_id).get()


def session_cookie(client: httpx.AsyncClient) -> str | None:
    return client.cookies.get("tradedesk")


class TestLogin:
    async def test_returns_broker_login_url_with_state(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": "s3cret"}
        )
        assert response.status_code == 200
        body = response.json()
        url = urlsplit(body["login_url"])
        query = parse_qs(url.query)
        assert url.path == "/connect/login"
        assert query["api_key"] == [DEMO_API_KEY] and query["v"] == ["3"]
        assert parse_qs(query["redirect_params"][0])["state"] == [body["state"]]
        assert len(body["state"]) >= 40
        assert "tradedesk_signin" in response.cookies
        assert "tradedesk" not in response.cookies  # no session before the broker says yes

    async def test_missing_and_wrong_typed_fields_are_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/auth/login", json={"api_key": 42})
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "ValidationError"
        assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "api_key"), ("body", "api_secret")}

    async def test_form_body_is_415(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/auth/login", data={"api_key": "x", "api_secret": "y"})
        assert response.status_code == 415
        assert response.json()["error"] == "UnsupportedMediaType"


class TestCallback:
    async def _start(self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient) -> tuple[str, str]:
        started = (
            await client.post(
                "/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
            )
        ).json()
        redirect_params = parse_qs(urlsplit(started["login_url"]).query)["redirect_params"][0]
        form = {
            "user_id": "DEMO01",
            "password": "demo",
            "api_key": DEMO_API_KEY,
            "redirect_params": redirect_params,
        }
        answer = await kite_client.post("/connect/login", data=form)
        assert answer.status_code == 302
        back = urlsplit(answer.headers["location"])
        return back.path, back.query

    async def test_full_redirect_flow_signs_in(
        self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient
    ) -> None:
        path, query = await self._start(client, kite_client)
        assert parse_qs(query)["status"] == ["success"]
        response = await client.get(f"{path}?{query}")
        assert response.status_code == 303
        assert response.headers["location"] == f"{SPA_ORIGIN}/"
        status = (await client.get("/api/auth/status")).json()
        assert status["authenticated"] is True and status["broker_id"] == "DEMO01"

    async def test_state_is_single_use(
        self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient
    ) -> None:
        path, query = await self._start(client, kite_client)
        assert (await client.get(f"{path}?{query}")).headers["location"] == f"{SPA_ORIGIN}/"
        again = await client.get(f"{path}?{query}")
        assert again.status_code == 303
        assert "error=invalid_state" in again.headers["location"]

    async def test_link_planted_in_another_browser_signs_nobody_in(
        self, client: httpx.AsyncClient, new_client: ClientFactory, kite_client: httpx.AsyncClient
    ) -> None:
        path, query = await self._start(client, kite_client)
        victim = new_client()
        response = await victim.get(f"{path}?{query}")
        assert "error=invalid_state" in response.headers["location"]
        assert (await victim.get("/api/auth/status")).json() == {"authenticated": False} | {
            k: None
            for k in (
                "broker_id",
                "user_name",
                "email",
                "device_id",
                "session_expires_at",
                "csrf_token",
                "broker",
            )
        }
        # The rightful browser can still finish: the planted attempt did not burn the state.
        assert (await client.get(f"{path}?{query}")).headers["location"] == f"{SPA_ORIGIN}/"

    async def test_unknown_state_redirects_with_error(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/auth/callback?request_token=abc&status=success&state=nope")
        assert response.status_code == 303
        assert response.headers["location"].startswith(f"{SPA_ORIGIN}/?error=invalid_state")
        assert session_cookie(client) is None

    async def test_expired_state_redirects_with_error(
        self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient, clock: ManualClock
    ) -> None:
        path, query = await self._start(client, kite_client)
        clock.advance(11 * 60)
        response = await client.get(f"{path}?{query}")
        assert "error=invalid_state" in response.headers["location"]

    async def test_cancelled_sign_in(self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient) -> None:
        path, query = await self._start(client, kite_client)
        state = parse_qs(query)["state"][0]
        response = await client.get(f"{path}?status=cancelled&state={state}")
        assert "error=signin_cancelled" in response.headers["location"]

    async def test_wrong_secret_is_reported_not_signed_in(
        self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient
    ) -> None:
        started = (
            await client.post("/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": "wrong-secret"})
        ).json()
        redirect_params = parse_qs(urlsplit(started["login_url"]).query)["redirect_params"][0]
        token = await request_token_for(kite_client, "DEMO01", redirect_params=redirect_params)
        response = await client.get(
            f"/api/auth/callback?request_token={token}&status=success&state={started['state']}"
        )
        location = response.headers["location"]
        assert "error=broker_rejected" in location and "checksum" in location.lower()
        assert session_cookie(client) is None


class TestAuthenticate:
    async def test_happy_path_sets_session_and_device_cookies(
        self, client: httpx.AsyncClient, sign_in: SignIn
    ) -> None:
        status = await sign_in(client, "DEMO01")
        assert status["authenticated"] is True
        assert status["broker_id"] == "DEMO01"
        assert status["broker"] == {"state": "connected", "token_expires_at": "2026-12-01T00:30:00Z"}
        assert session_cookie(client) and client.cookies.get("tradedesk_device")

    async def test_cookie_attributes(self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient) -> None:
        token = await request_token_for(kite_client, "DEMO01")
        response = await client.post(
            "/api/auth/authenticate",
            json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token},
        )
        cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("tradedesk="))
        lowered = cookie.lower()
        assert "httponly" in lowered and "path=/" in lowered and "samesite=lax" in lowered
        assert response.headers["cache-control"] == "no-store"

    async def test_wrong_checksum_is_401_saying_so(
        self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient
    ) -> None:
        token = await request_token_for(kite_client, "DEMO01")
        response = await client.post(
            "/api/auth/authenticate",
            json={"api_key": DEMO_API_KEY, "api_secret": "not-the-secret", "request_token": token},
        )
        assert response.status_code == 401
        assert response.json()["error"] == "SignInRejected"
        assert "checksum" in response.json()["detail"].lower()
        assert session_cookie(client) is None

    async def test_reused_request_token_is_401_saying_so(
        self, client: httpx.AsyncClient, new_client: ClientFactory, kite_client: httpx.AsyncClient
    ) -> None:
        token = await request_token_for(kite_client, "DEMO01")
        body = {"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token}
        assert (await client.post("/api/auth/authenticate", json=body)).status_code == 200
        other = new_client()
        response = await other.post("/api/auth/authenticate", json=body)
        assert response.status_code == 401
        assert "already been used" in response.json()["detail"]
        assert session_cookie(other) is None

    async def test_expired_request_token_is_401_saying_so(
        self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient, kitesim: object
    ) -> None:
        token = await request_token_for(kite_client, "DEMO01")
        kitesim.state.sim.clock.advance(301)  # type: ignore[attr-defined]
        response = await client.post(
            "/api/auth/authenticate",
            json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token},
        )
        assert response.status_code == 401
        assert "expired" in response.json()["detail"]

    async def test_bad_input_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/auth/authenticate", json={"api_key": DEMO_API_KEY, "request_token": []}
        )
        assert response.status_code == 422
        locs = {tuple(e["loc"]) for e in response.json()["errors"]}
        assert ("body", "api_secret") in locs and ("body", "request_token") in locs

    async def test_sign_in_rotates_the_session_id(
        self, client: httpx.AsyncClient, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        first = await sign_in(client, "DEMO01")
        old_cookie = session_cookie(client)
        second = await sign_in(client, "DEMO01")
        assert session_cookie(client) != old_cookie
        assert first["csrf_token"] != second["csrf_token"]
        stale = new_client()
        stale.cookies.set("tradedesk", str(old_cookie), domain="api.test")
        assert (await stale.get("/api/auth/status")).json()["authenticated"] is False

    async def test_planted_cookie_is_not_adopted(self, client: httpx.AsyncClient, sign_in: SignIn) -> None:
        client.cookies.set("tradedesk", "attacker-chosen-value", domain="api.test")
        await sign_in(client, "DEMO01")
        assert session_cookie(client) != "attacker-chosen-value"

    async def test_device_id_survives_sign_out_and_back_in(
        self, client: httpx.AsyncClient, sign_in: SignIn
    ) -> None:
        first = await sign_in(client)
        assert (await client.post("/api/auth/logout")).status_code == 204
        second = await sign_in(client)
        assert first["device_id"] == second["device_id"]


class TestSetAccessToken:
    async def test_happy_path(self, client: httpx.AsyncClient, kite_client: httpx.AsyncClient) -> None:
        access_token = await kite_access_token(kite_client, "DEMO02")
        response = await client.post(
            "/api/auth/set-access-token", json={"api_key": DEMO_API_KEY, "access_token": access_token}
        )
        assert response.status_code == 200
        assert response.json()["broker_id"] == "DEMO02"
        assert access_token not in response.text

    async def test_wrong_token_is_401_saying_so(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/auth/set-access-token", json={"api_key": DEMO_API_KEY, "access_token": "nope"}
        )
        assert response.status_code == 401
        assert response.json()["error"] == "BrokerTokenInvalid"
        assert "access token" in response.json()["detail"]
        assert session_cookie(client) is None

    async def test_missing_field_is_422(self, client: httpx.AsyncClient) -> None:
        assert (
            await client.post("/api/auth/set-access-token", json={"api_key": DEMO_API_KEY})
        ).status_code == 422


class TestStatus:
    async def test_anonymous_is_200_without_cookie(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/auth/status")
        assert response.status_code == 200
        assert response.json()["authenticated"] is False
        assert "set-cookie" not in response.headers

    async def test_tampered_cookie_is_anonymous(self, client: httpx.AsyncClient, sign_in: SignIn) -> None:
        await sign_in(client)
        value = str(session_cookie(client))
        client.cookies.set(
            "tradedesk", value[:-10] + ("A" if value[-10] != "A" else "B") + value[-9:], domain="api.test"
        )
        assert (await client.get("/api/auth/status")).json()["authenticated"] is False

    async def test_signed_but_unknown_id_is_anonymous_and_not_written(
        self, client: httpx.AsyncClient, api: object
    ) -> None:
        sessions = api.state.td.sessions  # type: ignore[attr-defined]
        forged = sessions._signer.sign("0123abcd" + "x" * 43)
        client.cookies.set("tradedesk", forged, domain="api.test")
        assert (await client.get("/api/auth/status")).json()["authenticated"] is False
        assert await sessions.store.load(sessions.key_hash_of_cookie(forged), idle_timeout_s=60) is None

    async def test_broker_state_expires_at_six_ist(
        self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock
    ) -> None:
        await sign_in(client)
        clock.advance(20 * 3600 + 29 * 60)  # 05:59 IST next day
        assert (await client.get("/api/auth/status")).json()["broker"]["state"] == "connected"
        clock.advance(2 * 60)
        body = (await client.get("/api/auth/status")).json()
        assert body["authenticated"] is True
        assert body["broker"]["state"] == "expired"

    async def test_a_remembered_status_answer_is_only_reused_for_the_same_record_and_token_state(
        self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock, api: object
    ) -> None:
        services = api.state.td  # type: ignore[attr-defined]
        await sign_in(client)
        record = await services.sessions.resolve(client.cookies.get("tradedesk"))
        assert record is not None
        first = services.auth.status_json(record)
        assert services.auth.status_json(record) is first
        assert first == services.auth.status_of(record).model_dump_json().encode()
        clock.advance(21 * 3600)  # past 06:00 IST: the broker token has expired, the record is the same
        expired = services.auth.status_json(record)
        assert json.loads(expired)["broker"]["state"] == "expired"
        touched = record.model_copy(update={"last_seen_at": clock.now()})
        assert (
            services.auth.status_json(touched) == services.auth.status_of(touched).model_dump_json().encode()
        )
        assert (
            json.loads(services.auth.status_json(touched))["session_expires_at"]
            != json.loads(expired)["session_expires_at"]
        )
        assert (
            services.auth.status_json(None) == b'{"authenticated":false,"broker_id":null,"user_name":null,'
            b'"email":null,"device_id":null,"session_expires_at":null,"csrf_token":null,"broker":null}'
        )

    async def test_status_follows_the_broker_token_and_the_touch_between_writes(
        self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock
    ) -> None:
        """The status answer is remembered per stored record: it must still change when the broker token
        expires while the record stands, and when the touch writes a new record."""
        await sign_in(client)
        clock.advance(20 * 3600 + 29 * 60 + 30)  # 05:59:30 IST: this read touches the session
        first = (await client.get("/api/auth/status")).json()
        assert first["broker"]["state"] == "connected"
        assert (await client.get("/api/auth/status")).json() == first
        clock.advance(40)  # 06:00:10, inside the touch interval: the same stored record
        second = (await client.get("/api/auth/status")).json()
        assert second == first | {"broker": first["broker"] | {"state": "expired"}}
        clock.advance(30)  # past the touch interval: a new record, the session's end slides
        third = (await client.get("/api/auth/status")).json()
        assert datetime.fromisoformat(third["session_expires_at"]) == datetime.fromisoformat(
            first["session_expires_at"]
        ) + timedelta(seconds=70)
        assert third == second | {"session_expires_at": third["session_expires_at"]}


class TestExpiry:
    async def test_idle_timeout(self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock) -> None:
        await sign_in(client)
        clock.advance(23 * 3600)
        assert (await client.get("/api/auth/status")).json()["authenticated"] is True
        clock.advance(23 * 3600)  # activity above slid the window
        assert (await client.get("/api/auth/status")).json()["authenticated"] is True
        clock.advance(24 * 3600 + 1)
        assert (await client.get("/api/auth/status")).json()["authenticated"] is False

    async def test_absolute_timeout_despite_activity(
        self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock
    ) -> None:
        await sign_in(client)
        for _ in range(7):
            clock.advance(23 * 3600)
            assert (await client.get("/api/auth/status")).json()["authenticated"] is True
        clock.advance(7 * 3600 + 1)  # 7 days and a second after sign-in
        assert (await client.get("/api/auth/status")).json()["authenticated"] is False
        assert (await client.get("/api/auth/sessions")).status_code == 401

    async def test_last_seen_written_at_most_once_a_minute(
        self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock
    ) -> None:
        await sign_in(client)
        first = (await client.get("/api/auth/sessions")).json()[0]["last_seen_at"]
        clock.advance(30)
        assert (await client.get("/api/auth/sessions")).json()[0]["last_seen_at"] == first
        clock.advance(31)
        assert (await client.get("/api/auth/sessions")).json()[0]["last_seen_at"] != first


class TestLogout:
    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/auth/logout")
        assert response.status_code == 401
        assert response.json()["error"] == "NotAuthenticated"

    async def test_logout_ends_only_this_browser(
        self, client: httpx.AsyncClient, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        other = new_client()
        await sign_in(client)
        await sign_in(other)
        response = await client.post("/api/auth/logout")
        assert response.status_code == 204
        assert session_cookie(client) is None
        assert (await client.get("/api/auth/status")).json()["authenticated"] is False
        assert (await other.get("/api/auth/status")).json()["authenticated"] is True
        assert len((await other.get("/api/auth/sessions")).json()) == 1


class TestSessions:
    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/auth/sessions")).status_code == 401

    async def test_lists_each_device_once_and_marks_current(
        self, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        laptop = new_client(user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
        phone = new_client(user_agent="Mozilla/5.0 (Linux; Android 15) Chrome/140.0 Mobile Safari/537.36")
        stranger = new_client()
        await sign_in(laptop, "DEMO01")
        await sign_in(phone, "DEMO01")
        await sign_in(stranger, "DEMO03")
        listed = (await laptop.get("/api/auth/sessions")).json()
        assert len(listed) == 2
        assert sorted(s["device_label"] for s in listed) == ["Chrome on Android", "Firefox on Linux"]
        assert [s["current"] for s in listed].count(True) == 1
        assert next(s for s in listed if s["current"])["device_label"] == "Firefox on Linux"
        assert all(
            set(s)
            == {
                "handle",
                "device_id",
                "device_label",
                "ip",
                "created_at",
                "last_seen_at",
                "expires_at",
                "current",
            }
            for s in listed
        )
        cookie = str(session_cookie(laptop))
        assert all(cookie not in s["handle"] and s["handle"] not in cookie for s in listed)


class TestRevokeSession:
    async def test_revoke_another_device(self, new_client: ClientFactory, sign_in: SignIn) -> None:
        laptop, phone = new_client(), new_client()
        await sign_in(laptop)
        await sign_in(phone)
        listed = (await laptop.get("/api/auth/sessions")).json()
        handle = next(s["handle"] for s in listed if not s["current"])
        assert (await laptop.delete(f"/api/auth/sessions/{handle}")).status_code == 204
        assert (await phone.get("/api/auth/status")).json()["authenticated"] is False
        assert (await laptop.delete(f"/api/auth/sessions/{handle}")).status_code == 404

    async def test_another_users_handle_is_404(self, new_client: ClientFactory, sign_in: SignIn) -> None:
        mine, theirs = new_client(), new_client()
        await sign_in(mine, "DEMO01")
        await sign_in(theirs, "DEMO03")
        their_handle = (await theirs.get("/api/auth/sessions")).json()[0]["handle"]
        response = await mine.delete(f"/api/auth/sessions/{their_handle}")
        assert response.status_code == 404
        assert response.json()["error"] == "SessionNotFound"
        assert (await theirs.get("/api/auth/status")).json()["authenticated"] is True

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.delete("/api/auth/sessions/whatever")).status_code == 401

    async def test_unknown_handle_is_404(self, client: httpx.AsyncClient, sign_in: SignIn) -> None:
        await sign_in(client)
        assert (await client.delete("/api/auth/sessions/no-such-handle")).status_code == 404


class TestRevokeOthers:
    async def test_only_calling_session_remains(self, new_client: ClientFactory, sign_in: SignIn) -> None:
        a, b, c, stranger = new_client(), new_client(), new_client(), new_client()
        for browser in (a, b, c):
            await sign_in(browser, "DEMO01")
        await sign_in(stranger, "DEMO04")
        assert (await a.post("/api/auth/sessions/revoke-others")).status_code == 204
        assert [s["current"] for s in (await a.get("/api/auth/sessions")).json()] == [True]
        assert (await b.get("/api/auth/status")).json()["authenticated"] is False
        assert (await c.get("/api/auth/status")).json()["authenticated"] is False
        assert (await stranger.get("/api/auth/status")).json()["authenticated"] is True

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.post("/api/auth/sessions/revoke-others")).status_code == 401


class TestDisconnect:
    async def test_invalidates_token_wipes_credentials_and_ends_all_sessions(
        self, new_client: ClientFactory, sign_in: SignIn, kite_client: httpx.AsyncClient, api: object
    ) -> None:
        a, b = new_client(), new_client()
        await sign_in(a, "DEMO01")
        await sign_in(b, "DEMO01")
        state = api.state.td  # type: ignore[attr-defined]
        records = await state.sessions.list_for_user("DEMO01")
        held = [state.sessions.credentials_of(r) for r in records]
        assert await stored_credentials(state, "DEMO01") is not None
        assert len({c.access_token for c in held}) == 2
        assert (await a.post("/api/auth/disconnect")).status_code == 204
        assert (await a.get("/api/auth/status")).json()["authenticated"] is False
        assert (await b.get("/api/auth/status")).json()["authenticated"] is False
        for credentials in held:
            profile = await kite_client.get(
                "/user/profile",
                headers={
                    "Authorization": f"token {credentials.api_key}:{credentials.access_token}",
                    "X-Kite-Version": "3",
                },
            )
            assert profile.status_code == 403
        assert await stored_credentials(state, "DEMO01") is None

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert (await client.post("/api/auth/disconnect")).status_code == 401


class TestCsrf:
    async def test_missing_token_is_403(self, client: httpx.AsyncClient, sign_in: SignIn) -> None:
        await sign_in(client)
        del client.headers["X-CSRF-Token"]
        response = await client.post("/api/auth/sessions/revoke-others")
        assert response.status_code == 403
        assert response.json()["error"] == "CsrfFailed"

    async def test_wrong_token_is_403(self, client: httpx.AsyncClient, sign_in: SignIn) -> None:
        await sign_in(client)
        client.headers["X-CSRF-Token"] = "guess"
        assert (await client.post("/api/auth/logout")).status_code == 403
        assert (await client.get("/api/auth/status")).json()["authenticated"] is True

    async def test_token_of_another_session_is_403(
        self, client: httpx.AsyncClient, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        await sign_in(client, "DEMO01")
        other = new_client()
        other_status = await sign_in(other, "DEMO01")
        client.headers["X-CSRF-Token"] = str(other_status["csrf_token"])
        assert (await client.post("/api/auth/logout")).status_code == 403


class TestOriginGuard:
    @pytest.mark.parametrize(
        "origin",
        [
            "http://evil.test",
            "http://spa.test.evil.test",
            "http://spa.tes",
            "https://spa.test",
            "http://spa.test:8080",
            "null",
        ],
    )
    async def test_foreign_and_look_alike_origins_are_403(
        self, new_client: ClientFactory, kite_client: httpx.AsyncClient, origin: str
    ) -> None:
        token = await request_token_for(kite_client, "DEMO01")
        client = new_client(origin=origin)
        response = await client.post(
            "/api/auth/authenticate",
            json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token},
        )
        assert response.status_code == 403
        assert response.json()["error"] == "OriginRejected"
        assert session_cookie(client) is None

    async def test_no_origin_nor_referer_is_403(self, new_client: ClientFactory) -> None:
        response = await new_client(origin=None).post(
            "/api/auth/login", json={"api_key": "k", "api_secret": "s"}
        )
        assert response.status_code == 403

    async def test_referer_from_allowed_origin_is_accepted(self, new_client: ClientFactory) -> None:
        client = new_client(origin=None)
        response = await client.post(
            "/api/auth/login",
            json={"api_key": "k", "api_secret": "s"},
            headers={"Referer": f"{SPA_ORIGIN}/settings"},
        )
        assert response.status_code == 200

    async def test_cross_site_fetch_without_origin_is_403(self, new_client: ClientFactory) -> None:
        client = new_client(origin=None)
        response = await client.post(
            "/api/auth/login",
            json={"api_key": "k", "api_secret": "s"},
            headers={"Sec-Fetch-Site": "cross-site", "Referer": f"{SPA_ORIGIN}/"},
        )
        assert response.status_code == 403


class TestCors:
    async def test_preflight_from_spa_is_allowed(self, new_client: ClientFactory) -> None:
        response = await new_client().options(
            "/api/auth/logout",
            headers={
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-csrf-token,content-type",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == SPA_ORIGIN
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "x-csrf-token" in response.headers["access-control-allow-headers"].lower()

    async def test_preflight_from_foreign_origin_is_denied(self, new_client: ClientFactory) -> None:
        response = await new_client(origin="http://evil.test").options(
            "/api/auth/logout", headers={"Access-Control-Request-Method": "POST"}
        )
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers

    async def test_error_responses_carry_cors_headers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/auth/sessions")
        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == SPA_ORIGIN
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"


class TestSecretsNeverLeak:
    async def test_secret_and_access_token_absent_from_responses_and_logs(
        self,
        client: httpx.AsyncClient,
        kite_client: httpx.AsyncClient,
        caplog: pytest.LogCaptureFixture,
        api: object,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        bodies: list[str] = []
        token = await request_token_for(kite_client, "DEMO01")
        for response in [
            await client.post(
                "/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
            ),
            await client.post(
                "/api/auth/authenticate",
                json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token},
            ),
        ]:
            bodies.append(response.text + str(response.headers))
        client.headers["X-CSRF-Token"] = client_status_csrf = (await client.get("/api/auth/status")).json()[
            "csrf_token"
        ]
        assert client_status_csrf
        for response in [
            await client.get("/api/auth/status"),
            await client.get("/api/auth/sessions"),
            await client.post(
                "/api/auth/authenticate",
                json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": "bad"},
            ),
            await client.post(
                "/api/auth/set-access-token", json={"api_key": DEMO_API_KEY, "access_token": "x" * 32}
            ),
            await client.get("/openapi.json"),
        ]:
            bodies.append(response.text + str(response.headers))
        state = api.state.td  # type: ignore[attr-defined]
        record = (await state.sessions.list_for_user("DEMO01"))[0]
        access_token = state.sessions.credentials_of(record).access_token
        assert (await client.post("/api/auth/disconnect")).status_code == 204
        everything = "\n".join(bodies) + "\n" + caplog.text
        assert DEMO_API_SECRET not in everything
        assert access_token not in everything
        assert access_token not in record.model_dump_json()


class TestHealth:
    async def test_healthz(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok"}

    async def test_readyz(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "database": "ok", "sessions": "ok"}

    async def test_openapi_documents_every_route_with_a_response_model(
        self, client: httpx.AsyncClient
    ) -> None:
        spec = (await client.get("/openapi.json")).json()
        for path in ("/api/auth/login", "/api/auth/status", "/api/auth/sessions", "/readyz"):
            assert path in spec["paths"]
        status_schema = spec["paths"]["/api/auth/status"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"]
        assert status_schema == {"$ref": "#/components/schemas/AuthStatus"}
        assert "SessionCookie" in spec["components"]["securitySchemes"]


class TestSignInRateLimit:
    async def test_too_many_attempts_from_one_address_are_429(
        self, api: object, new_client: ClientFactory
    ) -> None:
        api.state.td.sign_in_limiter.per_address_limit = 3  # type: ignore[attr-defined]
        client = new_client()
        body = {"api_key": DEMO_API_KEY, "api_secret": "wrong", "request_token": "nope"}
        for _ in range(3):
            assert (await client.post("/api/auth/authenticate", json=body)).status_code == 401
        blocked = await client.post("/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": "s"})
        assert blocked.status_code == 429
        assert blocked.json()["error"] == "TooManyRequests"
        assert 1 <= int(blocked.headers["retry-after"]) <= 600
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api, client=("198.51.100.9", 1)),  # type: ignore[arg-type]
            base_url="http://api.test",
            headers={"Origin": SPA_ORIGIN},
        )
        assert (
            await other.post("/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": "s"})
        ).status_code == 200
        await other.aclose()
