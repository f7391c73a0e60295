"""The database engine, and ``get_db_session``: the only place that commits or rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tradedesk.errors import ServiceUnavailable


def create_engine(database_url: str) -> AsyncEngine:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 15})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    kwargs.update(pool_size=10, max_overflow=10, pool_timeout=5, connect_args={"timeout": 3})
    return create_async_engine(database_url, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


_AFTER_COMMIT = "tradedesk.after_commit"


def after_commit(db: AsyncSession, action: Callable[[], Awaitable[None]]) -> None:
    """Run ``action`` once this request's transaction has committed (never if it rolls back).

    Session-store writes go here: the database change lands first, and with SQLite (one writer) a
    second connection never waits on the request's own open write transaction."""
    db.info.setdefault(_AFTER_COMMIT, []).append(action)


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.td.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise
        else:
            try:
                await session.commit()
            except (OperationalError, DBAPIError) as exc:
                await session.rollback()
                raise ServiceUnavailable("The database is unavailable; try again shortly.") from exc
            for action in session.info.pop(_AFTER_COMMIT, []):
                await action()


# scope="function": the commit happens before the response leaves, so a failed commit is a 503, not a lie.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
