"""Plain ASGI middleware: the client's address behind trusted proxies, the request guard (Host, header and
body sizes, Origin, Fetch-Metadata, session presence, content type), request ids with one log line per
request, security headers, and a last-resort JSON 500 that still passes through CORS."""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradedesk.logs import log_tag, request_id_var

log = logging.getLogger("tradedesk.http")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DOCS_PATH = "/docs"
UNMATCHED_ROUTE = "unmatched"
# Unsafe routes that make a session rather than need one; every other unsafe /api request without a
# signed session cookie is refused before its body is read.
PRE_AUTH_PATHS = frozenset({"/api/auth/login", "/api/auth/authenticate", "/api/auth/set-access-token"})

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lower-cased; None when it has no scheme or no host."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _normalise(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _without_port(text: str) -> str | None:
    """The host part of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (a bare IPv6 address stays
    whole); None for an unclosed bracket."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else None
    return text.split(":", 1)[0] if text.count(":") == 1 else text


def parse_ip(text: str) -> IpAddress | None:
    """An IP address from a header hop (``1.2.3.4``, ``[::1]``, ``1.2.3.4:5678``), or None."""
    host = _without_port(text)
    try:
        return ipaddress.ip_address(host) if host else None
    except ValueError:
        return None


async def _send_json(send: Send, status: int, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ClientAddressMiddleware:
    """Behind a reverse proxy the socket's peer is the proxy. Only peers inside ``trusted_proxies`` may
    name the client: X-Forwarded-For is read from the right, skipping trusted hops, and the first
    untrusted hop is the client. Anyone else's forwarded headers are ignored."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: Iterable[str]) -> None:
        self.app = app
        self.networks: list[IpNetwork] = [
            ipaddress.ip_network(c.strip(), strict=False) for c in trusted_proxies
        ]

    def _trusted(self, address: IpAddress) -> bool:
        return any(address in network for network in self.networks)

    def client_for(self, peer: str, forwarded_for: list[str]) -> str:
        peer_ip = parse_ip(peer)
        if peer_ip is None or not self._trusted(peer_ip):
            return peer
        client: IpAddress = peer_ip
        hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = parse_ip(hop)
            if address is None:
                break  # a broken chain: the last address a trusted hop vouched for stands
            client = address
            if not self._trusted(address):
                break
        return str(client)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.networks and scope["type"] in ("http", "websocket") and scope.get("client"):
            headers = Headers(scope=scope)
            peer, port = scope["client"]
            client = self.client_for(peer, headers.getlist("x-forwarded-for"))
            if client != peer:
                scope["client"] = (client, port)
                proto = headers.get("x-forwarded-proto", "").strip().lower()
                if proto in ("http", "https"):
                    secure = proto == "https"
                    if scope["type"] == "websocket":
                        scope["scheme"] = "wss" if secure else "ws"
                    else:
                        scope["scheme"] = proto
        await self.app(scope, receive, send)


