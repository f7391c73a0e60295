"""A real API process behind nothing but loopback: its log lines are JSON with request ids, the product's
own INFO events appear, no secret planted along a full sign-in/sync/logout run reaches the log, and
X-Forwarded-For from an untrusted peer buys no extra sign-in attempts."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import REDIS_URL, as_app_role
from tests.procs import Proc, free_port, python_module

pytestmark = pytest.mark.multiprocess

SPA = "http://spa.example"
API_KEY = "canary-app"


@pytest.fixture
def canaries() -> dict[str, str]:
    return {
        "api_secret": "CANARYSECRET" + secrets.token_hex(8),
        "wrong_secret": "CANARYWRONG" + secrets.token_hex(8),
    }


@pytest.fixture
def stack(clean_database: str, redis_prefix: str, canaries: dict[str, str]) -> Iterator[dict[str, object]]:
    kite_port, api_port = free_port(), free_port()
    kite = f"http://127.0.0.1:{kite_port}"
    api = f"http://127.0.0.1:{api_port}"
    env = {
        "TRADEDESK_DATABASE_URL": as_app_role(clean_database),
        "TRADEDESK_REDIS_URL": REDIS_URL,
        "TRADEDESK_REDIS_KEY_PREFIX": redis_prefix,
        "TRADEDESK_CORS_ORIGINS": SPA,
        "TRADEDESK_SPA_URL": SPA,
        "TRADEDESK_API_PUBLIC_URL": api,
        "TRADEDESK_SECRET_KEYS": "process-log-secret-" + uuid.uuid4().hex,
        "TRADEDESK_ENCRYPTION_KEYS": "cHJvY2Vzcy1sb2ctZW5jcnlwdGlvbi1rZXktMzJieXQ",
        "TRADEDESK_KITE_API_URL": kite,
        "TRADEDESK_KITE_LOGIN_URL": f"{kite}/connect/login",
        "TRADEDESK_SIGNIN_RATE_LIMIT": "6",
        "KITESIM_REDIRECT_URL": f"{api}/api/auth/callback",
        "KITESIM_API_KEY": API_KEY,
        "KITESIM_API_SECRET": canaries["api_secret"],
    }
    kitesim = Proc(
        python_module("kitesim", "--port", str(kite_port)),
        env=env,
        health_url=f"{kite}/sim/clock",
        name="kitesim-logs",
    )
    server = Proc(
        python_module("tradedesk", "--port", str(api_port), "--log-level", "debug"),
        env=env,
        health_url=f"{api}/healthz",
        name="api-logs",
    )
    server.log_path.unlink(missing_ok=True)
    kitesim.start()
    try:
        server.start()
        yield {"api": api, "kite": kite, "server": server}
    finally:
        server.stop()
        kitesim.stop()


def log_lines(server: Proc) -> list[dict[str, object]]:
    lines = [line for line in server.output().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    return parsed


def test_a_full_run_logs_json_with_request_ids_and_no_secret(
    stack: dict[str, object], canaries: dict[str, str]
) -> None:
    api, kite, server = str(stack["api"]), str(stack["kite"]), stack["server"]
    assert isinstance(server, Proc)
    planted: list[str] = list(canaries.values())
    with (
        httpx.Client(base_url=api, headers={"Origin": SPA}) as browser,
        httpx.Client(base_url=kite) as broker,
    ):
        # The redirect flow: /login, kitesim's form, the callback with request_token and state in the URL.
        started = browser.post(
            "/api/auth/login", json={"api_key": API_KEY, "api_secret": canaries["api_secret"]}
        )
        assert started.status_code == 200, started.text
        state = started.json()["state"]
        redirect_params = parse_qs(urlsplit(started.json()["login_url"]).query)["redirect_params"][0]
        form = {
            "user_id": "DEMO01",
            "password": "demo",
            "api_key": API_KEY,
            "redirect_params": redirect_params,
        }
        to_callback = broker.post("/connect/login", data=form)
        callback_url = to_callback.headers["location"]
        request_token = parse_qs(urlsplit(callback_url).query)["request_token"][0]
        landed = browser.get(callback_url)
        assert landed.status_code == 303 and "error" not in landed.headers["location"], landed.headers
        status = browser.get("/api/auth/status").json()
        assert status["authenticated"] is True
        csrf = status["csrf_token"]
        session_cookie = browser.cookies["tradedesk"]
        device_cookie = browser.cookies["tradedesk_device"]
        planted += [state, request_token, csrf, session_cookie, device_cookie]

        # An access token of the user's own, adopted through set-access-token, then used for a sync.
        own_token = broker.post(
            "/connect/login", data={"user_id": "DEMO01", "password": "demo", "api_key": API_KEY}
        ).headers["location"]
        token = parse_qs(urlsplit(own_token).query)["request_token"][0]
        checksum = hashlib.sha256(f"{API_KEY}{token}{canaries['api_secret']}".encode()).hexdigest()
        access_token = broker.post(
            "/session/token", data={"api_key": API_KEY, "request_token": token, "checksum": checksum}
        ).json()["data"]["access_token"]
        planted += [access_token, token]
        adopted = browser.post(
            "/api/auth/set-access-token", json={"api_key": API_KEY, "access_token": access_token}
        )
        assert adopted.status_code == 200, adopted.text
        csrf = adopted.json()["csrf_token"]
        planted += [csrf, browser.cookies["tradedesk"]]
        headers = {"X-CSRF-Token": csrf}
        assert browser.post("/api/sync", json={}, headers=headers).status_code == 200
        assert browser.get("/api/trades").status_code == 200
        assert browser.get("/api/trades.csv").status_code == 200
        # A failed sign-in with a wrong secret, and a tampered callback.
        failed = browser.post(
            "/api/auth/authenticate",
            json={"api_key": API_KEY, "api_secret": canaries["wrong_secret"], "request_token": "rt" + token},
        )
        assert failed.status_code == 401
        browser.get("/api/auth/callback", params={"request_token": request_token, "state": state})
        assert browser.post("/api/auth/logout", headers=headers).status_code == 204

    text = server.output()
    leaked = [secret for secret in planted if secret and secret in text]
    assert leaked == [], f"secrets in the log: {leaked}"
    lines = log_lines(server)
    requests = [line for line in lines if line.get("logger") == "tradedesk.http"]
    routes = {(line["method"], line["route"], line["status"]) for line in requests}
    assert ("GET", "/api/auth/callback", 303) in routes
    assert ("POST", "/api/sync", 200) in routes
    for line in requests:
        assert line["request_id"] and isinstance(line["duration_ms"], float | int)
    signed_in = [line for line in requests if line["route"] == "/api/trades"]
    assert signed_in and all(
        line["broker"] == signed_in[0]["broker"] and len(str(line["broker"])) == 12 for line in signed_in
    )
    assert "DEMO01" not in json.dumps(requests)
    own_events = [
        line for line in lines if str(line["logger"]).startswith("tradedesk.") and line["level"] == "info"
    ]
    assert {line["logger"] for line in own_events} >= {"tradedesk.http", "tradedesk.auth"}
    assert any(line["logger"] == "uvicorn.error" and "startup complete" in str(line["msg"]) for line in lines)


def test_forwarded_for_from_loopback_buys_no_extra_sign_in_attempts(stack: dict[str, object]) -> None:
    api = str(stack["api"])
    answers = []
    with httpx.Client(base_url=api, headers={"Origin": SPA}) as client:
        for n in range(9):
            response = client.post(
                "/api/auth/login",
                json={"api_key": API_KEY, "api_secret": "s"},
                headers={"X-Forwarded-For": f"192.0.2.{n}", "X-Real-IP": f"192.0.2.{n}"},
            )
            answers.append(response.status_code)
        still_ready = client.get("/readyz").status_code
    assert answers == [200] * 6 + [429] * 3
    assert still_ready == 200
