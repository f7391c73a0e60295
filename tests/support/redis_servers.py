"""Redis topologies on free loopback ports: a Redis Cluster of primaries, and a master with a replica watched
by sentinels. Each server runs in a directory of its own, keeps nothing on disk (no RDB, no AOF), and is a
Popen this module stops itself (SIGKILL), never found by name."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from tests.procs import free_port


def redis_cli(port: int, *args: str, timeout_s: float = 2) -> str:
    """One command through redis-cli; its raw answer ("" when the server did not answer in time)."""
    try:
        answer = subprocess.run(
            ["redis-cli", "-p", str(port), *args], capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return ""
    return answer.stdout.decode("utf-8", "replace").strip()


def info_field(port: int, section: str, field: str) -> str | None:
    for line in redis_cli(port, "INFO", section).splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return value.strip()
    return None


def wait_until(what: str, check: object, timeout_s: float, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s} s")
        time.sleep(interval_s)


class RedisProcess:
    """One redis-server (or sentinel) on a free loopback port, with its own working directory."""

    def __init__(self, directory: Path, *extra: str, sentinel_config: str | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._extra = list(extra)
        self._sentinel_config = sentinel_config
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 5) -> RedisProcess:
        if self._sentinel_config is not None:
            config = self.directory / "sentinel.conf"
            config.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n{self._sentinel_config}"
            )
            args = ["redis-server", str(config), "--sentinel"]
        else:
            args = [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                *self._extra,
            ]  # fmt: skip
        with (self.directory / "server.log").open("ab") as log:
            self.popen = subprocess.Popen(args, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)
        popen = self.popen

        def answers() -> bool:
            if popen.poll() is not None:
                raise RuntimeError(
                    f"redis-server on {self.port} exited with {popen.returncode}: {self.log()}"
                )
            return redis_cli(self.port, "PING", timeout_s=1) == "PONG"

        wait_until(f"redis-server on {self.port} answering PING", answers, timeout_s)
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to clients, as a crash would do."""
        if self.popen is not None:
            if self.popen.poll() is None:
                self.popen.kill()
            self.popen.wait()
            self.popen = None


