"""``python -m tradedesk.agents.worker``: an agent runtime on its own, without the API. It builds the
services a runtime needs (database, Redis, Kite client, cipher, clock) once, drives agents until
SIGTERM or SIGINT, then gives its leases up so another runtime takes the agents over at once."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import signal
import sys
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tradedesk.agents.runtime import AgentRuntime, RuntimeIdInUse
from tradedesk.agents.services import build_agent_services
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.brokers.kite.simclock import KitesimClock
from tradedesk.config import Settings
from tradedesk.db import create_engine, create_sessionmaker
from tradedesk.kit.clock import Clock, ReferencedClock, SystemClock
from tradedesk.kit.crypto import CredentialCipher
from tradedesk.kit.keys import KeyFileError
from tradedesk.logs import logging_config
from tradedesk.metrics.agents import WorkerMetrics
from tradedesk.metrics.exposition import MetricsListener
from tradedesk.redis import create_redis

log = logging.getLogger("tradedesk.agents")


async def database_time(engine: AsyncEngine) -> datetime:
    """PostgreSQL's clock at this moment (not the transaction's start)."""
    async with engine.connect() as connection:
        value = (await connection.execute(text("select clock_timestamp()"))).scalar_one()
    if not isinstance(value, datetime):
        raise TypeError(f"clock_timestamp() answered {value!r}")
    return value


async def run_worker(settings: Settings, *, report: Callable[[AgentRuntime], None] | None = None) -> bool:
    """Run until SIGTERM/SIGINT; ``report`` (benchmarks) sees the runtime before it shuts down. False when
    the runtime refused to run (its id is in use by another live process)."""
    # A cycle's burst of orders writes from many agents at once: keep their connections open.
    engine = create_engine(
        settings.database_url,
        pre_ping=False,
        pool_size=30,
        statement_cache=settings.database_statement_cache,
    )
    redis = (
        create_redis(settings.redis_url, timeout_s=settings.redis_timeout_s) if settings.redis_url else None
    )
    kite = KiteClient(base_url=settings.kite_api_url, timeout_s=settings.kite_timeout_s)
    sim_clock = KitesimClock(settings.kite_api_url) if settings.clock == "kitesim" else None
    # On the system clock, a worker keeps the database's time: a host whose clock is off would otherwise
    # decide, stamp heartbeats and write events at times no other process agrees with.
    db_clock = (
        ReferencedClock(lambda: database_time(engine))
        if sim_clock is None and engine.dialect.name == "postgresql"
        else None
    )
    clock: Clock = sim_clock or db_clock or SystemClock()
    if sim_clock is not None:
        await sim_clock.start()
    if db_clock is not None:
        await db_clock.start()
    services = build_agent_services(
        settings,
        sessionmaker=create_sessionmaker(engine),
        redis=redis,
        kite=kite,
        cipher=CredentialCipher(settings.effective_encryption_keys),
        clock=clock,
        with_runtime=True,
    )
    assert services.runtime is not None
    metrics = MetricsListener(
        WorkerMetrics(services.runtime, engine=engine, kite=kite, clock=clock),
        port=settings.metrics_port,
        host=settings.metrics_host,
    )
    await metrics.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    services.start()
    log.info("agent worker %s running", services.runtime.runtime_id)
    refused = False
    try:
        signalled = asyncio.create_task(stopping.wait())
        ended = asyncio.create_task(services.finished())
        await asyncio.wait({signalled, ended}, return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        refused = ended.done() and isinstance(ended.exception(), RuntimeIdInUse)
        if not ended.done():
            ended.cancel()
    finally:
        if report is not None:
            report(services.runtime)
        await services.close()
        await metrics.stop()
        if sim_clock is not None:
            await sim_clock.aclose()
        if db_clock is not None:
            await db_clock.aclose()
        await kite.aclose()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
    return not refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tradedesk.agents.worker", description="Run a tradedesk agent runtime without the API."
    )
    parser.add_argument(
        "--runtime-id", help="this runtime's name (default: TRADEDESK_AGENT_RUNTIME_ID, else host-pid)"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings(**({"agent_runtime_id": args.runtime_id} if args.runtime_id else {}))
        settings.effective_encryption_keys  # noqa: B018
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            print(f"tradedesk worker: refusing to start: {error['msg']}", file=sys.stderr)
        return 2
    except KeyFileError as exc:
        print(f"tradedesk worker: refusing to start: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(logging_config(settings))
    return 0 if asyncio.run(run_worker(settings)) else 2


if __name__ == "__main__":
    raise SystemExit(main())
