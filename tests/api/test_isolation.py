"""No response ever carries another user's rows, and PostgreSQL's row-level security is the second wall."""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.api.conftest import MakeTrader, Trader
from tests.conftest import APP_ROLE, as_app_role, register_broker_user
from tradedesk.kit.repository import bind_tenant, tenant_session
from tradedesk.models import TENANT_TABLES


async def add_broker_user(kite_client: httpx.AsyncClient, rng: random.Random) -> str:
    user_id = "".join(rng.choices(string.ascii_uppercase, k=2)) + "".join(rng.choices(string.digits, k=4))
    await register_broker_user(kite_client, user_id, f"Trader {user_id}")
    return user_id


async def random_day(trader: Trader, rng: random.Random, move: Callable[[float], None]) -> int:
    """Random round trips and leftovers; returns how many executions were placed."""
    placed = 0
    for _ in range(rng.randint(1, 4)):
        symbol = rng.choice(["INFY", "TCS", "SBIN", "HDFCBANK"])
        quantity = rng.randint(1, 9)
        await trader.order(symbol, "BUY", quantity)
        # Short holds: six traders' days together stay inside one session (09:30 to before 13:00 IST).
        move(rng.randint(1, 8) * 60)
        await trader.order(symbol, "SELL", rng.randint(1, quantity))
        placed += 2
    return placed


async def test_many_users_never_see_each_others_rows(
    make_trader: MakeTrader, kite_client: httpx.AsyncClient, move_clocks: Callable[[float], None]
) -> None:
    rng = random.Random(2026)
    traders = [await make_trader(await add_broker_user(kite_client, rng)) for _ in range(6)]
    placed: dict[str, int] = {}
    for trader in traders:
        placed[trader.user_id] = await random_day(trader, rng, move_clocks)
        assert (await trader.sync())["fills_new"] == placed[trader.user_id]

    owners: dict[int, str] = {}
    for trader in traders:
        trips = await trader.trades()
        assert trips, trader.user_id
        for trip in trips:
            assert owners.setdefault(int(trip["id"]), trader.user_id) == trader.user_id  # type: ignore[call-overload]
        # Everything this user sees adds up to their own executions: bought units are all accounted for.
        own_fills = await trader.broker_fills()
        bought = sum(int(f["quantity"]) for f in own_fills if f["transaction_type"] == "BUY")  # type: ignore[call-overload]
        assert sum(int(t["quantity"]) for t in trips) == bought  # type: ignore[call-overload]
        csv_text = (await trader.api.get("/api/trades.csv")).text
        assert csv_text.count("\n") == len(trips) + 1

    # Another user's cursor or symbol reveals nothing of theirs.
    a, b = traders[0], traders[1]
    b_ids = {i for i, owner in owners.items() if owner == b.user_id}
    forged_cursor = base64.urlsafe_b64encode(f'{{"before": {max(b_ids) + 1}}}'.encode()).decode()
    page = (await a.api.get("/api/trades", params={"cursor": forged_cursor})).json()
    assert not {t["id"] for t in page["items"]} & b_ids


class TestRowLevelSecurity:
    async def test_the_app_role_cannot_bypass_it(self, clean_database: str) -> None:
        engine = create_async_engine(as_app_role(clean_database))
        async with engine.connect() as conn:
            role = (
                await conn.execute(
                    text("select rolname, rolsuper, rolbypassrls from pg_roles where rolname = current_user")
                )
            ).one()
            assert role == (APP_ROLE, False, False)
            owned = await conn.scalar(
                text(
                    "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner where r.rolname = current_user"
                )
            )
            assert owned == 0
            flags = (
                await conn.execute(
                    text(
                        "select relname, relrowsecurity, relforcerowsecurity from pg_class where relname = any(:t)"
                    ),
                    {"t": list(TENANT_TABLES)},
                )
            ).all()
            assert sorted(flags) == sorted((t, True, True) for t in TENANT_TABLES)
        await engine.dispose()

    @pytest.mark.parametrize("store_backend", ["redis"], indirect=True)
    async def test_an_unscoped_query_inside_a_request_returns_nothing_foreign(
        self, make_trader: MakeTrader, move_clocks: Callable[[float], None], api: object
    ) -> None:
        alice, bob = await make_trader("DEMO01"), await make_trader("DEMO02")
        for trader in (alice, bob):
            await trader.order("INFY", "BUY", 2)
            move_clocks(60)
            await trader.order("INFY", "SELL", 2)
            await trader.sync()
        sessionmaker = api.state.td.sessionmaker  # type: ignore[attr-defined]
        async with sessionmaker() as db:
            await bind_tenant(db, "DEMO01")
            # A query that forgot its WHERE clause, as a buggy repository might write it.
            owners = set(
                (
                    await db.execute(text("select broker_id from trades union select broker_id from fills"))
                ).scalars()
            )
            assert owners == {"DEMO01"}
            accounts = set((await db.execute(text("select broker_id from accounts"))).scalars())
            assert accounts == {"DEMO01"}
        async with sessionmaker() as db:
            # No tenant bound: nothing at all.
            assert (await db.execute(text("select count(*) from trades"))).scalar() == 0

    @pytest.mark.parametrize("store_backend", ["redis"], indirect=True)
    async def test_writing_another_brokers_row_is_refused(self, api: object) -> None:
        sessionmaker = api.state.td.sessionmaker  # type: ignore[attr-defined]
        async with sessionmaker() as db:
            await bind_tenant(db, "DEMO01")
            with pytest.raises(DBAPIError, match="row-level security"):
                await db.execute(
                    text(
                        "insert into risk_settings (broker_id, daily_loss_limit, updated_at) values ('DEMO02', 1, now())"
                    )
                )

    @pytest.mark.parametrize("store_backend", ["redis"], indirect=True)
    async def test_tenant_session_binds_commits_and_rolls_back(self, api: object) -> None:
        sessionmaker = api.state.td.sessionmaker  # type: ignore[attr-defined]
        insert = text(
            "insert into risk_settings (broker_id, daily_loss_limit, updated_at) values (:b, :limit, now())"
        )
        async with tenant_session(sessionmaker, "DEMO01") as db:
            await db.execute(insert, {"b": "DEMO01", "limit": 100})
        with pytest.raises(RuntimeError, match="boom"):
            async with tenant_session(sessionmaker, "DEMO02") as db:
                await db.execute(insert, {"b": "DEMO02", "limit": 200})
                raise RuntimeError("boom")
        with pytest.raises(DBAPIError, match="row-level security"):
            async with tenant_session(sessionmaker, "DEMO02") as db:
                await db.execute(insert, {"b": "DEMO01", "limit": 300})
        for broker_id, expected in (("DEMO01", [100]), ("DEMO02", [])):
            async with tenant_session(sessionmaker, broker_id) as db:
                limits = (await db.execute(text("select daily_loss_limit from risk_settings"))).scalars()
                assert [int(limit) for limit in limits] == expected
