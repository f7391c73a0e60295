"""The parts of Kite Connect v3 payloads we read (unknown fields are ignored)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

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
    # An option that expires worthless settles at 0.
    average_price: Decimal = Field(ge=0)
    fill_timestamp: KiteTime


class KiteOrder(KiteModel):
    """The fields of ``GET /orders`` that round trips and agents need."""

    order_id: str
    order_type: str | None = None
    tag: str | None = None
    status: str | None = None
    status_message: str | None = None
    exchange: str | None = None
    tradingsymbol: str | None = None
    transaction_type: str | None = None
    product: str | None = None
    quantity: int = 0
    filled_quantity: int = 0
    pending_quantity: int = 0
    price: float = 0.0
    trigger_price: float = 0.0
    average_price: float = 0.0


class KiteOrderId(KiteModel):
    order_id: str = Field(min_length=1, max_length=64)


class KiteLtp(KiteModel):
    instrument_token: int
    last_price: float


class KiteInstrument(KiteModel):
    """A row of ``GET /instruments/{exchange}`` (CSV)."""

    instrument_token: int
    tradingsymbol: str
    name: str = ""
    expiry: date | None = None
    strike: float = 0.0
    tick_size: float = 0.05
    lot_size: int = 1
    instrument_type: str = ""
    segment: str = ""
    exchange: str

    @field_validator("expiry", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value


class KiteCandle(KiteModel):
    at: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int = 0


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
