"""The SPA's own server: client-side routes answer index.html, hashed assets are cached for good, a missing
asset is a 404 (not index.html), /config.js names the API, and the CSP lets the page talk to that API only."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tradedesk.spa import content_security_policy, create_spa_app


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>tradedesk</title>")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    return tmp_path


async def get(dist: Path, path: str) -> httpx.Response:
    app = create_spa_app(dist, api_url="https://api.example.com/", demo=False)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://app.example.com") as client:
        return await client.get(path)


async def test_client_routes_answer_the_page(dist: Path) -> None:
    for path in ("/", "/trades", "/live?x=1", "/connect"):
        response = await get(dist, path)
        assert response.status_code == 200
        assert "<title>tradedesk</title>" in response.text
        assert response.headers["cache-control"] == "no-cache"


async def test_assets_are_immutable_and_a_missing_one_is_404(dist: Path) -> None:
    asset = await get(dist, "/assets/index-abc123.js")
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    assert (await get(dist, "/assets/index-old.js")).status_code == 404
    assert (await get(dist, "/favicon.svg")).text == "<svg/>"


async def test_config_names_the_api_and_the_csp_allows_only_it(dist: Path) -> None:
    config = await get(dist, "/config.js")
    assert config.text == 'window.tradedeskConfig = {"apiUrl": "https://api.example.com", "demo": false};\n'
    csp = config.headers["content-security-policy"]
    assert "connect-src 'self' https://api.example.com;" in csp
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert config.headers["x-content-type-options"] == "nosniff"


def test_a_bad_api_url_is_refused(dist: Path) -> None:
    with pytest.raises(ValueError, match="not an http"):
        content_security_policy("javascript:alert(1)")
    with pytest.raises(FileNotFoundError, match="make spa"):
        create_spa_app(dist / "missing", api_url="http://127.0.0.1:8000")
