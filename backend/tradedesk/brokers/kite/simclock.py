"""The product's clock following kitesim's simulated one (demos and tests of a fast trading day): read
``GET /sim/clock`` (time and speed), extrapolate between reads, re-read every few seconds so a jump or
a speed change set on the simulator reaches every process."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import httpx

from tradedesk.kit.clock import Refreshed


class KitesimClock:
    def __init__(
        self, base_url: str, *, refresh_s: float = 1.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(3.0), transport=transport)
        self._refreshed = Refreshed(
            self.read,
            every_s=refresh_s,
            failure="kitesim clock not read; extrapolating from the last reading",
        )
        self._base: datetime | None = None
        self._base_mono = 0.0
        self._speed = 1.0

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
        self._refreshed.start()

    async def aclose(self) -> None:
        await self._refreshed.aclose()
        await self._http.aclose()