class ClusterServers:
    """A Redis Cluster of ``primaries`` nodes and no replicas, every slot assigned."""

    def __init__(self, directory: Path, *, primaries: int = 3) -> None:
        cluster_options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        self.nodes = [
            RedisProcess(
                directory / f"node-{i}",
                *cluster_options,
                *("--cluster-port", str(free_port()), "--cluster-node-timeout", "2000"),
            )
            for i in range(primaries)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self, timeout_s: float = 30) -> ClusterServers:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            created = subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
            if created.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed: {created.stdout!r} {created.stderr!r}"
                )
            wait_until("every cluster node in state ok", self.healthy, timeout_s, interval_s=0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def healthy(self) -> bool:
        """Every node serves every slot and knows every other node."""
        for node in self.nodes:
            lines = set(redis_cli(node.port, "CLUSTER", "INFO").splitlines())
            if not {"cluster_state:ok", f"cluster_known_nodes:{len(self.nodes)}"} <= lines:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


class SentinelServers:
    """A master, one replica, and ``sentinels`` sentinels that fail over after ``down_after_ms``."""

    SERVICE = "tdmaster"

    def __init__(
        self,
        directory: Path,
        *,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 4000,
    ) -> None:
        # A replica syncs at once, not after the 5 s Redis waits for more replicas to share a transfer.
        at_once = ("--repl-diskless-sync-delay", "0")
        self.master = RedisProcess(directory / "master", *at_once)
        self.replica = RedisProcess(
            directory / "replica", *at_once, "--replicaof", "127.0.0.1", str(self.master.port)
        )
        config = (
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} {quorum}\n"
            f"sentinel down-after-milliseconds {self.SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {self.SERVICE} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.SERVICE} 1\n"
            # Known from the start: else found in the master's INFO, which Sentinel reads every 10 s.
            f"sentinel known-replica {self.SERVICE} 127.0.0.1 {self.replica.port}\n"
        )
        self.sentinels = [
            RedisProcess(directory / f"sentinel-{i}", sentinel_config=config) for i in range(sentinels)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    @property
    def servers(self) -> list[RedisProcess]:
        return [self.master, self.replica]

    def start(self, timeout_s: float = 30) -> SentinelServers:
        try:
            self.master.start()
            self.replica.start()
            wait_until(
                "the replica in sync with the master",
                lambda: info_field(self.replica.port, "replication", "master_link_status") == "up",
                timeout_s,
            )
            for sentinel in self.sentinels:
                sentinel.start()
            others = len(self.sentinels) - 1
            wait_until(
                "every sentinel knowing the replica and the other sentinels",
                lambda: all(self._sees(sentinel.port, others) for sentinel in self.sentinels),
                timeout_s,
                interval_s=0.2,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _sees(self, port: int, others: int) -> bool:
        state = self._master_state(port)
        return state.get("num-slaves") == "1" and state.get("num-other-sentinels") == str(others)

    def _master_state(self, port: int) -> dict[str, str]:
        fields = redis_cli(port, "SENTINEL", "MASTER", self.SERVICE).splitlines()
        return dict(zip(fields[::2], fields[1::2], strict=False))

    def _named_by(self, port: int) -> int | None:
        # SENTINEL MASTER, as clients ask (GET-MASTER-ADDR-BY-NAME names the promoted replica earlier).
        named = self._master_state(port).get("port")
        return int(named) if named else None

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers names it to clients."""
        for sentinel in self.sentinels:
            if sentinel.alive and (port := self._named_by(sentinel.port)) is not None:
                return port
        return None

    def server_on(self, port: int) -> RedisProcess:
        return next(server for server in self.servers if server.port == port)

    def failover(self) -> None:
        """SENTINEL FAILOVER: the replica is promoted without waiting for the master to fail."""
        answer = redis_cli(self.sentinels[0].port, "SENTINEL", "FAILOVER", self.SERVICE)
        if answer != "OK":
            raise RuntimeError(f"SENTINEL FAILOVER refused: {answer}")

    def wait_for_new_master(self, old_port: int, timeout_s: float = 20) -> int:
        """Until every live sentinel names another master, and that server says it is one."""

        def moved() -> bool:
            port = self.master_port()
            return (
                port is not None
                and port != old_port
                and info_field(port, "replication", "role") == "master"
                and all(self._named_by(s.port) == port for s in self.sentinels if s.alive)
            )

        wait_until("the sentinels naming a new master", moved, timeout_s, interval_s=0.05)
        port = self.master_port()
        assert port is not None
        return port

    def wait_for_replica_link(self, port: int, timeout_s: float = 20) -> None:
        wait_until(
            f"the server on {port} replicating its master",
            lambda: info_field(port, "replication", "master_link_status") == "up",
            timeout_s,
        )

    def stop(self) -> None:
        for process in [*self.sentinels, self.replica, self.master]:
            process.kill()


# What a signed-in browser asks of the API, each needing Redis: with Redis gone, each must be refused fast.
NEEDS_REDIS = (
    ("GET", "/api/auth/status"),
    ("GET", "/api/auth/sessions"),
    ("POST", "/api/auth/login"),
    ("GET", "/readyz"),
)


async def assert_fails_closed(client: httpx.AsyncClient, *, within_s: float = 2.0) -> None:
    """Every request that needs Redis is answered 503 with a Retry-After, each within ``within_s``, while
    the process itself stays healthy."""
    for method, path in NEEDS_REDIS:
        started = time.monotonic()
        body = {"api_key": "k", "api_secret": "s"} if method == "POST" else None
        response = await client.request(method, path, json=body)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, (path, response.text)
        assert int(response.headers["retry-after"]) >= 1
        assert elapsed < within_s, (path, elapsed)
    assert (await client.get("/healthz")).status_code == 200
