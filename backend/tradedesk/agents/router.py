"""/api strategies, parameters, agents, the kill switch and the live event stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Header, Path, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from tradedesk.agents.dependencies import Agents, Services
from tradedesk.agents.events import LiveEvent, valid_event_id
from tradedesk.agents.manager import stop_all
from tradedesk.agents.schemas import (
    AgentCreate,
    AgentRead,
    EventsPage,
    ParamChangeRead,
    StopAllResult,
    StrategyRead,
)
from tradedesk.audit.service import Actor
from tradedesk.errors import BadRequest, ErrorBody, ValidationErrorBody
from tradedesk.sessions.dependencies import CurrentSession, get_optional_session

router = APIRouter(prefix="/api", tags=["agents"])

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {
        "model": ErrorBody,
        "description": "A body that is not JSON, or a Last-Event-ID this stream never gave",
    },
    401: {"model": ErrorBody, "description": "No session"},
    422: {
        "model": ValidationErrorBody,
        "description": "A field is missing, of the wrong type or out of bounds",
    },
}
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "No such strategy, or no agent of yours with that id"},
}
_CONFLICT: dict[int | str, dict[str, object]] = {
    **_NOT_FOUND,
    409: {"model": ErrorBody, "description": "Already running, or the broker account is not connected"},
}
StrategyName = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
AgentId = Annotated[int, Path(ge=1, le=2**62)]
Before = Annotated[int | None, Query(alias="after", ge=1, description="The `next` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]
# How often a live stream checks that its session still exists (revoked or signed out: the stream ends).
SESSION_RECHECK_S = 5.0
SSE_RETRY_MS = 2000
SSE_PING_S = 15
SSE_SHUTDOWN_GRACE_S = 1.0


@router.get(
    "/strategies", response_model=list[StrategyRead], responses=_ERRORS, operation_id="agents-strategies"
)
async def list_strategies(agents: Agents) -> list[StrategyRead]:
    return await agents.strategies()


@router.get(
    "/strategies/{name}/params",
    response_model=dict[str, Any],
    responses=_NOT_FOUND,
    operation_id="agents-get_params",
)
async def get_params(agents: Agents, name: StrategyName) -> dict[str, Any]:
    return await agents.params(name)


@router.put(
    "/strategies/{name}/params",
    response_model=dict[str, Any],
    responses=_NOT_FOUND,
    operation_id="agents-put_params",
)
async def put_params(
    agents: Agents,
    session: CurrentSession,
    name: StrategyName,
    values: Annotated[dict[str, Any], Body(description="Fields to change; the others keep their values")],
) -> dict[str, Any]:
    return await agents.update_params(name, values, actor=Actor.of(session))


@router.get(
    "/strategies/{name}/params/history",
    response_model=list[ParamChangeRead],
    responses=_NOT_FOUND,
    operation_id="agents-params_history",
)
async def params_history(
    agents: Agents, name: StrategyName, after: Before = None, limit: Limit = 50
) -> list[ParamChangeRead]:
    return await agents.history(name, before=after, limit=limit)


@router.post(
    "/agents",
    response_model=AgentRead,
    status_code=201,
    responses=_CONFLICT,
    operation_id="agents-start",
)
async def start_agent(agents: Agents, session: CurrentSession, body: AgentCreate) -> AgentRead:
    return await agents.start(strategy_name=body.strategy, params=body.params, actor=Actor.of(session))


@router.get("/agents", response_model=list[AgentRead], responses=_ERRORS, operation_id="agents-list")
async def list_agents(agents: Agents) -> list[AgentRead]:
    return await agents.list()


@router.post(
    "/agents/stop-all", response_model=StopAllResult, responses=_ERRORS, operation_id="agents-stop_all"
)
async def kill_switch(services: Services, session: CurrentSession) -> StopAllResult:
    return await stop_all(services.registry, session.broker_id, actor=Actor.of(session))


@router.get("/agents/{agent_id}", response_model=AgentRead, responses=_NOT_FOUND, operation_id="agents-get")
async def get_agent(agents: Agents, agent_id: AgentId) -> AgentRead:
    return await agents.get(agent_id)


@router.post(
    "/agents/{agent_id}/stop", response_model=AgentRead, responses=_NOT_FOUND, operation_id="agents-stop"
)
async def stop_agent(agents: Agents, session: CurrentSession, agent_id: AgentId) -> AgentRead:
    return await agents.stop(agent_id, actor=Actor.of(session))


@router.get(
    "/agents/{agent_id}/events",
    response_model=EventsPage,
    responses=_NOT_FOUND,
    operation_id="agents-events",
)
async def agent_events(
    agents: Agents, agent_id: AgentId, after: Before = None, limit: Limit = 100
) -> EventsPage:
    return await agents.events(agent_id, before=after, limit=limit)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Agent status changes and events, live"},
        **_ERRORS,
    },
    operation_id="agents-live_events",
)
async def live_events(
    request: Request,
    services: Services,
    session: CurrentSession,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> EventSourceResponse:
    """`event: agent` carries an Agent, `event: event` an Event; `event: gap` says events between the
    given Last-Event-ID and the first one sent were dropped (reload the agents and their events pages)."""
    if last_event_id is not None and not valid_event_id(last_event_id):
        raise BadRequest("Last-Event-ID is not an id this stream gave.")
    broker_id = session.broker_id
    key_hash = session.key_hash
    subscription = services.bus.subscribe(broker_id, last_id=last_event_id)

    async def still_signed_in() -> bool:
        record = await get_optional_session(request)
        return record is not None and record.key_hash == key_hash

    # Set when this process is told to stop (SIGTERM): the stream says goodbye with a retry hint.
    shutdown = anyio.Event()
    return EventSourceResponse(
        _stream(subscription, broker_id=broker_id, still_signed_in=still_signed_in, shutdown=shutdown),
        ping=SSE_PING_S,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        shutdown_event=shutdown,
        shutdown_grace_period=SSE_SHUTDOWN_GRACE_S,
    )


class _ShuttingDown:
    """The queue's marker that the process is stopping."""


