"""Broker sync: pull executions, store the new ones, FIFO-match them into round trips; live positions;
the daily loss limit; the trades cursor and the CSV export's cells."""

from __future__ import annotations

import csv
import io
import logging
import types
import typing
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.agents.orders import parse_tag
from tradedesk.agents.strategies.registry import STRATEGIES
from tradedesk.audit import service as audit
from tradedesk.audit.schemas import AuditKind
from tradedesk.brokers.credentials import BrokerCredentialsPlain, open_credentials
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.brokers.kite.schemas import KiteOrder, KiteTrade
from tradedesk.errors import BrokerTokenInvalid, BrokerUnavailable, is_database_outage, outage_reason
from tradedesk.kit.calendar import ist_day
from tradedesk.kit.clock import Clock
from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError
from tradedesk.kit.cursor import KeysetCursor
from tradedesk.kit.repository import tenant_session
from tradedesk.logs import log_tag
from tradedesk.models import Agent, AgentOrder, Fill, Trade
from tradedesk.sessions.record import SessionRecord
from tradedesk.trading.matching import (
    ClosedTrip,
    Execution,
    OpenLot,
    UnusableInput,
    execution_order,
    match_fifo,
)
from tradedesk.trading.repository import (
    FillRepository,
    InstrumentKey,
    RiskRepository,
    TradeFilter,
    TradeRepository,
)
from tradedesk.trading.schemas import PositionRead, PositionsRead, RiskRead, SyncResult, TradeRead

log = logging.getLogger("tradedesk.trading")


def _fill_row(trade: KiteTrade, order: KiteOrder | None, *, now: datetime) -> dict[str, Any]:
    return {
        "trade_id": trade.trade_id,
        "order_id": trade.order_id,
        "exchange": trade.exchange,
        "tradingsymbol": trade.tradingsymbol,
        "instrument_token": trade.instrument_token,
        "product": trade.product,
        "transaction_type": trade.transaction_type,
        "quantity": trade.quantity,
        "price": trade.average_price,
        "filled_at": trade.fill_timestamp,
        "day": ist_day(trade.fill_timestamp),
        "order_type": order.order_type if order else None,
        "tag": (order.tag or None) if order else None,
        "synced_at": now,
    }


async def _agent_tag_labels(db: AsyncSession, broker_id: str, fills: list[Fill]) -> dict[str, str]:
    """Our agents tag orders ``td{agent}-{seq}`` (Kite allows 20 characters); a trade made by one is
    labelled ``"{strategy}:{exit reason}"`` from the agent and the intent that order carried out."""
    wanted = {parsed: fill.tag for fill in fills if fill.tag and (parsed := parse_tag(fill.tag)) is not None}
    if not wanted:
        return {}
    statement = (
        select(AgentOrder.agent_id, AgentOrder.seq, AgentOrder.intent_id, Agent.strategy)
        .join(Agent, (Agent.broker_id == AgentOrder.broker_id) & (Agent.id == AgentOrder.agent_id))
        .where(
            AgentOrder.broker_id == broker_id,
            AgentOrder.agent_id.in_({agent_id for agent_id, _ in wanted}),
            AgentOrder.seq.in_({seq for _, seq in wanted}),
        )
    )
    labels: dict[str, str] = {}
    for agent_id, seq, intent_id, strategy_name in await db.execute(statement):
        tag = wanted.get((agent_id, seq))
        strategy = STRATEGIES.get(strategy_name)
        if tag is not None:
            reason = strategy.exit_reason(intent_id) if strategy is not None else "signal"
            labels[tag] = f"{strategy_name}:{reason}"
    return labels


def _execution(fill: Fill, labels: dict[str, str]) -> Execution:
    return Execution(
        trade_id=fill.trade_id,
        side="BUY" if fill.transaction_type == "BUY" else "SELL",
        quantity=fill.quantity,
        price=Decimal(fill.price),
        at=fill.filled_at,
        order_type=fill.order_type,
        tag=labels.get(fill.tag, fill.tag) if fill.tag else fill.tag,
    )


