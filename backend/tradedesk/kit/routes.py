"""A route class for the few endpoints that take only the Request and hand back a finished Response."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]


class RequestOnlyRoute(APIRoute):
    """FastAPI still documents the route (response model, responses, security, operation id), but a request
    calls the endpoint directly instead of going through the dependency solver, body reader and response
    serializer, none of which such an endpoint uses. On ``GET /api/auth/status``, which the SPA asks on
    every load and focus, that machinery cost more than reading the session.

    The endpoint must take exactly one parameter, the Request, and return a Response; the route refuses
    anything else when it is built, including dependencies added by its router. Exceptions still reach
    the app's handlers: FastAPI's request wrapper stays around the endpoint."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        parameters = list(inspect.signature(endpoint).parameters.values())
        takes_request = len(parameters) == 1 and self.dependant.request_param_name == parameters[0].name
        if not takes_request or self.dependant.dependencies or not inspect.iscoroutinefunction(endpoint):
            raise TypeError(
                f"{path}: a RequestOnlyRoute endpoint is a coroutine function taking only the Request, "
                "with no dependencies"
            )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response = await endpoint(request)
            if not isinstance(response, Response):
                raise TypeError(f"{self.path} answered {type(response).__name__}, not a Response")
            return response

        return handler
