"""schemathesis over the API's own /openapi.json, in process on PostgreSQL and Redis, as a signed-in browser
(session cookie, CSRF token, the SPA's Origin): no answer is a 5xx, and every answer is a documented status
code with the declared content type and a body that conforms to its schema."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import APIOperation

from tests.conftest import API_BASE, SPA_ORIGIN, as_app_role, make_settings, sign_in_through
from tradedesk.docs import OPENAPI_URL
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app

# FUZZ_EXAMPLES=500 for a deeper run; the default keeps the suite quick and the same on every run.
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "50"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Their first example ends the session every later request relies on: they run last, each after a fresh
# sign-in, so they too are fuzzed signed in.
SESSION_ENDING = ("auth-logout", "auth-disconnect")


@pytest.fixture
async def fuzzed_api(
    clean_database: str, redis_prefix: str, clock: ManualClock, kitesim: object
) -> AsyncIterator[FastAPI]:
    settings_ = make_settings(
        as_app_role(clean_database),
        redis_prefix=redis_prefix,
        # The sign-in operations are fuzzed too; the limits would otherwise answer 429 to the harness itself.
        signin_rate_limit=100_000,
        signin_rate_limit_per_key=100_000,
    )
    app = create_app(settings_, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        yield app


def draw_cases(operation: APIOperation, count: int, *, session: Session) -> list[Case]:
    """``count`` valid and invalid requests for one operation, the same on every run, all carrying the
    session's cookie and CSRF token (fixed: only the operation's own inputs are fuzzed)."""
    drawn: list[Case] = []
    strategy = st.one_of(
        *(
            operation.as_strategy(mode, cookies=session.cookies, headers=session.headers)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        )
    )

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(strategy)
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    return drawn


@dataclass(frozen=True)
class Session:
    cookies: dict[str, str]
    headers: dict[str, str]


async def signed_in(app: FastAPI, kite_client: httpx.AsyncClient) -> Session:
    """A fresh session through the real chain (kitesim's login form, then /api/auth/authenticate)."""
    async with browser(app) as client:
        status = await sign_in_through(client, kite_client, "DEMO01")
        name = app.state.td.settings.session_cookie_name
        return Session(
            cookies={name: str(client.cookies[name])}, headers={"X-CSRF-Token": str(status["csrf_token"])}
        )


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5555)),
        base_url=API_BASE,
        headers={"Origin": SPA_ORIGIN, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
    )


async def send(client: httpx.AsyncClient, case: Case) -> httpx.Response:
    """The case as a browser on the SPA sends it: the SPA's Origin, the case's headers and cookies."""
    request: dict[str, Any] = case.as_transport_kwargs(base_url=API_BASE)
    headers = dict(request.get("headers") or {})
    if request.get("cookies"):
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in request["cookies"].items())
    body: dict[str, Any] = {}
    if "json" in request:
        body["json"] = request["json"]
    elif isinstance(request.get("data"), dict):
        body["data"] = request["data"]
    elif request.get("data") is not None:
        body["content"] = request["data"]
    return await client.request(
        request["method"],
        request["url"],
        params=request.get("params"),
        headers=headers,
        **body,
    )


def describe(case: Case, response: httpx.Response, failure: FailureGroup) -> str:
    titles = "; ".join(sorted({f.title for f in failure.exceptions}))
    return (
        f"{case.operation.label}: {titles} [{response.status_code}]\n{failure}\n"
        f"    {case.as_curl_command(base_url=API_BASE)}"
    )


async def test_every_operation_answers_as_documented(
    fuzzed_api: FastAPI, kite_client: httpx.AsyncClient
) -> None:
    async with browser(fuzzed_api) as client:
        document = (await client.get(OPENAPI_URL)).json()
        schema = schemathesis.openapi.from_dict(document)
        # A live event stream never ends, and the in-process transport reads a body to its end: the
        # stream's own tests drive it over real sockets.
        operations = [
            op
            for op in (result.ok() for result in schema.get_all_operations())
            if "text/event-stream"
            not in op.definition.raw.get("responses", {}).get("200", {}).get("content", {})
        ]
        operations.sort(key=lambda op: op.definition.raw.get("operationId") in SESSION_ENDING)
        assert len(operations) >= 20

        session = await signed_in(fuzzed_api, kite_client)
        failures: dict[tuple[str, str], str] = {}
        sent = 0
        for operation in operations:
            if operation.definition.raw.get("operationId") in SESSION_ENDING:
                session = await signed_in(fuzzed_api, kite_client)
            for case in draw_cases(operation, EXAMPLES_PER_OPERATION, session=session):
                response = await send(client, case)
                sent += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except FailureGroup as failure:
                    key = (operation.label, ",".join(sorted({f.title for f in failure.exceptions})))
                    failures.setdefault(key, describe(case, response, failure))

    assert sent >= len(operations) * 10
    assert not failures, f"{len(failures)} kinds of failure:\n\n" + "\n\n".join(failures.values())
