"""Trading endpoints over a large PostgreSQL dataset: trade pages, P&L and daily stats per user, one sync
of 1,000 new fills, and the query plans behind them.

Seeds a throw-away database (``tradedesk_bench_<hex>``, dropped afterwards) with ``--users`` accounts of
``--trades`` closed round trips each, their fills and a few open lots, over the 365 IST days ending on
Monday 2026-11-30 (the app's and kitesim's clocks stand at 12:00 IST that day). The API runs in process as
the application role (row-level security on) with Redis sessions and kitesim in process; a sample of the
users signs in through kitesim and requests are timed in process through httpx.ASGITransport.

Run: .venv/bin/python bench/trading.py [--users 10000 --trades 100 --samples 300] [--json PATH]
Needs PostgreSQL (TEST_PG_ADMIN_DSN, superuser) and Redis (TEST_REDIS_URL), as the tests do."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from redis.asyncio import Redis
from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kitesim.app import create_app as create_kitesim  # noqa: E402
from kitesim.config import KitesimSettings  # noqa: E402
from kitesim.instruments import EQUITIES, make_option  # noqa: E402
from tests.api.conftest import Trader  # noqa: E402
from tests.conftest import (  # noqa: E402
    API_BASE,
    APP_ROLE,
    KITE_BASE,
    PG_ADMIN_DSN,
    REDIS_URL,
    SPA_ORIGIN,
    create_database_with_app_role,
    drop_database,
    kite_access_token,
    make_settings,
    migrate,
    register_broker_user,
    sign_in_through,
)
from tradedesk.kit.calendar import ist_day  # noqa: E402
from tradedesk.kit.clock import ManualClock  # noqa: E402
from tradedesk.main import create_app  # noqa: E402
from tradedesk.trading.service import encode_cursor  # noqa: E402

NOW = datetime(2026, 11, 30, 6, 30, tzinfo=UTC)  # 12:00 IST on a Monday
TODAY = ist_day(NOW)
WINDOW_DAYS = 365
OPEN_UTC = (3, 45)  # 09:15 IST
LAST_EXIT_MIN = 365  # 15:20 IST, minutes after the open
TODAY_LAST_EXIT_MIN = 160  # 11:55 IST: nothing recorded today may be later than NOW
RANGE_FROM = TODAY - timedelta(days=WINDOW_DAYS)
PAGE = 100
FLUSH_TRADES = 50_000

TRADE_COLUMNS = (
    "broker_id",
    "exchange",
    "tradingsymbol",
    "product",
    "direction",
    "status",
    "quantity",
    "entry_price",
    "entry_at",
    "entry_trade_id",
    "exit_price",
    "exit_at",
    "exit_trade_id",
    "realised_pnl",
    "exit_reason",
    "strategy",
    "day",
)
FILL_COLUMNS = (
    "broker_id",
    "trade_id",
    "order_id",
    "exchange",
    "tradingsymbol",
    "instrument_token",
    "product",
    "transaction_type",
    "quantity",
    "price",
    "filled_at",
    "day",
    "order_type",
    "tag",
    "synced_at",
)
STRATEGY_MIXES: tuple[tuple[str | None, ...], ...] = (
    (None,),
    (None,),
    (None, "orb_15m"),
    ("ema_cross", "vwap_revert", None),
    ("breakout", "orb_15m"),
)
SYNC_SYMBOLS = ("INFY", "SBIN", "ITC", "TATASTEEL", "WIPRO")
TARGET_PAGE_P99_MS = 10.0
TARGET_SUMMARY_P99_MS = 25.0
TARGET_SYNC_S = 1.0


# -- the dataset -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Profile:
    broker_id: str
    intraday: list[int]  # indexes into EQUITIES, traded MIS
    swing: list[int]  # traded CNC over several days
    held: list[int]  # CNC lots still open; never in `swing`, so no closed CNC trip follows an open lot
    option_share: float
    swing_share: float
    skill: float  # chance of a winning trade
    size: float  # rupees per trade
    strategies: tuple[str | None, ...]


@dataclass(slots=True)
class SeedStats:
    trades: int = 0
    open_trades: int = 0
    fills: int = 0
    wins: int = 0
    losses: int = 0
    generate_s: float = 0.0
    copy_s: float = 0.0


def price_walk(rng: random.Random, start: float, sigma: float, days: int) -> list[float]:
    levels = [start]
    for _ in range(days):
        levels.append(max(levels[-1] * (1 + rng.gauss(0.0, sigma)), 1.0))
    return levels


def tick(price: float) -> Decimal:
    """To the 0.05 tick, never below one tick."""
    return Decimal(max(1, round(price * 20)) * 5).scaleb(-2)


def session_open(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, *OPEN_UTC, tzinfo=UTC)


def weekdays_before(day: date, count: int) -> date:
    while count:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


class Seeder:
    """Deterministic (one seeded RNG, fixed loop order) users, round trips and fills, written day by day in
    the order daily syncs would have written them: each user's rows of a day together, days interleaved
    across users, so a user's rows lie scattered over the tables as they do after a year of use."""

    def __init__(self, *, users: int, trades_per_user: int, with_fills: bool, seed: int) -> None:
        self.rng = random.Random(seed)
        self.users = users
        self.trades_per_user = trades_per_user
        self.with_fills = with_fills
        self.first = TODAY - timedelta(days=WINDOW_DAYS - 1)
        self.base = self.first - timedelta(days=60)  # room for swing entries and open lots
        self.days = [
            self.first + timedelta(days=i)
            for i in range(WINDOW_DAYS)
            if (self.first + timedelta(days=i)).weekday() < 5
        ]
        span = (TODAY - self.base).days
        self.levels = [
            price_walk(self.rng, price, self.rng.uniform(0.009, 0.018), span) for _, _, _, price in EQUITIES
        ]
        self.nifty = price_walk(self.rng, 23_600.0, 0.009, span)
        self.options: dict[tuple[date, int, str], tuple[str, int]] = {}
        self.trade_seq = 100_000_000  # 9 digits: never one of kitesim's 8-digit trade ids
        self.order_seq = 500_000_000
        self.trade_rows: list[tuple[Any, ...]] = []
        self.fill_rows: list[tuple[Any, ...]] = []
        self.stats = SeedStats()
        self.profiles = [self._profile(u) for u in range(users)]

    @staticmethod
    def broker_id(user: int) -> str:
        return f"ZB{user:06d}"

    def _profile(self, user: int) -> Profile:
        rng = self.rng
        order = rng.sample(range(len(EQUITIES)), len(EQUITIES))
        return Profile(
            broker_id=self.broker_id(user),
            intraday=order[: rng.randint(3, 8)],
            swing=order[8 : 8 + rng.randint(1, 3)],
            held=order[11:15],
            option_share=rng.choice((0.0, 0.0, 0.1, 0.3, 0.6)),
            swing_share=rng.choice((0.0, 0.05, 0.1)),
            skill=min(0.7, max(0.3, rng.gauss(0.5, 0.07))),
            size=rng.choice((25_000.0, 50_000.0, 100_000.0, 200_000.0, 400_000.0)),
            strategies=rng.choice(STRATEGY_MIXES),
        )

    def plan(self) -> list[dict[int, list[int]]]:
        """Per trading day: user -> [round trips closed that day, lots opened that day and still open]."""
        rng = self.rng
        buckets: list[dict[int, list[int]]] = [{} for _ in self.days]
        n_days = len(self.days)
        recent = max(1, n_days - 40)
        for user in range(self.users):
            per_day = rng.choice((1, 1, 2, 2, 3, 4, 6))
            active = min(n_days, self.trades_per_user, max(1, round(self.trades_per_user / per_day)))
            counts = [1] * active
            for _ in range(self.trades_per_user - active):
                counts[rng.randrange(active)] += 1
            for day_index, count in zip(rng.sample(range(n_days), active), counts, strict=True):
                buckets[day_index].setdefault(user, [0, 0])[0] += count
            for _ in range(rng.randint(1, 3)):
                buckets[rng.randrange(recent, n_days)].setdefault(user, [0, 0])[1] += 1
        return buckets

    def rows(self) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        """Chunks of (trade rows, fill rows), in insertion order."""
        started = time.perf_counter()
        buckets = self.plan()
        for day, bucket in zip(self.days, buckets, strict=True):
            order = list(bucket)
            self.rng.shuffle(order)
            for user in order:
                closed, opened = bucket[user]
                self._user_day(self.profiles[user], day, closed, opened)
            if len(self.trade_rows) >= FLUSH_TRADES:
                self.stats.generate_s += time.perf_counter() - started
                yield self._take()
                started = time.perf_counter()
        self.stats.generate_s += time.perf_counter() - started
        if self.trade_rows:
            yield self._take()

    def _take(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        chunk = (self.trade_rows, self.fill_rows)
        self.trade_rows, self.fill_rows = [], []
        return chunk

    def _level(self, index: int, day: date) -> float:
        return self.levels[index][(day - self.base).days]

    def _option(self, day: date) -> tuple[str, int, float]:
        """A NIFTY weekly option near the money, its instrument token and a plausible premium."""
        rng = self.rng
        spot = self.nifty[(day - self.base).days]
        expiry = day + timedelta(days=(3 - day.weekday()) % 7)
        offset = rng.randint(-4, 4)
        strike = int(round(spot / 50) * 50 + offset * 50)
        kind = rng.choice(("CE", "PE"))
        key = (expiry, strike, kind)
        known = self.options.get(key)
        if known is None:
            instrument = make_option(expiry, strike, "CE" if kind == "CE" else "PE")
            known = self.options[key] = (instrument.tradingsymbol, instrument.instrument_token)
        dte = (expiry - day).days
        premium = spot * 0.006 * (0.4 + 0.6 * (dte + 1) / 7) * math.exp(-0.35 * abs(offset))
        return known[0], known[1], max(2.0, premium * rng.uniform(0.8, 1.2))

    def _ids(self, day: date) -> tuple[str, str]:
        self.trade_seq += 1
        self.order_seq += 1
        return str(self.trade_seq), f"{day:%y%m%d}{self.order_seq:09d}"

    def _fill(
        self,
        broker_id: str,
        exchange: str,
        symbol: str,
        token: int,
        product: str,
        side: str,
        quantity: int,
        price: Decimal,
        at: datetime,
        order_type: str,
        tag: str | None,
        synced_at: datetime,
    ) -> str:
        day = ist_day(at)
        trade_id, order_id = self._ids(day)
        if self.with_fills:
            self.fill_rows.append(
                (
                    broker_id,
                    trade_id,
                    order_id,
                    exchange,
                    symbol,
                    token,
                    product,
                    side,
                    quantity,
                    price,
                    at,
                    day,
                    order_type,
                    tag,
                    synced_at,
                )
            )
            self.stats.fills += 1
        return trade_id

    def _user_day(self, profile: Profile, day: date, closed: int, opened: int) -> None:
        rng = self.rng
        opening = session_open(day)
        last_min = TODAY_LAST_EXIT_MIN if day == TODAY else LAST_EXIT_MIN
        synced_at = opening + timedelta(minutes=last_min + 4)
        broker_id = profile.broker_id
        segment = last_min * 60 / max(closed, 1)
        for i in range(closed):
            entry_s = i * segment + rng.random() * segment * 0.4
            exit_s = entry_s + 30 + rng.random() * max(segment * 0.55 - 30, 1)
            strategy = rng.choice(profile.strategies)
            win = rng.random() < profile.skill
            squared_off = strategy is not None and i == closed - 1 and day != TODAY and rng.random() < 0.3
            if squared_off:
                exit_s = LAST_EXIT_MIN * 60 + rng.randint(0, 50)
            exit_at = opening + timedelta(seconds=round(exit_s))
            entry_at = opening + timedelta(seconds=round(entry_s))
            kind = rng.random()
            if kind < profile.option_share:
                exchange, product = "NFO", rng.choice(("MIS", "NRML"))
                symbol, token, premium = self._option(day)
                direction = "LONG" if rng.random() < 0.7 else "SHORT"
                quantity = 75 * rng.randint(1, max(1, min(20, int(profile.size / (premium * 75)))))
                entry = premium
                move = rng.uniform(0.05, 0.6) if win else -rng.uniform(0.05, 0.4)
            elif kind < profile.option_share + profile.swing_share:
                index = rng.choice(profile.swing)
                exchange, product, direction = "NSE", "CNC", "LONG"
                symbol, _, token_base, _ = EQUITIES[index]
                token = token_base * 256 + 1
                entry_day = weekdays_before(day, rng.randint(1, 15))
                entry_at = session_open(entry_day) + timedelta(seconds=rng.randint(0, LAST_EXIT_MIN * 60))
                entry = self._level(index, entry_day) * (1 + rng.gauss(0.0, 0.004))
                quantity = max(1, int(profile.size * rng.uniform(0.5, 1.5) / entry))
                move = rng.uniform(0.01, 0.08) if win else -rng.uniform(0.01, 0.05)
            else:
                index = rng.choice(profile.intraday)
                exchange, product = "NSE", "MIS"
                symbol, _, token_base, _ = EQUITIES[index]
                token = token_base * 256 + 1
                direction = "LONG" if rng.random() < 0.6 else "SHORT"
                entry = self._level(index, day) * (1 + rng.gauss(0.0, 0.004))
                quantity = max(1, int(profile.size * rng.uniform(0.5, 1.5) / entry))
                move = rng.uniform(0.002, 0.02) if win else -rng.uniform(0.001, 0.012)
            entry_price = tick(entry)
            exit_price = tick(entry * (1 + move) if direction == "LONG" else entry * (1 - move))
            sign = 1 if direction == "LONG" else -1
            pnl = (exit_price - entry_price) * quantity * sign
            if squared_off:
                reason, exit_type, exit_tag = "square_off", "MARKET", f"{strategy}:sqoff"
            elif strategy is not None:
                reason = "target" if win else "stop_loss"
                exit_type = "LIMIT" if win else "SL-M"
                exit_tag = f"{strategy}:{'target' if win else 'sl'}"
            elif not win and rng.random() < 0.4:
                reason, exit_type, exit_tag = "stop_loss", "SL-M", None
            else:
                reason, exit_type, exit_tag = "manual", rng.choice(("MARKET", "LIMIT")), None
            entry_side, exit_side = ("BUY", "SELL") if direction == "LONG" else ("SELL", "BUY")
            entry_type = "MARKET" if strategy else rng.choice(("MARKET", "LIMIT"))
            entry_tag = f"{strategy}:entry" if strategy else None
            entry_id = self._fill(
                broker_id,
                exchange,
                symbol,
                token,
                product,
                entry_side,
                quantity,
                entry_price,
                entry_at,
                entry_type,
                entry_tag,
                synced_at
                if ist_day(entry_at) == day
                else session_open(ist_day(entry_at)) + timedelta(hours=7),
            )
            exit_id = self._fill(
                broker_id,
                exchange,
                symbol,
                token,
                product,
                exit_side,
                quantity,
                exit_price,
                exit_at,
                exit_type,
                exit_tag,
                synced_at,
            )
            self.trade_rows.append(
                (
                    broker_id,
                    exchange,
                    symbol,
                    product,
                    direction,
                    "closed",
                    quantity,
                    entry_price,
                    entry_at,
                    entry_id,
                    exit_price,
                    exit_at,
                    exit_id,
                    pnl,
                    reason,
                    strategy,
                    day,
                )
            )
            self.stats.trades += 1
            if pnl > 0:
                self.stats.wins += 1
            elif pnl < 0:
                self.stats.losses += 1
        for _ in range(opened):
            index = rng.choice(profile.held)
            symbol, _, token_base, _ = EQUITIES[index]
            entry_at = opening + timedelta(seconds=rng.randint(0, last_min * 60))
            entry_price = tick(self._level(index, day) * (1 + rng.gauss(0.0, 0.004)))
            quantity = max(1, int(profile.size * rng.uniform(0.5, 1.5) / float(entry_price)))
            entry_id = self._fill(
                broker_id,
                "NSE",
                symbol,
                token_base * 256 + 1,
                "CNC",
                "BUY",
                quantity,
                entry_price,
                entry_at,
                "LIMIT",
                None,
                synced_at,
            )
            self.trade_rows.append(
                (
                    broker_id,
                    "NSE",
                    symbol,
                    "CNC",
                    "LONG",
                    "open",
                    quantity,
                    entry_price,
                    entry_at,
                    entry_id,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    day,
                )
            )
            self.stats.open_trades += 1


# -- database ----------------------------------------------------------------------------------------------


def dsn(database: str, *, user: str = "postgres", driver: str = "postgresql") -> str:
    host = urlsplit(PG_ADMIN_DSN).netloc.rpartition("@")[2]
    return f"{driver}://{user}@{host}/{database}"


def create_database(name: str) -> None:
    create_database_with_app_role(name)
    migrate(dsn(name, driver="postgresql+asyncpg"), app_role=APP_ROLE)


@dataclass(slots=True)
class Dataset:
    users: int
    trades_per_user: int
    trades_rows: int
    open_rows: int
    fills_rows: int
    fills_seeded: bool
    wins: int
    losses: int
    generate_s: float
    copy_s: float
    vacuum_analyze_s: float
    seed_s: float
    trades_size_mb: float
    fills_size_mb: float


async def seed(database: str, seeder: Seeder) -> Dataset:
    """COPY as the owner (a superuser: row-level security does not apply), then VACUUM (ANALYZE) so the
    statistics and the visibility map are those of a table autovacuum has caught up with."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn(database))
    try:
        await conn.execute("SET synchronous_commit = off")
        for trades, fills in seeder.rows():
            copy_started = time.perf_counter()
            if fills:
                await conn.copy_records_to_table("fills", records=fills, columns=FILL_COLUMNS)
            await conn.copy_records_to_table("trades", records=trades, columns=TRADE_COLUMNS)
            seeder.stats.copy_s += time.perf_counter() - copy_started
            done = seeder.stats.trades + seeder.stats.open_trades
            print(f"  … {done:>9,} trades, {seeder.stats.fills:>9,} fills", end="\r", flush=True)
        print()
        vacuum_started = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) trades")
        await conn.execute("VACUUM (ANALYZE) fills")
        vacuum_s = time.perf_counter() - vacuum_started
        sizes = await conn.fetchrow(
            "select pg_total_relation_size('trades') as trades, pg_total_relation_size('fills') as fills"
        )
        assert sizes is not None
    finally:
        await conn.close()
    stats = seeder.stats
    return Dataset(
        users=seeder.users,
        trades_per_user=seeder.trades_per_user,
        trades_rows=stats.trades + stats.open_trades,
        open_rows=stats.open_trades,
        fills_rows=stats.fills,
        fills_seeded=seeder.with_fills,
        wins=stats.wins,
        losses=stats.losses,
        generate_s=round(stats.generate_s, 1),
        copy_s=round(stats.copy_s, 1),
        vacuum_analyze_s=round(vacuum_s, 1),
        seed_s=round(time.perf_counter() - started, 1),
        trades_size_mb=round(sizes["trades"] / 2**20, 1),
        fills_size_mb=round(sizes["fills"] / 2**20, 1),
    )


# -- the API and its users -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Browser:
    user_id: str
    client: httpx.AsyncClient
    deep_cursor: str
    deep_rows: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    target_p99_ms: float

    def url(self, browser: Browser) -> str:
        days = f"from={RANGE_FROM.isoformat()}&to={TODAY.isoformat()}"
        return {
            "trades_first_page": f"/api/trades?limit={PAGE}",
            "trades_deep_page": f"/api/trades?limit={PAGE}&cursor={browser.deep_cursor}",
            "pnl_summary": "/api/pnl/summary",
            "pnl_cumulative": f"/api/pnl/cumulative?{days}",
            "stats_daily": f"/api/stats/daily?{days}",
        }[self.name]


ENDPOINTS = (
    Endpoint("trades_first_page", TARGET_PAGE_P99_MS),
    Endpoint("trades_deep_page", TARGET_PAGE_P99_MS),
    Endpoint("pnl_summary", TARGET_SUMMARY_P99_MS),
    Endpoint("pnl_cumulative", TARGET_SUMMARY_P99_MS),
    Endpoint("stats_daily", TARGET_SUMMARY_P99_MS),
)


def browser_client(api: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api, client=("203.0.113.7", 5555)),
        base_url=API_BASE,
        headers={"Origin": SPA_ORIGIN, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
    )


async def register(kite: httpx.AsyncClient, user_id: str) -> None:
    assert await register_broker_user(kite, user_id, f"Bench Trader {user_id[-4:]}") == 201


async def sign_in(api: Any, kite: httpx.AsyncClient, user_id: str) -> httpx.AsyncClient:
    client = browser_client(api)
    await sign_in_through(client, kite, user_id)
    return client


async def deep_cursors(database: str, user_ids: list[str]) -> dict[str, tuple[str, int]]:
    """Per user: a cursor just above the user's PAGE oldest rows (the page it opens holds those)."""
    conn = await asyncpg.connect(dsn(database))
    try:
        found: dict[str, tuple[str, int]] = {}
        for user_id in user_ids:
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "select id from trades where broker_id = $1 order by id limit $2", user_id, PAGE + 1
                )
            ]
            before = ids[PAGE] if len(ids) > PAGE else ids[-1] + 1
            found[user_id] = (encode_cursor(before), min(len(ids), PAGE))
        return found
    finally:
        await conn.close()


