"""Parameter building blocks every strategy shares: market-hours times of day, lots, and the error that
names every field of an inconsistent combination."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from tradedesk.kit.calendar import MARKET_CLOSE, MARKET_OPEN

MAX_LOTS = 50
_IST_OFFSET = timedelta(hours=5, minutes=30)


def _within_market_hours(value: time) -> time:
    offset = value.utcoffset()
    if offset is not None and offset != _IST_OFFSET:
        raise ValueError("give the time of day in IST (no offset, or +05:30)")
    wall_clock = value.replace(tzinfo=None)
    if not MARKET_OPEN <= wall_clock <= MARKET_CLOSE:
        raise ValueError(
            f"{wall_clock.isoformat('minutes')} is outside market hours "
            f"({MARKET_OPEN.isoformat('minutes')}-{MARKET_CLOSE.isoformat('minutes')} IST)"
        )
    return wall_clock


# Pydantic keeps ``ge``/``le`` of a time out of the JSON Schema, so the bounds are spelt as the
# ``formatMinimum``/``formatMaximum`` keywords form libraries understand.
MarketTime = Annotated[
    time,
    AfterValidator(_within_market_hours),
    Field(
        json_schema_extra={
            "formatMinimum": MARKET_OPEN.isoformat(),
            "formatMaximum": MARKET_CLOSE.isoformat(),
        }
    ),
]

Lots = Annotated[int, Field(ge=1, le=MAX_LOTS)]


def inconsistent(model: BaseModel, problems: Sequence[tuple[Sequence[str], str]]) -> ValidationError:
    """One error per field of each (fields, message) problem, so a form marks every field involved (a
    plain ValueError in a model validator would name none)."""
    return ValidationError.from_exception_data(
        type(model).__name__,
        [
            InitErrorDetails(
                type=PydanticCustomError("inconsistent", message),
                loc=(name,),
                input=getattr(model, name),
            )
            for names, message in problems
            for name in names
        ],
    )
