"""The Redis client, for one server, the master of a Sentinel-monitored service, or a Redis Cluster: short
socket timeouts, so an outage fails closed within about a second, and pooled connections that died while
idle (a Redis restart, a failover) replaced on first use instead of failing requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.exceptions import (
    ConnectionError,
    RedisClusterException,
    RedisClusterUnreachableError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

log = logging.getLogger("tradedesk.redis")

# Commands that leave Redis in the same state whether they run once or twice, so one that may or may not
# have run before its connection broke can be sent again. A count in the answer (DEL, ZADD) may then be
# lower than the first run's. Everything else (INCR, GETDEL, XADD, SET NX, ...) is sent once: running it
# twice would count an attempt twice, lose a value, or claim what is already held.
_REPEATABLE = frozenset(
    {
        "PING", "GET", "MGET", "GETEX", "EXISTS", "TTL", "PTTL", "MSET", "DEL", "UNLINK",
        "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "HGET", "HMGET", "HGETALL", "HSET",
        "HDEL", "SMEMBERS", "SISMEMBER", "SADD", "SREM", "ZSCORE", "ZCARD", "ZRANGE", "ZRANGEBYSCORE",
        "ZREM", "ZREMRANGEBYSCORE", "XRANGE", "XREVRANGE", "XLEN",
    }
)  # fmt: skip
_SET_ONCE_OPTIONS = frozenset({"NX", "GET"})  # SET ... NX answers whether this call set it


def _word(part: object) -> str:
    return (part.decode("latin-1") if isinstance(part, bytes) else str(part)).upper()


def is_repeatable(args: tuple[Any, ...]) -> bool:
    """Whether the command ``args`` (name first) may be sent again after its connection broke."""
    if not args:
        return False
    name = _word(args[0])
    if name == "SET":
        return not any(_word(option) in _SET_ONCE_OPTIONS for option in args[3:])
    if name == "ZADD":
        return not any(_word(option) == "INCR" for option in args[2:])
    return name in _REPEATABLE


def _broken_connection(exc: ConnectionError) -> bool:
    # Subclasses name other things (authentication, a full pool, a loading server) that a resend won't fix.
    return type(exc) is ConnectionError


class _ResendingPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        try:
            return await super().execute(raise_on_error)
        except ConnectionError as exc:
            if self.watching or not _broken_connection(exc):
                raise
            if not stack or not all(is_repeatable(args) for args, _ in stack):
                raise
            self.command_stack = stack
            return await super().execute(raise_on_error)


class ResendingRedis(Redis):
    """A client that sends a repeatable command (or a pipeline of them) once more, on a fresh connection,
    when its connection turns out to be broken: the one place a connection that died while idle can still
    fail a request, since the pool replaces any it already knows to be closed before handing it out."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except ConnectionError as exc:
            if not _broken_connection(exc) or not is_repeatable(args):
                raise
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _ResendingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


# Error replies of a cluster that say it cannot serve at all (no node reachable, a slot nobody serves):
# raised as ConnectionError, the family every caller already answers with 503.
_CLUSTER_OUTAGES = (RedisClusterUnreachableError, SlotNotCoveredError)


class ClusterUnavailable(ConnectionError):
    """No node of the Redis Cluster could serve the command (unreachable, or its slot unserved)."""


class _ResendingClusterPipeline(ClusterPipeline):
    def __init__(self, client: RedisCluster, transaction: bool | None = None) -> None:
        super().__init__(client, transaction)
        self._sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._watched = False

    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        self._sent.append((args, kwargs))
        return super().execute_command(*args, **kwargs)

    async def watch(self, *names: Any) -> Any:  # type: ignore[override]
        self._watched = True
        return await super().watch(*names)  # type: ignore[no-untyped-call]

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        sent, self._sent = self._sent, []
        try:
            try:
                return await super().execute(raise_on_error, allow_redirections)
            except ConnectionError as exc:
                if self._watched or not _broken_connection(exc):
                    raise
                if not sent or not all(is_repeatable(args) for args, _ in sent):
                    raise
                for args, kwargs in sent:
                    super().execute_command(*args, **kwargs)
                return await super().execute(raise_on_error, allow_redirections)
        except _CLUSTER_OUTAGES as exc:
            raise ClusterUnavailable(str(exc)) from exc
        finally:
            self._watched = False


