"""Agent runtimes for tests and the bench: built on an API app's own services (database, Kite client,
cipher, clock, live bus), ticked by hand so every decision happens at a simulated instant the test chose."""

from __future__ import annotations

from typing import Any

from tradedesk.agents.leases import Leases, MemoryLeases, RedisLeases
from tradedesk.agents.runtime import AgentRuntime, RuntimeConfig
from tradedesk.agents.strategies.registry import STRATEGIES


def shared_leases(app: Any) -> Leases:
    """One lease table for every runtime of this app: Redis when it has one, else one in-process table."""
    state = app.state.td
    if state.redis is not None:
        return RedisLeases(state.redis)
    leases: Leases | None = getattr(app.state, "test_leases", None)
    if leases is None:
        leases = MemoryLeases()
        app.state.test_leases = leases
    return leases


def build_runtime(
    app: Any, *, runtime_id: str = "rt-test", lease_ttl_ms: int = 10_000, leases: Leases | None = None
) -> AgentRuntime:
    state = app.state.td
    return AgentRuntime(
        RuntimeConfig(
            runtime_id=runtime_id,
            redis_prefix=state.settings.redis_key_prefix,
            lease_ttl_ms=lease_ttl_ms,
            cycle_s=0.0,
            reconcile_s=0.0,
        ),
        sessionmaker=state.sessionmaker,
        kite=state.kite,
        cipher=state.cipher,
        clock=state.clock,
        leases=leases or shared_leases(app),
        bus=app.state.agents.bus,
        strategies=STRATEGIES,
    )
