"""One broker's audit events: appended, and read a page at a time, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from tradedesk.kit.repository import BrokerScopedRepository
from tradedesk.models import AuditEvent


class AuditRepository(BrokerScopedRepository[AuditEvent]):
    model = AuditEvent

    async def add(
        self,
        *,
        occurred_at: datetime,
        kind: str,
        outcome: str,
        ip: str | None,
        device_id: str | None,
        device_label: str | None,
        session_handle: str | None,
        detail: dict[str, Any],
    ) -> None:
        values: dict[str, Any] = {
            "broker_id": self.broker_id,
            "occurred_at": occurred_at,
            "kind": kind,
            "outcome": outcome,
            "ip": ip,
            "device_id": device_id,
            "device_label": device_label,
            "session_handle": session_handle,
            "detail": detail,
        }
        if self.db.get_bind().dialect.name != "postgresql":
            # SQLite has no identity for a two-column key; its single writer makes the next number safe.
            values["id"] = (
                select(func.coalesce(func.max(AuditEvent.id), 0) + 1)
                .where(AuditEvent.broker_id == self.broker_id)
                .scalar_subquery()
            )
        await self.db.execute(insert(AuditEvent).values(**values))

    async def page(self, *, kind: str | None, before_id: int | None, limit: int) -> list[AuditEvent]:
        statement = self.base_select()
        if kind is not None:
            statement = statement.where(AuditEvent.kind == kind)
        if before_id is not None:
            statement = statement.where(AuditEvent.id < before_id)
        rows = await self.db.scalars(statement.order_by(AuditEvent.id.desc()).limit(limit))
        return list(rows.all())

    async def latest_of(self, kinds: tuple[str, ...]) -> AuditEvent | None:
        statement = (
            self.base_select().where(AuditEvent.kind.in_(kinds)).order_by(AuditEvent.id.desc()).limit(1)
        )
        found: AuditEvent | None = await self.db.scalar(statement)
        return found
