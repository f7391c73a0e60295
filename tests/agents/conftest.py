"""Agents run against kitesim in process, and the product reads the simulator's own clock: a test moves
time with ``sim_clock.advance`` and ticks a runtime by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from kitesim.app import create_app as create_kitesim
from kitesim.clock import SimClock
from kitesim.config import KitesimSettings
from tests.conftest import API_BASE, ClientFactory, SignIn

# Monday 2026-11-30, 09:20 IST: the market is open, the strangle's entry time is ahead.
DAY_START = datetime(2026, 11, 30, 3, 50, tzinfo=UTC)
# The simulator barely moves by itself while a test runs; tests move it.
FROZEN_SPEED = 1e-6


@pytest.fixture
def kitesim() -> object:
    return create_kitesim(
        KitesimSettings(  # type: ignore[call-arg]
            _env_file=None,
            redirect_url=f"{API_BASE}/api/auth/callback",
            start_at=DAY_START,
            speed=FROZEN_SPEED,
        )
    )


@pytest.fixture
def sim_clock(kitesim: object) -> SimClock:
    clock: SimClock = kitesim.state.sim.clock  # type: ignore[attr-defined]
    return clock


@pytest.fixture
def clock(sim_clock: SimClock) -> SimClock:  # type: ignore[override]
    return sim_clock


# Redis (leases, streams, many processes) and the embedded default (in-process leases and bus, SQLite).
@pytest.fixture(params=["redis", "sqlite"])
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def trader(new_client: ClientFactory, sign_in: SignIn) -> httpx.AsyncClient:
    client = new_client()
    await sign_in(client, "DEMO01")
    return client


@pytest.fixture
async def other_trader(new_client: ClientFactory, sign_in: SignIn) -> httpx.AsyncClient:
    client = new_client()
    await sign_in(client, "DEMO02")
    return client
