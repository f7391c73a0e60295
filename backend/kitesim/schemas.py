"""Response and request bodies of the Kite Connect endpoints kitesim serves, and of its ``/sim`` controls."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kitesim.accounts import EXCHANGES, ORDER_TYPES, PRODUCTS, DemoUser
from kitesim.clock import IST, SimClock, format_ist
from kitesim.config import MAX_SPEED
from kitesim.sessions import AccessToken

# A year of simulated time is plenty for any demo, and keeps datetime arithmetic far from its limits.
MAX_ADVANCE_S = 366 * 24 * 3600
EARLIEST_SIM_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_SIM_TIME = datetime(2100, 1, 1, tzinfo=UTC)


class ProfileData(BaseModel):
    user_id: str
    user_type: str
    email: str
    user_name: str
    user_shortname: str
    broker: str = "ZERODHA"
    exchanges: list[str]
    products: list[str]
    order_types: list[str]
    avatar_url: str | None = None
    meta: dict[str, str]

    @classmethod
    def of(cls, user: DemoUser) -> ProfileData:
        return cls(
            user_id=user.user_id,
            user_type=user.user_type,
            email=user.email,
            user_name=user.user_name,
            user_shortname=user.user_shortname,
            exchanges=list(EXCHANGES),
            products=list(PRODUCTS),
            order_types=list(ORDER_TYPES),
            meta={"demat_consent": "physical"},
        )


class SessionData(ProfileData):
    api_key: str
    access_token: str
    public_token: str
    refresh_token: str = ""
    enctoken: str
    silo: str = ""
    login_time: str = Field(description="IST, `YYYY-MM-DD HH:MM:SS`")

    @classmethod
    def of_token(cls, user: DemoUser, token: AccessToken) -> SessionData:
        return cls(
            **ProfileData.of(user).model_dump(),
            api_key=token.api_key,
            access_token=token.access_token,
            public_token=token.public_token,
            enctoken=token.enctoken,
            login_time=format_ist(token.issued_at),
        )


class ClockRead(BaseModel):
    now: datetime = Field(description="UTC")
    now_ist: datetime = Field(description="the same instant at +05:30")
    speed: float

    @classmethod
    def of(cls, clock: SimClock) -> ClockRead:
        now = clock.now()
        return cls(now=now, now_ist=now.astimezone(IST), speed=clock.speed)


class ClockUpdate(BaseModel):
    """Applied in order: ``set_to``, then ``advance_s``, then ``speed``."""

    model_config = ConfigDict(extra="forbid")

    advance_s: float | None = Field(default=None, ge=0, le=MAX_ADVANCE_S, allow_inf_nan=False)
    set_to: AwareDatetime | None = None
    speed: float | None = Field(default=None, gt=0, le=MAX_SPEED, allow_inf_nan=False)

    @field_validator("set_to")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        if value is not None and not EARLIEST_SIM_TIME <= value < LATEST_SIM_TIME:
            raise ValueError("must fall between 2000-01-01 and 2100-01-01")
        return value

    @model_validator(mode="after")
    def _something_to_do(self) -> ClockUpdate:
        if self.advance_s is None and self.set_to is None and self.speed is None:
            raise ValueError("give at least one of `advance_s`, `set_to`, `speed`")
        return self


class NewUser(BaseModel):
    """A broker account to add for a test or a demo (kitesim only)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=r"^[A-Za-z0-9]{2,16}$", description="stored upper case, like Kite ids")
    user_name: str = Field(min_length=1, max_length=100)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)
    password: SecretStr
    starting_margin_inr: Decimal = Field(default=Decimal("500000.00"), ge=0, le=10**12, decimal_places=2)

    @field_validator("user_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("password")
    @classmethod
    def _usable_password(cls, value: SecretStr) -> SecretStr:
        if not 0 < len(value.get_secret_value()) <= 200:
            raise ValueError("must be 1 to 200 characters")
        return value


class CreatedUser(BaseModel):
    user_id: str
    user_name: str
    user_shortname: str
    email: str
    starting_margin_inr: Decimal

    @classmethod
    def of(cls, user: DemoUser) -> CreatedUser:
        return cls(
            user_id=user.user_id,
            user_name=user.user_name,
            user_shortname=user.user_shortname,
            email=user.email,
            starting_margin_inr=user.starting_margin_inr,
        )
