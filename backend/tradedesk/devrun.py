"""``make run``: kitesim, the API and the SPA on the embedded defaults, in one terminal; Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
    }
    spa_dir = ROOT / "frontend" / "dist"
    if not (spa_dir / "index.html").exists():
        spa_dir = ROOT / "frontend" / "public"
    commands = {
        "kitesim": [sys.executable, "-m", "kitesim", "--host", "127.0.0.1", "--port", str(kite_port)],
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
    print(
        "\ntradedesk is running (embedded defaults: SQLite, SQL sessions, kitesim):\n"
        f"  SPA       {spa}\n"
        f"  API       {api}   (docs: {api}/docs)\n"
        f"  kitesim   {kite}   (demo users DEMO01..DEMO05, password 'demo')\n"
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
