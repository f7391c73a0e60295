"""SQL over one broker's fills, round trips and risk settings. Every statement starts from the tenant filter;
P&L and stats are computed in the database over IST trading days."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tradedesk.kit.calendar import Periods
from tradedesk.kit.repository import BrokerScopedRepository
from tradedesk.models import Fill, RiskSettings, Trade

InstrumentKey = tuple[str, str, str]  # exchange, tradingsymbol, product


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """Which round trips a page, its summary, its filter choices and the CSV export are about."""

    from_day: date | None = None
    to_day: date | None = None
    symbol: str | None = None
    strategy: str | None = None
    exit_reason: str | None = None
    status: str | None = None


def _is_instrument(model: type[Fill] | type[Trade], key: InstrumentKey) -> Any:
    exchange, symbol, product = key
    return and_(model.exchange == exchange, model.tradingsymbol == symbol, model.product == product)


class FillRepository(BrokerScopedRepository[Fill]):
    model = Fill

    async def insert_new(self, rows: Sequence[dict[str, Any]]) -> list[Fill]:
        """Store the fills not seen before (unique broker_id + trade_id) and return just those."""
        if not rows:
            return []
        dialect = self.db.get_bind().dialect.name
        insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert_fn(Fill)
            .values([{**row, "broker_id": self.broker_id} for row in rows])
            .on_conflict_do_nothing(index_elements=["broker_id", "trade_id"])
            .returning(Fill)
        )
        return list((await self.db.scalars(statement)).all())

    async def latest_before(self, key: InstrumentKey, *, excluding: set[int]) -> datetime | None:
        statement = select(func.max(Fill.filled_at)).where(
            Fill.broker_id == self.broker_id, _is_instrument(Fill, key)
        )
        if excluding:
            statement = statement.where(Fill.id.not_in(excluding))
        found: datetime | None = await self.db.scalar(statement)
        return found

    async def all_for(self, key: InstrumentKey) -> list[Fill]:
        statement = self.base_select().where(_is_instrument(Fill, key))
        return list((await self.db.scalars(statement.order_by(Fill.filled_at, Fill.trade_id))).all())


class TradeRepository(BrokerScopedRepository[Trade]):
    model = Trade

    def _filtered(self, where: TradeFilter) -> Select[Trade]:
        statement = self.base_select()
        if where.from_day is not None:
            statement = statement.where(Trade.day >= where.from_day)
        if where.to_day is not None:
            statement = statement.where(Trade.day <= where.to_day)
        if where.symbol is not None:
            statement = statement.where(Trade.tradingsymbol == where.symbol)
        if where.strategy is not None:
            statement = statement.where(Trade.strategy == where.strategy)
        if where.exit_reason is not None:
            statement = statement.where(Trade.exit_reason == where.exit_reason)
        if where.status is not None:
            statement = statement.where(Trade.status == where.status)
        return statement

    async def page(self, where: TradeFilter, *, before_id: int | None, limit: int) -> list[Trade]:
        """Newest first by id: rows recorded later only ever appear before the first page."""
        statement = self._filtered(where)
        if before_id is not None:
            statement = statement.where(Trade.id < before_id)
        statement = statement.order_by(Trade.id.desc()).limit(limit)
        return list((await self.db.scalars(statement)).all())

    async def summary(self, where: TradeFilter) -> dict[str, Any]:
        """Totals of the closed trades that match: count, wins, losses, gross profit and loss, net."""
        matching = self._filtered(replace(where, status="closed")).subquery()
        pnl = matching.c.realised_pnl
        statement = select(
            func.count().label("count"),
            func.count(case((pnl > 0, 1))).label("wins"),
            func.count(case((pnl < 0, 1))).label("losses"),
            func.coalesce(func.sum(case((pnl > 0, pnl))), 0).label("gross_profit"),
            func.coalesce(func.sum(case((pnl < 0, pnl))), 0).label("gross_loss"),
            func.coalesce(func.sum(pnl), 0).label("net"),
        )
        return dict((await self.db.execute(statement)).one()._mapping)

    async def distinct_values(self, where: TradeFilter) -> dict[str, list[str]]:
        """What the filters can be set to: the symbols, strategies and exit reasons of matching trades."""
        matching = self._filtered(where).subquery()
        values: dict[str, list[str]] = {}
        for name in ("tradingsymbol", "strategy", "exit_reason"):
            column = matching.c[name]
            statement = select(column).where(column.is_not(None)).distinct().order_by(column).limit(500)
            values[name] = [str(value) for value in (await self.db.scalars(statement)).all()]
        return values

    async def has_symbol(self, symbol: str) -> bool:
        statement = select(Trade.id).where(Trade.broker_id == self.broker_id, Trade.tradingsymbol == symbol)
        return await self.db.scalar(statement.limit(1)) is not None

    async def open_lots(self, key: InstrumentKey) -> list[Trade]:
        statement = self.base_select().where(_is_instrument(Trade, key), Trade.status == "open")
        return list((await self.db.scalars(statement.order_by(Trade.entry_at, Trade.id))).all())

    async def count_closed(self, key: InstrumentKey) -> int:
        statement = select(func.count()).where(
            Trade.broker_id == self.broker_id, _is_instrument(Trade, key), Trade.status == "closed"
        )
        return int(await self.db.scalar(statement) or 0)

    async def delete_instrument(self, key: InstrumentKey) -> None:
        await self.db.execute(
            delete(Trade).where(Trade.broker_id == self.broker_id, _is_instrument(Trade, key))
        )

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.db.execute(insert(Trade), [{**row, "broker_id": self.broker_id} for row in rows])

    async def delete_ids(self, ids: Sequence[int]) -> None:
        if ids:
            await self.db.execute(delete(Trade).where(Trade.broker_id == self.broker_id, Trade.id.in_(ids)))

    async def set_quantity(self, trade_id: int, quantity: int) -> None:
        await self.db.execute(
            update(Trade)
            .where(Trade.broker_id == self.broker_id, Trade.id == trade_id)
            .values(quantity=quantity)
        )

    def _closed(self) -> Any:
        # A constant, not a bound parameter: a reused prepared plan can then still use the partial index.
        return and_(Trade.broker_id == self.broker_id, Trade.status == literal_column("'closed'"))

    async def pnl_summary(self, periods: Periods) -> dict[str, Decimal]:
        def since(start: date) -> Any:
            return func.coalesce(func.sum(case((Trade.day >= start, Trade.realised_pnl))), 0)

        statement = select(
            since(periods.day).label("day"),
            since(periods.week).label("week"),
            since(periods.month).label("month"),
            since(periods.year).label("year"),
            func.coalesce(func.sum(Trade.realised_pnl), 0).label("all_time"),
        ).where(self._closed(), Trade.day <= periods.day)
        row = (await self.db.execute(statement)).one()
        return {key: Decimal(row._mapping[key]) for key in ("day", "week", "month", "year", "all_time")}

    async def realised_on(self, day: date) -> Decimal:
        statement = select(func.coalesce(func.sum(Trade.realised_pnl), 0)).where(
            self._closed(), Trade.day == day
        )
        return Decimal(await self.db.scalar(statement) or 0)

    async def daily_net(self, from_day: date, to_day: date) -> list[tuple[date, Decimal, Decimal]]:
        """(day, net, cumulative since from_day), summed in SQL with a window function."""
        per_day = (
            select(Trade.day.label("day"), func.sum(Trade.realised_pnl).label("net"))
            .where(self._closed(), Trade.day.between(from_day, to_day))
            .group_by(Trade.day)
            .subquery()
        )
        statement = select(
            per_day.c.day,
            per_day.c.net,
            func.sum(per_day.c.net).over(order_by=per_day.c.day).label("cumulative"),
        ).order_by(per_day.c.day)
        return [
            (row.day, Decimal(row.net), Decimal(row.cumulative)) for row in await self.db.execute(statement)
        ]

    async def daily_stats(self, from_day: date, to_day: date) -> list[dict[str, Any]]:
        """Per IST day: counts, gross profit/loss, net and the largest fall of the running realised P&L
        (from the day's high-water mark, starting at 0), all in one SQL pass."""
        order = (Trade.exit_at, Trade.id)
        ordered = (
            select(
                Trade.day.label("day"),
                Trade.realised_pnl.label("pnl"),
                func.sum(Trade.realised_pnl)
                .over(partition_by=Trade.day, order_by=order, rows=(None, 0))
                .label("running"),
                Trade.exit_at.label("exit_at"),
                Trade.id.label("id"),
            )
            .where(self._closed(), Trade.day.between(from_day, to_day))
            .subquery()
        )
        high = func.max(ordered.c.running).over(
            partition_by=ordered.c.day, order_by=(ordered.c.exit_at, ordered.c.id), rows=(None, 0)
        )
        with_peak = select(
            ordered.c.day,
            ordered.c.pnl,
            ordered.c.running,
            case((high > 0, high), else_=0).label("peak"),
        ).subquery()
        pnl = with_peak.c.pnl
        statement = (
            select(
                with_peak.c.day,
                func.count().label("trades"),
                func.count(case((pnl > 0, 1))).label("wins"),
                func.count(case((pnl < 0, 1))).label("losses"),
                func.coalesce(func.sum(case((pnl > 0, pnl))), 0).label("gross_profit"),
                func.coalesce(func.sum(case((pnl < 0, pnl))), 0).label("gross_loss"),
                func.sum(pnl).label("net"),
                func.max(with_peak.c.peak - with_peak.c.running).label("max_drawdown"),
            )
            .group_by(with_peak.c.day)
            .order_by(with_peak.c.day)
        )
        return [dict(row._mapping) for row in await self.db.execute(statement)]


class RiskRepository(BrokerScopedRepository[RiskSettings]):
    model = RiskSettings

    async def get(self) -> RiskSettings | None:
        # Fresh from the row even when an earlier read of this transaction is still in the identity map:
        # set_limit writes with an upsert that bypasses the ORM.
        found: RiskSettings | None = await self.db.scalar(
            self.base_select().execution_options(populate_existing=True)
        )
        return found

    async def set_limit(self, limit: Decimal | None, *, now: datetime) -> None:
        await self.upsert({"daily_loss_limit": limit, "updated_at": now})
