"""PostgreSQL behind a transaction-pooling proxy: pgbouncer (Debian's package) in ``pool_mode =
transaction`` with two server connections for every client, and the API with its statement cache off.
Consecutive transactions of one client connection land on different server connections, so anything that
outlived its transaction would show: tenant binding (``set_config(..., true)``) must not, and two traders
working at once must each see only their own data."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.api.conftest import MakeTrader, round_trips
from tests.conftest import APP_ROLE, make_settings
from tests.procs import free_port, wait_for_port
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture(params=["redis"])
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pgbouncer(clean_database: str) -> Iterator[str]:
    """A pgbouncer in transaction mode in front of this test's database; yields the app role's URL."""
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed: `make test` installs Debian's package")
    database = urlsplit(clean_database).path.lstrip("/")
    port = free_port()
    # Readable by the user pgbouncer runs as (pytest's own temporary folders are private to root).
    folder = Path(tempfile.mkdtemp(prefix="td-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{APP_ROLE}" ""\n"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{database} = host=127.0.0.1 port=5432 dbname={database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 200\n"
    )
    for path in folder.iterdir():
        path.chmod(0o644)
    # pgbouncer will not run as root; the PostgreSQL package's own user is there to run it as.
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0":
        command[1:1] = ["-u", "postgres"]
    log_path = folder / "pgbouncer.log"
    with log_path.open("wb") as log:  # opened here: whichever user pgbouncer becomes can write to it
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, what="pgbouncer")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {log_path.read_text()}") from exc
    try:
        yield f"postgresql+asyncpg://{APP_ROLE}@127.0.0.1:{port}/{database}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def api(  # type: ignore[override]
    pgbouncer: str, redis_prefix: str, clock: ManualClock, kitesim: object
) -> AsyncIterator[object]:
    settings = make_settings(pgbouncer, redis_prefix=redis_prefix, database_statement_cache=False)
    app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        yield app


async def test_tenant_binding_is_transaction_local_through_the_pooler(pgbouncer: str) -> None:
    dsn = pgbouncer.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        for _ in range(20):
            async with conn.transaction():
                await conn.execute("select set_config('app.broker_id', 'AB1234', true)")
                assert await conn.fetchval("select current_setting('app.broker_id', true)") == "AB1234"
            # The next transaction may run on another server connection, or the same one: either way the
            # binding ended with its transaction.
            assert await conn.fetchval("select coalesce(current_setting('app.broker_id', true), '')") == ""
    finally:
        await conn.close()


async def test_traders_at_once_see_only_their_own_data(
    make_trader: MakeTrader, move_clocks: Callable[[float], None]
) -> None:
    alice, bob = await make_trader("DEMO01"), await make_trader("DEMO03")
    await round_trips(alice, move_clocks, 3, symbol="INFY")
    await round_trips(bob, move_clocks, 2, symbol="TCS")
    await asyncio.gather(alice.sync(), bob.sync())

    async def reads(trader: object, symbol: str, count: int) -> None:
        for _ in range(15):
            trades = await trader.trades()  # type: ignore[attr-defined]
            assert {t["tradingsymbol"] for t in trades} == {symbol}
            assert len(trades) == count
            summary = (await trader.api.get("/api/trades/summary")).json()  # type: ignore[attr-defined]
            assert summary["count"] == count

    # Interleaved on a pool of two server connections: every transaction of one trader runs on a
    # connection the other's transactions used just before.
    await asyncio.gather(reads(alice, "INFY", 3), reads(bob, "TCS", 2), reads(alice, "INFY", 3))
