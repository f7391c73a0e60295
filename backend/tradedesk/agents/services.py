"""The agent services of one process, built once: the live event bus, the registry of per-user
managers (API processes), and the runtime with its leases (API processes by default, and workers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.agents.events import EventBus, MemoryEventBus, RedisEventBus
from tradedesk.agents.leases import Leases, MemoryLeases, RedisLeases
from tradedesk.agents.manager import AgentLimits, AgentRegistry
from tradedesk.agents.market import MarketData
from tradedesk.agents.runtime import AgentRuntime, RuntimeConfig, RuntimeIdInUse
from tradedesk.agents.strategies.registry import STRATEGIES
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.config import Settings
from tradedesk.kit.clock import Clock
from tradedesk.kit.crypto import CredentialCipher
from tradedesk.redis import RedisClient

log = logging.getLogger("tradedesk.agents")


def default_runtime_id() -> str:
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(slots=True)
class AgentServices:
    registry: AgentRegistry
    bus: EventBus
    runtime: AgentRuntime | None = None
    _task: asyncio.Task[None] | None = field(default=None)

    def start(self) -> None:
        if self.runtime is not None and self._task is None:
            self._task = asyncio.create_task(self.runtime.run(), name="agent-runtime")

    async def finished(self) -> None:
        """Returns when the runtime has ended on its own (it refused a runtime id in use); raises why."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        if self.runtime is not None and self._task is not None:
            self.runtime.stop()
            # A runtime that refused to run has said why in the log already.
            with contextlib.suppress(asyncio.CancelledError, RuntimeIdInUse):
                await self._task
            self._task = None
        await self.bus.close()


def build_agent_services(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: RedisClient | None,
    kite: KiteClient,
    cipher: CredentialCipher,
    clock: Clock,
    with_runtime: bool,
) -> AgentServices:
    bus: EventBus = (
        RedisEventBus(redis, prefix=settings.redis_key_prefix) if redis is not None else MemoryEventBus()
    )
    leases: Leases = RedisLeases(redis) if redis is not None else MemoryLeases()
    registry = AgentRegistry(
        sessionmaker=sessionmaker,
        clock=clock,
        bus=bus,
        strategies=STRATEGIES,
        limits=AgentLimits(max_lots=settings.agent_max_lots),
        market=MarketData(kite),
        cipher=cipher,
    )
    runtime = (
        AgentRuntime(
            RuntimeConfig(
                runtime_id=settings.agent_runtime_id or default_runtime_id(),
                redis_prefix=settings.redis_key_prefix,
                lease_ttl_ms=int(settings.agent_lease_ttl_s * 1000),
                cycle_s=settings.agent_cycle_s,
                alive_file=settings.agent_alive_file,
            ),
            sessionmaker=sessionmaker,
            kite=kite,
            cipher=cipher,
            clock=clock,
            leases=leases,
            bus=bus,
            strategies=STRATEGIES,
        )
        if with_runtime
        else None
    )
    return AgentServices(registry=registry, bus=bus, runtime=runtime)
