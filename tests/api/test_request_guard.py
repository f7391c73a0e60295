"""What the middleware refuses before any handler runs, and what it adds to every answer: client address
behind trusted proxies, Host, header and body limits, sessionless unsafe requests, Origin, content type,
request ids, security headers, the docs page and the OpenAPI document."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket

from tests.conftest import API_BASE, DEMO_API_KEY, DEMO_API_SECRET, SPA_ORIGIN, SignIn, make_settings
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app
from tradedesk.middleware import ClientAddressMiddleware, RequestGuardMiddleware, parse_ip

MakeApi = Callable[..., Awaitable[FastAPI]]


@pytest.fixture
async def make_api(
    clean_database: str, redis_prefix: str, clock: ManualClock, kitesim: object
) -> AsyncIterator[MakeApi]:
    """Builds and starts an app on PostgreSQL + Redis with the given settings overrides."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: object) -> FastAPI:
            settings = make_settings(clean_database, redis_prefix=redis_prefix, **overrides)
            app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
            await stack.enter_async_context(app.router.lifespan_context(app))
            return app

        yield make


def browser(
    app: FastAPI, *, peer: str = "203.0.113.7", origin: str | None = SPA_ORIGIN, base_url: str = API_BASE
) -> httpx.AsyncClient:
    headers = {"Origin": origin} if origin else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(peer, 5555)), base_url=base_url, headers=headers
    )


class TestClientAddress:
    guard = ClientAddressMiddleware(lambda *_: None, trusted_proxies=["10.0.0.0/8", "::1/128"])  # type: ignore[arg-type]

    def test_untrusted_peer_keeps_its_own_address(self) -> None:
        assert self.guard.client_for("203.0.113.7", ["198.51.100.1"]) == "203.0.113.7"

    def test_rightmost_untrusted_hop_is_the_client(self) -> None:
        chain = ["6.6.6.6, 198.51.100.1, 10.0.0.3"]
        assert self.guard.client_for("10.0.0.2", chain) == "198.51.100.1"

    def test_several_headers_are_one_chain(self) -> None:
        assert self.guard.client_for("10.0.0.2", ["6.6.6.6", "198.51.100.1"]) == "198.51.100.1"

    def test_garbage_hop_stops_at_the_last_vouched_address(self) -> None:
        assert self.guard.client_for("10.0.0.2", ["<script>, 10.0.0.9"]) == "10.0.0.9"
        assert self.guard.client_for("10.0.0.2", ["not-an-ip"]) == "10.0.0.2"

    def test_all_trusted_chain_gives_the_leftmost(self) -> None:
        assert self.guard.client_for("::1", ["10.1.1.1, 10.2.2.2"]) == "10.1.1.1"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("1.2.3.4", "1.2.3.4"), ("1.2.3.4:80", "1.2.3.4"), ("[::1]:80", "::1"), ("::1", "::1"), ("x", None)],
    )
    def test_parse_ip(self, text: str, expected: str | None) -> None:
        parsed = parse_ip(text)
        assert (str(parsed) if parsed else None) == expected

    async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
        self, make_api: MakeApi, sign_in: SignIn
    ) -> None:
        app = await make_api()
        client = browser(app)
        client.headers["X-Forwarded-For"] = "1.1.1.1"
        await sign_in(client)
        sessions = (await client.get("/api/auth/sessions")).json()
        assert [s["ip"] for s in sessions] == ["203.0.113.7"]
        await client.aclose()

    async def test_rotating_forwarded_for_does_not_escape_the_rate_limit(self, make_api: MakeApi) -> None:
        app = await make_api(signin_rate_limit=3)
        client = browser(app)
        answers = []
        for n in range(5):
            response = await client.post(
                "/api/auth/login",
                json={"api_key": DEMO_API_KEY, "api_secret": "s"},
                headers={"X-Forwarded-For": f"192.0.2.{n}"},
            )
            answers.append(response.status_code)
        assert answers == [200, 200, 200, 429, 429]
        await client.aclose()

    async def test_trusted_proxy_names_the_client(self, make_api: MakeApi, sign_in: SignIn) -> None:
        app = await make_api(trusted_proxies=["10.0.0.0/8"])
        client = browser(app, peer="10.0.0.2")
        client.headers["X-Forwarded-For"] = "6.6.6.6, 198.51.100.23"
        await sign_in(client)
        sessions = (await client.get("/api/auth/sessions")).json()
        assert [s["ip"] for s in sessions] == ["198.51.100.23"]
        await client.aclose()


