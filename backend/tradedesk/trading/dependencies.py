"""The signed-in user's trading repositories, on the request's tenant-bound transaction."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tradedesk.sessions.dependencies import CurrentSession, TenantDb
from tradedesk.trading.repository import RiskRepository, TradeRepository


async def get_trade_repository(db: TenantDb, session: CurrentSession) -> TradeRepository:
    return TradeRepository(db, session.broker_id)


async def get_risk_repository(db: TenantDb, session: CurrentSession) -> RiskRepository:
    return RiskRepository(db, session.broker_id)


TradeRepo = Annotated[TradeRepository, Depends(get_trade_repository)]
RiskRepo = Annotated[RiskRepository, Depends(get_risk_repository)]
