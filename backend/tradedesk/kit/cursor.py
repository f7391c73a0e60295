"""Opaque keyset cursors for newest-first pages: base64url JSON naming the id the next page starts below."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Protocol, TypeVar

from tradedesk.errors import BadRequest


class _HasId(Protocol):
    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=_HasId)

_INT64_MAX = 2**63 - 1  # ids are PostgreSQL bigints: a larger number would fail in the database instead
_REFUSAL = "The cursor is not one this API handed out; start again without it."


class KeysetCursor:
    """One cursor family per list, told apart by its field name: one list refuses another's cursor."""

    def __init__(self, field: str) -> None:
        self.field = field

    def encode(self, before_id: int) -> str:
        return base64.urlsafe_b64encode(json.dumps({self.field: before_id}).encode()).decode().rstrip("=")

    def split(self, rows: Sequence[R], limit: int) -> tuple[list[R], str | None]:
        """A page from ``limit + 1`` rows fetched newest first: the first ``limit``, and the cursor to the
        next page when the extra row shows there is one."""
        page = list(rows[:limit])
        return page, self.encode(page[-1].id) if len(rows) > limit else None

    def decode(self, cursor: str) -> int:
        """The id a cursor from :meth:`encode` names; anything else is a 400."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            before = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))[self.field]
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError):
            raise BadRequest(_REFUSAL) from None
        if not isinstance(before, int) or isinstance(before, bool) or not 1 <= before <= _INT64_MAX:
            raise BadRequest(_REFUSAL)
        return before
