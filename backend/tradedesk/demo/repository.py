"""What an account's records say of its demo history: the days it has fills on, and the agents its audit
trail shows started from the history's device."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from tradedesk.audit.schemas import AuditKind
from tradedesk.kit.repository import BrokerScopedRepository
from tradedesk.models import AuditEvent, Fill


class FillDayRepository(BrokerScopedRepository[Fill]):
    model = Fill

    async def days_with_fills(self, days: Iterable[date]) -> set[date]:
        statement = self.base_select().with_only_columns(Fill.day).where(Fill.day.in_(list(days)))
        return set((await self.db.scalars(statement.distinct())).all())


class AgentStartRepository(BrokerScopedRepository[AuditEvent]):
    model = AuditEvent

    async def agents_started_from(self, device_label: str) -> set[int]:
        """The agents the audit trail shows started from the device of that label."""
        statement = self.base_select().where(
            AuditEvent.kind == AuditKind.AGENT_STARTED.value, AuditEvent.device_label == device_label
        )
        events = await self.db.scalars(statement)
        return {int(e.detail["agent_id"]) for e in events if isinstance(e.detail.get("agent_id"), int)}