class ResendingRedisCluster(RedisCluster):
    """``ResendingRedis`` for a Redis Cluster: a repeatable command (or pipeline) is sent once more when its
    connection turns out to be broken, and a cluster that cannot serve fails with a ``ConnectionError``."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return await super().execute_command(*args, **kwargs)
            except ConnectionError as exc:
                if not _broken_connection(exc) or not is_repeatable(args):
                    raise
                return await super().execute_command(*args, **kwargs)
        except _CLUSTER_OUTAGES as exc:
            raise ClusterUnavailable(str(exc)) from exc

    async def ping(self, **kwargs: Any) -> Any:
        """True when every primary answers: each holds a share of the keys, so one that does not means
        some users cannot be served (redis-py would ask any one node)."""
        return await self.execute_command("PING", target_nodes=RedisCluster.PRIMARIES, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is not supported in cluster mode")
        return _ResendingClusterPipeline(self, transaction)  # type: ignore[abstract]


class _MasterConnection(SentinelManagedConnection):
    """A connection to the master that its pool can find again, whoever holds it: the pool's own, and those
    opened with the pool's settings outside it (the session cache's tracking connection)."""

    async def connect_to(self, address: Any) -> None:
        await super().connect_to(address)  # type: ignore[no-untyped-call]
        self.connection_pool.opened.add(self)


class _MasterSSLConnection(_MasterConnection, SSLConnection):
    pass


class _MasterFollowingPool(SentinelConnectionPool):
    """Redis-py's Sentinel pool asks the sentinels where the master is only when it opens a connection, so
    connections already open keep writing to a demoted master that still accepts writes (a forced
    failover, or a partition) until Sentinel gets round to reconfiguring it, seconds later, and one that
    only listens (client tracking) hears nothing of the writes made on the new master meanwhile. While in
    use, this pool asks every ``check_interval_s`` as well, and on a change closes every connection still
    open to the old master, busy ones included: what they would still send would be lost with the old
    master's data, and what they wait for would never come."""

    check_interval_s = 1.0
    # Asking stops after this long without a checkout, and resumes with the next one.
    idle_after_s = 30.0

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self.opened: weakref.WeakSet[_MasterConnection] = weakref.WeakSet()
        self._follower: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._used_at = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        self._used_at = loop.time()
        if self._follower is None or self._follower.done():
            self._follower = loop.create_task(self._follow_master(), name="redis-sentinel-master")
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def get_master_address(self) -> Any:
        # Whoever learns of the move first (this pool's own check, or a connection being opened), every
        # connection to the old master goes: redis-py's pool drops only its idle ones.
        known = self.master_address
        address = await super().get_master_address()  # type: ignore[no-untyped-call]
        if known is not None and address != known:
            stale = [c for c in self.opened if c.is_connected and (c.host, c.port) != tuple(address)]
            log.warning("Redis master of %s moved; closing %d connections", self.service_name, len(stale))
            for connection in stale:
                try:
                    await connection.disconnect()
                except (RedisError, OSError) as exc:  # closing it failed: it is gone all the same
                    log.debug("closing a connection to the old master failed: %s", exc)
        return address

    async def _follow_master(self) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() - self._used_at < self.idle_after_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.check_interval_s)
            if self._closing.is_set():
                return
            try:
                await self.get_master_address()
            except (ConnectionError, RedisTimeoutError, ResponseError) as exc:
                # No sentinel answers, or none names a master: the connections fail on their own if the
                # master is gone too, and are left alone if it is not.
                log.debug("sentinels not answering for %s: %s", self.service_name, exc)

    async def aclose(self) -> None:
        # Told to stop rather than cancelled: a check cut short while it connects to a sentinel would
        # leave that socket open. A check ends within the sentinels' timeouts.
        self._closing.set()
        follower, self._follower = self._follower, None
        if follower is not None:
            _, late = await asyncio.wait({follower}, timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        await super().aclose()


class SentinelRedis(ResendingRedis):
    """``ResendingRedis`` on the current master of a Sentinel-monitored service: each new connection asks
    the sentinels where the master is, and one still open to a demoted master is dropped on its first
    ``READONLY`` reply. Closing it also closes its connections to the sentinels."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinel_manager is not None:
                await self.sentinel_manager.aclose()


RedisClient: TypeAlias = Redis | RedisCluster

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    """What a ``redis+sentinel://`` or ``redis+cluster://`` URL names: several ``(host, port)`` nodes (the
    sentinels, or the cluster nodes to discover it from), a sentinel's service name and database, and
    the connection options of the URL's credentials and query string, typed the way redis-py types them."""

    nodes: tuple[tuple[str, int], ...]
    tls: bool
    options: dict[str, Any]
    service_name: str | None = None
    db: int = 0