# -- latency -------------------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


async def timed_get(browser: Browser, url: str) -> float:
    started = time.perf_counter()
    response = await browser.client.get(url)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (
        f"GET {url} as {browser.user_id}: {response.status_code} {response.text}"
    )
    return elapsed


async def get_json(browser: Browser, url: str) -> Any:
    response = await browser.client.get(url)
    assert response.status_code == 200, (
        f"GET {url} as {browser.user_id}: {response.status_code} {response.text}"
    )
    return response.json()


async def measure(
    endpoint: Endpoint, browsers: list[Browser], *, samples: int, rng: random.Random
) -> dict[str, Any]:
    for browser in browsers:  # warm-up: every user's pages and every pooled statement once
        await timed_get(browser, endpoint.url(browser))
    timings = []
    for _ in range(samples):
        browser = rng.choice(browsers)
        timings.append(await timed_get(browser, endpoint.url(browser)) * 1000)
    p99 = percentile(timings, 99)
    return {
        "samples": samples,
        "p50_ms": round(percentile(timings, 50), 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(max(timings), 2),
        "target_p99_ms": endpoint.target_p99_ms,
        "ok": p99 <= endpoint.target_p99_ms,
    }


# -- query plans ---------------------------------------------------------------------------------------------

TOUCHES_TRADING = re.compile(r"\b(trades|fills)\b", re.IGNORECASE)


@dataclass(slots=True)
class Captured:
    request: str
    broker_id: str
    statement: str
    parameters: tuple[Any, ...]


@dataclass(slots=True)
class Capture:
    """Statements on trades or fills the app's engine sends while attached, with their parameters."""

    engine: Any
    request: str = ""
    broker_id: str = ""
    statements: list[Captured] = field(default_factory=list)

    def __enter__(self) -> Capture:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if not TOUCHES_TRADING.search(statement) or "pg_advisory" in statement:
            return
        params = parameters[0] if executemany and parameters else parameters
        self.statements.append(Captured(self.request, self.broker_id, statement, tuple(params or ())))


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def abridged(statement: str) -> str:
    text = " ".join(statement.split())
    text = re.sub(r"^SELECT .+? FROM", "SELECT … FROM", text)
    text = re.sub(r"\(\$\d+(?:::\w+)?(?:, \$\d+(?:::\w+)?){8,}\)", "($…)", text)
    text = re.sub(r"(VALUES \([^)]*\))(?:, \([^)]*\))+", r"\1, …", text)
    return text if len(text) <= 230 else text[:229] + "…"


def plan_summary(raw: str, broker_id: str | None = None) -> dict[str, Any]:
    """Scans, indexes and sequential scans on trades/fills of one EXPLAIN (FORMAT JSON) answer."""
    top = json.loads(raw)[0]
    plan = top["Plan"]
    nodes = list(plan_nodes(plan))
    scans = [
        " ".join(
            part
            for part in (
                n["Node Type"],
                "Backward" if n.get("Scan Direction") == "Backward" else "",
                f"using {n['Index Name']}" if "Index Name" in n else "",
                f"on {n['Relation Name']}" if "Relation Name" in n else "",
            )
            if part
        )
        for n in nodes
        if "Scan" in n["Node Type"] and ("Relation Name" in n or "Index Name" in n)
    ]
    summary: dict[str, Any] = {
        "seq_scans": sorted(
            {
                n["Relation Name"]
                for n in nodes
                if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in ("trades", "fills")
            }
        ),
        "indexes": sorted({n["Index Name"] for n in nodes if "Index Name" in n}),
        "scans": scans,
        "conflict_arbiters": sorted({i for n in nodes for i in n.get("Conflict Arbiter Indexes", [])}),
        "estimated_cost": plan.get("Total Cost"),
    }
    if broker_id is not None:
        # Every statement filters on the broker: a custom plan shows its value, a generic one a parameter.
        summary["generic"] = broker_id not in json.dumps(plan)
    if "Execution Time" in top:
        summary["execution_ms"] = round(top["Execution Time"], 3)
    return summary


def sql_literal(value: Any) -> str:
    """An untyped literal: the prepared statement's parameter types read it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + str(value).replace("'", "''") + "'"


async def explain(database: str, captured: list[Captured]) -> list[dict[str, Any]]:
    """Per distinct statement, as the app role with the request's broker bound (as the app binds it):

    - ``bound``: EXPLAIN with the captured parameter values, planned for those values;
    - ``pooled``: the plan a pooled connection's prepared statement settles on after five executions
      (PostgreSQL then keeps a generic plan when it does not look dearer than the custom ones). Not for
      INSERTs, whose plans have no scan to choose.

    SELECTs are explained with ANALYZE (they only read); everything runs in a transaction rolled back."""
    conn = await asyncpg.connect(dsn(database, user=APP_ROLE))
    results: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    try:
        for number, item in enumerate(captured):
            if (item.request, item.statement) in seen:
                continue
            seen.add((item.request, item.statement))
            row: dict[str, Any] = {"request": item.request, "statement": abridged(item.statement)}
            results.append(row)
            verb = item.statement.lstrip().split(None, 1)[0].upper()
            options = "ANALYZE, BUFFERS, FORMAT JSON" if verb == "SELECT" else "FORMAT JSON"
            name = f"bench_plan_{number}"
            prepared = False
            transaction = conn.transaction()
            await transaction.start()
            try:
                await conn.execute("select set_config('app.broker_id', $1, true)", item.broker_id)
                row["bound"] = plan_summary(
                    await conn.fetchval(f"EXPLAIN ({options}) {item.statement}", *item.parameters)
                )
                if verb != "INSERT":
                    await conn.execute(f"PREPARE {name} AS {item.statement}")
                    prepared = True
                    args = ", ".join(sql_literal(v) for v in item.parameters)
                    for _ in range(5):
                        await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({args})")
                    row["pooled"] = plan_summary(
                        await conn.fetchval(f"EXPLAIN ({options}) EXECUTE {name}({args})"), item.broker_id
                    )
            except asyncpg.PostgresError as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                await transaction.rollback()
                if prepared:  # prepared statements outlive the transaction
                    await conn.execute(f"DEALLOCATE {name}")
            plans = [row[kind] for kind in ("bound", "pooled") if kind in row]
            row["explained"] = bool(plans)
            row["ok"] = all(not plan["seq_scans"] for plan in plans)
    finally:
        await conn.close()
    return results


# -- the run -------------------------------------------------------------------------------------------------


async def expected_all_time(database: str, user_id: str) -> Decimal:
    conn = await asyncpg.connect(dsn(database))
    try:
        total = await conn.fetchval(
            "select coalesce(sum(realised_pnl), 0) from trades where broker_id = $1 and status = 'closed'",
            user_id,
        )
        return Decimal(total)
    finally:
        await conn.close()


async def place_round_trips(trader: Trader, sim_clock: Any, count: int, *, gap_s: float) -> None:
    """Round trips over several symbols, longs and shorts, the broker's clock moving between orders."""
    for i in range(count):
        symbol = SYNC_SYMBOLS[i % len(SYNC_SYMBOLS)]
        quantity = 1 + i % 7
        first, second = ("SELL", "BUY") if i % 3 == 0 else ("BUY", "SELL")
        await trader.order(symbol, first, quantity)
        sim_clock.advance(gap_s)
        await trader.order(symbol, second, quantity)
        sim_clock.advance(gap_s)


async def clean_redis(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def run(args: argparse.Namespace, database: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn(database))
    try:
        server_version = str(await conn.fetchval("show server_version"))
    finally:
        await conn.close()

    print(f"seeding {args.users:,} users x {args.trades} round trips into {database} …")
    seeder = Seeder(
        users=args.users, trades_per_user=args.trades, with_fills=not args.no_fills, seed=args.seed
    )
    dataset = await seed(database, seeder)
    print(
        f"seeded {dataset.trades_rows:,} trades ({dataset.open_rows:,} open), "
        f"{dataset.fills_rows:,} fills in {dataset.seed_s:.1f} s "
        f"(generate {dataset.generate_s:.1f} s, COPY {dataset.copy_s:.1f} s, "
        f"VACUUM ANALYZE {dataset.vacuum_analyze_s:.1f} s)"
    )
    rng = random.Random(args.seed + 1)
    user_ids = [Seeder.broker_id(u) for u in rng.sample(range(args.users), min(args.signed_in, args.users))]
    del seeder
    cursors = await deep_cursors(database, user_ids)

    prefix = f"tdbench:{uuid.uuid4().hex[:12]}:"
    clock = ManualClock(NOW)
    kitesim = create_kitesim(
        KitesimSettings(_env_file=None, redirect_url=f"{API_BASE}/api/auth/callback", start_at=NOW)
    )
    # Every sampled user signs in from this one address: lift the per-address sign-in limit.
    settings = make_settings(
        dsn(database, user=APP_ROLE, driver="postgresql+asyncpg"),
        redis_prefix=prefix,
        signin_rate_limit=100_000,
    )
    app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))
    kite = httpx.AsyncClient(transport=httpx.ASGITransport(app=kitesim), base_url=KITE_BASE)
    browsers: list[Browser] = []
    try:
        async with app.router.lifespan_context(app):
            started = time.perf_counter()
            for user_id in user_ids:
                await register(kite, user_id)
                browsers.append(Browser(user_id, await sign_in(app, kite, user_id), *cursors[user_id]))
            print(f"signed in {len(browsers)} users in {time.perf_counter() - started:.1f} s")

            probe = browsers[0]
            totals = await get_json(probe, "/api/pnl/summary")
            expected = await expected_all_time(database, probe.user_id)
            assert Decimal(str(totals["all_time"])) == expected, (totals, expected)
            deep = await get_json(probe, ENDPOINTS[1].url(probe))
            assert len(deep["items"]) == probe.deep_rows, (len(deep["items"]), probe.deep_rows)

            latency: dict[str, dict[str, Any]] = {}
            for endpoint in ENDPOINTS:
                latency[endpoint.name] = await measure(endpoint, browsers, samples=args.samples, rng=rng)
                row = latency[endpoint.name]
                print(f"  {endpoint.name:<18} p50 {row['p50_ms']:>7.2f} ms  p99 {row['p99_ms']:>7.2f} ms")

            engine = app.state.td.engine.sync_engine
            with Capture(engine, broker_id=probe.user_id) as reads:
                for endpoint in ENDPOINTS:
                    reads.request = endpoint.name
                    await timed_get(probe, endpoint.url(probe))

            trader = Trader(probe.user_id, probe.client, kite, await kite_access_token(kite, probe.user_id))
            started = time.perf_counter()
            await place_round_trips(trader, kitesim.state.sim.clock, args.sync_fills // 2, gap_s=6)
            orders_s = time.perf_counter() - started
            broker_fills = len(await trader.broker_fills())
            assert broker_fills == args.sync_fills // 2 * 2, f"kitesim filled {broker_fills} orders"
            with Capture(engine, request="sync", broker_id=probe.user_id) as writes:
                started = time.perf_counter()
                response = await probe.client.post("/api/sync", json={})
                sync_s = time.perf_counter() - started
            assert response.status_code == 200, response.text
            result = response.json()
            assert result["fills_new"] == broker_fills, result
            print(f"  sync of {broker_fills} fills: {sync_s:.3f} s ({orders_s:.1f} s to place the orders)")
    finally:
        for browser in browsers:
            await browser.client.aclose()
        await kite.aclose()
        await clean_redis(prefix)

    plans = await explain(database, reads.statements + writes.statements)
    sync_ok = sync_s <= TARGET_SYNC_S
    plans_ok = all(p["ok"] for p in plans)
    return {
        "machine": {
            "cores": os.cpu_count(),
            "platform": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(),
            "postgresql": server_version,
        },
        "dataset": {**asdict(dataset), "today": TODAY.isoformat(), "signed_in_users": len(browsers)},
        "latency": latency,
        "sync": {
            "fills_new": result["fills_new"],
            "trades_closed": result["trades_closed"],
            "seconds": round(sync_s, 3),
            "target_s": TARGET_SYNC_S,
            "ok": sync_ok,
        },
        "plans": plans,
        "targets_met": sync_ok and plans_ok and all(row["ok"] for row in latency.values()),
    }


def report(summary: dict[str, Any]) -> None:
    print()
    print(f"{'request':<20} {'samples':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'target p99':>11}  ok")
    for name, row in summary["latency"].items():
        print(
            f"{name:<20} {row['samples']:>7} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
            f" {row['max_ms']:>8.2f} {'≤ ' + format(row['target_p99_ms'], 'g') + ' ms':>11}"
            f"  {'yes' if row['ok'] else 'NO'}"
        )
    sync = summary["sync"]
    print(
        f"{'sync':<20} {sync['fills_new']:>7} fills in {sync['seconds']:.3f} s "
        f"(target ≤ {sync['target_s']:g} s)  {'yes' if sync['ok'] else 'NO'}"
    )
    print()
    print("query plans (EXPLAIN as the app role, tenant bound; bound = for the captured values,")
    print("pooled = what a pooled prepared statement runs after five executions):")
    for plan in summary["plans"]:
        flag = "ok" if plan["ok"] else "SEQ SCAN"
        print(f"  [{plan['request']}] {flag}: {plan['statement']}")
        if "error" in plan:
            print(f"      not explained: {plan['error']}")
        for kind in ("bound", "pooled"):
            if kind not in plan:
                continue
            found = plan[kind]
            used = found["scans"] + [f"{i} (conflict arbiter)" for i in found["conflict_arbiters"]]
            timing = f", {found['execution_ms']:.3f} ms" if "execution_ms" in found else ""
            generic = {True: "generic", False: "custom"}.get(found.get("generic"), "")
            print(f"      {kind:<6} {generic:<7} {'; '.join(used) or 'no scan'}{timing}")
    print()
    print(json.dumps(summary, indent=2, default=str))
    print(f"\ntargets met: {'yes' if summary['targets_met'] else 'NO'}; total {summary['total_s']:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--trades", type=int, default=100, help="closed round trips per user")
    parser.add_argument("--samples", type=int, default=300, help="timed requests per endpoint")
    parser.add_argument("--signed-in", type=int, default=50, help="users signed in for the timed requests")
    parser.add_argument("--sync-fills", type=int, default=1_000, help="new fills for the timed sync")
    parser.add_argument("--no-fills", action="store_true", help="seed trades only, without their fills")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()

    def stop(signum: int, _: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    database = f"tradedesk_bench_{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    try:
        create_database(database)
        summary = asyncio.run(run(args, database))
    finally:
        drop_database(database)
    summary["total_s"] = round(time.perf_counter() - started, 1)
    report(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
