"""The signed-in user's agent manager (on the request's tenant-bound transaction), and this process's
agent services as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tradedesk.agents.manager import AgentManager, AgentRegistry
from tradedesk.agents.services import AgentServices
from tradedesk.sessions.dependencies import CurrentSession, TenantDb


def agent_services(request: Request) -> AgentServices:
    services: AgentServices = request.app.state.agents
    return services


async def get_agent_services(request: Request) -> AgentServices:
    return agent_services(request)


async def get_agent_registry(request: Request) -> AgentRegistry:
    return agent_services(request).registry


async def get_agent_manager(request: Request, db: TenantDb, session: CurrentSession) -> AgentManager:
    return agent_services(request).registry.for_broker(session.broker_id, db)


Agents = Annotated[AgentManager, Depends(get_agent_manager)]
Registry = Annotated[AgentRegistry, Depends(get_agent_registry)]
Services = Annotated[AgentServices, Depends(get_agent_services)]
