"""Two real API instances sharing Redis and PostgreSQL, with kitesim as a real process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import DEMO_API_KEY, DEMO_API_SECRET, REDIS_URL, as_app_role
from tests.procs import Proc, free_port, python_module
from tradedesk.kit.crypto import generate_key

pytestmark = pytest.mark.multiprocess

SPA = "http://spa.example"


@pytest.fixture
def topology(clean_database: str, redis_prefix: str) -> Iterator[dict[str, object]]:
    kite_port, port_a, port_b = free_port(), free_port(), free_port()
    kite = f"http://127.0.0.1:{kite_port}"
    env = {
        "TRADEDESK_DATABASE_URL": as_app_role(clean_database),
        "TRADEDESK_REDIS_URL": REDIS_URL,
        "TRADEDESK_REDIS_KEY_PREFIX": redis_prefix,
        "TRADEDESK_CORS_ORIGINS": SPA,
        "TRADEDESK_SPA_URL": SPA,
        # Instances sharing a database and Redis share their keys explicitly (a key file is per install).
        "TRADEDESK_SECRET_KEYS": "multi-process-secret-" + uuid.uuid4().hex,
        "TRADEDESK_ENCRYPTION_KEYS": generate_key(),
        "TRADEDESK_KITE_API_URL": kite,
        "TRADEDESK_KITE_LOGIN_URL": f"{kite}/connect/login",
        "KITESIM_REDIRECT_URL": f"http://127.0.0.1:{port_a}/api/auth/callback",
    }
    kitesim = Proc(
        python_module("kitesim", "--port", str(kite_port)),
        env=env,
        health_url=f"{kite}/sim/clock",
        name="kitesim",
    )
    instances = {
        name: Proc(
            python_module("tradedesk", "--port", str(port), "--log-level", "warning"),
            env=env,
            health_url=f"http://127.0.0.1:{port}/healthz",
            name=f"api-{name}",
        )
        for name, port in (("a", port_a), ("b", port_b))
    }
    kitesim.start()
    try:
        for proc in instances.values():
            proc.start()
        yield {
            "a": f"http://127.0.0.1:{port_a}",
            "b": f"http://127.0.0.1:{port_b}",
            "kite": kite,
            "procs": instances,
        }
    finally:
        for proc in instances.values():
            proc.stop()
        kitesim.stop()


def redirect_sign_in(browser: httpx.Client, api: str, kite: str) -> None:
    started = browser.post(
        f"{api}/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
    ).json()
    login_url = urlsplit(started["login_url"])
    assert f"{login_url.scheme}://{login_url.netloc}" == kite
    form_page = browser.get(started["login_url"])
    assert form_page.status_code == 200 and "password" in form_page.text
    from urllib.parse import parse_qs

    redirect_params = parse_qs(login_url.query)["redirect_params"][0]
    answer = browser.post(
        f"{kite}/connect/login",
        data={
            "user_id": "DEMO01",
            "password": "demo",
            "api_key": DEMO_API_KEY,
            "redirect_params": redirect_params,
        },
    )
    assert answer.status_code == 302
    back = browser.get(answer.headers["location"])
    assert back.status_code == 303 and back.headers["location"] == f"{SPA}/"


def test_session_is_shared_across_instances_and_survives_restart(topology: dict[str, object]) -> None:
    a, b, kite = str(topology["a"]), str(topology["b"]), str(topology["kite"])
    procs: dict[str, Proc] = topology["procs"]  # type: ignore[assignment]
    with httpx.Client(headers={"Origin": SPA}, timeout=10) as browser:
        redirect_sign_in(browser, a, kite)
        status_b = browser.get(f"{b}/api/auth/status").json()
        assert status_b["authenticated"] is True and status_b["broker_id"] == "DEMO01"
        browser.headers["X-CSRF-Token"] = status_b["csrf_token"]
        assert len(browser.get(f"{b}/api/auth/sessions").json()) == 1

        assert browser.post(f"{b}/api/auth/logout").status_code == 204
        # The browser would drop the cookie; replay it to prove the server forgot it.
        assert browser.get(f"{a}/api/auth/status").json()["authenticated"] is False

        redirect_sign_in(browser, a, kite)
        procs["a"].stop()
        procs["a"].start()
        status_a = browser.get(f"{a}/api/auth/status").json()
        assert status_a["authenticated"] is True and status_a["broker_id"] == "DEMO01"


def test_logout_via_b_is_seen_by_a(topology: dict[str, object]) -> None:
    a, b, kite = str(topology["a"]), str(topology["b"]), str(topology["kite"])
    with httpx.Client(headers={"Origin": SPA}, timeout=10) as browser:
        redirect_sign_in(browser, a, kite)
        cookie = browser.cookies.get("tradedesk")
        csrf = browser.get(f"{a}/api/auth/status").json()["csrf_token"]
        assert browser.post(f"{b}/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        with httpx.Client(headers={"Origin": SPA}, cookies={"tradedesk": str(cookie)}) as replay:
            assert replay.get(f"{a}/api/auth/sessions").status_code == 401
