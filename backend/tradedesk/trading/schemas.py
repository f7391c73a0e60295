"""Bodies of the trading endpoints. Money is Decimal and travels as a JSON string."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: date | None = Field(
        default=None, description="Only store fills of this IST day (default: all returned)."
    )


class SyncResult(BaseModel):
    fills_new: int
    trades_closed: int


class TradeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    exchange: str
    tradingsymbol: str
    product: str
    direction: Literal["LONG", "SHORT"]
    status: Literal["open", "closed"]
    quantity: int
    entry_price: Decimal
    entry_at: datetime
    exit_price: Decimal | None
    exit_at: datetime | None
    realised_pnl: Decimal | None
    exit_reason: str | None
    strategy: str | None
    day: date


class TradesPage(BaseModel):
    items: list[TradeRead]
    next_cursor: str | None


class TradesSummary(BaseModel):
    """Totals of the closed round trips a filter selects (open ones have no P&L yet)."""

    count: int
    wins: int
    losses: int
    gross_profit: Decimal
    gross_loss: Decimal
    net: Decimal
    win_rate: Decimal = Field(description="wins / count, 0 when there are none (a fraction, 4 places)")


class TradeFilterChoices(BaseModel):
    """The values the trade filters can take within a range: those present in the user's trades."""

    symbols: list[str]
    strategies: list[str]
    exit_reasons: list[str]


class PnlSummary(BaseModel):
    as_of: date
    day: Decimal
    week: Decimal
    month: Decimal
    year: Decimal
    all_time: Decimal


class CumulativePoint(BaseModel):
    day: date
    net: Decimal
    cumulative: Decimal


class DailyStats(BaseModel):
    day: date
    trades: int
    wins: int
    losses: int
    win_rate: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    net: Decimal
    max_drawdown: Decimal


class PositionRead(BaseModel):
    exchange: str
    tradingsymbol: str
    product: str
    quantity: int
    average_price: Decimal
    last_price: Decimal
    pnl: Decimal
    realised: Decimal
    unrealised: Decimal


class PositionsRead(BaseModel):
    items: list[PositionRead]
    total_pnl: Decimal
    unrealised_pnl: Decimal


class RiskRead(BaseModel):
    daily_loss_limit: Decimal | None
    daily_loss_used: Decimal
    trading_blocked: bool


class RiskUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_loss_limit: Decimal | None = Field(
        ge=0, le=Decimal("1000000000"), decimal_places=2, description="Rupees; null removes the limit."
    )
