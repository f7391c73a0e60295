"""The agent runtime's metric families: what it is told as it works (decisions, orders, take-overs, drops,
how long each cycle's shared view took) and what is read off it when Prometheus scrapes (agents held, the
host clock's skew). An API process that runs agents adds them to its own registry; a worker serves them,
with its pool and broker families, on its metrics port (``WorkerMetrics``)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from tradedesk.agents.runtime import AgentRuntime
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.kit.clock import Clock, ReferencedClock
from tradedesk.metrics.instruments import BrokerCallMetrics, DatabasePoolCollector

# Order statuses the runtime writes after the broker's answer; anything else counts as "other".
ORDER_OUTCOMES = ("sent", "rejected", "unknown", "recorded")
# A cycle's view is one batched quote, candles and an order-book read per user with orders open.
CYCLE_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From an agent's decision to the broker's acknowledgement of the order it sent.
ACK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RuntimeMetrics:
    """Registers the runtime's families in ``registry`` and becomes the runtime's observer."""

    def __init__(self, registry: CollectorRegistry, runtime: AgentRuntime, *, clock: Clock) -> None:
        self.cycle_prepare = Histogram(
            "tradedesk_agent_cycle_prepare_seconds",
            "Time to build a cycle's shared view: orders to settle, instruments, quotes and candles.",
            buckets=CYCLE_BUCKETS_S,
            registry=registry,
        )
        self.decisions = Counter(
            "tradedesk_agent_decisions", "Decisions taken by the agents of this runtime.", registry=registry
        )
        self.orders = Counter(
            "tradedesk_agent_orders",
            "Orders the agents sent, by the broker's outcome (unknown: no answer, checked again later).",
            ["outcome"],
            registry=registry,
        )
        self._order_outcomes = {outcome: self.orders.labels(outcome=outcome) for outcome in ORDER_OUTCOMES}
        self.order_ack = Histogram(
            "tradedesk_agent_order_ack_seconds",
            "Time from an agent's decision to the broker's acknowledgement of its order.",
            buckets=ACK_BUCKETS_S,
            registry=registry,
        )
        self.claims = Counter(
            "tradedesk_agent_claims",
            "Agents this runtime took over: started, or moved from a runtime that stopped or died.",
            registry=registry,
        )
        self.drops = Counter(
            "tradedesk_agent_drops",
            "Agents that left this runtime, by reason (stopped, lease lost, no longer live).",
            ["reason"],
            registry=registry,
        )
        registry.register(_RuntimeCollector(runtime, clock))
        runtime.observer = self

    def cycle_prepared(self, duration_s: float) -> None:
        self.cycle_prepare.observe(duration_s)

    def decided(self) -> None:
        self.decisions.inc()

    def order_answered(self, status: str, ack_s: float | None) -> None:
        counter = self._order_outcomes.get(status)
        (counter if counter is not None else self.orders.labels(outcome="other")).inc()
        if ack_s is not None:
            self.order_ack.observe(ack_s)

    def claimed(self) -> None:
        self.claims.inc()

    def dropped(self, why: str) -> None:
        # The runtime's phrases are few and fixed ("lease lost", "stopped", ...); never input.
        self.drops.labels(reason=why.replace(" ", "_")).inc()


class _RuntimeCollector(Collector):
    def __init__(self, runtime: AgentRuntime, clock: Clock) -> None:
        self._runtime = runtime
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        held = GaugeMetricFamily(
            "tradedesk_agents_held", "Agents this runtime drives now.", labels=["runtime"]
        )
        held.add_metric([self._runtime.runtime_id], len(self._runtime.held()))
        yield held
        if isinstance(self._clock, ReferencedClock):
            yield GaugeMetricFamily(
                "tradedesk_clock_skew_seconds",
                "This host's clock minus the database's, at the last reading (times here follow the "
                "database's).",
                value=self._clock.skew_s,
            )


class WorkerMetrics:
    """Everything an agent worker exports, in a registry of its own."""

    def __init__(self, runtime: AgentRuntime, *, engine: AsyncEngine, kite: KiteClient, clock: Clock) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.agents = RuntimeMetrics(self.registry, runtime, clock=clock)
        self.broker = BrokerCallMetrics(self.registry)
        kite.call_observer = self.broker.observe
        self.registry.register(DatabasePoolCollector(engine))

    async def exposition(self) -> bytes:
        return generate_latest(self.registry)
