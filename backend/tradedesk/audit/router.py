"""/api/audit: the signed-in user's own security events, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tradedesk.audit import service
from tradedesk.audit.dependencies import AuditRepo
from tradedesk.audit.schemas import AuditKind, AuditPage
from tradedesk.errors import ErrorBody, ValidationErrorBody

router = APIRouter(prefix="/api", tags=["audit"])

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The cursor is not one this API handed out"},
    401: {"model": ErrorBody, "description": "No session"},
    422: {"model": ValidationErrorBody, "description": "An unknown kind, or a limit out of range"},
}


@router.get("/audit", response_model=AuditPage, operation_id="audit-list_events", responses=_ERRORS)
async def list_events(
    repo: AuditRepo,
    kind: Annotated[AuditKind | None, Query(description="Only events of this kind")] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="At most 200")] = 50,
) -> AuditPage:
    """Your sign-ins, sign-outs, revoked sessions and other security events, newest first; follow
    `next_cursor` for more."""
    return await service.page(repo, kind=kind, cursor=cursor, limit=limit)
