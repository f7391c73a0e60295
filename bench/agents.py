"""Agents at scale: N users each running sma_crossover on one worker process, one decision a second per
agent, against kitesim as a real process on a fast clock. Reports decision-to-order-acknowledged p50/p99
(also as ratios to a one-instrument quote round trip to the same kitesim, measured in the same run), the
decisions made per second, the worker's CPU and memory (and memory per agent); then the failover time of
an agent over repeated kill -9 of the worker that holds it, with a second worker standing by.

Run: .venv/bin/python bench/agents.py --users 500 --seconds 60 --kills 5 [--json out.json]"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.trading import dsn, percentile  # noqa: E402

from kitesim.instruments import EQUITIES  # noqa: E402
from tests.conftest import (  # noqa: E402
    APP_ROLE,
    REDIS_URL,
    create_database_with_app_role,
    drop_database,
    make_settings,
    migrate,
    register_broker_user,
    sign_in_through,
)
from tests.procs import Proc, free_port, python_module  # noqa: E402
from tradedesk.agents.runtime import AgentRuntime  # noqa: E402
from tradedesk.kit.crypto import generate_key  # noqa: E402
from tradedesk.main import create_app  # noqa: E402

SPA = "http://spa.bench"
API = "http://api.bench"
MONDAY_0930_IST = "2026-11-30T09:30:00+05:30"
SYMBOLS = [symbol for symbol, *_ in EQUITIES]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE / 2**20


class Topology:
    def __init__(self, *, database: str, speed: float, lease_ttl_s: float) -> None:
        self.kite_port = free_port()
        self.kite = f"http://127.0.0.1:{self.kite_port}"
        self.prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        self.env = {
            "TRADEDESK_DATABASE_URL": dsn(database, user=APP_ROLE, driver="postgresql+asyncpg"),
            "TRADEDESK_REDIS_URL": REDIS_URL,
            "TRADEDESK_REDIS_KEY_PREFIX": self.prefix,
            "TRADEDESK_SECRET_KEYS": "bench-agents-secret-" + uuid.uuid4().hex,
            "TRADEDESK_ENCRYPTION_KEYS": generate_key(),
            "TRADEDESK_KITE_API_URL": self.kite,
            "TRADEDESK_KITE_LOGIN_URL": f"{self.kite}/connect/login",
            "TRADEDESK_CLOCK": "kitesim",
            "TRADEDESK_AGENT_LEASE_TTL_S": str(lease_ttl_s),
            "TRADEDESK_AGENT_MAX_LOTS": "50",
            "TRADEDESK_LOG_LEVEL": "warning",
            "TRADEDESK_LOG_FORMAT": "text",
            "KITESIM_REDIRECT_URL": f"{API}/api/auth/callback",
        }
        self.kitesim = Proc(
            python_module(
                "kitesim",
                "--port",
                str(self.kite_port),
                "--speed",
                str(speed),
                "--start-at",
                MONDAY_0930_IST,
                "--log-level",
                "warning",
            ),
            env=self.env,
            health_url=f"{self.kite}/sim/clock",
            name="bench-kitesim",
        )
        self.workers: dict[str, Proc] = {}

    def worker(self, name: str, *, report_to: Path | None = None) -> Proc:
        args = [sys.executable, str(Path(__file__).resolve()), "worker", "--runtime-id", name]
        if report_to is not None:
            args += ["--report", str(report_to)]
        proc = Proc(args, env=self.env, health_url=None, name=f"bench-{name}")
        self.workers[name] = proc
        return proc


def agent_params(n: int) -> dict[str, object]:
    """Traders differ: each of the equities, with one of 16 pairs of averages (fast 2-5, slow 1-4 more)."""
    fast = 2 + (n // len(SYMBOLS)) % 4
    slow = fast + 1 + (n // (len(SYMBOLS) * 4)) % 4
    return {"tradingsymbol": SYMBOLS[n % len(SYMBOLS)], "fast": fast, "slow": slow}


async def seed_agents(topology: Topology, users: int) -> list[str]:
    """Register the users at the broker, sign each in through the real chain (which stores their
    credentials for agents), and start one sma_crossover agent each, spread over the equities."""
    settings = make_settings(
        topology.env["TRADEDESK_DATABASE_URL"],
        redis_prefix=topology.prefix,
        kite_api_url=topology.kite,
        kite_login_url=f"{topology.kite}/connect/login",
        encryption_keys=[topology.env["TRADEDESK_ENCRYPTION_KEYS"]],
        cors_origins=[SPA],
        api_public_url=API,
        signin_rate_limit=users * 4,
        signin_rate_limit_per_key=users * 4,
    )
    app = create_app(settings)
    user_ids = [f"BA{n:04d}" for n in range(users)]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(base_url=topology.kite, timeout=30) as kite,
    ):
        gate = asyncio.Semaphore(16)

        async def one(n: int, user_id: str) -> None:
            async with gate:
                await register_broker_user(kite, user_id, f"Bench Trader {n}")
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, client=(f"10.0.{n // 250}.{n % 250 + 1}", 5555)),
                    base_url=API,
                    headers={"Origin": SPA},
                ) as browser:
                    await sign_in_through(browser, kite, user_id)
                    response = await browser.post(
                        "/api/agents",
                        json={
                            "strategy": "sma_crossover",
                            "params": agent_params(n),
                        },
                    )
                    assert response.status_code == 201, response.text

        await asyncio.gather(*(one(n, u) for n, u in enumerate(user_ids)))
    return user_ids


async def holders(database: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn(database))
    try:
        rows = await conn.fetch("select runtime_id, count(*) from agents where state = 'running' group by 1")
        return {str(r[0]): int(r[1]) for r in rows}
    finally:
        await conn.close()


async def row_writes(database: str) -> dict[str, int]:
    """Rows inserted, updated and deleted so far in each table (PostgreSQL's statistics, which a backend
    flushes within about a second of its transactions)."""
    conn = await asyncpg.connect(dsn(database))
    try:
        rows = await conn.fetch(
            "select relname, n_tup_ins + n_tup_upd + n_tup_del as writes from pg_stat_user_tables"
        )
        return {str(r["relname"]): int(r["writes"]) for r in rows}
    finally:
        await conn.close()


async def quote_baseline(kite: str, seconds: float, token: str) -> list[float]:
    """Round trips of a one-instrument quote to the same kitesim, a few a second, while the worker runs."""
    found: list[float] = []
    headers = {"X-Kite-Version": "3", "Authorization": f"token tradedesk-demo:{token}"}
    async with httpx.AsyncClient(base_url=kite, headers=headers, timeout=10) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await client.get("/quote/ltp", params={"i": "NSE:INFY"})
            found.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.2)
    return found


def access_token(kite: str) -> str:
    import hashlib
    from urllib.parse import parse_qs, urlsplit

    answer = httpx.post(
        f"{kite}/connect/login", data={"user_id": "DEMO01", "password": "demo", "api_key": "tradedesk-demo"}
    )
    request_token = parse_qs(urlsplit(answer.headers["location"]).query)["request_token"][0]
    checksum = hashlib.sha256(f"tradedesk-demo{request_token}tradedesk-demo-secret".encode()).hexdigest()
    session = httpx.post(
        f"{kite}/session/token",
        data={"api_key": "tradedesk-demo", "request_token": request_token, "checksum": checksum},
    )
    return str(session.json()["data"]["access_token"])


def wait_until(check: Any, timeout_s: float, every_s: float = 0.1) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(every_s)
    raise RuntimeError(f"not reached within {timeout_s} s")


def run_load(args: argparse.Namespace, database: str, topology: Topology) -> dict[str, Any]:
    report = Path(f"/tmp/bench-agents-{os.getpid()}.json")
    worker = topology.worker("w-load", report_to=report).start()
    assert worker.popen is not None
    pid = worker.popen.pid
    time.sleep(3)
    idle_rss = rss_mb(pid)
    seed_started = time.monotonic()
    asyncio.run(seed_agents(topology, args.users))
    seed_s = time.monotonic() - seed_started
    wait_until(
        lambda: asyncio.run(holders(database)).get("w-load", 0) == args.users, timeout_s=60, every_s=0.5
    )
    time.sleep(args.warmup)
    writes_before = asyncio.run(row_writes(database))
    cpu_start, wall_start = cpu_s(pid), time.monotonic()
    window_start = time.perf_counter()
    baseline = asyncio.run(quote_baseline(topology.kite, args.seconds, access_token(topology.kite)))
    cpu_used, wall = cpu_s(pid) - cpu_start, time.monotonic() - wall_start
    window_end = time.perf_counter()
    time.sleep(1.5)  # the statistics of the window's last transactions
    writes_after = asyncio.run(row_writes(database))
    writes = {
        table: round((count - writes_before.get(table, 0)) / wall, 1)
        for table, count in sorted(writes_after.items())
        if count > writes_before.get(table, 0)
    }
    loaded_rss = rss_mb(pid)
    worker.popen.send_signal(signal.SIGTERM)
    worker.popen.wait(timeout=60)
    figures = json.loads(report.read_text())
    report.unlink()
    # perf_counter is system-wide monotonic on Linux: the worker's stamps compare with ours.
    acks = [lat for at, lat in figures["ack_latencies"] if window_start <= at <= window_end]
    in_window = [
        n for second, n in figures["decisions_per_second"] if window_start <= second < int(window_end)
    ]
    decisions_per_s = sum(in_window) / len(in_window) if in_window else 0.0
    base_p50, base_p99 = percentile(baseline, 50), percentile(baseline, 99)
    result: dict[str, Any] = {
        "users": args.users,
        "agents": args.users,
        "seconds": round(wall, 1),
        "seed_s": round(seed_s, 1),
        "orders_acknowledged": len(acks),
        "decisions_per_s": round(decisions_per_s, 1),
        "worker_cpu_cores": round(cpu_used / wall, 3),
        "worker_rss_mb": round(loaded_rss, 1),
        "worker_rss_idle_mb": round(idle_rss, 1),
        "rss_per_agent_kb": round((loaded_rss - idle_rss) * 1024 / args.users, 1),
        # PostgreSQL rows written a second (inserted, updated or deleted), in all and by table.
        "postgres_rows_written_per_s": round(sum(writes.values()), 1),
        "postgres_rows_written_per_agent_s": round(sum(writes.values()) / args.users, 3),
        "postgres_rows_written_per_s_by_table": writes,
        "quote_round_trip_p50_ms": round(base_p50 * 1000, 2),
        "quote_round_trip_p99_ms": round(base_p99 * 1000, 2),
    }
    if acks:
        p50, p99 = percentile(acks, 50), percentile(acks, 99)
        result |= {
            "ack_p50_ms": round(p50 * 1000, 2),
            "ack_p99_ms": round(p99 * 1000, 2),
            "ack_p50_over_quote_p50": round(p50 / base_p50, 2),
            "ack_p99_over_quote_p99": round(p99 / base_p99, 2),
        }
    return result


def run_failover(args: argparse.Namespace, database: str, topology: Topology) -> dict[str, Any]:
    """Agents of the load phase stay in the database; two fresh workers share them, and the one that holds
    them is killed, ``kills`` times over (the killed one comes back as the standby)."""
    first, second = topology.worker("w-a").start(), topology.worker("w-b").start()

    def both_hold_all() -> bool:
        held = asyncio.run(holders(database))
        return held.get("w-a", 0) + held.get("w-b", 0) == args.users

    wait_until(both_hold_all, timeout_s=60, every_s=0.5)
    times: list[float] = []
    procs = {"w-a": first, "w-b": second}
    for _ in range(args.kills):
        held = asyncio.run(holders(database))
        victim = max(held, key=lambda k: held[k])
        survivor = "w-b" if victim == "w-a" else "w-a"
        proc = procs[victim]
        assert proc.popen is not None
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait()
        proc.popen = None
        times.append(
            wait_until(
                lambda s=survivor: asyncio.run(holders(database)).get(s, 0) == args.users,  # type: ignore[misc]
                timeout_s=args.lease_ttl * 4,
                every_s=0.1,
            )
        )
        proc.start()
        time.sleep(1)
    for proc in procs.values():
        proc.stop()
    return {
        "kills": args.kills,
        "agents_moved_per_kill": args.users,
        "lease_ttl_s": args.lease_ttl,
        "handover_s": [round(t, 2) for t in times],
        "handover_max_s": round(max(times), 2),
        "handover_mean_s": round(sum(times) / len(times), 2),
        "handover_max_over_ttl": round(max(times) / args.lease_ttl, 2),
    }


def worker_main(argv: list[str]) -> int:
    """A worker process that, on SIGTERM, writes its acknowledgement latencies and decision count."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtime-id", required=True)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    from tradedesk.agents.worker import run_worker
    from tradedesk.config import Settings

    settings = Settings(agent_runtime_id=args.runtime_id)

    def report(runtime: AgentRuntime) -> None:
        if args.report is not None:
            args.report.write_text(
                json.dumps(
                    {
                        "ack_latencies": list(runtime.ack_latencies_s),
                        "decisions_per_second": sorted(runtime.decisions_per_second.items()),
                    }
                )
            )

    asyncio.run(run_worker(settings, report=report))
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        return worker_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--speed", type=float, default=10.0, help="kitesim clock speed")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    database = f"tradedesk_bench_agents_{uuid.uuid4().hex[:8]}"
    create_database_with_app_role(database)
    migrate(dsn(database, driver="postgresql+asyncpg"), app_role=APP_ROLE)
    topology = Topology(database=database, speed=args.speed, lease_ttl_s=args.lease_ttl)
    topology.kitesim.start()
    try:
        load = run_load(args, database, topology)
        print(json.dumps({"load": load}, indent=2), flush=True)
        failover = run_failover(args, database, topology) if args.kills else {}
    finally:
        for proc in topology.workers.values():
            proc.stop()
        topology.kitesim.stop()
        drop_database(database)
    figures = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "load": load,
        "failover": failover,
        "targets": {"ack_p99_ms": 100, "worker_cpu_cores": 1.0},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
