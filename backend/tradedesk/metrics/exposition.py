"""Where Prometheus reads the registry: `GET /metrics` on the API behind a bearer token, or the same on a
loopback port of its own; and the hook that counts session-store failures where they are answered."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import socket
from collections.abc import Iterator
from typing import Protocol

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from tradedesk.errors import NotAuthenticated, SessionStoreUnavailable, error_response
from tradedesk.metrics.instruments import AppMetrics

LISTENER_HOST = ipaddress.ip_address("127.0.0.1")


class Exposition(Protocol):
    async def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        ...


def metrics_router(metrics: AppMetrics, *, token: SecretStr | None) -> APIRouter:
    """``GET /metrics`` for holders of ``token``; without a token the route does not exist at all."""
    router = APIRouter()
    if token is None:
        return router
    expected = token.get_secret_value().encode("utf-8")

    @router.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        # Header values arrive latin-1 decoded; re-encoding gives back the bytes that were sent.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode("latin-1"), expected
        ):
            raise NotAuthenticated(
                "Send the metrics token as `Authorization: Bearer <token>`.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def count_session_store_errors(app: FastAPI, metrics: AppMetrics) -> None:
    """Counts the 503s a session store caused (by store), answered like every other AppError."""

    async def on_store_unavailable(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SessionStoreUnavailable)
        metrics.session_store_errors.labels(store=exc.store).inc()
        return error_response(exc)

    app.add_exception_handler(SessionStoreUnavailable, on_store_unavailable)


class _QuietServer(uvicorn.Server):
    """A second server in a process whose signals belong to the first one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetricsListener:
    """``/metrics`` on a port of its own (loopback unless ``host`` says otherwise), for deployments that
    keep it off the public API, and for agent workers, which have no other. Started and stopped by the
    process's lifespan; does nothing when no port is configured."""

    def __init__(
        self,
        metrics: Exposition,
        *,
        port: int | None,
        host: ipaddress.IPv4Address | ipaddress.IPv6Address = LISTENER_HOST,
    ) -> None:
        self._metrics = metrics
        self._port = port
        self._host = host
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        if self._port is None:
            return
        # Bound here, so a port in use fails startup with an OSError rather than uvicorn's sys.exit.
        family = socket.AF_INET6 if self._host.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((str(self._host), self._port))
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            self._serve,
            interface="asgi3",
            lifespan="off",
            proxy_headers=False,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._socket = sock
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="tradedesk-metrics")
        async with asyncio.timeout(5):
            while not self._server.started:
                if self._task.done():
                    await self._task
                    raise RuntimeError("the metrics listener stopped during startup")
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            if self._socket is not None:
                self._socket.close()
            self._server = self._task = self._socket = None

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            status, content_type, body = 404, b"text/plain; charset=utf-8", b"Not found: try /metrics.\n"
        elif scope["method"] not in ("GET", "HEAD"):
            status, content_type, body = 405, b"text/plain; charset=utf-8", b"Method not allowed.\n"
        else:
            status, content_type, body = (
                200,
                CONTENT_TYPE_LATEST.encode("ascii"),
                await self._metrics.exposition(),
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
