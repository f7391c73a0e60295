"""The SPA's typed client is generated from frontend/openapi.json: it must be the API's document as it is now
(`make api-client` rewrites it and the TypeScript types; `make test` checks the types match it)."""

from __future__ import annotations

from pathlib import Path

from tradedesk.cli import openapi_json

COMMITTED = Path(__file__).resolve().parents[2] / "frontend" / "openapi.json"


def test_the_committed_document_is_the_apis() -> None:
    assert COMMITTED.read_text().strip() == openapi_json().strip(), (
        "frontend/openapi.json is out of date: run `make api-client` and commit the result"
    )


def test_the_document_names_every_path_the_spa_calls() -> None:
    document = openapi_json()
    for path in ("/api/trades/summary", "/api/trades/filters", "/api/events", "/api/auth/sessions"):
        assert f'"{path}"' in document