async def _stream(
    subscription: AsyncIterator[LiveEvent], *, broker_id: str, still_signed_in: Any, shutdown: anyio.Event
) -> AsyncIterator[ServerSentEvent]:
    queue: asyncio.Queue[LiveEvent | BaseException | _ShuttingDown] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        try:
            async for item in subscription:
                await queue.put(item)
        except Exception as exc:
            await queue.put(exc)

    async def watch_shutdown() -> None:
        await shutdown.wait()
        await queue.put(_ShuttingDown())

    task = asyncio.create_task(pump())
    watcher = asyncio.create_task(watch_shutdown())
    yield ServerSentEvent(comment="connected", retry=SSE_RETRY_MS)
    check_at = time.monotonic() + SESSION_RECHECK_S
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=max(0.0, check_at - time.monotonic()))
            except TimeoutError:
                if not await still_signed_in():
                    return
                check_at = time.monotonic() + SESSION_RECHECK_S
                continue
            if isinstance(item, _ShuttingDown):
                # Spread the reconnects of every stream this process held over a few seconds, so that
                # the other instances are not hit by all of them in the same instant.
                retry_ms = SSE_RETRY_MS + random.randrange(SSE_RETRY_MS * 2)  # noqa: S311
                yield ServerSentEvent(comment="server shutting down; reconnect", retry=retry_ms)
                return
            if isinstance(item, BaseException):
                # The bus failed (Redis down): end the stream; the browser reconnects with Last-Event-ID.
                return
            if item.broker_id != broker_id:
                continue  # never: the bus is per user; a second wall costs one comparison
            yield ServerSentEvent(
                data=json.dumps(item.data, separators=(",", ":")), event=item.kind, id=item.id
            )
    finally:
        for helper in (task, watcher):
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
        aclose = getattr(subscription, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
