"""``python -m tradedesk.spa``: serves the built SPA (frontend/dist) on its own origin, as a static host or a
CDN would: hashed assets cached for good, every other path answered with index.html (client-side routes),
``/config.js`` telling the SPA where the API is, and a Content-Security-Policy that allows only that API."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

DIST = Path(__file__).resolve().parents[2] / "frontend" / "dist"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(api_url: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            f"connect-src 'self' {_origin(api_url)}",
            "img-src 'self' data:",
            # React sets style attributes (bar widths, chart sizes); no inline script is ever allowed.
            "style-src 'self' 'unsafe-inline'",
            "script-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self' " + _origin(api_url),
            "frame-ancestors 'none'",
        )
    )


class _Headers:
    """Security headers on every answer (plain ASGI, like the API's own middleware)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                existing = list(message.get("headers", []))  # type: ignore[call-overload]
                message["headers"] = existing + self.headers
            await send(message)

        await self.app(scope, receive, with_headers)  # type: ignore[arg-type]


class _ImmutableAssets(StaticFiles):
    """Vite names assets by content hash, so a browser may keep them as long as it likes."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def create_spa_app(dist: Path, *, api_url: str, demo: bool = False) -> ASGIApp:
    index = dist / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index} does not exist: build the SPA first (make spa)")
    config = "window.tradedeskConfig = " + json.dumps({"apiUrl": api_url.rstrip("/"), "demo": demo}) + ";\n"

    async def config_js(_request: Request) -> Response:
        return Response(config, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    # Files at the top level (favicon, robots.txt) are served as themselves; any other path is a route.
    top_level = {path.name: path for path in dist.iterdir() if path.is_file() and path.name != "index.html"}
    # Browsers ask for /favicon.ico whatever the page declares; answer with the SVG icon.
    if "favicon.ico" not in top_level and "favicon.svg" in top_level:
        top_level["favicon.ico"] = top_level["favicon.svg"]

    async def page(request: Request) -> Response:
        name = request.path_params.get("path", "")
        if name in top_level:
            return FileResponse(top_level[name])
        if name.startswith("assets/"):
            return PlainTextResponse("Not found", status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    app = Starlette(
        routes=[
            Route("/config.js", config_js),
            Mount("/assets", _ImmutableAssets(directory=dist / "assets"), name="assets"),
            Route("/", page),
            Route("/{path:path}", page),
        ]
    )
    return _Headers(
        app,
        {
            "Content-Security-Policy": content_security_policy(api_url),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "strict-origin-when-cross-origin",
            "X-Frame-Options": "DENY",
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradedesk.spa", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5173)
    parser.add_argument("--api-url", default="http://127.0.0.1:8000", help="the API's public URL")
    parser.add_argument("--dist", type=Path, default=DIST, help="the built SPA (default frontend/dist)")
    parser.add_argument(
        "--demo", action="store_true", help="offer the bundled simulator's demo app on the sign-in page"
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    app = create_spa_app(args.dist, api_url=args.api_url, demo=args.demo)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