def _host_matches(host: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class RequestGuardMiddleware:
    """Everything that can be refused before a handler, a store or a body parser runs: an unknown Host,
    oversized headers or bodies, unsafe requests from origins outside the allow list or flagged
    cross-site by the browser, unsafe /api requests with no signed session cookie, and bodies that are
    not JSON."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_origins: Iterable[str],
        allowed_hosts: Iterable[str],
        max_body_bytes: int,
        max_header_bytes: int,
        session_cookie: str,
        cookie_is_signed: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.allowed = {_normalise(o) for o in allowed_origins}
        self.hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.session_cookie = session_cookie
        self.cookie_is_signed = cookie_is_signed
        # Host header value -> allowed; bounded, so a flood of made-up hosts cannot grow it.
        self._host_verdicts: dict[str, bool] = {}

    def _host_allowed(self, value: str) -> bool:
        verdict = self._host_verdicts.get(value)
        if verdict is None:
            host = _without_port(value.lower())
            verdict = bool(host and _host_matches(host, self.hosts))
            if len(self._host_verdicts) < 1024:
                self._host_verdicts[value] = verdict
        return verdict

    def _has_signed_session(self, headers: Headers) -> bool:
        for cookie_header in headers.getlist("cookie"):
            for pair in cookie_header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name == self.session_cookie and value and self.cookie_is_signed(value.strip('"')):
                    return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal: tuple[int, str, str] | None = None
        if not self._host_allowed(headers.get("host", "")):
            refusal = 400, "InvalidHost", "This API does not answer to that Host."
        elif sum(len(name) + len(value) for name, value in scope["headers"]) > self.max_header_bytes:
            refusal = (
                431,
                "RequestHeaderFieldsTooLarge",
                f"The request headers exceed {self.max_header_bytes} bytes.",
            )
        if scope["type"] != "http":
            # A WebSocket handshake is a GET that any page may start, cookies included: like an unsafe
            # request, it must come from an allowed origin (browsers always send one on WebSockets).
            origin = headers.get("origin")
            if refusal is None and (origin is None or _normalise(origin) not in self.allowed):
                refusal = 403, "OriginRejected", "WebSockets may only be opened from an allowed origin."
            if refusal is None:
                await self.app(scope, receive, send)
            else:
                await receive()  # the websocket.connect message
                await send({"type": "websocket.close", "code": 1008, "reason": refusal[1]})
            return
        if refusal is not None:
            await _send_json(send, *refusal)
            return
        length = headers.get("content-length")
        chunked = headers.get("transfer-encoding") is not None
        try:
            declared = int(length) if length else 0
        except ValueError:
            declared = -1
        if declared < 0:
            await _send_json(send, 400, "BadRequest", "Content-Length must be a whole number of bytes.")
            return
        if declared > self.max_body_bytes:
            await _send_json(
                send, 413, "PayloadTooLarge", f"The request body exceeds {self.max_body_bytes} bytes."
            )
            return
        if scope["method"] in UNSAFE_METHODS:
            refusal = self._refuse_unsafe(scope, headers, declared, chunked=chunked)
            if refusal is not None:
                await _send_json(send, *refusal)
                return
        if declared == 0 and not chunked:
            await self.app(scope, receive, send)  # no body to count (the common GET)
        else:
            await self._with_body_limit(scope, receive, send)

    def _refuse_unsafe(
        self, scope: Scope, headers: Headers, declared: int, *, chunked: bool
    ) -> tuple[int, str, str] | None:
        origin = headers.get("origin")
        if origin is None:
            # Browsers always label cross-site requests; without an Origin that label is decisive.
            if headers.get("sec-fetch-site") == "cross-site":
                return 403, "OriginRejected", "Cross-site requests may not make changes here."
            referer = headers.get("referer")
            origin = origin_of(referer) if referer else None
            if origin is None:
                return 403, "OriginRejected", "Unsafe requests must carry an Origin (or Referer) header."
        # ``Origin: null`` (sandboxed frames, privacy redirects) names no origin: it is never allowed.
        if _normalise(origin) not in self.allowed:
            return 403, "OriginRejected", f"Requests from origin {origin!r} may not make changes here."
        path: str = scope["path"]
        if path.startswith("/api/") and path not in PRE_AUTH_PATHS and not self._has_signed_session(headers):
            return 401, "NotAuthenticated", "Sign in first: this needs a session."
        if declared > 0 or chunked:
            media_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                return (
                    415,
                    "UnsupportedMediaType",
                    "Send the request body as JSON (Content-Type: application/json).",
                )
        return None

    async def _with_body_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Counts streamed body bytes; past the limit it answers 413 itself (unless the answer has begun)
        and tells the app the client left, dropping whatever the app sends after that."""
        limit = self.max_body_bytes
        received = 0
        refused = started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _send_json(
                            send, 413, "PayloadTooLarge", f"The request body exceeds {limit} bytes."
                        )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app makes of the disconnect is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def _on_localhost(scope: Scope) -> bool:
    """Whether the request names ``localhost`` (or a name under it) as its host. HSTS sent there would make
    the browser insist on https for every port of localhost for a year, other local servers included."""
    for name, value in scope["headers"]:
        if name == b"host":
            host = (_without_port(value.decode("latin-1").lower()) or "").rstrip(".")
            return host == "localhost" or host.endswith(".localhost")
    return False


_SAFE_REQUEST_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _request_id(scope: Scope) -> str:
    """A sane incoming ``X-Request-ID`` is kept (a proxy's id joins up); anything else gets a fresh one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if 8 <= len(text) <= 64 and set(text) <= _SAFE_REQUEST_ID:
                return text
            break
    return secrets.token_hex(8)


class ResponseHardeningMiddleware:
    """Around every HTTP request, inside CORS: a request id (returned as ``X-Request-ID`` and set on every
    log line written meanwhile), security headers on every answer (``no-store`` on /api), a JSON 500 for
    anything unexpected (so the SPA can still read it), and when the answer is done, ``observe`` (request
    metrics) and one ``tradedesk.http`` line: method, route template, status, duration and a short hash of
    the broker_id. The query string is never logged: the sign-in callback carries its tokens there."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: bool,
        access_log: bool,
        observe: Callable[[Scope, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.observe = observe
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        self._hsts = hsts
        csp = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
        # The docs page runs only the self-hosted Swagger UI bundle and its initialiser from this origin.
        docs_csp = (
            b"content-security-policy",
            b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            b"img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
            b"form-action 'none'; frame-ancestors 'none'",
        )
        # Session-bearing answers must never sit in a shared or browser cache.
        no_store = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
        self._docs_headers = [*common, docs_csp]
        self._page_headers = [*common, csp]
        self._api_headers = [*common, csp, *no_store]
        self._names = frozenset(name for name, _ in self._api_headers + self._docs_headers) | {
            b"x-request-id",
            _HSTS[0],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/api/"):
            extra = self._api_headers
        elif path.startswith(_DOCS_PATH):
            extra = self._docs_headers
        else:
            extra = self._page_headers
        request_id = _request_id(scope)
        extra = [*extra, (b"x-request-id", request_id.encode("ascii"))]
        if self._hsts and not _on_localhost(scope):
            extra.append(_HSTS)
        token = request_id_var.set(request_id)
        status = 0
        started_at = time.perf_counter()

        async def send_hardened(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                names = self._names
                message["headers"] = [
                    h for h in message.get("headers", ()) if h[0].lower() not in names
                ] + extra
            await send(message)

        try:
            await self.app(scope, receive, send_hardened)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if status:
                raise
            await _send_json(
                send_hardened, 500, "InternalError", "Something went wrong on our side; it has been logged."
            )
        finally:
            elapsed_s = time.perf_counter() - started_at
            if self.observe is not None:
                self.observe(scope, status or 500, elapsed_s)
            if self.access_log:
                _log_request(scope, status or 500, elapsed_s)
            request_id_var.reset(token)


def route_template(scope: Scope) -> str:
    """The matched route's path template (the router writes it into the scope on its way in): never the
    raw path, so ids and probes do not show up in logs or metric labels."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE


def _log_request(scope: Scope, status: int, elapsed_s: float) -> None:
    template = route_template(scope)
    record = (scope.get("state") or {}).get("session")
    broker_id = getattr(record, "broker_id", None)
    client = scope.get("client")
    log.info(
        "%s %s %d %.1fms",
        scope["method"],
        template,
        status,
        elapsed_s * 1000,
        extra={
            "method": scope["method"],
            "route": template,
            "status": status,
            "duration_ms": round(elapsed_s * 1000, 2),
            "broker": log_tag(broker_id) if broker_id else None,
            "client_ip": client[0] if client else None,
        },
    )
