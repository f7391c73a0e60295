"""A private redis-server on a free loopback port that a test can kill (SIGKILL) and start again on the
same port, keeping nothing between lives."""

from __future__ import annotations

import subprocess
import time

from tests.procs import free_port


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 5) -> None:
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {self._proc.returncode}")
            try:
                answer = subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, timeout=1
                )
            except subprocess.TimeoutExpired:
                continue
            if answer.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING in {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to clients, as a crash or an OOM kill would do."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not running"
        return self._proc.pid
