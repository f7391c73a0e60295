"""``make run``: kitesim, the API and the SPA on the embedded defaults, in one terminal; Ctrl-C stops all.

The simulated market opens when the demo does: outside market hours kitesim starts at 09:20 IST of the
next session, and the API follows kitesim's clock, so an agent started in the demo trades at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

from tradedesk.kit.calendar import IST, MARKET_OPEN, market_open

ROOT = Path(__file__).resolve().parents[2]
DEMO_START = time_of_day(9, 20)


def demo_market_start(now: datetime) -> datetime | None:
    """None while a session is open (the simulator runs on real time); otherwise 09:20 IST of the next
    session day, so that the demo's market is open."""
    if market_open(now):
        return None
    local = now.astimezone(IST)
    day = local.date() if local.time() < MARKET_OPEN else local.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, DEMO_START, tzinfo=IST)


def main() -> int:
    api_port = int(os.environ.get("TRADEDESK_PORT", "8000"))
    kite_port = int(os.environ.get("KITESIM_PORT", "8100"))
    spa_port = int(os.environ.get("SPA_PORT", "5173"))
    api = f"http://127.0.0.1:{api_port}"
    kite = f"http://127.0.0.1:{kite_port}"
    spa = f"http://127.0.0.1:{spa_port}"
    env = {
        **os.environ,
        "TRADEDESK_KITE_API_URL": os.environ.get("TRADEDESK_KITE_API_URL", kite),
        "TRADEDESK_KITE_LOGIN_URL": os.environ.get("TRADEDESK_KITE_LOGIN_URL", f"{kite}/connect/login"),
        "TRADEDESK_SPA_URL": os.environ.get("TRADEDESK_SPA_URL", spa),
        "TRADEDESK_API_PUBLIC_URL": os.environ.get("TRADEDESK_API_PUBLIC_URL", api),
        "KITESIM_REDIRECT_URL": os.environ.get("KITESIM_REDIRECT_URL", f"{api}/api/auth/callback"),
        "TRADEDESK_CLOCK": os.environ.get("TRADEDESK_CLOCK", "kitesim"),
    }
    # An operator's own KITESIM_START_AT wins over the demo's choice.
    start = None if "KITESIM_START_AT" in os.environ else demo_market_start(datetime.now(UTC))
    spa_dir = ROOT / "frontend" / "dist"
    if not (spa_dir / "index.html").exists():
        spa_dir = ROOT / "frontend" / "public"
    commands = {
        "kitesim": [
            sys.executable,
            "-m",
            "kitesim",
            "--host",
            "127.0.0.1",
            "--port",
            str(kite_port),
            # The API reads kitesim's clock every second: an access line each time would drown the rest.
            "--log-level",
            "warning",
            *(["--start-at", start.isoformat()] if start is not None else []),
        ],
        "api": [sys.executable, "-m", "tradedesk", "--host", "127.0.0.1", "--port", str(api_port)],
        "spa": [
            sys.executable,
            "-m",
            "http.server",
            str(spa_port),
            "--bind",
            "127.0.0.1",
            "-d",
            str(spa_dir),
        ],
    }
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Installed explicitly: a launcher started in the background inherits an ignored SIGINT, and SIGTERM
    # (from a supervisor) must stop the children too.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    procs = {name: subprocess.Popen(cmd, env=env, cwd=ROOT) for name, cmd in commands.items()}  # noqa: S603
    time.sleep(1.5)
    market_line = (
        f"  market    simulated from {start.isoformat()}; POST {kite}/sim/clock moves it\n" if start else ""
    )
    print(
        "\ntradedesk is running (embedded defaults: SQLite, SQL sessions, kitesim):\n"
        f"  SPA       {spa}\n"
        f"  API       {api}   (docs: {api}/docs)\n"
        f"  kitesim   {kite}   (demo users DEMO01..DEMO05, password 'demo')\n"
        f"{market_line}"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        while not stopping and all(p.poll() is None for p in procs.values()):
            time.sleep(0.2)
        if stopping:
            return 0
        dead = [name for name, p in procs.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)
        return 1
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    raise SystemExit(main())
