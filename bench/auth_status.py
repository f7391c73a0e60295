"""Authenticated GET /api/auth/status against GET /healthz on the same API process, plus Redis
commands per authenticated request (INFO commandstats on a private Redis; the session cache's own
tracking handshake and heartbeat PINGs, which run on a timer and not per request, are left out).

Run: make bench   (or .venv/bin/python bench/auth_status.py --duration 12 --rounds 4 --connections 32)
Needs wrk (Debian package `wrk`; installed on demand when apt-get is available)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.procs import Proc, free_port, python_module  # noqa: E402
from tests.support.redis_server import PrivateRedis  # noqa: E402

SPA = "http://127.0.0.1:5173"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


def run_wrk(
    wrk: str, url: str, *, duration_s: int, connections: int, headers: dict[str, str]
) -> dict[str, float]:
    args = [wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout

    def latency_ms(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            raise RuntimeError(f"no {pct}% latency in wrk output:\n{out}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
    }


def combine(runs: list[dict[str, float]]) -> dict[str, float]:
    """Rounds of one endpoint as one figure: total requests over total time, the median round's
    percentiles, every error."""
    return {
        "requests": sum(r["requests"] for r in runs),
        "rps": round(sum(r["rps"] for r in runs) / len(runs), 1),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


# This script's own questions, and what the session cache sends on a timer rather than per request.
NOT_PER_REQUEST = ("cmdstat_config", "cmdstat_info", "cmdstat_ping", "cmdstat_client", "cmdstat_hello")


def commands_total(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if not k.startswith(NOT_PER_REQUEST))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=12, help="seconds per endpoint, over all rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of each endpoint")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="keep the per-request JSON log on (it goes to the API's log file) instead of --no-access-log",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()

    workdir = Path(tempfile.mkdtemp(prefix="tradedesk-bench-"))
    kite_port, api_port = free_port(), free_port()
    private_redis = PrivateRedis()
    private_redis.start()
    redis_port = private_redis.port
    api = f"http://127.0.0.1:{api_port}"
    kite = f"http://127.0.0.1:{kite_port}"
    env = {
        "TRADEDESK_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "TRADEDESK_KEY_FILE": str(workdir / "keys.json"),
        "TRADEDESK_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TRADEDESK_CORS_ORIGINS": SPA,
        "TRADEDESK_KITE_API_URL": kite,
        "TRADEDESK_KITE_LOGIN_URL": f"{kite}/connect/login",
        "KITESIM_REDIRECT_URL": f"{api}/api/auth/callback",
    }
    procs: list[Proc] = []
    try:
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        procs.append(
            Proc(
                python_module("kitesim", "--port", str(kite_port)),
                env=env,
                health_url=f"{kite}/sim/clock",
                name="bench-kitesim",
            ).start()
        )
        procs.append(
            Proc(
                python_module(
                    "tradedesk",
                    "--port",
                    str(api_port),
                    *(
                        ["--log-level", "info"]
                        if args.access_log
                        else ["--log-level", "warning", "--no-access-log"]
                    ),
                ),
                env=env,
                health_url=f"{api}/healthz",
                name="bench-api",
            ).start()
        )
        with httpx.Client(headers={"Origin": SPA}) as browser:
            login = browser.post(
                f"{kite}/connect/login",
                data={"user_id": "DEMO01", "password": "demo", "api_key": "tradedesk-demo"},
            )
            token = parse_qs(urlsplit(login.headers["location"]).query)["request_token"][0]
            signed_in = browser.post(
                f"{api}/api/auth/authenticate",
                json={
                    "api_key": "tradedesk-demo",
                    "api_secret": "tradedesk-demo-secret",
                    "request_token": token,
                },
            )
            signed_in.raise_for_status()
            cookie = browser.cookies.get("tradedesk")
            check = browser.get(f"{api}/api/auth/status").json()
            assert check.get("authenticated") is True, check

        cookie_header = {"Cookie": f"tradedesk={cookie}"}
        run_wrk(wrk, f"{api}/healthz", duration_s=2, connections=args.connections, headers={})  # warm-up
        run_wrk(
            wrk, f"{api}/api/auth/status", duration_s=2, connections=args.connections, headers=cookie_header
        )
        # Alternating rounds, so a neighbour's load that comes and goes during the run falls on both
        # endpoints; the ratio reported is the median of the rounds'.
        stats = redis.Redis(port=redis_port)
        stats.config_resetstat()
        before = commands_total(stats)
        rounds: list[tuple[dict[str, float], dict[str, float]]] = []
        per_round_s = max(1, args.duration // args.rounds)
        for _ in range(args.rounds):
            rounds.append(
                (
                    run_wrk(
                        wrk,
                        f"{api}/healthz",
                        duration_s=per_round_s,
                        connections=args.connections,
                        headers={},
                    ),
                    run_wrk(
                        wrk,
                        f"{api}/api/auth/status",
                        duration_s=per_round_s,
                        connections=args.connections,
                        headers=cookie_header,
                    ),
                )
            )
        health, status = combine([h for h, _ in rounds]), combine([s for _, s in rounds])
        ratios = [round(s["rps"] / h["rps"], 3) for h, s in rounds]
        per_command = {
            k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.info("commandstats").items()
        }
        commands = commands_total(stats) - before
        # What one signed-in browser costs Redis: its record, plus its entry in the user's index.
        session_bytes = sum(
            int(stats.memory_usage(key) or 0) for key in stats.scan_iter(match="td:*sess:*", count=100)
        )
        stats.close()
        figures = {
            "machine": f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().machine}",
            "connections": args.connections,
            "access_log": args.access_log,
            "duration_s": args.duration,
            "healthz": health,
            "auth_status": status,
            "rounds": args.rounds,
            "round_ratios": ratios,
            "throughput_ratio": statistics.median(ratios),
            "redis_commands_per_request": round(commands / max(status["requests"], 1), 4),
            "redis_bytes_per_session": session_bytes,
            "redis_commands": per_command,
        }
        print(json.dumps(figures, indent=2))
        for label, row in (("healthz", health), ("auth/status", status)):
            print(
                f"{label:<16} {row['rps']:>9.0f} req/s p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms"
            )
        print(
            f"ratio            {figures['throughput_ratio']:.2f} (median of {args.rounds} rounds: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.8)\n"
            f"redis cmds/req   {figures['redis_commands_per_request']:.4f} (target: 0 in the steady state)\n"
            f"redis per session {session_bytes} bytes (record and index, one browser)"
        )
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        ok = figures["throughput_ratio"] >= 0.8 and figures["redis_commands_per_request"] <= 0.001
        ok = ok and status["errors"] == 0 and health["errors"] == 0
        return 0 if ok else 1
    finally:
        for proc in reversed(procs):
            proc.stop()
        private_redis.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
