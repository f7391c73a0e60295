"""GET /metrics: hidden without a token, refused with a wrong one, and the families an operator graphs; the
same families on a loopback port of their own."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from tests.conftest import (
    API_BASE,
    DEMO_API_KEY,
    DEMO_API_SECRET,
    ROOT,
    SPA_ORIGIN,
    as_app_role,
    make_settings,
    request_token_for,
    sign_in_through,
)
from tests.procs import free_port
from tests.support.metrics import Samples, parse, value
from tradedesk.config import Settings
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app
from tradedesk.metrics.instruments import MAX_SIGN_IN_OUTCOMES, AppMetrics

TOKEN = "metrics-token-0123456789abcdefghijklmnop"
FAMILIES = (
    "tradedesk_http_request_duration_seconds",
    "tradedesk_sign_ins",
    "tradedesk_active_sessions",
    "tradedesk_session_store_errors",
    "tradedesk_broker_request_duration_seconds",
    "tradedesk_broker_errors",
    "tradedesk_db_pool_checked_out",
    "tradedesk_db_pool_size",
    "tradedesk_db_pool_overflow",
)
# A process that runs agents (a worker, or an API with its runtime on) adds these.
AGENT_FAMILIES = (
    "tradedesk_agents_held",
    "tradedesk_agent_decisions",
    "tradedesk_agent_orders",
    "tradedesk_agent_order_ack_seconds",
    "tradedesk_agent_cycle_prepare_seconds",
    "tradedesk_agent_claims",
    "tradedesk_agent_drops",
    "tradedesk_clock_skew_seconds",
)

MakeApi = Callable[..., Awaitable[FastAPI]]


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5555)),
        base_url=API_BASE,
        headers={"Origin": SPA_ORIGIN, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
    )


@pytest.fixture
async def make_api(
    clean_database: str, redis_prefix: str, clock: ManualClock, kitesim: object
) -> AsyncIterator[MakeApi]:
    """Starts API apps (lifespan included) on PostgreSQL and Redis with the given settings."""
    running: list[tuple[FastAPI, object]] = []

    async def make(*, store: str = "redis", **overrides: object) -> FastAPI:
        settings = make_settings(
            as_app_role(clean_database), redis_prefix=redis_prefix if store == "redis" else None, **overrides
        )
        app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        running.append((app, lifespan))
        return app

    yield make
    for _, lifespan in reversed(running):
        await lifespan.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def scrape(api: httpx.AsyncClient) -> tuple[set[str], Samples]:
    response = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


class TestMetricsEndpoint:
    async def test_without_a_token_configured_it_answers_like_an_unknown_path(
        self, make_api: MakeApi
    ) -> None:
        async with browser(await make_api()) as api:
            metrics = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            unknown = await api.get("/no-such-page")
        assert metrics.status_code == 404
        assert metrics.json() == unknown.json()

    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            f"Bearer {TOKEN}x",
            f"Bearer {TOKEN[:-1]}",
            f"Basic {TOKEN}",
            TOKEN,
            "Bearer ",
            "Bearer é".encode(),
        ],
    )
    async def test_a_wrong_or_missing_token_is_refused(
        self, make_api: MakeApi, authorization: str | bytes | None
    ) -> None:
        async with browser(await make_api(metrics_token=TOKEN)) as api:
            headers = {"Authorization": authorization} if authorization is not None else {}
            response = await api.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "NotAuthenticated"
        assert "tradedesk_" not in response.text

    async def test_the_token_holder_reads_every_family(
        self, make_api: MakeApi, kite_client: httpx.AsyncClient
    ) -> None:
        app = await make_api(metrics_token=TOKEN)
        async with browser(app) as first, browser(app) as second:
            await sign_in_through(first, kite_client, "DEMO01")
            await sign_in_through(second, kite_client, "DEMO02")
            for _ in range(3):
                assert (await first.get("/api/auth/status")).status_code == 200
            assert (await first.delete("/api/auth/sessions/not-a-real-handle-4242")).status_code == 404
            assert (await first.get("/wp-admin/setup-config.php")).status_code == 404
            rejected = await second.post(
                "/api/auth/authenticate",
                json={
                    "api_key": DEMO_API_KEY,
                    "api_secret": DEMO_API_SECRET,
                    "request_token": "forged-token",
                },
            )
            assert rejected.status_code == 401

            families, samples = await scrape(first)

        assert set(FAMILIES) <= families
        duration = "tradedesk_http_request_duration_seconds_count"
        assert value(samples, duration, route="/api/auth/status", method="GET", status="2xx") == 3
        assert value(samples, duration, route="/api/auth/authenticate", method="POST", status="2xx") == 2
        assert value(samples, duration, route="/api/auth/authenticate", method="POST", status="4xx") == 1
        assert (
            value(samples, duration, route="/api/auth/sessions/{handle}", method="DELETE", status="4xx") == 1
        )
        assert value(samples, duration, route="unmatched", method="GET", status="4xx") == 1
        assert (
            value(
                samples,
                "tradedesk_http_request_duration_seconds_sum",
                route="/api/auth/status",
                method="GET",
                status="2xx",
            )
            > 0
        )

        broker = "tradedesk_broker_request_duration_seconds_count"
        assert value(samples, broker, endpoint="POST /session/token") == 3
        assert (
            value(
                samples,
                "tradedesk_broker_errors_total",
                endpoint="POST /session/token",
                error="SignInRejected",
            )
            == 1
        )

        assert value(samples, "tradedesk_active_sessions") == 2
        assert value(samples, "tradedesk_db_pool_size") == 10
        assert value(samples, "tradedesk_db_pool_checked_out") == 0
        assert value(samples, "tradedesk_db_pool_overflow") == 0
        assert value(samples, "tradedesk_sign_ins_total", outcome="success") == 2
        assert value(samples, "tradedesk_sign_ins_total", outcome="SignInRejected") == 1

        # Labels carry templates, never what the client typed.
        text = "\n".join(f"{name} {dict(labels)}" for name, labels in samples)
        assert "not-a-real-handle-4242" not in text
        assert "wp-admin" not in text
        assert "forged-token" not in text

    async def test_active_sessions_follow_sign_outs_after_the_cache_expires(
        self, make_api: MakeApi, kite_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        app = await make_api(metrics_token=TOKEN)
        async with browser(app) as api:
            await sign_in_through(api, kite_client, "DEMO01")
            _, before = await scrape(api)
            assert (await api.post("/api/auth/logout")).status_code == 204
            _, cached = await scrape(api)
            monkeypatch.setattr("tradedesk.metrics.instruments.ACTIVE_SESSIONS_TTL_S", 0.0)
            _, after = await scrape(api)
        assert value(before, "tradedesk_active_sessions") == 1
        assert value(cached, "tradedesk_active_sessions") == 1
        assert value(after, "tradedesk_active_sessions") == 0

    async def test_sql_sessions_are_counted_across_users_through_row_level_security(
        self, make_api: MakeApi, kite_client: httpx.AsyncClient
    ) -> None:
        app = await make_api(store="sql", metrics_token=TOKEN)
        async with browser(app) as first, browser(app) as second, browser(app) as third:
            await sign_in_through(first, kite_client, "DEMO01")
            await sign_in_through(second, kite_client, "DEMO02")
            await sign_in_through(third, kite_client, "DEMO02")
            assert (await third.post("/api/auth/logout")).status_code == 204
            _, samples = await scrape(first)
        # The API connects as a role that sees one key's or one broker's rows; the count still sees all.
        assert value(samples, "tradedesk_active_sessions") == 2
        assert value(samples, "tradedesk_db_pool_size") == 10


class TestSessionStoreErrors:
    async def test_store_failures_are_counted_and_other_outages_are_not(
        self, make_api: MakeApi, kite_client: httpx.AsyncClient
    ) -> None:
        healthy = await make_api(metrics_token=TOKEN)
        async with browser(healthy) as api:
            await sign_in_through(api, kite_client, "DEMO01")
            cookies = api.cookies
        # The same keys and database, but a Redis that is not there.
        broken = await make_api(metrics_token=TOKEN, redis_url=f"redis://127.0.0.1:{free_port()}/0")
        async with browser(broken) as api:
            api.cookies = cookies
            token = await request_token_for(kite_client, "DEMO01")
            # Sign-in's rate limiter lives in Redis too: a 503, but not the session store's.
            limited = await api.post(
                "/api/auth/authenticate",
                json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token},
            )
            assert limited.status_code == 503
            _, before = await scrape(api)
            status = await api.get("/api/auth/status")
            assert status.status_code == 503
            assert status.json()["error"] == "ServiceUnavailable"
            assert status.headers["retry-after"]
            _, after = await scrape(api)
        errors = "tradedesk_session_store_errors_total"
        assert value(before, errors, store="redis") == 0
        assert value(after, errors, store="redis") == 1
        assert math.isnan(value(after, "tradedesk_active_sessions"))


class TestMetricsPort:
    async def test_its_own_port_serves_the_same_families_and_closes_with_the_app(
        self,
        clean_database: str,
        redis_prefix: str,
        clock: ManualClock,
        kitesim: object,
        kite_client: httpx.AsyncClient,
    ) -> None:
        port = free_port()
        settings = make_settings(as_app_role(clean_database), redis_prefix=redis_prefix, metrics_port=port)
        app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
        async with app.router.lifespan_context(app), browser(app) as api, httpx.AsyncClient() as prometheus:
            await sign_in_through(api, kite_client, "DEMO01")
            assert (await api.get("/api/auth/status")).status_code == 200
            # Not on the API itself: no token is configured.
            assert (
                await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            ).status_code == 404
            response = await prometheus.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            elsewhere = await prometheus.get(f"http://127.0.0.1:{port}/api/auth/status")
            assert elsewhere.status_code == 404
        families, samples = parse(response.text)
        assert set(FAMILIES) <= families
        assert (
            value(
                samples,
                "tradedesk_http_request_duration_seconds_count",
                route="/api/auth/status",
                method="GET",
                status="2xx",
            )
            == 1
        )
        assert value(samples, "tradedesk_active_sessions") == 1
        async with httpx.AsyncClient() as prometheus:
            with pytest.raises(httpx.ConnectError):
                await prometheus.get(f"http://127.0.0.1:{port}/metrics")

    async def test_the_port_is_bound_to_the_address_asked_for(
        self, clean_database: str, redis_prefix: str, clock: ManualClock, kitesim: object
    ) -> None:
        port = free_port()
        settings = make_settings(
            as_app_role(clean_database), redis_prefix=redis_prefix, metrics_port=port, metrics_host="::1"
        )
        app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
        async with app.router.lifespan_context(app), httpx.AsyncClient() as prometheus:
            assert (await prometheus.get(f"http://[::1]:{port}/metrics")).status_code == 200
            with pytest.raises(httpx.ConnectError):
                await prometheus.get(f"http://127.0.0.1:{port}/metrics")

    def test_an_address_that_is_not_one_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="metrics_host"):
            Settings(metrics_host="all-interfaces")

    async def test_a_port_in_use_fails_startup(
        self, clean_database: str, redis_prefix: str, clock: ManualClock, kitesim: object
    ) -> None:
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            settings = make_settings(
                as_app_role(clean_database), redis_prefix=redis_prefix, metrics_port=taken.getsockname()[1]
            )
            app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
            with pytest.raises(OSError):
                async with app.router.lifespan_context(app):
                    pass


class TestRecordSignIn:
    async def test_counts_into_this_apps_metrics_only(self, make_api: MakeApi) -> None:
        first, second = await make_api(metrics_token=TOKEN), await make_api(metrics_token=TOKEN)
        auth = first.state.td.auth
        auth.log_sign_in_failure(reason="invalid_state", ip=None)
        auth.log_sign_in_failure(reason="SignInRejected", ip=None)
        auth.log_sign_in_failure(reason="SignInRejected", ip=None)
        _, samples = parse((await first.state.td.metrics.exposition()).decode())
        assert value(samples, "tradedesk_sign_ins_total", outcome="invalid_state") == 1
        assert value(samples, "tradedesk_sign_ins_total", outcome="SignInRejected") == 2
        _, others = parse((await second.state.td.metrics.exposition()).decode())
        counted = [labels for name, labels in others if name == "tradedesk_sign_ins_total"]
        assert all(value(others, "tradedesk_sign_ins_total", **dict(labels)) == 0 for labels in counted)

    async def test_an_api_that_runs_agents_exports_the_runtimes_families(self, make_api: MakeApi) -> None:
        runs, serves = await make_api(agent_runtime="on"), await make_api()
        families, samples = parse((await runs.state.td.metrics.exposition()).decode())
        # Its clock is the test's, not one that follows the database: no skew to report.
        assert set(AGENT_FAMILIES) - families == {"tradedesk_clock_skew_seconds"}
        runtime_id = runs.state.agents.runtime.runtime_id
        assert value(samples, "tradedesk_agents_held", runtime=runtime_id) == 0
        families, _ = parse((await serves.state.td.metrics.exposition()).decode())
        assert not set(AGENT_FAMILIES) & families

    async def test_outcomes_beyond_the_cap_count_as_other(self, make_api: MakeApi) -> None:
        metrics = AppMetrics((await make_api()).state.td)
        for n in range(MAX_SIGN_IN_OUTCOMES + 5):
            metrics.count_sign_in(f"reason_{n}")
        _, samples = parse((await metrics.exposition()).decode())
        outcomes = {dict(labels)["outcome"] for name, labels in samples if name == "tradedesk_sign_ins_total"}
        assert len(outcomes) == MAX_SIGN_IN_OUTCOMES + 1
        assert value(samples, "tradedesk_sign_ins_total", outcome="other") == 6


class TestDashboard:
    def test_every_query_names_an_exported_family(self) -> None:
        dashboard = json.loads((ROOT / "deploy" / "grafana" / "tradedesk.json").read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        named = {
            re.sub(r"_(bucket|count|sum|total)$", "", m)
            for e in exprs
            for m in re.findall(r"tradedesk_\w+", e)
        }
        assert named == set(FAMILIES) | set(AGENT_FAMILIES)
