"""Repository bases. A broker-scoped repository starts every statement from its tenant filter and
takes no broker_id in any public method."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

M = TypeVar("M")

_BOUND_BROKER = "tradedesk.broker_id"


async def bind_tenant(db: AsyncSession, broker_id: str) -> None:
    """Scope this transaction to one broker: PostgreSQL's row-level security then shows and accepts only
    that broker's rows, whatever a statement says. One transaction serves exactly one broker."""
    bound = db.info.get(_BOUND_BROKER)
    if bound == broker_id:
        return
    if bound is not None:
        raise RuntimeError("this transaction is already bound to another broker")
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(
            text("select set_config('app.broker_id', :broker_id, true)"), {"broker_id": broker_id}
        )
    db.info[_BOUND_BROKER] = broker_id


@asynccontextmanager
async def tenant_session(
    sessionmaker: async_sessionmaker[AsyncSession], broker_id: str
) -> AsyncIterator[AsyncSession]:
    """A transaction of its own, bound to one broker, for work outside a request's transaction (a
    streamed export, an audit event that must outlive a failing request, a worker, the CLI). It commits
    when the block ends and rolls back if the block raises."""
    async with sessionmaker() as db, db.begin():
        await bind_tenant(db, broker_id)
        yield db


class BrokerScopedRepository(Generic[M]):
    model: ClassVar[type[Any]]

    def __init__(self, db: AsyncSession, broker_id: str) -> None:
        if not broker_id:
            raise ValueError("a broker-scoped repository needs a broker_id")
        self.db = db
        self.broker_id = broker_id

    def base_select(self) -> Select[M]:
        return select(self.model).where(self.model.broker_id == self.broker_id)

    async def upsert(self, values: dict[str, Any], *, key: tuple[str, ...] = ("broker_id",)) -> None:
        """Insert this tenant's row or replace its fields, in one statement on either dialect."""
        values = {**values, "broker_id": self.broker_id}
        dialect = self.db.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(self.model).values(**values)
        updates = {name: statement.excluded[name] for name in values if name not in key}
        await self.db.execute(statement.on_conflict_do_update(index_elements=list(key), set_=updates))
