"""Sessions in SQL for the embedded single-process setup (SQLite by default, or PostgreSQL).

On PostgreSQL both tables are under row-level security: each transaction binds the one key hash
(``app.session_key``) or broker_id (``app.broker_id``) it works on, and sees nothing else. Expired rows of
every user are purged, and pending sign-ins counted, by SECURITY DEFINER functions (migration 0003)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.errors import SessionStoreUnavailable, is_database_outage
from tradedesk.kit.repository import bind_tenant
from tradedesk.models import PendingSignIn, WebSession
from tradedesk.sessions.record import SessionRecord, SessionRecordCodec


@asynccontextmanager
async def session_tables_tx(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    session_key: str | None = None,
    broker_id: str | None = None,
) -> AsyncIterator[AsyncSession]:
    """One transaction on the session tables, bound to the key hash or the broker_id it may see
    (PostgreSQL); an outage is the SQL store's 503."""
    try:
        async with sessionmaker() as db, db.begin():
            if session_key is not None and is_postgres(db):
                await db.execute(
                    text("select set_config('app.session_key', :key_hash, true)"), {"key_hash": session_key}
                )
            if broker_id is not None:
                await bind_tenant(db, broker_id)
            yield db
    except (OperationalError, DBAPIError) as exc:
        if not is_database_outage(exc):
            raise  # a bug, not an outage: the logged 500
        raise SessionStoreUnavailable(store="sql") from exc


class SqlSessionStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, codec: SessionRecordCodec) -> None:
        self._sessionmaker = sessionmaker
        self._codec = codec

    def _tx(
        self, *, session_key: str | None = None, broker_id: str | None = None
    ) -> AbstractAsyncContextManager[AsyncSession]:
        return session_tables_tx(self._sessionmaker, session_key=session_key, broker_id=broker_id)

    async def create(self, record: SessionRecord, *, expires_at: datetime, now: datetime) -> None:
        async with self._tx(session_key=record.key_hash) as db:
            await purge_expired(db, WebSession, now=now)
            db.add(
                WebSession(
                    key_hash=record.key_hash,
                    broker_id=record.broker_id,
                    record=self._codec.encode(record).decode("utf-8"),
                    expires_at=expires_at,
                )
            )

    async def load(self, key_hash: str, *, idle_timeout_s: int) -> SessionRecord | None:
        async with self._tx(session_key=key_hash) as db:
            raw = await db.scalar(select(WebSession.record).where(WebSession.key_hash == key_hash))
        return self._codec.decode(raw, key_hash=key_hash) if raw is not None else None

    async def save(self, record: SessionRecord, *, expires_at: datetime, now: datetime) -> bool:
        async with self._tx(session_key=record.key_hash) as db:
            result = await db.execute(
                update(WebSession)
                .where(WebSession.key_hash == record.key_hash)
                .values(record=self._codec.encode(record).decode("utf-8"), expires_at=expires_at)
                .returning(WebSession.key_hash)
            )
            return result.first() is not None

    async def delete(self, record: SessionRecord) -> None:
        async with self._tx(session_key=record.key_hash) as db:
            await db.execute(delete(WebSession).where(WebSession.key_hash == record.key_hash))

    async def list_for_user(self, broker_id: str, *, now: datetime) -> list[SessionRecord]:
        async with self._tx(broker_id=broker_id) as db:
            await db.execute(
                delete(WebSession).where(WebSession.broker_id == broker_id, WebSession.expires_at <= now)
            )
            rows = await db.execute(
                select(WebSession.key_hash, WebSession.record)
                .where(WebSession.broker_id == broker_id)
                .order_by(WebSession.expires_at)
            )
            decoded = (self._codec.decode(raw, key_hash=hashed) for hashed, raw in rows)
            return [record for record in decoded if record is not None]

    async def delete_for_user(
        self, broker_id: str, *, now: datetime, keep_key_hash: str | None = None
    ) -> int:
        statement = delete(WebSession).where(WebSession.broker_id == broker_id, WebSession.expires_at > now)
        if keep_key_hash is not None:
            statement = statement.where(WebSession.key_hash != keep_key_hash)
        async with self._tx(broker_id=broker_id) as db:
            ended = len((await db.execute(statement.returning(WebSession.key_hash))).all())
            await db.execute(
                delete(WebSession).where(WebSession.broker_id == broker_id, WebSession.expires_at <= now)
            )
        return ended

    async def count_live(self, *, now: datetime) -> int:
        """Unexpired sessions of every user (for the metrics; PostgreSQL counts them for the app role,
        which cannot see other users' rows itself)."""
        async with self._tx() as db:
            if is_postgres(db):
                live = await db.scalar(text("select count_live_web_sessions(:now)"), {"now": now})
            else:
                live = await db.scalar(select(func.count()).where(WebSession.expires_at > now))
        return int(live or 0)

    async def ping(self) -> None:
        async with self._tx() as db:
            await db.execute(text("select 1"))

    async def close(self) -> None:
        return None


def is_postgres(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "postgresql"


_PURGE_FUNCTIONS = {
    WebSession: text("select purge_expired_web_sessions(:now)"),
    PendingSignIn: text("select purge_expired_pending_signins(:now)"),
}


async def purge_expired(
    db: AsyncSession, table: type[WebSession] | type[PendingSignIn], *, now: datetime
) -> None:
    """Every user's expired rows. PostgreSQL shows the app none of them, so a function owned by the
    migration role does it there; it deletes only rows expired by the database's clock too."""
    if is_postgres(db):
        await db.execute(_PURGE_FUNCTIONS[table], {"now": now})
    else:
        await db.execute(delete(table).where(table.expires_at <= now))