def _closed_row(key: InstrumentKey, trip: ClosedTrip) -> dict[str, Any]:
    exchange, symbol, product = key
    return {
        "exchange": exchange,
        "tradingsymbol": symbol,
        "product": product,
        "direction": trip.direction,
        "status": "closed",
        "quantity": trip.quantity,
        "entry_price": trip.entry_price,
        "entry_at": trip.entry_at,
        "entry_trade_id": trip.entry_trade_id,
        "exit_price": trip.exit_price,
        "exit_at": trip.exit_at,
        "exit_trade_id": trip.exit_trade_id,
        "realised_pnl": trip.realised_pnl,
        "exit_reason": trip.exit_reason,
        "strategy": trip.strategy,
        "day": ist_day(trip.exit_at),
    }


def _open_row(key: InstrumentKey, lot: OpenLot) -> dict[str, Any]:
    exchange, symbol, product = key
    return {
        "exchange": exchange,
        "tradingsymbol": symbol,
        "product": product,
        "direction": lot.direction,
        "status": "open",
        "quantity": lot.quantity,
        "entry_price": lot.entry_price,
        "entry_at": lot.entry_at,
        "entry_trade_id": lot.entry_trade_id,
        "strategy": lot.strategy,
        "day": ist_day(lot.entry_at),
    }


def _as_lot(row: Trade) -> OpenLot:
    return OpenLot(
        direction="LONG" if row.direction == "LONG" else "SHORT",
        quantity=row.quantity,
        entry_price=Decimal(row.entry_price),
        entry_at=row.entry_at,
        entry_trade_id=row.entry_trade_id,
        strategy=row.strategy,
    )


def risk_view(limit: Decimal | None, realised_today: Decimal) -> RiskRead:
    used = max(Decimal(0), -realised_today)
    return RiskRead(
        daily_loss_limit=limit,
        daily_loss_used=used,
        trading_blocked=limit is not None and used >= limit,
    )


# -- the trades cursor ---------------------------------------------------------------------------------

# ``GET /api/trades``: the page after a cursor holds ids below the one it names.
TRADES_CURSOR = KeysetCursor("before")
encode_cursor = TRADES_CURSOR.encode
decode_cursor = TRADES_CURSOR.decode


# -- CSV export ----------------------------------------------------------------------------------------

CSV_COLUMNS = list(TradeRead.model_fields)
# What a spreadsheet would run as a formula (OWASP "CSV injection"): =, +, -, @, tab and carriage return.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(annotation: object) -> bool:
    members = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return all(member in (int, Decimal, type(None)) for member in members)


# Numbers are written as numbers: a negative P&L stays -150.5, not '-150.5.
_NUMBER_COLUMNS = frozenset(
    name for name, field in TradeRead.model_fields.items() if _is_number(field.annotation)
)


