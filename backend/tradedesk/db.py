"""The database engine, and ``get_db_session``: the only place that commits or rolls back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tradedesk.errors import is_database_outage


def create_engine(
    database_url: str, *, pre_ping: bool = True, pool_size: int = 10, statement_cache: bool = True
) -> AsyncEngine:
    """``pre_ping``: test each pooled connection before use (one round trip more per transaction). An agent
    worker turns it off: a connection that died with the server fails one tick, which the next one
    retries, and every order pays the round trip otherwise. ``pool_size`` connections stay open; as many
    again may open for a burst (and close after it, which costs a connect each time). ``statement_cache``
    off: behind a transaction-pooling proxy (pgbouncer ``pool_mode = transaction``) consecutive transactions
    of one connection reach different server connections, so no prepared statement may outlive its
    transaction: none is cached, and each gets a unique name."""
    # Statement parameters are user input and credentials: never part of an error message or a log line.
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, hide_parameters=True, connect_args={"timeout": 15})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    engine = create_async_engine(
        database_url,
        hide_parameters=True,
        pool_pre_ping=pre_ping,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"timeout": 3, **({} if statement_cache else _NO_STATEMENT_CACHE)},
    )

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        # asyncpg lets a refused, reset or timed-out connection attempt escape as a bare OSError, which
        # SQLAlchemy passes through untouched; name it the way every other outage is named.
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:
            raise OperationalError(None, None, exc, connection_invalidated=True) from exc

    return engine


_NO_STATEMENT_CACHE: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__td_{uuid.uuid4().hex}__",
}


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


_AFTER_COMMIT = "tradedesk.after_commit"


def after_commit(db: AsyncSession, action: Callable[[], Awaitable[object]]) -> None:
    """Run ``action`` once this request's transaction has committed (never if it rolls back).

    Session-store writes go here: the database change lands first, and with SQLite (one writer) a
    second connection never waits on the request's own open write transaction."""
    db.info.setdefault(_AFTER_COMMIT, []).append(action)


async def _rollback(session: AsyncSession) -> None:
    """Roll back after a failure; when the connection is already gone there is nothing to roll back, and
    the error that ended the request is the one to report."""
    try:
        await session.rollback()
    except Exception as exc:
        if not is_database_outage(exc):
            raise


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Database errors leave as they are: the error handlers answer an outage with 503 and anything else
    with 500."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.td.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except Exception:
            await _rollback(session)
            raise
        else:
            try:
                await session.commit()
            except Exception:
                await _rollback(session)
                raise
            for action in session.info.pop(_AFTER_COMMIT, []):
                await action()


# scope="function": the commit happens before the response leaves, so a failed commit is a 503, not a lie.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
