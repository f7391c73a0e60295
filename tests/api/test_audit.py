"""GET /api/audit and the events behind it: every sign-in, sign-out, revocation and disconnect lands in
the user's own trail, in the same transaction as the change it describes; failed sign-ins that never
reach an account go to the operator log instead."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    ClientFactory,
    SignIn,
    kite_access_token,
    request_token_for,
)
from tradedesk import audit
from tradedesk.audit import Actor, AuditKind, AuditOutcome
from tradedesk.kit.clock import ManualClock


async def events(client: httpx.AsyncClient, **params: str | int) -> list[dict[str, object]]:
    response = await client.get("/api/audit", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def kinds(items: list[dict[str, object]]) -> list[object]:
    return [item["kind"] for item in items]


async def current_handle(client: httpx.AsyncClient) -> str:
    sessions = (await client.get("/api/auth/sessions")).json()
    return str(next(s["handle"] for s in sessions if s["current"]))


def cursor_of(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


class TestListAudit:
    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/audit")
        assert response.status_code == 401
        assert response.json()["error"] == "NotAuthenticated"

    async def test_another_users_events_are_never_visible(
        self, new_client: ClientFactory, sign_in: SignIn
    ) -> None:
        alice, bob = new_client(), new_client()
        await sign_in(alice, "DEMO01")
        await sign_in(bob, "DEMO02")
        for _ in range(3):
            assert (await alice.post("/api/auth/logout")).status_code == 204
            await sign_in(alice, "DEMO01")
        alice_events, bob_events = await events(alice), await events(bob)
        assert kinds(alice_events) == ["sign_in", "logout"] * 3 + ["sign_in"]
        assert kinds(bob_events) == ["sign_in"]
        bob_handle = await current_handle(bob)
        assert bob_events[0]["session_handle"] == bob_handle
        assert bob_handle not in {e["session_handle"] for e in alice_events}
        # A cursor naming ids past anyone's events still pages through one's own only.
        page = (await bob.get("/api/audit", params={"cursor": cursor_of({"audit_before": 2**62})})).json()
        assert [e["id"] for e in page["items"]] == [e["id"] for e in bob_events]

    @pytest.mark.parametrize(
        ("params", "status", "error"),
        [
            ({"kind": "password_changed"}, 422, "ValidationError"),
            ({"limit": 0}, 422, "ValidationError"),
            ({"limit": 201}, 422, "ValidationError"),
            ({"limit": "ten"}, 422, "ValidationError"),
            ({"cursor": "x" * 201}, 422, "ValidationError"),
            ({"cursor": "not a cursor"}, 400, "BadRequest"),
            ({"cursor": "ünïcödé"}, 400, "BadRequest"),
            ({"cursor": cursor_of({"audit_before": 2**63})}, 400, "BadRequest"),
            ({"cursor": cursor_of({"audit_before": 10**30})}, 400, "BadRequest"),
            ({"cursor": cursor_of({"audit_before": 0})}, 400, "BadRequest"),
            ({"cursor": cursor_of({"audit_before": "5"})}, 400, "BadRequest"),
            ({"cursor": cursor_of({"audit_before": True})}, 400, "BadRequest"),
            ({"cursor": cursor_of({"audit_before": 1.5})}, 400, "BadRequest"),
            ({"cursor": cursor_of([1])}, 400, "BadRequest"),
            # A trades cursor is not an audit cursor.
            ({"cursor": cursor_of({"before": 5})}, 400, "BadRequest"),
        ],
    )
    async def test_bad_input_is_4xx_with_a_clear_body(
        self, client: httpx.AsyncClient, sign_in: SignIn, params: dict[str, object], status: int, error: str
    ) -> None:
        await sign_in(client)
        response = await client.get("/api/audit", params=params)  # type: ignore[arg-type]
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] == error
        assert body["detail"].endswith(".")
        if status == 400:
            assert "cursor" in body["detail"]

    async def test_pages_newest_first_and_filters_by_kind(
        self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock
    ) -> None:
        await sign_in(client)
        for _ in range(3):
            clock.advance(60)
            assert (await client.post("/api/auth/logout")).status_code == 204
            clock.advance(60)
            await sign_in(client)
        everything = await events(client, limit=200)
        assert len(everything) == 7
        ids = [e["id"] for e in everything]
        assert ids == sorted(ids, reverse=True)  # type: ignore[type-var]
        times = [e["occurred_at"] for e in everything]
        assert times == sorted(times, reverse=True)  # type: ignore[type-var]

        paged: list[object] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/audit", params=params)).json()
            assert len(page["items"]) <= 3
            paged += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == ids

        logouts = await events(client, kind="logout")
        assert kinds(logouts) == ["logout"] * 3
        assert [e["id"] for e in logouts] == [e["id"] for e in everything if e["kind"] == "logout"]
        first = (await client.get("/api/audit", params={"kind": "logout", "limit": 2})).json()
        rest = await events(client, kind="logout", cursor=first["next_cursor"])
        assert [e["id"] for e in first["items"] + rest] == [e["id"] for e in logouts]


class TestEventKinds:
    async def test_sign_in_carries_time_address_device_and_session(
        self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock
    ) -> None:
        await sign_in(client)
        [event] = await events(client)
        assert event["kind"] == "sign_in" and event["outcome"] == "success"
        assert event["detail"] == {"method": "request_token"}
        assert event["ip"] == "203.0.113.7"
        assert event["device_label"] == "Firefox on Linux"
        assert event["device_id"] == (await client.get("/api/auth/status")).json()["device_id"]
        assert event["session_handle"] == await current_handle(client)
        assert event["occurred_at"] == clock.now().isoformat().replace("+00:00", "Z")

    async def test_access_token_and_redirect_sign_ins_name_their_method(
        self, new_client: ClientFactory, kite_client: httpx.AsyncClient
    ) -> None:
        by_token = new_client()
        token = await kite_access_token(kite_client, "DEMO01")
        response = await by_token.post(
            "/api/auth/set-access-token", json={"api_key": DEMO_API_KEY, "access_token": token}
        )
        assert response.status_code == 200
        by_token.headers["X-CSRF-Token"] = response.json()["csrf_token"]

        by_redirect = new_client()
        started = (
            await by_redirect.post(
                "/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
            )
        ).json()
        redirect_params = parse_qs(urlsplit(started["login_url"]).query)["redirect_params"][0]
        request_token = await request_token_for(kite_client, "DEMO01", redirect_params=redirect_params)
        back = await by_redirect.get(
            "/api/auth/callback",
            params={"request_token": request_token, "status": "success", "state": started["state"]},
        )
        assert back.status_code == 303 and "error" not in back.headers["location"]

        trail = await events(by_token)
        assert [(e["kind"], e["detail"]) for e in trail] == [
            ("sign_in", {"method": "redirect"}),
            ("sign_in", {"method": "access_token"}),
        ]

    async def test_logout(self, client: httpx.AsyncClient, sign_in: SignIn) -> None:
        await sign_in(client)
        handle = await current_handle(client)
        assert (await client.post("/api/auth/logout")).status_code == 204
        assert (await client.get("/api/auth/status")).json()["authenticated"] is False
        await sign_in(client)
        logout = (await events(client, kind="logout"))[0]
        assert logout["session_handle"] == handle and logout["outcome"] == "success"

    async def test_session_revoked(self, new_client: ClientFactory, sign_in: SignIn) -> None:
        laptop, phone = (
            new_client(),
            new_client(user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Safari/604.1"),
        )
        await sign_in(laptop)
        await sign_in(phone)
        phone_handle = await current_handle(phone)
        assert (await laptop.delete(f"/api/auth/sessions/{phone_handle}")).status_code == 204
        assert (await phone.get("/api/auth/status")).json()["authenticated"] is False
        [revoked] = await events(laptop, kind="session_revoked")
        assert revoked["session_handle"] == await current_handle(laptop)
        assert revoked["detail"] == {"revoked_handle": phone_handle, "revoked_device": "Safari on iPhone"}

    async def test_unknown_handle_records_nothing(self, client: httpx.AsyncClient, sign_in: SignIn) -> None:
        await sign_in(client)
        assert (await client.delete("/api/auth/sessions/nope")).status_code == 404
        assert kinds(await events(client)) == ["sign_in"]

    async def test_other_sessions_revoked(self, new_client: ClientFactory, sign_in: SignIn) -> None:
        browsers = [new_client() for _ in range(3)]
        for browser in browsers:
            await sign_in(browser)
        assert (await browsers[0].post("/api/auth/sessions/revoke-others")).status_code == 204
        assert len((await browsers[0].get("/api/auth/sessions")).json()) == 1
        [event] = await events(browsers[0], kind="other_sessions_revoked")
        assert event["detail"] == {"sessions": 2}
        assert event["session_handle"] == await current_handle(browsers[0])

    async def test_disconnect(self, client: httpx.AsyncClient, sign_in: SignIn) -> None:
        await sign_in(client)
        handle = await current_handle(client)
        assert (await client.post("/api/auth/disconnect")).status_code == 204
        await sign_in(client)
        [event] = await events(client, kind="disconnect")
        assert event["session_handle"] == handle
        assert event["detail"] == {"broker_tokens_invalidated": 1}

    async def test_events_other_modules_record(
        self, api: object, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock
    ) -> None:
        await sign_in(client)
        record = (await api.state.td.sessions.list_for_user("DEMO01"))[0]  # type: ignore[attr-defined]
        async with api.state.td.sessionmaker() as db, db.begin():  # type: ignore[attr-defined]
            await audit.record(
                db,
                broker_id="DEMO01",
                kind=AuditKind.RISK_LIMIT_CHANGED,
                at=clock.now(),
                actor=Actor.of(record),
                detail={"daily_loss_limit_from": None, "daily_loss_limit_to": "5000.00"},
            )
        async with api.state.td.sessionmaker() as db, db.begin():  # type: ignore[attr-defined]
            await audit.record(db, broker_id="DEMO01", kind=AuditKind.BROKER_TOKEN_EXPIRED, at=clock.now())
        async with api.state.td.sessionmaker() as db, db.begin():  # type: ignore[attr-defined]
            await audit.record(
                db,
                broker_id="DEMO01",
                kind=AuditKind.SIGN_IN,
                outcome=AuditOutcome.FAILURE,
                at=clock.now(),
                actor=Actor(ip="198.51.100.4"),
                detail={"method": "access_token", "reason": "BrokerTokenInvalid"},
            )
        trail = await events(client)
        assert [(e["kind"], e["outcome"]) for e in trail] == [
            ("sign_in", "failure"),
            ("broker_token_expired", "success"),
            ("risk_limit_changed", "success"),
            ("sign_in", "success"),
        ]
        assert trail[0]["ip"] == "198.51.100.4" and trail[0]["session_handle"] is None
        assert trail[1]["detail"] == {} and trail[1]["device_id"] is None
        assert trail[2]["detail"] == {"daily_loss_limit_from": None, "daily_loss_limit_to": "5000.00"}
        assert trail[2]["session_handle"] == record.handle
        assert kinds(await events(client, kind="risk_limit_changed")) == ["risk_limit_changed"]

    async def test_an_event_rolls_back_with_its_transaction(
        self, api: object, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock
    ) -> None:
        await sign_in(client)

        class Abandoned(Exception):
            pass

        with pytest.raises(Abandoned):
            async with api.state.td.sessionmaker() as db, db.begin():  # type: ignore[attr-defined]
                await audit.record(db, broker_id="DEMO01", kind=AuditKind.RISK_LIMIT_CHANGED, at=clock.now())
                raise Abandoned
        assert kinds(await events(client)) == ["sign_in"]

    async def test_detail_is_small_and_flat(self, api: object, clock: ManualClock) -> None:
        async with api.state.td.sessionmaker() as db:  # type: ignore[attr-defined]
            with pytest.raises(TypeError):
                await audit.record(
                    db,
                    broker_id="DEMO01",
                    kind=AuditKind.RISK_LIMIT_CHANGED,
                    at=clock.now(),
                    detail={"nested": {"a": 1}},  # type: ignore[dict-item]
                )
            with pytest.raises(ValueError, match="larger"):
                await audit.record(
                    db,
                    broker_id="DEMO01",
                    kind=AuditKind.RISK_LIMIT_CHANGED,
                    at=clock.now(),
                    detail={f"k{n}": "v" * 200 for n in range(20)},
                )


class TestFailedSignInsGoToTheOperatorLog:
    async def test_a_rejected_sign_in_is_logged_without_secrets_and_audited_nowhere(
        self, client: httpx.AsyncClient, sign_in: SignIn, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="tradedesk.auth")
        request_token = "Rq7TokenThatFails0123"
        response = await client.post(
            "/api/auth/authenticate",
            json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": request_token},
        )
        assert response.status_code == 401
        lines = [r for r in caplog.records if r.name == "tradedesk.auth" and r.levelno == logging.WARNING]
        assert len(lines) == 1
        message = lines[0].getMessage()
        assert "reason=SignInRejected" in message and "method=request_token" in message
        assert "ip=203.0.113.7" in message
        for secret in (DEMO_API_SECRET, request_token, DEMO_API_KEY):
            assert secret not in caplog.text
        # Signing in afterwards shows no failure in the account's own trail.
        await sign_in(client)
        assert [(e["kind"], e["outcome"]) for e in await events(client)] == [("sign_in", "success")]

    async def test_a_bad_callback_is_logged(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="tradedesk.auth")
        response = await client.get(
            "/api/auth/callback", params={"request_token": "abc", "status": "success", "state": "forged"}
        )
        assert "error=invalid_state" in response.headers["location"]
        messages = [r.getMessage() for r in caplog.records if r.name == "tradedesk.auth"]
        assert any("method=redirect reason=invalid_state" in m for m in messages)
        assert not any("forged" in m for m in messages)

    async def test_an_access_token_refused_by_the_broker_is_logged(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="tradedesk.auth")
        token = "x" * 32
        response = await client.post(
            "/api/auth/set-access-token", json={"api_key": DEMO_API_KEY, "access_token": token}
        )
        assert response.status_code == 401
        messages = [r.getMessage() for r in caplog.records if r.name == "tradedesk.auth"]
        assert any("method=access_token reason=BrokerTokenInvalid" in m for m in messages)
        assert token not in caplog.text


class TestTradingEvents:
    async def test_risk_limit_changes_are_recorded_with_both_values(
        self, client: httpx.AsyncClient, sign_in: SignIn
    ) -> None:
        await sign_in(client)
        for limit in ("5000", "5000.00", "2500.50", None):
            response = await client.put("/api/risk", json={"daily_loss_limit": limit})
            assert response.status_code == 200, response.text
        trail = await events(client, kind="risk_limit_changed")
        assert [e["detail"] for e in trail] == [
            {"daily_loss_limit_from": "2500.50", "daily_loss_limit_to": None},
            {"daily_loss_limit_from": "5000.00", "daily_loss_limit_to": "2500.50"},
            {"daily_loss_limit_from": None, "daily_loss_limit_to": "5000"},
        ]
        handle = await current_handle(client)
        assert all(e["session_handle"] == handle for e in trail)

    async def test_a_refused_broker_token_is_recorded_once_per_sign_in(
        self, client: httpx.AsyncClient, sign_in: SignIn, clock: ManualClock, kitesim: object
    ) -> None:
        await sign_in(client)
        assert (await client.post("/api/sync", json={})).status_code == 200
        for moved in (clock, kitesim.state.sim.clock):  # type: ignore[attr-defined]
            moved.advance(21 * 3600)  # past 06:00 IST: the broker's token is dead, the session is not
        for call in (
            client.post("/api/sync", json={}),
            client.get("/api/positions"),
            client.get("/api/positions"),
        ):
            response = await call
            assert response.status_code == 401 and response.json()["error"] == "BrokerTokenInvalid"
        [expired] = await events(client, kind="broker_token_expired")
        assert expired["outcome"] == "failure"
        assert expired["session_handle"] == await current_handle(client)
        await sign_in(client)
        assert (await client.get("/api/positions")).status_code == 200
        assert kinds(await events(client))[:2] == ["sign_in", "broker_token_expired"]