class TestHostAndRedirects:
    async def test_unknown_host_is_400(self, make_api: MakeApi) -> None:
        app = await make_api()
        client = browser(app, base_url="http://evil.test")
        response = await client.get("/healthz")
        assert response.status_code == 400
        assert response.json()["error"] == "InvalidHost"
        await client.aclose()

    async def test_default_hosts_are_the_api_url_and_loopback(self, make_api: MakeApi) -> None:
        app = await make_api()
        for base, status in (
            ("http://api.test", 200),
            ("http://localhost:8000", 200),
            ("http://127.0.0.1:8000", 200),
            ("http://[::1]:8000", 200),
            ("http://[::2]:8000", 400),
            ("http://api.test.evil.test", 400),
        ):
            client = browser(app, base_url=base)
            assert (await client.get("/healthz")).status_code == status, base
            await client.aclose()

    async def test_configured_hosts_and_wildcards(self, make_api: MakeApi) -> None:
        app = await make_api(allowed_hosts=["api.example.com", "*.internal.example"])
        for base, status in (
            ("http://api.example.com", 200),
            ("http://a.internal.example:8000", 200),
            ("http://internal.example", 400),
            ("http://api.test", 400),
        ):
            client = browser(app, base_url=base)
            assert (await client.get("/healthz")).status_code == status, base
            await client.aclose()

    async def test_no_trailing_slash_redirect_on_api(self, make_api: MakeApi, sign_in: SignIn) -> None:
        app = await make_api()
        client = browser(app)
        await sign_in(client)
        response = await client.get("/api/trades/", headers={"Host": "api.test"})
        assert response.status_code == 404
        assert "location" not in response.headers
        await client.aclose()


