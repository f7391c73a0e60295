"""The signed-in user's audit repository, on the request's tenant-bound transaction."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tradedesk.audit.repository import AuditRepository
from tradedesk.sessions.dependencies import CurrentSession, TenantDb


async def get_audit_repository(db: TenantDb, session: CurrentSession) -> AuditRepository:
    return AuditRepository(db, session.broker_id)


AuditRepo = Annotated[AuditRepository, Depends(get_audit_repository)]
