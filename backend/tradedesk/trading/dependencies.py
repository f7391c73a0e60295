"""The signed-in user's trading repositories, on the request's tenant-bound transaction; the trading
service and the IST day it is now."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, Request

from tradedesk.deps import api_services
from tradedesk.sessions.dependencies import CurrentSession, TenantDb
from tradedesk.trading.repository import RiskRepository, TradeRepository
from tradedesk.trading.service import TradingService


async def get_trade_repository(db: TenantDb, session: CurrentSession) -> TradeRepository:
    return TradeRepository(db, session.broker_id)


async def get_risk_repository(db: TenantDb, session: CurrentSession) -> RiskRepository:
    return RiskRepository(db, session.broker_id)


async def get_trading_service(request: Request) -> TradingService:
    return api_services(request).trading


Trading = Annotated[TradingService, Depends(get_trading_service)]


async def get_today(trading: Trading) -> date:
    return trading.today()


TradeRepo = Annotated[TradeRepository, Depends(get_trade_repository)]
RiskRepo = Annotated[RiskRepository, Depends(get_risk_repository)]
Today = Annotated[date, Depends(get_today)]
