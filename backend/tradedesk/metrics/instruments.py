"""The app's metric families in its own registry, and the values read only when Prometheus scrapes: active
sessions (cached), database pool usage."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import aclosing
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.types import Scope

from tradedesk.errors import ServiceUnavailable
from tradedesk.middleware import route_template
from tradedesk.redis import RedisClient, scan_pages
from tradedesk.sessions.redis_store import RedisSessionStore
from tradedesk.sessions.sql_store import SqlSessionStore
from tradedesk.sessions.store import SessionStore

if TYPE_CHECKING:
    from tradedesk.state import ApiServices

log = logging.getLogger("tradedesk.metrics")

# Outcomes are words the code chooses ("success", "invalid_state", an error class name), never input; past
# this many distinct ones the rest count as "other", so a mistake cannot grow the label set without bound.
MAX_SIGN_IN_OUTCOMES = 32

# Fast routes answer in about a millisecond; the broker-bound ones take up to the broker's timeout.
REQUEST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BROKER_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ACTIVE_SESSIONS_TTL_S = 30.0
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A scrape never walks more of Redis than this; past it the gauge is a lower bound.
MAX_INDEX_KEYS = 10_000
MAX_SCAN_CALLS = 200


class AppMetrics:
    """Every family this app exports, in a registry of its own: several apps in one process never collide.
    Built over the API's services: it reads the engine and session store at scrape time, and attaches to
    the broker client and the sign-in flows to hear of their calls and outcomes."""

    def __init__(self, services: ApiServices) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._request_observers: dict[tuple[str, str, int], Callable[[float], None]] = {}
        self.request_duration = Histogram(
            "tradedesk_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer, per route template.",
            ["route", "method", "status"],
            buckets=REQUEST_BUCKETS_S,
            registry=self.registry,
        )
        self.sign_ins = Counter(
            "tradedesk_sign_ins",
            "Sign-in attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.sign_ins.labels(outcome="success")
        self._sign_in_outcomes = {"success"}
        self.session_store_errors = Counter(
            "tradedesk_session_store_errors",
            "Requests answered 503 because the session store failed.",
            ["store"],
            registry=self.registry,
        )
        self.broker = BrokerCallMetrics(self.registry)
        self.registry.register(DatabasePoolCollector(services.engine))

        self._count_sessions = _session_counter(
            services.sessions.store, redis=services.redis, prefix=services.settings.redis_key_prefix
        )
        # Absent rather than a misleading zero where the store cannot be counted.
        self.active_sessions = Gauge(
            "tradedesk_active_sessions",
            "Unexpired web sessions in the session store (counted at most every 30 s).",
            registry=self.registry if self._count_sessions is not None else None,
        )
        self._clock = services.clock
        self._sessions_counted_at = -math.inf
        services.kite.call_observer = self.broker.observe
        services.auth.sign_in_observer = self.count_sign_in

    def observe_request(self, scope: Scope, status: int, elapsed_s: float) -> None:
        """One HTTP request's duration under its route template (never the raw path, so ids and probes
        cannot grow the label set), method and status class."""
        route = route_template(scope)
        method = scope["method"] if scope["method"] in _METHODS else "other"
        key = (route, method, status // 100)
        observe = self._request_observers.get(key)
        if observe is None:
            # Label lookups take a lock inside prometheus_client; each label set is resolved once.
            observe = self._request_observers[key] = self.request_duration.labels(
                route=route, method=method, status=f"{status // 100}xx"
            ).observe
        observe(elapsed_s)

    def count_sign_in(self, outcome: str) -> None:
        if outcome not in self._sign_in_outcomes:
            if len(self._sign_in_outcomes) >= MAX_SIGN_IN_OUTCOMES:
                outcome = "other"
            self._sign_in_outcomes.add(outcome)
        self.sign_ins.labels(outcome=outcome).inc()

    async def exposition(self) -> bytes:
        """The registry in Prometheus text format, scrape-time values refreshed first."""
        await self._refresh_active_sessions()
        return generate_latest(self.registry)

    async def _refresh_active_sessions(self) -> None:
        if self._count_sessions is None:
            return
        started = time.monotonic()
        if started - self._sessions_counted_at < ACTIVE_SESSIONS_TTL_S:
            return
        self._sessions_counted_at = started
        try:
            async with asyncio.timeout(2):
                value = float(await self._count_sessions(self._clock.now()))
        except (RedisError, ServiceUnavailable, OSError, TimeoutError):
            log.warning("active sessions could not be counted", exc_info=True)
            value = math.nan
        self.active_sessions.set(value)


class BrokerCallMetrics:
    """Every call to the broker's API, timed per endpoint template, and its failures per error (a class
    name the client chooses): ``observe`` is a ``KiteClient.call_observer``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "tradedesk_broker_request_duration_seconds",
            "Time of each call to the broker's API, per endpoint template.",
            ["endpoint"],
            buckets=BROKER_BUCKETS_S,
            registry=registry,
        )
        self.errors = Counter(
            "tradedesk_broker_errors",
            "Broker calls that failed, per endpoint template and error.",
            ["endpoint", "error"],
            registry=registry,
        )

    def observe(self, endpoint: str, duration_s: float, error: str | None) -> None:
        self.duration.labels(endpoint=endpoint).observe(duration_s)
        if error is not None:
            self.errors.labels(endpoint=endpoint, error=error).inc()


class DatabasePoolCollector(Collector):
    """Connection pool usage, read from the engine when Prometheus scrapes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        pool = self._engine.pool
        if not isinstance(pool, QueuePool):
            return []
        return [
            GaugeMetricFamily(
                "tradedesk_db_pool_checked_out",
                "Database connections currently lent out of the pool.",
                value=pool.checkedout(),
            ),
            GaugeMetricFamily(
                "tradedesk_db_pool_size", "Connections the pool keeps open at most.", value=pool.size()
            ),
            # SQLAlchemy counts up from -size; only connections beyond the pool's size are overflow.
            GaugeMetricFamily(
                "tradedesk_db_pool_overflow",
                "Connections open beyond the pool's size.",
                value=max(0, pool.overflow()),
            ),
        ]


class _SessionCounter:
    """Sums the unexpired entries of every per-user session index (``usess:...``), on every primary of a
    Redis Cluster."""

    def __init__(self, redis: RedisClient, *, prefix: str) -> None:
        self._redis = redis
        self._pattern = _glob_escape(prefix) + "usess:*"

    async def __call__(self, now: datetime) -> int:
        total = indexes = calls = 0
        alive_from = f"({now.timestamp()}"
        async with aclosing(scan_pages(self._redis, match=self._pattern, count=1000)) as pages:
            async for keys in pages:
                calls += 1
                if keys:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for key in keys:
                            pipe.zcount(key, alive_from, "+inf")
                        total += sum(int(n) for n in await pipe.execute())
                    indexes += len(keys)
                if indexes >= MAX_INDEX_KEYS or calls >= MAX_SCAN_CALLS:
                    log.info("active sessions counted over the first %d session indexes only", indexes)
                    return total
        return total


def _session_counter(
    store: SessionStore, *, redis: RedisClient | None, prefix: str
) -> Callable[[datetime], Awaitable[int]] | None:
    if isinstance(store, RedisSessionStore) and redis is not None:
        return _SessionCounter(redis, prefix=prefix)
    if isinstance(store, SqlSessionStore):

        async def count_sql(now: datetime) -> int:
            return await store.count_live(now=now)

        return count_sql
    return None


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
