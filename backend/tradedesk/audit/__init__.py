"""The audit trail: each account's security events (sign-ins, sign-outs, revocations, risk changes), kept
in PostgreSQL under the tenant's row-level security and listed by ``GET /api/audit``.

Other modules record an event in their own transaction::

    await audit.record(db, broker_id=..., kind=AuditKind.RISK_LIMIT_CHANGED, at=now, actor=Actor.of(session))
"""

from tradedesk.audit.schemas import AuditKind, AuditOutcome
from tradedesk.audit.service import Actor, record

__all__ = ["Actor", "AuditKind", "AuditOutcome", "record"]
