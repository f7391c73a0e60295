"""/docs and /openapi.json: Swagger UI from assets installed with the package (no CDN script on the API's
origin), and an OpenAPI document that names the real session cookie and the X-CSRF-Token header."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from tradedesk.config import Settings
from tradedesk.middleware import UNSAFE_METHODS

OPENAPI_URL = "/openapi.json"
SESSION_SCHEME = "SessionCookie"
CSRF_SCHEME = "CsrfToken"
# Routes that work without a session (and end any previous one): the session is optional there.
PRE_AUTH_OPERATIONS = frozenset(
    {"auth-status", "auth-login", "auth-callback", "auth-authenticate", "auth-set_access_token"}
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tradedesk API</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

_INIT = """window.ui = SwaggerUIBundle({
  url: "__OPENAPI_URL__",
  dom_id: "#swagger-ui",
  deepLinking: true,
  showExtensions: true,
  withCredentials: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
""".replace("__OPENAPI_URL__", OPENAPI_URL)


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    if SESSION_SCHEME in schemes:
        schemes[SESSION_SCHEME]["name"] = settings.session_cookie_name
    schemes[CSRF_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": "The session's CSRF token (from GET /api/auth/status); every unsafe request "
        "of a signed-in session carries it.",
    }
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "security" not in operation:
                continue
            if operation.get("operationId") in PRE_AUTH_OPERATIONS:
                operation["security"] = [{}, {SESSION_SCHEME: []}]
            elif method.upper() in UNSAFE_METHODS:
                operation["security"] = [{SESSION_SCHEME: [], CSRF_SCHEME: []}]
    return schema


def install_docs(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document always describes the real cookie; /docs exists only when docs are on."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if not settings.docs_on:
        return

    async def docs_page() -> HTMLResponse:
        return HTMLResponse(_PAGE)

    async def docs_init() -> Response:
        return Response(_INIT, media_type="text/javascript")

    app.add_api_route("/docs", docs_page, include_in_schema=False, methods=["GET"])
    app.add_api_route("/docs/init.js", docs_init, include_in_schema=False, methods=["GET"])
    app.mount("/docs/assets", StaticFiles(directory=_assets_dir()), name="docs-assets")
