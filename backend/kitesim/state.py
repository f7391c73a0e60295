"""Everything the simulator knows, kept in one object on ``app.state.sim``: one attribute per domain."""

from __future__ import annotations

import random
from dataclasses import dataclass

from kitesim.accounts import AccountBook, demo_accounts
from kitesim.book import OrderBook
from kitesim.clock import SimClock
from kitesim.config import KitesimSettings
from kitesim.instruments import InstrumentBook
from kitesim.market import Market
from kitesim.sessions import SessionBook


@dataclass(slots=True)
class SimState:
    settings: KitesimSettings
    clock: SimClock
    accounts: AccountBook
    sessions: SessionBook
    # Seeded so that a run's simulated market can be replayed; tokens use `secrets`, never this.
    rng: random.Random
    instruments: InstrumentBook
    market: Market
    orders: OrderBook

    @classmethod
    def from_settings(cls, settings: KitesimSettings) -> SimState:
        instruments = InstrumentBook(seed=settings.seed)
        market = Market(instruments, seed=settings.seed)
        return cls(
            settings=settings,
            clock=SimClock(start=settings.start_at, speed=settings.speed),
            accounts=demo_accounts(settings),
            sessions=SessionBook(request_token_ttl_s=settings.request_token_ttl_s),
            rng=random.Random(settings.seed),  # noqa: S311 -- reproducible simulation, not secrets
            instruments=instruments,
            market=market,
            orders=OrderBook(market),
        )
