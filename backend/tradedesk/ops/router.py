"""/healthz answers while the process lives; /readyz only when the session store and database answer."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from tradedesk.errors import AppError
from tradedesk.sessions.dependencies import State

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "down"]
    sessions: Literal["ok", "down"]


@router.get("/healthz", response_model=Health, operation_id="ops-healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    operation_id="ops-readyz",
    responses={503: {"model": Readiness, "description": "A dependency is down"}},
)
async def readyz(app: State) -> JSONResponse:
    async def database_ok() -> bool:
        try:
            async with asyncio.timeout(2), app.engine.connect() as conn:
                await conn.execute(text("select 1"))
            return True
        except Exception:
            return False

    async def sessions_ok() -> bool:
        try:
            async with asyncio.timeout(2):
                await app.sessions.store.ping()
            return True
        except (AppError, TimeoutError):
            return False

    db_up, sessions_up = await asyncio.gather(database_ok(), sessions_ok())
    body = Readiness(
        status="ready" if db_up and sessions_up else "unavailable",
        database="ok" if db_up else "down",
        sessions="ok" if sessions_up else "down",
    )
    headers = {} if body.status == "ready" else {"Retry-After": "5"}
    return JSONResponse(
        body.model_dump(), status_code=200 if body.status == "ready" else 503, headers=headers
    )
