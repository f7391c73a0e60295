"""A worker on a host whose clock is 30 s ahead (libfaketime on the real process): it keeps the database's
time, so the heartbeats and events a trader sees carry the same times as everything else, and its log and
its metrics say what is wrong with the host."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import DEMO_API_KEY, DEMO_API_SECRET
from tests.procs import Proc, free_port, python_module, shared_env, sign_in_over_http
from tests.support.metrics import parse, value

pytestmark = pytest.mark.multiprocess

SPA = "http://spa.example"
SKEW = "+30s"


@pytest.fixture
def skewed_world(clean_database: str, redis_prefix: str) -> Iterator[tuple[str, Proc]]:
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.fail("faketime is not installed: `make test` installs Debian's package")
    kite_port, api_port = free_port(), free_port()
    kite, api = f"http://127.0.0.1:{kite_port}", f"http://127.0.0.1:{api_port}"
    # The product on the system clock, as in production: only the worker's host is wrong.
    env = shared_env(
        clean_database, redis_prefix, kite=kite, spa=SPA, callback_api=api, TRADEDESK_CLOCK="system"
    )
    procs = [
        Proc(
            python_module("kitesim", "--port", str(kite_port)),
            env=env,
            health_url=f"{kite}/sim/clock",
            name="kitesim-skew",
        ),
        Proc(
            python_module("tradedesk", "--port", str(api_port), "--log-level", "warning"),
            env={**env, "TRADEDESK_AGENT_RUNTIME": "off"},
            health_url=f"{api}/healthz",
            name="api-skew",
        ),
    ]
    worker = Proc(
        [faketime, "-f", SKEW, *python_module("tradedesk.agents.worker", "--runtime-id", "w-skewed")],
        env={**env, "TRADEDESK_METRICS_PORT": str(free_port())},
        health_url=None,
        name="worker-skewed",
    )
    try:
        for proc in procs:
            proc.start()
        worker.start()
        yield api, worker
    finally:
        for proc in [worker, *reversed(procs)]:
            proc.stop()


def seconds_from_now(stamp: str) -> float:
    return (datetime.fromisoformat(stamp) - datetime.now(UTC)).total_seconds()


def test_a_worker_whose_clock_is_30_s_ahead_stamps_what_everyone_else_sees(
    skewed_world: tuple[str, Proc],
) -> None:
    api, worker = skewed_world
    browser = sign_in_over_http(
        api,
        worker.env["TRADEDESK_KITE_API_URL"],
        "DEMO01",
        origin=SPA,
        api_key=DEMO_API_KEY,
        api_secret=DEMO_API_SECRET,
    )
    try:
        csrf = browser.get(f"{api}/api/auth/status").json()["csrf_token"]
        started = browser.post(
            f"{api}/api/agents", json={"strategy": "sma_crossover"}, headers={"X-CSRF-Token": csrf}
        )
        assert started.status_code == 201, started.text
        agent_id = started.json()["id"]

        deadline = time.monotonic() + 20
        agent: dict[str, Any] = {}
        while time.monotonic() < deadline:
            agent = browser.get(f"{api}/api/agents/{agent_id}").json()
            if agent.get("runtime") == "w-skewed" and agent.get("heartbeat_at"):
                break
            time.sleep(0.2)
        assert agent.get("runtime") == "w-skewed", agent
        assert -5.0 < seconds_from_now(agent["heartbeat_at"]) <= 2.0, agent["heartbeat_at"]

        events = browser.get(f"{api}/api/agents/{agent_id}/events?limit=50").json()["items"]
        assert events
        for event in events:
            assert seconds_from_now(event["at"]) <= 2.0, event
        scraped = httpx.get(f"http://127.0.0.1:{worker.env['TRADEDESK_METRICS_PORT']}/metrics", timeout=5)
        assert scraped.status_code == 200, scraped.text
        families, samples = parse(scraped.text)
        assert "tradedesk_clock_skew_seconds" in families
        assert 25.0 < value(samples, "tradedesk_clock_skew_seconds") < 35.0, samples
        assert value(samples, "tradedesk_agents_held", runtime="w-skewed") == 1
        assert value(samples, "tradedesk_agent_claims_total") == 1
        assert value(samples, "tradedesk_db_pool_size") > 0
    finally:
        browser.close()
    assert "s ahead of the database's; times here follow the database" in worker.output()
