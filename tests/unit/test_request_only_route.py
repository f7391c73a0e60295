"""RequestOnlyRoute: the endpoint is called directly, is still documented, and its failures still reach the
app's error handlers."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel
from starlette.responses import Response

from tradedesk.errors import NotAuthenticated, install_error_handlers
from tradedesk.kit.routes import RequestOnlyRoute


class Answer(BaseModel):
    value: int


async def answer(request: Request) -> Response:
    if request.query_params.get("fail") == "app":
        raise NotAuthenticated()
    if request.query_params.get("fail") == "type":
        return {"value": 1}  # type: ignore[return-value]
    return Response(
        Answer(value=int(request.query_params.get("v", "7"))).model_dump_json(), media_type="application/json"
    )


def _app() -> FastAPI:
    router = APIRouter(prefix="/api")
    router.add_api_route(
        "/answer",
        answer,
        methods=["GET"],
        response_model=Answer,
        operation_id="answer",
        route_class_override=RequestOnlyRoute,
    )
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return app


async def _get(app: FastAPI, url: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(url)


async def test_the_endpoint_answers_and_is_documented() -> None:
    app = _app()
    assert (await _get(app, "/api/answer?v=3")).json() == {"value": 3}
    operation = app.openapi()["paths"]["/api/answer"]["get"]
    assert operation["operationId"] == "answer"
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Answer"}


async def test_a_raised_app_error_reaches_the_apps_handler() -> None:
    response = await _get(_app(), "/api/answer?fail=app")
    assert response.status_code == 401
    assert response.json()["error"] == "NotAuthenticated"


async def test_an_answer_that_is_not_a_response_is_a_server_error() -> None:
    assert (await _get(_app(), "/api/answer?fail=type")).status_code == 500


async def test_other_methods_are_refused() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/api/answer")).status_code == 405


async def _with_query(request: Request, v: int) -> Response:
    return Response(str(v))


def _not_async(request: Request) -> Response:
    return Response("sync")


async def _dependency() -> int:
    return 1


@pytest.mark.parametrize(
    ("endpoint", "dependencies"),
    [
        (_with_query, None),
        (_not_async, None),
        (answer, [Depends(_dependency)]),
    ],
    ids=["a second parameter", "not a coroutine function", "a router dependency"],
)
def test_an_endpoint_that_needs_more_than_the_request_is_refused(
    endpoint: object, dependencies: list[object] | None
) -> None:
    router = APIRouter(dependencies=dependencies)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RequestOnlyRoute"):
        router.add_api_route("/x", endpoint, methods=["GET"], route_class_override=RequestOnlyRoute)  # type: ignore[arg-type]


def test_an_annotated_request_dependency_is_refused() -> None:
    async def needs(request: Request, value: Annotated[int, Depends(_dependency)]) -> Response:
        return Response(str(value))

    with pytest.raises(TypeError, match="RequestOnlyRoute"):
        APIRouter().add_api_route("/x", needs, methods=["GET"], route_class_override=RequestOnlyRoute)
