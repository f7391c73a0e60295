"""`make run`'s launcher on the embedded defaults (SQLite, SQL sessions, kitesim): the demo history is traded
first (one trading day here), then all three processes come up, a browser-like client signs in through the
redirect flow and finds that history, and Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.procs import ROOT, free_port

pytestmark = pytest.mark.multiprocess


def wait_for(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def test_embedded_defaults_sign_in_end_to_end(tmp_path: Path) -> None:
    api_port, kite_port, spa_port = free_port(), free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TRADEDESK_", "KITESIM_"))}
    env |= {
        "TRADEDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tradedesk.db'}",
        "TRADEDESK_KEY_FILE": str(tmp_path / "keys.json"),
        "TRADEDESK_CORS_ORIGINS": f"http://127.0.0.1:{spa_port}",
        "TRADEDESK_PORT": str(api_port),
        "KITESIM_PORT": str(kite_port),
        "SPA_PORT": str(spa_port),
        "TRADEDESK_DEMO_DAYS": "1",
    }
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tradedesk.devrun"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    api, kite, spa = (f"http://127.0.0.1:{p}" for p in (api_port, kite_port, spa_port))
    try:
        deadline = time.monotonic() + 30
        wait_for(f"{api}/readyz", deadline)
        wait_for(f"{kite}/sim/clock", deadline)
        wait_for(f"{spa}/", deadline)
        # The built SPA, answering its client-side routes, and told where the API is.
        assert '<div id="root">' in httpx.get(f"{spa}/trades").text
        assert f'"apiUrl": "{api}"' in httpx.get(f"{spa}/config.js").text
        with httpx.Client(headers={"Origin": spa}, timeout=10) as browser:
            started = browser.post(
                f"{api}/api/auth/login",
                json={"api_key": "tradedesk-demo", "api_secret": "tradedesk-demo-secret"},
            ).json()
            redirect_params = parse_qs(urlsplit(started["login_url"]).query)["redirect_params"][0]
            answer = browser.post(
                f"{kite}/connect/login",
                data={
                    "user_id": "DEMO03",
                    "password": "demo",
                    "api_key": "tradedesk-demo",
                    "redirect_params": redirect_params,
                },
            )
            back = browser.get(answer.headers["location"])
            assert back.status_code == 303 and back.headers["location"] == f"http://127.0.0.1:{spa_port}/"
            status = browser.get(f"{api}/api/auth/status").json()
            assert status["authenticated"] is True and status["broker_id"] == "DEMO03"
            # The history's session traded its agent and signed out: one stopped agent, no other device.
            agents = browser.get(f"{api}/api/agents").json()
            assert [(a["strategy"], a["state"]) for a in agents] == [("short_strangle", "stopped")]
            assert [s["current"] for s in browser.get(f"{api}/api/auth/sessions").json()] == [True]
    finally:
        launcher.send_signal(signal.SIGINT)
        output = launcher.communicate(timeout=30)[0].decode(errors="replace")
    assert "tradedesk is running" in output and f"{api}/docs" in output
    assert "demo history: day 1/1" in output
    # No keys configured: per-install keys were generated, privately, and the operator told where.
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    assert str(tmp_path / "keys.json") in output
    for url in (f"{api}/healthz", f"{kite}/sim/clock"):
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, timeout=1)
