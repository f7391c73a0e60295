"""Plain ASGI middleware: security headers, the unsafe-request guard (Origin, Fetch-Metadata,
content type) and a last-resort JSON 500 that still passes through CORS."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tradedesk.http")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DOCS_PATHS = ("/docs", "/redoc")


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _normalise(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


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


class RequestGuardMiddleware:
    """Refuses unsafe requests from origins outside the allow list, cross-site requests the browser
    flags as such, and bodies that are not JSON — before any handler or store is touched."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Iterable[str], public_origin: str) -> None:
        self.app = app
        self.allowed = {_normalise(o) for o in allowed_origins}
        own = _origin_of(public_origin)
        if own:
            self.allowed.add(own)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or origin == "null":
            # Browsers always label cross-site requests; without an Origin that label is decisive.
            if headers.get("sec-fetch-site") == "cross-site":
                await _send_json(
                    send, 403, "OriginRejected", "Cross-site requests may not make changes here."
                )
                return
            referer = headers.get("referer")
            origin = _origin_of(referer) if referer else None
        if origin is None:
            await _send_json(
                send, 403, "OriginRejected", "Unsafe requests must carry an Origin (or Referer) header."
            )
            return
        if _normalise(origin) not in self.allowed:
            await _send_json(
                send, 403, "OriginRejected", f"Requests from origin {origin!r} may not make changes here."
            )
            return
        has_body = headers.get("transfer-encoding") is not None or int(headers.get("content-length") or 0) > 0
        if has_body:
            media_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                await _send_json(
                    send,
                    415,
                    "UnsupportedMediaType",
                    "Send the request body as JSON (Content-Type: application/json).",
                )
                return
        await self.app(scope, receive, send)


class ResponseHardeningMiddleware:
    """Security headers on every answer (``no-store`` on /api), and a JSON 500 for anything unexpected,
    raised inside CORS so the SPA can still read it."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if hsts:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        csp = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
        # Session-bearing answers must never sit in a shared or browser cache.
        no_store = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
        self._docs_headers = common
        self._page_headers = [*common, csp]
        self._api_headers = [*common, csp, *no_store]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/api/"):
            extra = self._api_headers
        elif path.startswith(_DOCS_PATHS):
            extra = self._docs_headers
        else:
            extra = self._page_headers
        started = False

        async def send_hardened(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name for name, _ in extra}
                headers = [h for h in message.get("headers", ()) if h[0].lower() not in names]
                message["headers"] = headers + extra
            await send(message)

        try:
            await self.app(scope, receive, send_hardened)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _send_json(
                send_hardened, 500, "InternalError", "Something went wrong on our side; it has been logged."
            )
