"""The deployed topology, driven as a browser drives it: everything over HTTPS through nginx with the
deploy/ config, two API instances behind it, two agent workers, kitesim and the SPA server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
import yaml

from tests.procs import ROOT
from tests.topology.conftest import StartDeployment
from tests.topology.deployment import BROWSER_ADDRESS, PROXY_ADDRESS, Deployment, redirect_sign_in

pytestmark = pytest.mark.multiprocess

SPOOFED_CLIENT = "203.0.113.9"


def test_a_trader_signs_in_and_reads_through_the_proxy(start_deployment: StartDeployment) -> None:
    deployment = start_deployment()
    origins = deployment.origins
    # A client that claims to be someone else: the proxy overwrites both headers with what it saw.
    with deployment.browser(**{"X-Forwarded-For": SPOOFED_CLIENT, "X-Forwarded-Proto": "http"}) as browser:
        config = browser.get(f"{origins.spa}/config.js")
        assert config.status_code == 200 and json.dumps(origins.api) in config.text
        page = browser.get(f"{origins.spa}/trades")  # a client-side route: the SPA's index.html
        assert page.status_code == 200 and '<div id="root">' in page.text
        assert origins.api in page.headers["content-security-policy"]

        status = redirect_sign_in(browser, origins, "DEMO01")
        assert status["broker_id"] == "DEMO01"
        # TLS at the proxy, Secure cookies at the API: the host-only __Host- session cookie is what it set.
        assert {cookie.name for cookie in browser.cookies.jar} >= {
            "__Host-tradedesk",
            "__Host-tradedesk_device",
        }
        answer = browser.get(f"{origins.api}/api/pnl/summary")
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) >= {"day", "week", "month", "year", "all_time"}
        assert "max-age" in answer.headers["strict-transport-security"]
        # nginx's request id reaches the API and comes back: one id in both logs.
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])

        # The Devices list names the address the proxy saw, not the one the client claimed.
        sessions = browser.get(f"{origins.api}/api/auth/sessions").json()
        assert [session["ip"] for session in sessions] == [BROWSER_ADDRESS]

        # /metrics is for Prometheus on the instances' own ports, never through the proxy.
        assert browser.get(f"{origins.api}/metrics").status_code == 404

        # Round robin: both instances answer the same browser's requests.
        before = {name: deployment.requests_served(name, "/api/auth/status") for name in ("api-1", "api-2")}
        for _ in range(20):
            assert browser.get(f"{origins.api}/api/auth/status").json()["authenticated"] is True
        served = {
            name: deployment.requests_served(name, "/api/auth/status") - before[name]
            for name in ("api-1", "api-2")
        }
        assert sum(served.values()) == 20 and min(served.values()) >= 5, served


def test_live_events_pass_through_the_proxy_as_they_happen(start_deployment: StartDeployment) -> None:
    deployment = start_deployment()
    origins = deployment.origins
    with deployment.browser() as browser:
        redirect_sign_in(browser, origins, "DEMO01")
        lines: list[tuple[float, str]] = []
        problems: list[BaseException] = []
        answer_headers: dict[str, str] = {}

        def listen() -> None:
            try:
                with deployment.browser() as client:
                    client.cookies = browser.cookies
                    with client.stream(
                        "GET",
                        f"{origins.api}/api/events",
                        headers={"Accept": "text/event-stream"},
                        timeout=httpx.Timeout(10, read=None),
                    ) as answer:
                        answer_headers.update(answer.headers)
                        for line in answer.iter_lines():
                            lines.append((time.monotonic(), line))
            except Exception as exc:  # the stream ends when the topology stops; anything else is a finding
                problems.append(exc)

        opened_at = time.monotonic()
        threading.Thread(target=listen, daemon=True).start()
        connected_at = wait_for_line(lines, ": connected", after=opened_at, timeout_s=5)
        assert answer_headers["content-type"].startswith("text/event-stream")
        assert connected_at - opened_at < 5

        started = browser.post(f"{origins.api}/api/agents", json={"strategy": "sma_crossover"})
        assert started.status_code == 201, started.text
        answered_at = time.monotonic()
        # The agent's state change is one small event: a buffering proxy would sit on it.
        arrived_at = wait_for_line(lines, "event: agent", after=answered_at - 1, timeout_s=5)
        assert arrived_at - answered_at < 3, f"the event took {arrived_at - answered_at:.1f} s"
        data = next(line for at, line in lines if at >= arrived_at and line.startswith("data:"))
        assert json.loads(data.removeprefix("data:"))["id"] == started.json()["id"]
        assert problems == []
        # The operator's view: exactly one of the two workers drives it, by their own metrics.
        deadline = time.monotonic() + 5
        while True:
            held = {name: deployment.metric(name, "tradedesk_agents_held") for name in deployment.alive_files}
            if sum(held.values()) == 1:
                break
            assert time.monotonic() < deadline, held
            time.sleep(0.1)


def wait_for_line(lines: list[tuple[float, str]], prefix: str, *, after: float, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        for at, line in list(lines):
            if at >= after and line.startswith(prefix):
                return at
        assert time.monotonic() < deadline, (
            f"no {prefix!r} line within {timeout_s} s: {[line for _, line in lines]}"
        )
        time.sleep(0.02)


def compose_probe(service: str) -> str | list[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    test: list[str] = compose["services"][service]["healthcheck"]["test"]
    return test[1] if test[0] == "CMD-SHELL" else test[1:]


def probe(command: str | list[str], replacements: dict[str, str]) -> int:
    """A compose healthcheck run here, with the container's addresses and paths swapped for the test's: its
    exit status. ``python -c`` checks run in this interpreter (the same code, without a process start)."""
    if isinstance(command, str):
        for old, new in replacements.items():
            command = command.replace(old, new)
        return subprocess.run(["sh", "-c", command], capture_output=True, timeout=20).returncode
    assert command[:2] == ["python", "-c"], command
    code = command[2]
    for old, new in replacements.items():
        code = code.replace(old, new)
    try:
        exec(code, {})
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except Exception:
        return 1
    return 0


def probes(deployment: Deployment) -> dict[str, int]:
    """Every compose healthcheck of a process this topology runs, against that process."""
    origins = deployment.origins
    results = {
        "kitesim": probe(compose_probe("kitesim"), {"http://127.0.0.1:8100": deployment.direct("kitesim")}),
        "spa": probe(compose_probe("spa"), {"http://127.0.0.1:5173": deployment.direct("spa")}),
        **{
            name: probe(compose_probe(name), {"http://127.0.0.1:8000": deployment.direct(name)})
            for name in ("api-1", "api-2")
        },
        **{
            name: probe(compose_probe(name), {"/tmp/agent-runtime.alive": str(alive)})
            for name, alive in deployment.alive_files.items()
        },
    }
    if shutil.which("curl"):
        api_port, spa_port = origins.api.rsplit(":", 1)[1], origins.spa.rsplit(":", 1)[1]
        results["proxy"] = probe(
            compose_probe("proxy"),
            {
                "/etc/tradedesk/tls/ca.pem": str(deployment.ca),
                "localhost:8444:127.0.0.1": f"localhost:{api_port}:{PROXY_ADDRESS}",
                "localhost:8443:127.0.0.1": f"localhost:{spa_port}:{PROXY_ADDRESS}",
                "https://localhost:8444": f"https://localhost:{api_port}",
                "https://localhost:8443": f"https://localhost:{spa_port}",
            },
        )
    return results


def test_an_instance_killed_mid_run_costs_no_idempotent_request(start_deployment: StartDeployment) -> None:
    deployment = start_deployment()
    origins = deployment.origins
    healthy = probes(deployment)
    assert set(healthy.values()) == {0}, healthy
    with deployment.browser() as browser:
        redirect_sign_in(browser, origins, "DEMO01")
        urls = [
            f"{origins.api}{path}"
            for path in ("/api/auth/status", "/api/pnl/summary", "/api/agents", "/api/risk")
        ]
        failures: list[str] = []
        answered = 0
        stop = threading.Event()

        def keep_reading() -> None:
            nonlocal answered
            with deployment.browser() as reader:
                reader.cookies = browser.cookies
                while not stop.is_set():
                    url = urls[answered % len(urls)]
                    try:
                        answer = reader.get(url)
                        if answer.status_code != 200:
                            failures.append(f"{url}: {answer.status_code} {answer.text[:200]}")
                    except httpx.HTTPError as exc:
                        failures.append(f"{url}: {exc!r}")
                    answered += 1

        reader = threading.Thread(target=keep_reading, daemon=True)
        reader.start()
        try:
            wait_until(lambda: answered >= 8, timeout_s=15)
            deployment.kill("api-1")  # kill -9, mid-run: a request may well be in flight to it
            killed_at = answered
            wait_until(lambda: answered >= killed_at + 24, timeout_s=20)
        finally:
            stop.set()
            reader.join(timeout=15)
        assert failures == [], failures
        # Not luck: nginx did send requests to the dead instance, and passed each on to the other one.
        dead = f'upstream: "http://127.0.0.1:{deployment.ports["api-1"]}/'
        passed_on = [line for line in deployment.output("proxy-standard").splitlines() if dead in line]
        assert any("[error]" in line for line in passed_on), passed_on

        # The survivor answers everything now, unsafe requests included (nothing was sent to the dead one).
        before = deployment.requests_served("api-2", "/api/risk")
        changed = browser.put(f"{origins.api}/api/risk", json={"daily_loss_limit": "2500"})
        assert changed.status_code == 200, changed.text
        assert Decimal(str(browser.get(f"{origins.api}/api/risk").json()["daily_loss_limit"])) == 2500
        assert deployment.requests_served("api-2", "/api/risk") - before == 2

    # The dead instance's healthcheck says so; the proxy's (through the same upstreams) still passes.
    after = probes(deployment)
    assert after.pop("api-1") != 0
    assert set(after.values()) == {0}, after


def wait_until(condition: Callable[[], bool], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        time.sleep(0.02)
