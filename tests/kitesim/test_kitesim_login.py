"""The broker's sign-in pages: the form, wrong passwords, the redirect back with a request_token."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import SecretStr

from kitesim.accounts import DemoApp
from kitesim.config import KitesimSettings
from kitesim.state import SimState

if TYPE_CHECKING:
    from conftest import KiteDriver


def callback_query(response: httpx.Response) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(response.headers["location"]).query, keep_blank_values=True)


class TestLoginForm:
    async def test_renders_form_for_known_app(
        self, client: httpx.AsyncClient, settings: KitesimSettings
    ) -> None:
        response = await client.get(
            "/connect/login", params={"v": "3", "api_key": settings.api_key, "redirect_params": "state=abc"}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        assert "<form method='post' action='/connect/login'>" in page
        assert "name='user_id'" in page
        assert "name='password'" in page
        assert f"name='api_key' value='{settings.api_key}'" in page
        assert "name='redirect_params' value='state=abc'" in page

    async def test_unknown_api_key_is_a_400_page(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/connect/login", params={"v": "3", "api_key": "nobody"})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")
        assert "Invalid `api_key`" in response.text
        assert "<form" not in response.text

    async def test_missing_api_key_is_a_400_page(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/connect/login", params={"v": "3"})
        assert response.status_code == 400
        assert "Missing `api_key`" in response.text

    async def test_echoed_values_are_escaped(
        self, client: httpx.AsyncClient, settings: KitesimSettings
    ) -> None:
        hostile = "'><script>alert(1)</script>"
        response = await client.get(
            "/connect/login", params={"api_key": settings.api_key, "redirect_params": hostile}
        )
        assert response.status_code == 200
        assert "<script>alert(1)</script>" not in response.text
        assert "&#x27;&gt;&lt;script&gt;" in response.text


class TestLoginSubmit:
    async def test_wrong_password_shows_form_with_error(self, kite: KiteDriver) -> None:
        response = await kite.submit_login(password="nope", redirect_params="state=abc")
        assert response.status_code == 401
        assert "Invalid user ID or password." in response.text
        assert "role='alert'" in response.text
        # The form comes back filled in, so the user only retypes the password.
        assert "name='user_id' value='DEMO01'" in response.text
        assert "name='redirect_params' value='state=abc'" in response.text
        assert "location" not in response.headers

    async def test_unknown_user_shows_the_same_error(self, kite: KiteDriver) -> None:
        response = await kite.submit_login(user_id="ZZ9999")
        assert response.status_code == 401
        assert "Invalid user ID or password." in response.text

    async def test_empty_fields_ask_for_them(self, kite: KiteDriver) -> None:
        response = await kite.submit_login(user_id="", password="")
        assert response.status_code == 400
        assert "Enter your user ID and password." in response.text

    async def test_echoed_user_id_is_escaped(self, kite: KiteDriver) -> None:
        response = await kite.submit_login(user_id="<b>x</b>", password="nope")
        assert response.status_code == 401
        assert "<b>x</b>" not in response.text
        assert "&lt;b&gt;x&lt;/b&gt;" in response.text

    async def test_unknown_api_key_is_a_400_page(self, kite: KiteDriver) -> None:
        response = await kite.submit_login(api_key="nobody")
        assert response.status_code == 400
        assert "Invalid `api_key`" in response.text

    async def test_success_redirects_to_the_app_with_a_request_token(
        self, kite: KiteDriver, settings: KitesimSettings
    ) -> None:
        response = await kite.submit_login(redirect_params="state=abc")
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(settings.redirect_url + "?")
        query = dict(callback_query(response))
        assert len(query["request_token"]) == 32
        assert query["action"] == "login"
        assert query["type"] == "login"
        assert query["status"] == "success"
        assert query["state"] == "abc"

    async def test_url_encoded_redirect_params_from_the_login_link_pass_through(
        self, client: httpx.AsyncClient, kite: KiteDriver, settings: KitesimSettings
    ) -> None:
        # The app builds the link as ...&redirect_params=state%3Dabc%26next%3D%252Ftrades
        page = await client.get(
            f"/connect/login?v=3&api_key={settings.api_key}&redirect_params=state%3Dabc%26next%3D%252Ftrades"
        )
        assert "value='state=abc&amp;next=%2Ftrades'" in page.text
        response = await kite.submit_login(redirect_params="state=abc&next=%2Ftrades")
        query = dict(callback_query(response))
        assert query["state"] == "abc"
        assert query["next"] == "/trades"

    async def test_redirect_params_cannot_forge_the_callback(self, kite: KiteDriver) -> None:
        response = await kite.submit_login(redirect_params="status=cancelled&request_token=forged&state=s1")
        pairs = callback_query(response)
        assert [value for key, value in pairs if key == "status"] == ["success"]
        assert [value for key, value in pairs if key == "request_token"] != ["forged"]
        assert ("state", "s1") in pairs

    async def test_each_login_gets_a_new_request_token(self, kite: KiteDriver) -> None:
        assert await kite.request_token() != await kite.request_token()

    async def test_user_id_is_case_insensitive(self, kite: KiteDriver) -> None:
        response = await kite.submit_login(user_id=" demo02 ")
        assert response.status_code == 302

    async def test_redirect_url_with_its_own_query_keeps_it(self, kite: KiteDriver, sim: SimState) -> None:
        sim.accounts.add_app(
            DemoApp(api_key="other", api_secret=SecretStr("s"), redirect_url="http://other.test/cb?tenant=7")
        )
        response = await kite.submit_login(api_key="other", redirect_params="state=x")
        assert response.status_code == 302
        parts = urlsplit(response.headers["location"])
        assert (parts.scheme, parts.netloc, parts.path) == ("http", "other.test", "/cb")
        query = dict(callback_query(response))
        assert query["tenant"] == "7"
        assert query["state"] == "x"