def csv_text_cell(value: str) -> str:
    """A text cell a spreadsheet shows as text: a leading formula character gets a single quote."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def trade_csv_row(trade: TradeRead) -> list[str]:
    """One trade as CSV cells in :data:`CSV_COLUMNS` order, with the same values as the JSON list."""
    data = trade.model_dump(mode="json")
    cells: list[str] = []
    for column in CSV_COLUMNS:
        value = data[column]
        if value is None:
            cells.append("")
        elif column in _NUMBER_COLUMNS:
            cells.append(str(value))
        else:
            cells.append(csv_text_cell(str(value)))
    return cells


CSV_DATABASE_ERROR_LINE = "# error: export incomplete, database unavailable; retry\r\n"
CSV_ERROR_LINE = "# error: export incomplete, an error on our side has been logged; retry\r\n"


class TradingService:
    """What reaches the broker or outlives the request: sync, live positions, the export, the loss limit."""

    def __init__(
        self,
        *,
        kite: KiteClient,
        cipher: CredentialCipher,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
    ) -> None:
        self._kite = kite
        self._cipher = cipher
        self._sessionmaker = sessionmaker
        self._clock = clock

    def today(self) -> date:
        """The IST trading day it is now: where every default range and "today" figure starts."""
        return ist_day(self._clock.now())

    def _broker_credentials(self, record: SessionRecord) -> BrokerCredentialsPlain:
        try:
            return open_credentials(self._cipher, record.credentials_enc, broker_id=record.broker_id)
        except CredentialsDecryptError as exc:
            raise BrokerTokenInvalid(
                "This session's broker credentials can no longer be read; reconnect."
            ) from exc

    @asynccontextmanager
    async def _noting_token_refusal(self, record: SessionRecord) -> AsyncIterator[None]:
        """A broker call whose token the broker refuses: the refusal goes to the account's audit trail."""
        try:
            yield
        except BrokerTokenInvalid:
            await audit.record_broker_token_expired(
                self._sessionmaker,
                broker_id=record.broker_id,
                at=self._clock.now(),
                actor=audit.Actor.of(record),
            )
            raise

    async def sync_fills(self, *, record: SessionRecord, day: date | None) -> SyncResult:
        """Everything the broker answers is read and validated before anything is written (an unreadable
        answer is a 502 and stores nothing); the write is one transaction of its own, serialised per user,
        opened only once the broker has answered: a slow broker holds no database connection."""
        credentials = self._broker_credentials(record)
        async with self._noting_token_refusal(record):
            trades = await self._kite.trades(
                api_key=credentials.api_key, access_token=credentials.access_token
            )
            orders = await self._kite.orders(
                api_key=credentials.api_key, access_token=credentials.access_token
            )
        if day is not None:
            trades = [t for t in trades if ist_day(t.fill_timestamp) == day]
        async with tenant_session(self._sessionmaker, record.broker_id) as db:
            return await self._store_fills(db, record=record, trades=trades, orders=orders)

    async def _store_fills(
        self, db: AsyncSession, *, record: SessionRecord, trades: list[KiteTrade], orders: list[KiteOrder]
    ) -> SyncResult:
        by_order = {order.order_id: order for order in orders}
        now = self._clock.now()
        if db.get_bind().dialect.name == "postgresql":
            # Two syncs of one user must not match the same open lots at once.
            await db.execute(
                select(func.pg_advisory_xact_lock(func.hashtextextended("sync:" + record.broker_id, 0)))
            )
        # On SQLite this insert is the transaction's first write and takes the database's write lock, which
        # serialises concurrent syncs the same way.
        fills = FillRepository(db, record.broker_id)
        new_fills = await fills.insert_new([_fill_row(t, by_order.get(t.order_id), now=now) for t in trades])
        if not new_fills:
            return SyncResult(fills_new=0, trades_closed=0)

        grouped: dict[InstrumentKey, list[Fill]] = defaultdict(list)
        for fill in new_fills:
            grouped[(fill.exchange, fill.tradingsymbol, fill.product)].append(fill)
        new_ids = {fill.id for fill in new_fills}
        repo = TradeRepository(db, record.broker_id)
        # One read for the whole sync (more only for an instrument replayed from its first fill).
        labels = await _agent_tag_labels(db, record.broker_id, new_fills)
        closed_total = 0
        for key, key_fills in grouped.items():
            executions = sorted((_execution(f, labels) for f in key_fills), key=execution_order)
            seen_until = await fills.latest_before(key, excluding=new_ids)
            if seen_until is not None and executions[0].at < seen_until:
                # A fill older than ones already matched: FIFO order changed, so replay the instrument.
                # Trips closed before count as closed already; only the difference is news.
                closed_total -= await repo.count_closed(key)
                await repo.delete_instrument(key)
                existing: list[Trade] = []
                replayed = await fills.all_for(key)
                labels |= await _agent_tag_labels(db, record.broker_id, replayed)
                executions = sorted((_execution(f, labels) for f in replayed), key=execution_order)
            else:
                existing = await repo.open_lots(key)
            try:
                lots, closed = match_fifo([_as_lot(row) for row in existing], executions)
            except UnusableInput as exc:
                # Raised before anything of this sync is committed: the transaction rolls back whole.
                log.warning("sync refused unusable broker data: %s", exc)
                raise BrokerUnavailable(
                    f"The broker's executions cannot be matched into trades ({exc}); nothing was stored."
                ) from exc
            closed_total += len(closed)
            await repo.insert_many([_closed_row(key, trip) for trip in closed])
            # Open lots keep their row (and id) while they stay open, so pagination stays stable.
            by_entry = {row.entry_trade_id: row for row in existing}
            kept = {lot.entry_trade_id for lot in lots}
            await repo.delete_ids([row.id for row in existing if row.entry_trade_id not in kept])
            fresh = []
            for lot in lots:
                row = by_entry.get(lot.entry_trade_id)
                if row is None:
                    fresh.append(_open_row(key, lot))
                elif row.quantity != lot.quantity:
                    await repo.set_quantity(row.id, lot.quantity)
            await repo.insert_many(fresh)
        log.info(
            "synced broker=%s fills_new=%d trades_closed=%d",
            log_tag(record.broker_id),
            len(new_fills),
            closed_total,
        )
        return SyncResult(fills_new=len(new_fills), trades_closed=closed_total)

    async def live_positions(self, record: SessionRecord) -> PositionsRead:
        credentials = self._broker_credentials(record)
        async with self._noting_token_refusal(record):
            positions = await self._kite.positions(
                api_key=credentials.api_key, access_token=credentials.access_token
            )
        items = [
            PositionRead(
                exchange=p.exchange,
                tradingsymbol=p.tradingsymbol,
                product=p.product,
                quantity=p.quantity,
                average_price=p.average_price,
                last_price=p.last_price,
                pnl=p.pnl,
                realised=p.realised,
                unrealised=p.unrealised,
            )
            for p in positions.net
        ]
        return PositionsRead(
            items=items,
            total_pnl=sum((p.pnl for p in items), Decimal(0)),
            unrealised_pnl=sum((p.unrealised for p in items), Decimal(0)),
        )

    async def trades_csv(self, *, broker_id: str, where: TradeFilter) -> AsyncGenerator[str, None]:
        """The CSV export, a page of 1000 trades at a time. The request's transaction has ended by the
        time the body streams, so it reads in a tenant-bound one of its own. A failure before the first
        part (the header and first page) is raised, so the request fails as any other would (503 for an
        outage); the caller reads that part before it sends the status line."""
        started = False
        try:
            async with tenant_session(self._sessionmaker, broker_id) as db:
                repo = TradeRepository(db, broker_id)
                buffer = io.StringIO()
                writer = csv.writer(buffer)
                writer.writerow(CSV_COLUMNS)
                before: int | None = None
                while True:
                    page = await repo.page(where, before_id=before, limit=1000)
                    writer.writerows(trade_csv_row(TradeRead.model_validate(row)) for row in page)
                    yield buffer.getvalue()
                    started = True
                    buffer.seek(0)
                    buffer.truncate()
                    if len(page) < 1000:
                        break
                    before = page[-1].id
        except Exception as exc:
            if not started:
                raise
            # The status line and part of the file are already out, so this can no longer be a 503:
            # the file itself says it is incomplete instead of just stopping short.
            if is_database_outage(exc):
                log.warning("trades export cut short: database unavailable (%s)", outage_reason(exc))
                yield CSV_DATABASE_ERROR_LINE
            else:
                log.exception("trades export cut short")
                yield CSV_ERROR_LINE

    async def risk_of(self, trades: TradeRepository, *, risk: RiskRepository) -> RiskRead:
        settings = await risk.get()
        realised = await trades.realised_on(self.today())
        return risk_view(settings.daily_loss_limit if settings else None, realised)

    async def change_daily_loss_limit(
        self, risk: RiskRepository, *, limit: Decimal | None, by: SessionRecord
    ) -> None:
        """Set or clear the limit; a real change goes to the account's audit trail with both values."""
        now = self._clock.now()
        before = await risk.get()
        previous = before.daily_loss_limit if before else None
        await risk.set_limit(limit, now=now)
        if previous != limit:
            await audit.record(
                risk.db,
                broker_id=risk.broker_id,
                kind=AuditKind.RISK_LIMIT_CHANGED,
                at=now,
                actor=audit.Actor.of(by),
                detail={
                    "daily_loss_limit_from": None if previous is None else str(previous),
                    "daily_loss_limit_to": None if limit is None else str(limit),
                },
            )
        await risk.db.flush()