def _node(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError("a Redis URL names a node without a host")
    try:
        return unquote(host), int(port) if port else default_port
    except ValueError:
        raise ValueError(f"a Redis URL names a node with a bad port: {port!r}") from None


def parse_multi_node_url(url: str) -> RedisAddress:
    """Reads ``redis[s]+sentinel://[[user]:password@]host[:port][,host[:port]...]/<service>[/<db>][?opts]``
    or ``redis[s]+cluster://[[user]:password@]host[:port][,host[:port]...][/][?opts]``.

    Sentinels default to port 26379, cluster nodes to 6379. The credentials are the data nodes'; sentinels
    that want some of their own get them from ``sentinel_username``/``sentinel_password`` in the query
    string. The other query options are redis-py's (``ssl_ca_certs``, ``ssl_cert_reqs``, ...); ``rediss+``
    speaks TLS to every node, sentinels included."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        raise ValueError(f"not a sentinel or cluster Redis URL: scheme {parts.scheme!r}")
    sentinel = scheme in SENTINEL_SCHEMES
    tls = scheme.startswith("rediss+")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    default_port = DEFAULT_SENTINEL_PORT if sentinel else DEFAULT_REDIS_PORT
    nodes = tuple(_node(h.strip(), default_port) for h in hosts.split(",") if h.strip())
    if not nodes:
        raise ValueError("a sentinel or cluster Redis URL must name at least one host")
    # redis-py reads the credentials and the query string; the hosts and path are read above and below.
    credentials = f"{userinfo}@" if userinfo else ""
    options: dict[str, Any] = dict(
        parse_url(f"{'rediss' if tls else 'redis'}://{credentials}localhost/?{parts.query}")
    )
    for name in ("host", "port", "connection_class"):
        options.pop(name, None)
    db = int(options.pop("db", 0))
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not sentinel:
        if segments or db:
            raise ValueError("a Redis Cluster has only database 0: the URL takes no path")
        return RedisAddress(nodes=nodes, tls=tls, options=options)
    if not segments or len(segments) > 2:
        raise ValueError(
            "a sentinel Redis URL names the service: redis+sentinel://host:port/<service>[/<db>]"
        )
    if len(segments) == 2:
        db = int(segments[1])
    return RedisAddress(nodes=nodes, tls=tls, options=options, service_name=segments[0], db=db)


def _client_options(timeout_s: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        # No retries inside redis-py: it would also resend INCR and timeouts (a hung Redis must fail fast).
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "max_connections": 200,
        # While maintenance notifications are on (redis-py's "auto" default) the pool skips its check for
        # connections the server has closed, and hands out the ones a Redis restart left dead.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }


def _sentinel_client(address: RedisAddress, timeout_s: float) -> SentinelRedis:
    assert address.service_name is not None
    options = dict(address.options)
    sentinel_auth = {
        "username": options.pop("sentinel_username", None),
        "password": options.pop("sentinel_password", None),
    }
    tls = {name: value for name, value in options.items() if name.startswith("ssl_")}
    sentinel = Sentinel(
        address.nodes,
        sentinel_kwargs={
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            **{name: value for name, value in sentinel_auth.items() if value},
            **({"ssl": True, **tls} if address.tls else {}),
        },
    )
    connection: dict[str, Any] = {
        **_client_options(timeout_s),
        "retry_on_timeout": False,
        "db": address.db,
        "connection_class": _MasterSSLConnection if address.tls else _MasterConnection,
        **options,
    }
    client: SentinelRedis = sentinel.master_for(
        address.service_name,
        redis_class=SentinelRedis,
        connection_pool_class=_MasterFollowingPool,
        **connection,
    )
    client.sentinel_manager = sentinel
    return client


def _cluster_client(address: RedisAddress, timeout_s: float) -> ResendingRedisCluster:
    options: dict[str, Any] = {
        **_client_options(timeout_s),
        **({"ssl": True} if address.tls else {}),
        **address.options,
    }
    return ResendingRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes], **options
    )


def is_cluster(redis: RedisClient) -> bool:
    return isinstance(redis, RedisCluster)


async def scan_pages(redis: RedisClient, *, match: str, count: int) -> AsyncGenerator[list[Any], None]:
    """The keys matching ``match``, one SCAN reply (one round trip) at a time. A Redis Cluster is scanned
    primary by primary: each holds the keys of its own slots only."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
        for node in redis.get_primaries():
            cursor = 0
            while True:
                # A cluster answers with a cursor per node it asked.
                answer: Any = await redis.scan(cursor, match=match, count=count, target_nodes=node)
                cursors, keys = answer
                cursor = int(cursors[node.name])
                yield keys
                if cursor == 0:
                    break
        return
    cursor = 0
    while True:
        cursor, keys = await redis.scan(cursor, match=match, count=count)
        yield keys
        if cursor == 0:
            return


def create_redis(url: str, *, timeout_s: float) -> RedisClient:
    """The client for ``TRADEDESK_REDIS_URL``: one server (``redis://``, ``rediss://``, ``unix://``), the
    master of a Sentinel-monitored service (``redis+sentinel://``), or a Redis Cluster (``redis+cluster://``;
    see ``parse_multi_node_url``). Each fails fast (``timeout_s`` per connect and per reply, no retries
    inside redis-py) and sends a repeatable command once more on a connection found broken.

    Typed as ``RedisClient`` (``Redis | RedisCluster``): callers send only commands both share, and code
    that reaches below the commands (connection pools, multi-key reads) asks ``is_cluster`` first."""
    scheme = url.partition("://")[0].lower()
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_client(parse_multi_node_url(url), timeout_s)
    if scheme in CLUSTER_SCHEMES:
        return _cluster_client(parse_multi_node_url(url), timeout_s)
    return ResendingRedis.from_url(url, **_client_options(timeout_s), retry_on_timeout=False)
