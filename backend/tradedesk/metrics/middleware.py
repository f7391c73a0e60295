"""Request timing per route template, as plain ASGI middleware placed outermost."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradedesk.metrics.instruments import AppMetrics, request_metrics

UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Observes every HTTP request's duration under its route template (never the raw path, so ids and
    probes cannot grow the label set), method and status class."""

    def __init__(self, app: ASGIApp, *, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Label lookups take a lock inside prometheus_client; each label set is resolved once.
        self._observers: dict[tuple[str, str, int], Callable[[float], None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # nothing sent: the server's own error answer follows

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = request_metrics.set(self.metrics)
        started_at = perf_counter()
        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed_s = perf_counter() - started_at
            request_metrics.reset(token)
            # The router writes the matched route into this same scope on its way in.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            method = scope["method"] if scope["method"] in _METHODS else "other"
            key = (route, method, status // 100)
            observe = self._observers.get(key)
            if observe is None:
                observe = self._observers[key] = self.metrics.request_duration.labels(
                    route=route, method=method, status=f"{status // 100}xx"
                ).observe
            observe(elapsed_s)
