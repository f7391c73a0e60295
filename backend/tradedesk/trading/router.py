"""/api trading endpoints: sync, trades (JSON page and CSV), P&L, daily stats, live positions, risk."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from tradedesk.errors import BadRequest, ErrorBody, NotFound, ValidationErrorBody
from tradedesk.kit.calendar import periods_for, validate_range, win_rate
from tradedesk.sessions.dependencies import CurrentSession
from tradedesk.trading import service
from tradedesk.trading.dependencies import RiskRepo, Today, TradeRepo, Trading
from tradedesk.trading.repository import TradeFilter, TradeRepository
from tradedesk.trading.schemas import (
    CumulativePoint,
    DailyStats,
    PnlSummary,
    PositionsRead,
    RiskRead,
    RiskUpdate,
    SyncRequest,
    SyncResult,
    TradeFilterChoices,
    TradeRead,
    TradesPage,
    TradesSummary,
)

router = APIRouter(prefix="/api", tags=["trading"])

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "A date range, cursor or filter is not acceptable"},
    401: {"model": ErrorBody, "description": "No session, or the broker token is no longer valid"},
    422: {"model": ValidationErrorBody, "description": "A field is missing or has the wrong type"},
}
_SYMBOL_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "You have no trades in that symbol"},
}
_BROKER_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    502: {"model": ErrorBody, "description": "The broker failed or answered something unreadable"},
    504: {"model": ErrorBody, "description": "The broker did not answer in time"},
}
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9&_\-. ]{0,63}$")
DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 3 * 366

FromDay = Annotated[date | None, Query(alias="from", description="First IST day (inclusive)")]
ToDay = Annotated[date | None, Query(alias="to", description="Last IST day (inclusive)")]
Symbol = Annotated[str | None, Query(max_length=64, description="Exact trading symbol, e.g. INFY")]
Strategy = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=r"^[a-z0-9_]+$",
        description="Trades made by this strategy, e.g. short_strangle",
    ),
]
ExitReason = Annotated[
    str | None,
    Query(
        max_length=64, pattern=r"^[a-z0-9_]+$", description="Trades closed for this reason, e.g. stop_loss"
    ),
]
Status = Annotated[Literal["open", "closed"] | None, Query()]


def _range(
    today: date, from_day: date | None, to_day: date | None, *, default_days: int
) -> tuple[date, date]:
    try:
        return validate_range(
            from_day, to_day, today=today, default_days=default_days, max_days=MAX_RANGE_DAYS
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _optional_range(
    today: date, from_day: date | None, to_day: date | None
) -> tuple[date | None, date | None]:
    if from_day is None and to_day is None:
        return None, None
    if from_day is None:
        assert to_day is not None
        if to_day < date(2000, 1, 1):
            raise BadRequest("'to' is before 2000-01-01; pick a date this data can have.")
        return None, to_day
    return _range(today, from_day, to_day, default_days=DEFAULT_RANGE_DAYS)


async def _trade_filter(
    today: Today,
    repo: TradeRepo,
    from_day: FromDay = None,
    to_day: ToDay = None,
    symbol: Symbol = None,
    strategy: Strategy = None,
    exit_reason: ExitReason = None,
) -> TradeFilter:
    """The filters /trades, its CSV export and its summary share, checked once."""
    start, end = _optional_range(today, from_day, to_day)
    return TradeFilter(
        from_day=start,
        to_day=end,
        symbol=await _checked_symbol(repo, symbol),
        strategy=strategy,
        exit_reason=exit_reason,
    )


Filters = Annotated[TradeFilter, Depends(_trade_filter)]


async def _checked_symbol(repo: TradeRepository, symbol: str | None) -> str | None:
    if symbol is None:
        return None
    symbol = symbol.strip().upper()
    if not _SYMBOL.fullmatch(symbol):
        raise BadRequest(f"{symbol!r} is not a trading symbol (letters, digits and &-_. only).")
    if not await repo.has_symbol(symbol):
        raise NotFound(f"You have no trades in {symbol}.")
    return symbol


@router.post("/sync", response_model=SyncResult, operation_id="trading-sync", responses=_BROKER_ERRORS)
async def sync(body: SyncRequest, trading: Trading, today: Today, record: CurrentSession) -> SyncResult:
    """Pull the day's executions from the broker, store the new ones and match them into round trips.
    Running it again stores nothing twice."""
    if body.day is not None and not date(2000, 1, 1) <= body.day <= today:
        raise BadRequest("'day' must be a past or current IST trading day.")
    return await trading.sync_fills(record=record, day=body.day)


@router.get(
    "/trades", response_model=TradesPage, operation_id="trading-list_trades", responses=_SYMBOL_ERRORS
)
async def list_trades(
    repo: TradeRepo,
    filters: Filters,
    status: Status = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most 500")] = 100,
) -> TradesPage:
    """Your round trips, newest first; follow `next_cursor` for more."""
    before_id = service.decode_cursor(cursor) if cursor else None
    rows = await repo.page(replace(filters, status=status), before_id=before_id, limit=limit + 1)
    items, next_cursor = service.TRADES_CURSOR.split(rows, limit)
    return TradesPage(items=[TradeRead.model_validate(row) for row in items], next_cursor=next_cursor)


@router.get(
    "/trades.csv",
    operation_id="trading-export_trades",
    response_class=StreamingResponse,
    responses={
        **_SYMBOL_ERRORS,
        200: {"content": {"text/csv": {}}, "description": "The same rows as /trades, as CSV"},
    },
)
async def export_trades(
    trading: Trading, repo: TradeRepo, filters: Filters, status: Status = None
) -> StreamingResponse:
    """Your round trips in the range as a CSV download, streamed newest first; the same filters as /trades."""
    where = replace(filters, status=status)
    rows = trading.trades_csv(broker_id=repo.broker_id, where=where)
    # Read the header and first page before the status line: a database that cannot serve the export
    # (down, or no free connection) is then a 503, not a 200 whose file says it is incomplete.
    first = await anext(rows)

    async def body() -> AsyncIterator[str]:
        try:
            yield first
            async for part in rows:
                yield part
        finally:
            await rows.aclose()

    label = f"{where.from_day or 'all'}_{where.to_day or 'all'}"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="trades_{label}.csv"'},
    )


@router.get(
    "/trades/summary",
    response_model=TradesSummary,
    operation_id="trading-trades_summary",
    responses=_SYMBOL_ERRORS,
)
async def trades_summary(repo: TradeRepo, filters: Filters) -> TradesSummary:
    """Count, profit, loss, net and win rate of the closed round trips the same filters as /trades select."""
    totals = await repo.summary(filters)
    return TradesSummary(**totals, win_rate=win_rate(totals["wins"], totals["count"]))


@router.get(
    "/trades/filters",
    response_model=TradeFilterChoices,
    operation_id="trading-trade_filters",
    responses=_ERRORS,
)
async def trade_filters(
    today: Today, repo: TradeRepo, from_day: FromDay = None, to_day: ToDay = None
) -> TradeFilterChoices:
    """The symbols, strategies and exit reasons your trades in the range have (at most 500 of each)."""
    start, end = _optional_range(today, from_day, to_day)
    values = await repo.distinct_values(TradeFilter(from_day=start, to_day=end))
    return TradeFilterChoices(
        symbols=values["tradingsymbol"], strategies=values["strategy"], exit_reasons=values["exit_reason"]
    )


@router.get("/pnl/summary", response_model=PnlSummary, operation_id="trading-pnl_summary", responses=_ERRORS)
async def pnl_summary(today: Today, repo: TradeRepo) -> PnlSummary:
    """Realised P&L for today, this week (from Monday), month, year and all time, in IST days."""
    periods = periods_for(today)
    totals = await repo.pnl_summary(periods)
    return PnlSummary(as_of=periods.day, **totals)


@router.get(
    "/pnl/cumulative",
    response_model=list[CumulativePoint],
    operation_id="trading-pnl_cumulative",
    responses=_ERRORS,
)
async def pnl_cumulative(
    today: Today, repo: TradeRepo, from_day: FromDay = None, to_day: ToDay = None
) -> list[CumulativePoint]:
    """Net realised P&L per IST day with the running total from the first day of the range."""
    start, end = _range(today, from_day, to_day, default_days=DEFAULT_RANGE_DAYS)
    points = await repo.daily_net(start, end)
    return [CumulativePoint(day=day, net=net, cumulative=total) for day, net, total in points]


@router.get(
    "/stats/daily", response_model=list[DailyStats], operation_id="trading-daily_stats", responses=_ERRORS
)
async def daily_stats(
    today: Today, repo: TradeRepo, from_day: FromDay = None, to_day: ToDay = None
) -> list[DailyStats]:
    """Per IST day with closed trades: counts, win rate, gross profit and loss, net and max drawdown."""
    start, end = _range(today, from_day, to_day, default_days=DEFAULT_RANGE_DAYS)
    rows = await repo.daily_stats(start, end)
    return [
        DailyStats(
            day=row["day"],
            trades=row["trades"],
            wins=row["wins"],
            losses=row["losses"],
            win_rate=win_rate(row["wins"], row["trades"]),
            gross_profit=row["gross_profit"],
            gross_loss=row["gross_loss"],
            net=row["net"],
            max_drawdown=row["max_drawdown"],
        )
        for row in rows
    ]


@router.get(
    "/positions", response_model=PositionsRead, operation_id="trading-positions", responses=_BROKER_ERRORS
)
async def positions(trading: Trading, record: CurrentSession) -> PositionsRead:
    """Open positions live from the broker, with unrealised P&L at the last price."""
    return await trading.live_positions(record)


@router.get("/risk", response_model=RiskRead, operation_id="trading-get_risk", responses=_ERRORS)
async def get_risk(trading: Trading, trades: TradeRepo, risk: RiskRepo) -> RiskRead:
    """The daily loss limit, how much of it today's realised P&L has used, and whether trading is blocked."""
    return await trading.risk_of(trades, risk=risk)


@router.put("/risk", response_model=RiskRead, operation_id="trading-put_risk", responses=_ERRORS)
async def put_risk(
    body: RiskUpdate, trading: Trading, trades: TradeRepo, risk: RiskRepo, record: CurrentSession
) -> RiskRead:
    """Set (or clear, with null) the daily loss limit in rupees."""
    await trading.change_daily_loss_limit(risk, limit=body.daily_loss_limit, by=record)
    return await trading.risk_of(trades, risk=risk)
