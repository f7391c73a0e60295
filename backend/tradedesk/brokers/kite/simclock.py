"""The product's clock following kitesim's simulated one (demos and tests of a fast trading day): read
``GET /sim/clock`` (time and speed), extrapolate between reads, re-read every few seconds so a jump or
a speed change set on the simulator reaches every process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

import httpx

log = logging.getLogger("tradedesk.clock")


class KitesimClock:
    def __init__(
        self, base_url: str, *, refresh_s: float = 1.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(3.0), transport=transport)
        self._refresh_s = refresh_s
        self._base: datetime | None = None
        self._base_mono = 0.0
        self._speed = 1.0
        self._task: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        if self._base is None:
            raise RuntimeError("the kitesim clock has not been read yet; call start() first")
        return self._base + timedelta(seconds=(time.monotonic() - self._base_mono) * self._speed)

    async def read(self) -> None:
        started = time.monotonic()
        response = await self._http.get("/sim/clock")
        response.raise_for_status()
        body = response.json()
        # Half the round trip is the best guess of when the simulator read its clock.
        self._base_mono = (started + time.monotonic()) / 2
        self._base = datetime.fromisoformat(str(body["now"]))
        self._speed = float(body["speed"])

    async def start(self) -> None:
        await self.read()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.read()
            except (httpx.HTTPError, ValueError, KeyError):
                log.warning("kitesim clock not read; extrapolating from the last reading")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()