class TestSizeLimits:
    async def test_declared_body_over_the_limit_is_413(self, make_api: MakeApi) -> None:
        app = await make_api()
        client = browser(app)
        response = await client.post(
            "/api/auth/login",
            content=b'{"api_key": "' + b"k" * 70_000 + b'", "api_secret": "s"}',
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["error"] == "PayloadTooLarge"
        await client.aclose()

    async def test_streamed_body_over_the_limit_is_413_and_not_read_on(self, make_api: MakeApi) -> None:
        app = await make_api(max_body_bytes=4096)
        client = browser(app)
        sent: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"api_key": "'
            for n in range(100):
                sent.append(n)
                yield b"k" * 1024

        response = await client.post(
            "/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert len(sent) < 10
        await client.aclose()

    async def test_sessionless_unsafe_request_is_401_before_its_body_is_read(self, make_api: MakeApi) -> None:
        app = await make_api()
        client = browser(app)
        sent: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                sent.append(n)
                yield b"{}" if n == 0 else b" "

        response = await client.post(
            "/api/sync", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401
        assert response.json()["error"] == "NotAuthenticated"
        assert sent == []
        forged = await client.post("/api/sync", json={}, headers={"Cookie": "tradedesk=not.a.signed.value"})
        assert forged.status_code == 401
        await client.aclose()

    async def test_oversized_headers_are_431(self, make_api: MakeApi) -> None:
        app = await make_api(max_header_bytes=2048)
        client = browser(app)
        response = await client.get("/healthz", headers={"X-Padding": "p" * 4000})
        assert response.status_code == 431
        assert response.json()["error"] == "RequestHeaderFieldsTooLarge"
        await client.aclose()


class TestUnsafeRequests:
    @pytest.mark.parametrize("length", [b"-5", b"ten", b"1e3"])
    async def test_a_content_length_that_is_not_a_byte_count_is_400(
        self, make_api: MakeApi, length: bytes
    ) -> None:
        app = await make_api()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/auth/login",
            "raw_path": b"/api/auth/login",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"api.test"),
                (b"origin", SPA_ORIGIN.encode()),
                (b"content-type", b"application/json"),
                (b"content-length", length),
            ],
            "client": ("203.0.113.7", 5555),
            "server": ("api.test", 80),
            "state": {},
        }
        await app(scope, receive, send)  # type: ignore[arg-type]
        assert sent[0]["status"] == 400

    async def test_json_with_a_charset_is_json(self, make_api: MakeApi) -> None:
        app = await make_api()
        client = browser(app)
        response = await client.post(
            "/api/auth/login",
            content=b'{"api_key": "k", "api_secret": "s"}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert response.status_code == 200, response.text
        await client.aclose()

    async def test_a_referer_without_a_scheme_names_no_origin(self, make_api: MakeApi) -> None:
        app = await make_api()
        client = browser(app, origin=None)
        response = await client.post(
            "/api/auth/login",
            json={"api_key": "k", "api_secret": "s"},
            headers={"Referer": "//spa.test/connect"},
        )
        assert response.status_code == 403
        assert response.json()["detail"] == "Unsafe requests must carry an Origin (or Referer) header."
        await client.aclose()

    async def test_null_origin_with_allowed_referer_is_403(self, make_api: MakeApi) -> None:
        app = await make_api()
        client = browser(app, origin="null")
        response = await client.post(
            "/api/auth/login",
            json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET},
            headers={"Referer": f"{SPA_ORIGIN}/connect"},
        )
        assert response.status_code == 403
        assert response.json()["error"] == "OriginRejected"
        await client.aclose()

    @pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
    async def test_bodies_that_are_not_json_are_415(
        self, make_api: MakeApi, content_type: str | None
    ) -> None:
        app = await make_api()
        client = browser(app)
        request = client.build_request("POST", "/api/auth/login", content=b'{"api_key":"k","api_secret":"s"}')
        if content_type is not None:
            request.headers["Content-Type"] = content_type
        assert request.headers.get("content-type") == content_type
        response = await client.send(request)
        assert response.status_code == 415
        assert response.json()["error"] == "UnsupportedMediaType"
        await client.aclose()


class TestResponses:
    async def test_request_id_is_returned_and_kept_when_sane(self, make_api: MakeApi) -> None:
        app = await make_api()
        client = browser(app)
        fresh = await client.get("/healthz")
        assert len(fresh.headers["x-request-id"]) == 16
        kept = await client.get("/healthz", headers={"X-Request-ID": "lb-0123456789abcdef"})
        assert kept.headers["x-request-id"] == "lb-0123456789abcdef"
        for junk in ("a\u00e9b c".encode() * 3, b"short", b"x" * 65, b"id\r\ninjected: yes"):
            answer = await client.get("/healthz", headers={"X-Request-ID": junk})
            assert answer.headers["x-request-id"].encode() != junk
        await client.aclose()

    async def test_hsts_only_in_secure_mode(self, make_api: MakeApi) -> None:
        development = browser(await make_api())
        assert "strict-transport-security" not in (await development.get("/healthz")).headers
        secure = browser(await make_api(cookie_secure=True))
        assert "max-age=" in (await secure.get("/healthz")).headers["strict-transport-security"]
        await development.aclose()
        await secure.aclose()

    async def test_hsts_is_never_sent_to_localhost(self, make_api: MakeApi) -> None:
        """It would make the browser insist on https for every port of localhost for a year."""
        app = await make_api(cookie_secure=True, allowed_hosts=["localhost", "*.localhost", "api.test"])
        client = browser(app)
        for host in ("localhost", "LocalHost:8444", "app.localhost:8443"):
            answer = await client.get("/api/auth/status", headers={"Host": host})
            assert answer.status_code == 200, (host, answer.text)
            assert "strict-transport-security" not in answer.headers, host
            assert answer.headers["x-content-type-options"] == "nosniff"
        for host in ("api.test", "api.test:443"):
            answer = await client.get("/api/auth/status", headers={"Host": host})
            assert "max-age=" in answer.headers["strict-transport-security"], host
        await client.aclose()

    async def test_unexpected_error_is_a_logged_json_500_with_cors(
        self, make_api: MakeApi, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = await make_api()

        async def broken() -> None:
            raise RuntimeError("boom in a handler")

        app.add_api_route("/api/broken", broken, methods=["GET"])
        client = browser(app)
        with caplog.at_level(logging.ERROR, logger="tradedesk.http"):
            response = await client.get("/api/broken")
        assert response.status_code == 500
        assert response.json()["error"] == "InternalError"
        assert response.headers["access-control-allow-origin"] == SPA_ORIGIN
        assert response.headers["x-request-id"]
        assert any("boom in a handler" in (r.exc_text or "") or r.exc_info for r in caplog.records)
        await client.aclose()

    async def test_lifespan_passes_through_every_middleware(
        self, clean_database: str, redis_prefix: str, clock: ManualClock
    ) -> None:
        app = create_app(make_settings(clean_database, redis_prefix=redis_prefix), clock=clock)
        messages: list[dict[str, Any]] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[str] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)  # type: ignore[arg-type]
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


