"""A loopback TCP proxy in front of a real server (PostgreSQL, Redis) that a test can cut and restore,
to stage an outage without touching the shared server."""

from __future__ import annotations

import asyncio
import contextlib


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.lose_next_reply = False

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class TcpProxy:
    """Forwards ``127.0.0.1:{port}`` to ``upstream_host:upstream_port``.

    ``cut()`` is the server going away: open connections are reset and new ones refused.
    ``restore()`` listens again on the same port. ``lose_next_replies()`` is a connection dying at the
    worst moment: on every open connection the next answer is dropped and the connection reset, after
    the server has acted on the request."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def url_for(self, url: str) -> str:
        """``url`` with its ``host:port`` pointed at this proxy instead of the upstream server."""
        upstream = f"{self.upstream_host}:{self.upstream_port}"
        if upstream not in url:
            raise ValueError(f"{url!r} does not name {upstream}")
        return url.replace(upstream, f"127.0.0.1:{self.port}", 1)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            link.abort()

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    def lose_next_replies(self) -> None:
        for link in self._links:
            link.lose_next_reply = True

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def aclose(self) -> None:
        await self.cut()
        # Cut connections end their handlers by themselves; cancelling them instead makes asyncio's stream
        # server log the cancellation as an error.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    async def _accept(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                upstream_reader, upstream = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
            except OSError:
                client.transport.abort()
                return
            link = _Link(client, upstream)
            self._links.add(link)
            try:
                await asyncio.gather(
                    self._pump(client_reader, upstream, link, replies=False),
                    self._pump(upstream_reader, client, link, replies=True),
                )
            finally:
                self._links.discard(link)
                link.abort()
        finally:
            self._tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, *, replies: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if replies and link.lose_next_reply:
                    link.abort()
                    return
                writer.write(data)
                await writer.drain()
        # One side finished: end the other as well, as a plain TCP connection would.
        link.abort()
