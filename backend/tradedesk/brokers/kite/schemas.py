"""The parts of Kite Connect v3 payloads we read (unknown fields are ignored)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tradedesk.kit.clock import IST


class KiteModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class KiteProfile(KiteModel):
    user_id: str
    user_name: str
    user_shortname: str | None = None
    email: str | None = None
    user_type: str | None = None
    broker: str | None = None


class KiteSession(KiteProfile):
    api_key: str
    access_token: str
    login_time: str | None = None


def parse_kite_time(value: object) -> datetime:
    """Kite's "YYYY-MM-DD HH:MM:SS" is Indian time without a zone; we keep aware UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    else:
        raise ValueError("expected a Kite timestamp")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=IST)
    return moment.astimezone(UTC)


KiteTime = Annotated[datetime, BeforeValidator(parse_kite_time)]


class KiteTrade(KiteModel):
    """One execution from ``GET /trades``."""

    trade_id: str = Field(min_length=1, max_length=64)
    order_id: str = Field(min_length=1, max_length=64)
    exchange: str = Field(min_length=1, max_length=8)
    tradingsymbol: str = Field(min_length=1, max_length=64)
    instrument_token: int
    product: str = Field(min_length=1, max_length=8)
    transaction_type: Literal["BUY", "SELL"]
    quantity: int = Field(gt=0)
    average_price: Decimal = Field(gt=0)
    fill_timestamp: KiteTime


class KiteOrder(KiteModel):
    """The fields of ``GET /orders`` that round trips need: how an order was placed and by whom."""

    order_id: str
    order_type: str | None = None
    tag: str | None = None
    status: str | None = None


class KitePosition(KiteModel):
    tradingsymbol: str
    exchange: str
    instrument_token: int
    product: str
    quantity: int
    average_price: Decimal
    last_price: Decimal
    pnl: Decimal
    realised: Decimal = Decimal(0)
    unrealised: Decimal = Decimal(0)
    m2m: Decimal = Decimal(0)


class KitePositions(KiteModel):
    net: list[KitePosition]
    day: list[KitePosition] = Field(default_factory=list)