class TestDocs:
    async def test_docs_are_self_hosted_under_a_csp(self, make_api: MakeApi) -> None:
        app = await make_api()
        client = browser(app)
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "http" not in page.text.replace("http-equiv", "")  # no script or style from another host
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert (await client.get("/docs/init.js")).status_code == 200
        bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text[:2000]
        await client.aclose()

    async def test_docs_off_in_production_unless_enabled(self, make_api: MakeApi) -> None:
        production = {
            "env": "production",
            "cookie_secure": True,
            "encryption_keys": ["cHJvZHVjdGlvbi1lbmNyeXB0aW9uLWtleS0zMi1ieXQ"],
        }
        off = browser(await make_api(**production))
        assert (await off.get("/docs")).status_code == 404
        assert (await off.get("/openapi.json")).status_code == 404
        on = browser(await make_api(**production, docs_enabled=True))
        assert (await on.get("/docs")).status_code == 200
        assert (await on.get("/openapi.json")).status_code == 200
        await off.aclose()
        await on.aclose()

    async def test_own_origin_may_make_changes_only_while_docs_are_on(self, make_api: MakeApi) -> None:
        body = {"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
        with_docs = browser(await make_api(docs_enabled=True), origin=API_BASE)
        assert (await with_docs.post("/api/auth/login", json=body)).status_code == 200
        without = browser(await make_api(docs_enabled=False), origin=API_BASE)
        refused = await without.post("/api/auth/login", json=body)
        assert refused.status_code == 403 and refused.json()["error"] == "OriginRejected"
        await with_docs.aclose()
        await without.aclose()

    async def test_openapi_names_the_real_cookie_and_the_csrf_header(self, make_api: MakeApi) -> None:
        spec = (await browser(await make_api(cookie_secure=True)).get("/openapi.json")).json()
        schemes = spec["components"]["securitySchemes"]
        assert schemes["SessionCookie"] == {
            **schemes["SessionCookie"],
            "in": "cookie",
            "name": "__Host-tradedesk",
        }
        assert schemes["CsrfToken"] == {**schemes["CsrfToken"], "in": "header", "name": "X-CSRF-Token"}
        paths = spec["paths"]
        assert paths["/api/auth/logout"]["post"]["security"] == [{"SessionCookie": [], "CsrfToken": []}]
        assert paths["/api/trades"]["get"]["security"] == [{"SessionCookie": []}]
        for path, method in (
            ("/api/auth/login", "post"),
            ("/api/auth/authenticate", "post"),
            ("/api/auth/set-access-token", "post"),
            ("/api/auth/callback", "get"),
            ("/api/auth/status", "get"),
        ):
            assert {} in paths[path][method].get("security", [{}]), path


class TestWebSockets:
    async def handshake(self, app: FastAPI, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        incoming: list[dict[str, Any]] = [{"type": "websocket.connect"}, {"type": "websocket.disconnect"}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/api/ws-probe",
            "raw_path": b"/api/ws-probe",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"api.test"), *headers],
            "client": ("203.0.113.7", 5555),
            "server": ("api.test", 80),
            "subprotocols": [],
            "state": {},
        }
        await app(scope, receive, send)  # type: ignore[arg-type]
        return sent

    @pytest.mark.parametrize(
        ("origin", "accepted"),
        [(SPA_ORIGIN.encode(), True), (b"http://evil.test", False), (b"null", False), (None, False)],
    )
    async def test_only_allowed_origins_may_open_one(
        self, make_api: MakeApi, origin: bytes | None, accepted: bool
    ) -> None:
        app = await make_api()

        async def probe(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.close()

        app.add_api_websocket_route("/api/ws-probe", probe)
        sent = await self.handshake(app, [(b"origin", origin)] if origin else [])
        if accepted:
            assert sent[0]["type"] == "websocket.accept"
        else:
            assert sent == [{"type": "websocket.close", "code": 1008, "reason": "OriginRejected"}]


class TestAccessLog:
    async def test_one_line_per_request_with_its_real_status_and_duration(
        self, make_api: MakeApi, sign_in: SignIn, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = await make_api()
        client = browser(app)
        await sign_in(client)
        with caplog.at_level(logging.INFO, logger="tradedesk.http"):
            started = time.perf_counter()
            ok = await client.get("/api/trades")
            missing = await client.get("/api/no-such-thing")
            elapsed_ms = (time.perf_counter() - started) * 1000
        lines = [r for r in caplog.records if r.name == "tradedesk.http"]
        assert [(r.method, r.route, r.status) for r in lines] == [  # type: ignore[attr-defined]
            ("GET", "/api/trades", 200),
            ("GET", "unmatched", 404),
        ]
        assert ok.headers["x-request-id"] != missing.headers["x-request-id"]
        # Each line's duration is its own request's: positive, and within what the client waited for both.
        assert all(0 < line.duration_ms <= elapsed_ms for line in lines)  # type: ignore[attr-defined]
        assert lines[0].broker and lines[0].broker != "DEMO01"  # type: ignore[attr-defined]
        await client.aclose()


class TestGuardInternals:
    async def test_forwarded_proto_sets_the_scheme_of_each_scope_type(self) -> None:
        seen: list[str] = []

        async def inner(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["scheme"])

        guard = ClientAddressMiddleware(inner, trusted_proxies=["10.0.0.0/8"])
        for kind in ("http", "websocket"):
            scope = {
                "type": kind,
                "scheme": "http" if kind == "http" else "ws",
                "client": ("10.0.0.2", 1),
                "headers": [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-proto", b"https")],
            }
            await guard(scope, None, None)  # type: ignore[arg-type]
        assert seen == ["https", "wss"]

    async def test_a_body_past_the_limit_after_the_answer_started_sends_no_second_answer(self) -> None:
        async def streams_early(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while (await receive())["type"] == "http.request":
                pass
            await send({"type": "http.response.body", "body": b"done"})

        guard = RequestGuardMiddleware(
            streams_early,
            allowed_origins=[SPA_ORIGIN],
            allowed_hosts=["api.test"],
            max_body_bytes=10,
            max_header_bytes=4096,
            session_cookie="tradedesk",
            cookie_is_signed=lambda _: True,
        )
        chunks = [{"type": "http.request", "body": b"x" * 8, "more_body": True} for _ in range(3)]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return chunks.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/stream",
            "headers": [(b"host", b"api.test"), (b"content-length", b"5")],
        }
        await guard(scope, receive, send)
        assert [m["type"] for m in sent] == ["http.response.start"]
        assert sent[0]["status"] == 200
