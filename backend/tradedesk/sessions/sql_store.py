"""Sessions in SQL for the embedded single-process setup (SQLite by default, or PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.errors import ServiceUnavailable
from tradedesk.models import PendingSignIn, WebSession
from tradedesk.sessions.record import SessionRecord


class SqlSessionStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self._sessionmaker() as db, db.begin():
                yield db
        except (OperationalError, DBAPIError) as exc:
            raise ServiceUnavailable("Session storage is unavailable; try again shortly.") from exc

    async def create(self, record: SessionRecord, *, expires_at: datetime, now: datetime) -> None:
        async with self._tx() as db:
            await db.execute(delete(WebSession).where(WebSession.expires_at <= now))
            db.add(
                WebSession(
                    key_hash=record.key_hash,
                    broker_id=record.broker_id,
                    record=record.model_dump_json(),
                    expires_at=expires_at,
                )
            )

    async def load(self, key_hash: str, *, idle_timeout_s: int) -> SessionRecord | None:
        async with self._tx() as db:
            raw = await db.scalar(select(WebSession.record).where(WebSession.key_hash == key_hash))
        return SessionRecord.load(raw) if raw is not None else None

    async def save(self, record: SessionRecord, *, expires_at: datetime) -> bool:
        async with self._tx() as db:
            result = await db.execute(
                update(WebSession)
                .where(WebSession.key_hash == record.key_hash)
                .values(record=record.model_dump_json(), expires_at=expires_at)
                .returning(WebSession.key_hash)
            )
            return result.first() is not None

    async def delete(self, record: SessionRecord) -> None:
        async with self._tx() as db:
            await db.execute(delete(WebSession).where(WebSession.key_hash == record.key_hash))

    async def list_for_user(self, broker_id: str, *, now: datetime) -> list[SessionRecord]:
        async with self._tx() as db:
            await db.execute(
                delete(WebSession).where(WebSession.broker_id == broker_id, WebSession.expires_at <= now)
            )
            rows = await db.scalars(
                select(WebSession.record)
                .where(WebSession.broker_id == broker_id)
                .order_by(WebSession.expires_at)
            )
            return [SessionRecord.load(raw) for raw in rows]

    async def delete_for_user(
        self, broker_id: str, *, now: datetime, keep_key_hash: str | None = None
    ) -> int:
        statement = delete(WebSession).where(WebSession.broker_id == broker_id, WebSession.expires_at > now)
        if keep_key_hash is not None:
            statement = statement.where(WebSession.key_hash != keep_key_hash)
        async with self._tx() as db:
            ended = len((await db.execute(statement.returning(WebSession.key_hash))).all())
            await db.execute(
                delete(WebSession).where(WebSession.broker_id == broker_id, WebSession.expires_at <= now)
            )
        return ended

    async def put_pending(self, key_hash: str, payload: bytes, *, ttl_s: int, now: datetime) -> None:
        async with self._tx() as db:
            await db.execute(delete(PendingSignIn).where(PendingSignIn.expires_at <= now))
            db.add(
                PendingSignIn(
                    key_hash=key_hash,
                    payload=payload.decode("utf-8"),
                    expires_at=now + timedelta(seconds=ttl_s),
                )
            )

    async def take_pending(self, key_hash: str, *, now: datetime) -> bytes | None:
        async with self._tx() as db:
            result = await db.execute(
                delete(PendingSignIn)
                .where(PendingSignIn.key_hash == key_hash)
                .returning(PendingSignIn.payload, PendingSignIn.expires_at)
            )
            row = result.first()
        if row is None:
            return None
        payload, expires_at = row
        if expires_at <= now:
            return None
        return str(payload).encode("utf-8")

    async def ping(self) -> None:
        async with self._tx() as db:
            await db.execute(text("select 1"))

    async def close(self) -> None:
        return None
