"""``make run``: kitesim, the API and the SPA on the embedded defaults, in one terminal; Ctrl-C stops all.

The simulated market opens when the demo does: outside market hours kitesim starts at 09:20 IST of the
next session, and the API follows kitesim's clock, so an agent started in the demo trades at once. Before
the API starts, the demo accounts trade the past trading days (``tradedesk.demo.seed``), so that the dashboard
has a history on the first sign-in; a later run finds it there and adds nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

import httpx

from tradedesk.demo.plan import DEFAULT_DAYS, DEMO_TRADERS
from tradedesk.kit.calendar import IST, MARKET_OPEN, market_open

ROOT = Path(__file__).resolve().parents[2]
SPA_DIST = ROOT / "frontend" / "dist"
DEMO_START = time_of_day(9, 20)
KITESIM_READY_S = 20.0
# A seed told to stop closes the day in progress first: a second or two.
SEED_STOP_S = 20.0


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


def demo_days(environ: dict[str, str]) -> int:
    """Past trading days of demo history to trade (``TRADEDESK_DEMO_DAYS``, 0 for none)."""
    raw = environ.get("TRADEDESK_DEMO_DAYS", "").strip()
    if not raw:
        return DEFAULT_DAYS
    try:
        return max(0, int(raw))
    except ValueError:
        print(f"TRADEDESK_DEMO_DAYS={raw!r} is not a number of days; using {DEFAULT_DAYS}", file=sys.stderr)
        return DEFAULT_DAYS


def wait_until_up(url: str, proc: subprocess.Popen[bytes], *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


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
    if not (SPA_DIST / "index.html").exists():
        print("frontend/dist is not built: `make run` builds it (or run `make spa`)", file=sys.stderr)
        return 2
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
        # The built SPA on its own origin, told where the API is; the sign-in page offers kitesim's demo app.
        "spa": [
            sys.executable,
            "-m",
            "tradedesk.spa",
            "--host",
            "127.0.0.1",
            "--port",
            str(spa_port),
            "--api-url",
            env["TRADEDESK_API_PUBLIC_URL"],
            "--dist",
            str(SPA_DIST),
            "--demo",
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
    days = demo_days(env)

    def launch(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(commands[name], env=env, cwd=ROOT)  # noqa: S603

    def seed_history() -> bool:
        """The demo history, before the API starts (its agent runtime would take the history's agents);
        told to stop, the seed closes the day in progress first."""
        seed = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "tradedesk.demo.seed", "--kite-url", kite, "--days", str(days)],
            env=env,
            cwd=ROOT,
        )
        while seed.poll() is None and not stopping:
            time.sleep(0.1)
        if seed.poll() is None:
            seed.send_signal(signal.SIGTERM)
            try:
                seed.wait(timeout=SEED_STOP_S)
            except subprocess.TimeoutExpired:
                seed.kill()
                seed.wait()
        return seed.returncode == 0

    procs = {name: launch(name) for name in ("kitesim", "spa")}
    try:
        history = False
        if days and not wait_until_up(f"{kite}/sim/clock", procs["kitesim"], timeout_s=KITESIM_READY_S):
            print("kitesim did not answer; tradedesk starts without the demo history", file=sys.stderr)
        elif days:
            history = seed_history()
            if not history and not stopping:
                print("demo history not made (see above); tradedesk starts without it", file=sys.stderr)
        if stopping:
            return 0
        procs["api"] = launch("api")
        time.sleep(1.5)
        market_line = (
            f"  market    simulated from {start.isoformat()}; POST {kite}/sim/clock moves it\n"
            if start
            else ""
        )
        history_line = (
            f"  history   {', '.join(t.user_id for t in DEMO_TRADERS)}: the short strangle over the last "
            f"{days} trading days\n"
            if history
            else ""
        )
        print(
            "\ntradedesk is running (embedded defaults: SQLite, SQL sessions, kitesim):\n"
            f"  SPA       {spa}\n"
            f"  API       {api}   (docs: {api}/docs)\n"
            f"  kitesim   {kite}   (demo users DEMO01..DEMO05, password 'demo')\n"
            f"{market_line}"
            f"{history_line}"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
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
