"""Real processes on free loopback ports, for multi-process and failure tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    def __init__(self, args: list[str], *, env: dict[str, str], health_url: str | None, name: str) -> None:
        self.args = args
        self.env = env
        self.health_url = health_url
        self.name = name
        self.log_path = Path(f"/tmp/{name}-{os.getpid()}.log")
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20) -> Proc:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args, env={**os.environ, **self.env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        if self.health_url:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
                try:
                    if httpx.get(self.health_url, timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            self.stop()
            raise RuntimeError(f"{self.name} did not become healthy:\n{self.output()}")
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None


def wait_for_port(port: int, proc: subprocess.Popen[bytes], *, what: str, timeout_s: float = 10) -> None:
    """Until something listens on the loopback port; fails at once if ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            assert proc.poll() is None, f"{what} exited (status {proc.returncode})"
            assert time.monotonic() < deadline, f"{what} did not listen on {port}"
            time.sleep(0.05)


def shared_env(
    database_url: str, redis_prefix: str, *, kite: str, spa: str, callback_api: str, **extra: str
) -> dict[str, str]:
    """The settings every process of one distributed deployment shares: PostgreSQL as the app role, one
    Redis prefix, keys given explicitly (a key file is per install), kitesim as the broker, its redirect
    to ``callback_api``'s callback. ``spa`` is the SPA origin (comma-separated for several)."""
    from tests.conftest import REDIS_URL, as_app_role
    from tradedesk.kit.crypto import generate_key

    return {
        "TRADEDESK_DATABASE_URL": as_app_role(database_url),
        "TRADEDESK_REDIS_URL": REDIS_URL,
        "TRADEDESK_REDIS_KEY_PREFIX": redis_prefix,
        "TRADEDESK_CORS_ORIGINS": spa,
        "TRADEDESK_SPA_URL": spa.split(",")[0],
        "TRADEDESK_SECRET_KEYS": "shared-secret-" + uuid.uuid4().hex,
        "TRADEDESK_ENCRYPTION_KEYS": generate_key(),
        "TRADEDESK_KITE_API_URL": kite,
        "TRADEDESK_KITE_LOGIN_URL": f"{kite}/connect/login",
        "TRADEDESK_LOG_FORMAT": "text",
        "KITESIM_REDIRECT_URL": f"{callback_api}/api/auth/callback",
        **extra,
    }


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def request_token(kite: str, user_id: str, api_key: str) -> str:
    """kitesim's login form, submitted as a browser would; the request token off its redirect."""
    answer = httpx.post(
        f"{kite}/connect/login", data={"user_id": user_id, "password": "demo", "api_key": api_key}
    )
    assert answer.status_code == 302, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)["request_token"][0]


def sign_in_over_http(
    api: str, kite: str, user_id: str, *, origin: str, api_key: str, api_secret: str
) -> httpx.Client:
    """A browser-like client signed in to a real API process through the real chain, CSRF token set."""
    browser = httpx.Client(headers={"Origin": origin}, timeout=10)
    status = browser.post(
        f"{api}/api/auth/authenticate",
        json={
            "api_key": api_key,
            "api_secret": api_secret,
            "request_token": request_token(kite, user_id, api_key),
        },
    )
    assert status.status_code == 200, status.text
    browser.headers["X-CSRF-Token"] = status.json()["csrf_token"]
    return browser


class ProductProcesses:
    """The deployed topology as local processes: kitesim, API instances without agent runtimes and agent
    workers, all sharing one database and one Redis prefix (``shared_env``), the product on kitesim's
    clock. kitesim's redirect goes to the first API instance."""

    def __init__(
        self,
        *,
        database_url: str,
        redis_prefix: str,
        spa: str,
        apis: tuple[str, ...],
        workers: tuple[str, ...],
        kitesim_args: tuple[str, ...],
        label: str,
        **env_extra: str,
    ) -> None:
        kite_port = free_port()
        self.kite = f"http://127.0.0.1:{kite_port}"
        self.apis = {name: f"http://127.0.0.1:{free_port()}" for name in apis}
        self.env = shared_env(
            database_url,
            redis_prefix,
            kite=self.kite,
            spa=spa,
            callback_api=self.apis[apis[0]],
            TRADEDESK_CLOCK="kitesim",
            **env_extra,
        )
        self.kitesim = Proc(
            python_module("kitesim", "--port", str(kite_port), *kitesim_args),
            env=self.env,
            health_url=f"{self.kite}/sim/clock",
            name=f"{label}-kitesim",
        )
        self.api_procs = {
            name: Proc(
                python_module("tradedesk", "--port", url.rsplit(":", 1)[1], "--log-level", "warning"),
                env={**self.env, "TRADEDESK_AGENT_RUNTIME": "off"},
                health_url=f"{url}/healthz",
                name=f"{label}-api-{name}",
            )
            for name, url in self.apis.items()
        }
        self.workers = {
            name: Proc(
                python_module("tradedesk.agents.worker", "--runtime-id", name),
                env=self.env,
                health_url=None,
                name=f"{label}-worker-{name}",
            )
            for name in workers
        }

    @property
    def procs(self) -> dict[str, Proc]:
        return {
            "kitesim": self.kitesim,
            **{f"api-{n}": p for n, p in self.api_procs.items()},
            **{f"worker-{n}": p for n, p in self.workers.items()},
        }

    def start(self, timeout_s: float = 20) -> None:
        for proc in [self.kitesim, *self.api_procs.values(), *self.workers.values()]:
            proc.start(timeout_s=timeout_s)

    def stop(self) -> None:
        for proc in [*self.workers.values(), *self.api_procs.values(), self.kitesim]:
            proc.stop()
