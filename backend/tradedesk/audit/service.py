"""Recording an event: in the caller's own transaction, so it commits or rolls back with the change it
describes; and paging through one account's events behind an opaque cursor."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.audit.repository import AuditRepository
from tradedesk.audit.schemas import AuditEventRead, AuditKind, AuditOutcome, AuditPage, DetailValue
from tradedesk.kit.cursor import KeysetCursor
from tradedesk.kit.repository import bind_tenant, tenant_session
from tradedesk.sessions.record import SessionRecord

log = logging.getLogger("tradedesk.audit")

DETAIL_MAX_BYTES = 2048
_DETAIL_TEXT_MAX = 200


@dataclass(frozen=True, slots=True)
class Actor:
    """Where an event came from: the address, the device and the session (by its public handle)."""

    ip: str | None = None
    device_id: str | None = None
    device_label: str | None = None
    session_handle: str | None = None

    @classmethod
    def of(cls, session: SessionRecord) -> Actor:
        return cls(
            ip=session.ip,
            device_id=session.device_id,
            device_label=session.device_label,
            session_handle=session.handle,
        )


def _clean_detail(detail: Mapping[str, DetailValue] | None) -> dict[str, DetailValue]:
    cleaned: dict[str, DetailValue] = {}
    for key, value in (detail or {}).items():
        if not isinstance(value, str | int | bool) and value is not None:
            raise TypeError(f"audit detail {key!r} must be a string, number, boolean or null")
        cleaned[str(key)[:40]] = value[:_DETAIL_TEXT_MAX] if isinstance(value, str) else value
    if len(json.dumps(cleaned)) > DETAIL_MAX_BYTES:
        raise ValueError("audit detail is larger than an event may carry")
    return cleaned


async def record(
    db: AsyncSession,
    *,
    broker_id: str,
    kind: AuditKind,
    at: datetime,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    actor: Actor | None = None,
    detail: Mapping[str, DetailValue] | None = None,
) -> None:
    """Add one event to ``broker_id``'s trail in ``db``'s transaction (binding it to that broker). Detail
    is a small flat mapping; never put a secret, token or cookie in it."""
    actor = actor or Actor()
    await bind_tenant(db, broker_id)
    await AuditRepository(db, broker_id).add(
        occurred_at=at,
        kind=kind.value,
        outcome=outcome.value,
        ip=actor.ip[:45] if actor.ip else None,
        device_id=actor.device_id[:64] if actor.device_id else None,
        device_label=actor.device_label[:100] if actor.device_label else None,
        session_handle=actor.session_handle[:32] if actor.session_handle else None,
        detail=_clean_detail(detail),
    )


async def record_broker_token_expired(
    sessionmaker: async_sessionmaker[AsyncSession], *, broker_id: str, at: datetime, actor: Actor | None
) -> None:
    """The broker refused the account's token. Written in a transaction of its own (the request that found
    out answers with an error and rolls back), and once per sign-in: repeated refusals add nothing."""
    try:
        async with tenant_session(sessionmaker, broker_id) as db:
            latest = await AuditRepository(db, broker_id).latest_of(
                (AuditKind.SIGN_IN.value, AuditKind.BROKER_TOKEN_EXPIRED.value)
            )
            if latest is not None and latest.kind == AuditKind.BROKER_TOKEN_EXPIRED.value:
                return
            await record(
                db,
                broker_id=broker_id,
                kind=AuditKind.BROKER_TOKEN_EXPIRED,
                at=at,
                outcome=AuditOutcome.FAILURE,
                actor=actor,
            )
    except Exception:
        # The trader's answer is the broker's refusal; a trail that cannot be written must not replace it.
        log.warning("could not record broker_token_expired", exc_info=True)


AUDIT_CURSOR = KeysetCursor("audit_before")


async def page(repo: AuditRepository, *, kind: AuditKind | None, cursor: str | None, limit: int) -> AuditPage:
    rows = await repo.page(
        kind=kind.value if kind else None,
        before_id=AUDIT_CURSOR.decode(cursor) if cursor else None,
        limit=limit + 1,
    )
    items, next_cursor = AUDIT_CURSOR.split(rows, limit)
    return AuditPage(items=[AuditEventRead.model_validate(row) for row in items], next_cursor=next_cursor)
