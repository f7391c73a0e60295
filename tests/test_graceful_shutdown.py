"""SIGTERM to an API instance (a deploy, a scale-in): it stops accepting, ends every live event stream
with a retry hint (spread, so the streams do not all come back in the same instant), and exits promptly;
the browser's stream resumes on another instance with Last-Event-ID."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import DEMO_API_KEY, DEMO_API_SECRET
from tests.procs import Proc, free_port, python_module, shared_env, sign_in_over_http

pytestmark = pytest.mark.multiprocess

SPA = "http://spa.example"


@pytest.fixture
def instances(clean_database: str, redis_prefix: str) -> Iterator[tuple[str, dict[str, Proc]]]:
    kite_port = free_port()
    kite = f"http://127.0.0.1:{kite_port}"
    ports = {"a": free_port(), "b": free_port()}
    env = shared_env(
        clean_database,
        redis_prefix,
        kite=kite,
        spa=SPA,
        callback_api=f"http://127.0.0.1:{ports['a']}",
        TRADEDESK_AGENT_RUNTIME="off",
        TRADEDESK_SHUTDOWN_TIMEOUT_S="5",
    )
    kitesim = Proc(
        python_module("kitesim", "--port", str(kite_port)),
        env=env,
        health_url=f"{kite}/sim/clock",
        name="kitesim-stop",
    )
    apis = {
        name: Proc(
            python_module("tradedesk", "--port", str(port), "--log-level", "warning"),
            env=env,
            health_url=f"http://127.0.0.1:{port}/healthz",
            name=f"api-stop-{name}",
        )
        for name, port in ports.items()
    }
    kitesim.start()
    for proc in apis.values():
        proc.start()
    try:
        yield kite, apis
    finally:
        for proc in [*apis.values(), kitesim]:
            proc.stop()


def url_of(proc: Proc) -> str:
    assert proc.health_url is not None
    return proc.health_url.removesuffix("/healthz")


def test_sigterm_ends_streams_with_a_retry_hint_and_exits(instances: tuple[str, dict[str, Proc]]) -> None:
    kite, apis = instances
    a, b = url_of(apis["a"]), url_of(apis["b"])
    browser = sign_in_over_http(
        a, kite, "DEMO01", origin=SPA, api_key=DEMO_API_KEY, api_secret=DEMO_API_SECRET
    )
    lines: list[str] = []
    ended = threading.Event()

    def listen() -> None:
        try:
            with (
                httpx.Client(cookies=browser.cookies, headers=dict(browser.headers), timeout=None) as client,
                client.stream("GET", f"{a}/api/events", headers={"Accept": "text/event-stream"}) as answer,
            ):
                lines.extend(answer.iter_lines())
        except httpx.HTTPError:
            pass
        finally:
            ended.set()

    threading.Thread(target=listen, daemon=True).start()
    deadline = time.monotonic() + 10
    while not any(line.startswith("retry:") for line in lines):
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    connected = len(lines)

    proc = apis["a"]
    assert proc.popen is not None
    proc.popen.send_signal(signal.SIGTERM)
    told_at = time.monotonic()
    assert ended.wait(timeout=5), "the stream was not ended on SIGTERM"
    farewell = lines[connected:]
    assert any(line.startswith(": server shutting down") for line in farewell), farewell
    retry = [int(line.split(":", 1)[1]) for line in farewell if line.startswith("retry:")]
    assert retry and 2000 <= retry[0] < 6000, farewell
    # Uvicorn re-raises the signal once it has shut down cleanly: ended by SIGTERM, not killed.
    assert proc.popen.wait(timeout=10) in (0, -signal.SIGTERM)
    exited_s = time.monotonic() - told_at
    assert exited_s < 5, f"exited {exited_s:.1f} s after SIGTERM"
    # The session lives in Redis: the browser carries on at the other instance.
    assert browser.get(f"{b}/api/auth/status").json()["authenticated"] is True
    browser.close()
