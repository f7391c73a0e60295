"""/healthz answers while the process lives; /readyz only when the session store and database answer,
and otherwise says which is down and why."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tradedesk.deps import api_services
from tradedesk.errors import outage_reason
from tradedesk.sessions.dependencies import Sessions

log = logging.getLogger("tradedesk.ops")
CHECK_TIMEOUT_S = 2

router = APIRouter(tags=["ops"])


async def get_engine(request: Request) -> AsyncEngine:
    return api_services(request).engine


DatabaseEngine = Annotated[AsyncEngine, Depends(get_engine)]


class Health(BaseModel):
    status: Literal["ok"]


Dependency = Literal["database", "sessions"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "down"]
    sessions: Literal["ok", "down"]
    reasons: dict[Dependency, str] | None = Field(
        default=None, description="Why each dependency that is down is down (absent when ready)"
    )


async def _check(name: Dependency, probe: Callable[[], Awaitable[None]]) -> str | None:
    """None when ``probe`` answers within the timeout, else a short reason (no addresses, no DSNs)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe()
    except Exception as exc:
        reason = outage_reason(exc)
        log.warning("readiness: %s is down (%s)", name, reason)
        return reason
    return None


@router.get("/healthz", response_model=Health, operation_id="ops-healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    operation_id="ops-readyz",
    responses={503: {"model": Readiness, "description": "A dependency is down"}},
)
async def readyz(engine: DatabaseEngine, sessions: Sessions) -> JSONResponse:
    async def database() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))

    database_down, sessions_down = await asyncio.gather(
        _check("database", database), _check("sessions", sessions.store.ping)
    )
    reasons: dict[Dependency, str] = {}
    if database_down:
        reasons["database"] = database_down
    if sessions_down:
        reasons["sessions"] = sessions_down
    body = Readiness(
        status="unavailable" if reasons else "ready",
        database="down" if database_down else "ok",
        sessions="down" if sessions_down else "ok",
        reasons=reasons or None,
    )
    headers = {"Retry-After": "5"} if reasons else {}
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=503 if reasons else 200, headers=headers
    )
