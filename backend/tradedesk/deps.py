"""The API process's services, read from ``app.state.td`` where create_app put them once; and the
settings as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from tradedesk.config import Settings
from tradedesk.state import ApiServices


def api_services(connection: HTTPConnection) -> ApiServices:
    services: ApiServices = connection.app.state.td
    return services


async def get_settings(request: Request) -> Settings:
    return api_services(request).settings


AppSettings = Annotated[Settings, Depends(get_settings)]
