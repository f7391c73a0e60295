"""The broker's sign-in pages (HTML): ``GET /connect/login`` shows the form, ``POST`` checks it and redirects
the browser back to the app with a fresh ``request_token``."""

from __future__ import annotations

from html import escape
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kitesim.accounts import DemoApp
from kitesim.dependencies import Sim

router = APIRouter(tags=["login"])

# The broker owns these in the callback; a redirect_params entry must not be able to forge them.
RESERVED_CALLBACK_PARAMS = frozenset({"request_token", "action", "type", "status"})

WRONG_CREDENTIALS = "Invalid user ID or password."
MISSING_CREDENTIALS = "Enter your user ID and password."
UNKNOWN_API_KEY = "Invalid `api_key`: no app is registered with this key."
MISSING_API_KEY = "Missing `api_key`: the login link must carry the app's api_key."

_NO_STORE = {"Cache-Control": "no-store"}

_STYLE = """
body { font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }
main { max-width: 22rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0, 0, 0, .12); }
h1 { font-size: 1.3rem; margin: 0 0 .25rem; } .app { color: #555; margin: 0 0 1.5rem; }
label { display: block; margin: .75rem 0 .25rem; font-size: .9rem; }
input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .5rem;
                                         font-size: 1rem; }
button { margin-top: 1.25rem; width: 100%; padding: .6rem; font-size: 1rem; background: #f6461a; color: #fff;
         border: 0; border-radius: 4px; cursor: pointer; }
.error { background: #fdecea; color: #b3261e; padding: .5rem .75rem; border-radius: 4px; }
.hint { color: #777; font-size: .8rem; margin-top: 1.5rem; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # No icon to fetch: a browser would otherwise ask for /favicon.ico and log the 404.
        f"<title>{escape(title)} · kitesim</title><link rel='icon' href='data:,'>"
        f"<style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def render_login_form(
    *, api_key: str, redirect_params: str, user_id: str = "", error: str | None = None
) -> str:
    error_html = f"<p class='error' role='alert'>{escape(error)}</p>" if error else ""
    body = (
        "<h1>Login to Kite</h1>"
        f"<p class='app'>Signing in to app <strong>{escape(api_key)}</strong></p>"
        f"{error_html}"
        "<form method='post' action='/connect/login'>"
        f"<input type='hidden' name='api_key' value='{escape(api_key)}'>"
        f"<input type='hidden' name='redirect_params' value='{escape(redirect_params)}'>"
        "<label for='user_id'>User ID</label>"
        f"<input type='text' id='user_id' name='user_id' value='{escape(user_id)}' "
        "autocomplete='username' autocapitalize='characters' required autofocus>"
        "<label for='password'>Password</label>"
        "<input type='password' id='password' name='password' autocomplete='current-password' required>"
        "<button type='submit'>Login</button>"
        "</form>"
        "<p class='hint'>Demo users DEMO01 … DEMO05, password <code>demo</code>.</p>"
    )
    return _page("Login", body)


def render_error_page(message: str) -> str:
    return _page("Login error", f"<h1>Cannot sign in</h1><p class='error' role='alert'>{escape(message)}</p>")


def callback_url(app: DemoApp, *, request_token: str, redirect_params: str) -> str:
    parts = urlsplit(app.redirect_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [
        ("request_token", request_token),
        ("action", "login"),
        ("type", "login"),
        ("status", "success"),
    ]
    # redirect_params is itself a query string ("state=abc&x=1"); its pairs come back as they went out.
    query += [
        (key, value)
        for key, value in parse_qsl(redirect_params, keep_blank_values=True)
        if key not in RESERVED_CALLBACK_PARAMS
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _html(content: str, status_code: int) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=_NO_STORE)


@router.get("/connect/login", response_class=HTMLResponse, summary="Sign-in form")
async def show_login(
    sim: Sim,
    api_key: Annotated[str, Query()] = "",
    redirect_params: Annotated[str, Query()] = "",
    v: Annotated[str, Query(description="Kite Connect version, 3")] = "3",
) -> HTMLResponse:
    if not api_key:
        return _html(render_error_page(MISSING_API_KEY), 400)
    if sim.accounts.app_for(api_key) is None:
        return _html(render_error_page(UNKNOWN_API_KEY), 400)
    return _html(render_login_form(api_key=api_key, redirect_params=redirect_params), 200)


@router.post(
    "/connect/login",
    response_class=HTMLResponse,
    status_code=302,
    summary="Check the sign-in form; redirect to the app with a request_token",
)
async def submit_login(
    sim: Sim,
    user_id: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    api_key: Annotated[str, Form()] = "",
    redirect_params: Annotated[str, Form()] = "",
) -> Response:
    if not api_key:
        return _html(render_error_page(MISSING_API_KEY), 400)
    app = sim.accounts.app_for(api_key)
    if app is None:
        return _html(render_error_page(UNKNOWN_API_KEY), 400)
    if not user_id.strip() or not password:
        form = render_login_form(
            api_key=api_key, redirect_params=redirect_params, user_id=user_id, error=MISSING_CREDENTIALS
        )
        return _html(form, 400)
    user = sim.accounts.authenticate(user_id=user_id, password=password)
    if user is None:
        form = render_login_form(
            api_key=api_key, redirect_params=redirect_params, user_id=user_id, error=WRONG_CREDENTIALS
        )
        return _html(form, 401)
    issued = sim.sessions.issue_request_token(api_key=app.api_key, user_id=user.user_id, now=sim.clock.now())
    location = callback_url(app, request_token=issued.token, redirect_params=redirect_params)
    return RedirectResponse(location, status_code=302, headers=_NO_STORE)
