"""The API process's state as a dependency: everything create_app built once, read from ``app.state.td``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tradedesk.state import AppState


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.td
    return state


async def get_state(request: Request) -> AppState:
    return app_state(request)


State = Annotated[AppState, Depends(get_state)]
