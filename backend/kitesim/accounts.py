"""Demo broker accounts: the API app tradedesk signs in with and the users DEMO01…DEMO05."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import SecretStr

from kitesim.config import KitesimSettings

DEMO_PASSWORD = "demo"  # noqa: S105 -- published demo credential, the same for every demo user

EXCHANGES = ("NSE", "NFO", "BFO", "CDS", "BSE", "MCX", "BCD", "MF")
PRODUCTS = ("CNC", "NRML", "MIS", "BO", "CO")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")


@dataclass(frozen=True, slots=True)
class DemoApp:
    """A Kite Connect app: what a developer registers to get an api_key."""

    api_key: str
    api_secret: SecretStr
    redirect_url: str


@dataclass(frozen=True, slots=True)
class DemoUser:
    user_id: str
    user_name: str
    user_shortname: str
    email: str
    starting_margin_inr: Decimal
    password: SecretStr = field(default=SecretStr(DEMO_PASSWORD), repr=False)
    user_type: str = "individual"


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("DEMO01", "Aarav Sharma", "Aarav", "aarav.sharma@example.com", Decimal("500000.00")),
    DemoUser("DEMO02", "Priya Venkataraman", "Priya", "priya.venkataraman@example.com", Decimal("250000.00")),
    DemoUser("DEMO03", "Rohan Mehta", "Rohan", "rohan.mehta@example.com", Decimal("1000000.00")),
    DemoUser("DEMO04", "Ananya Reddy", "Ananya", "ananya.reddy@example.com", Decimal("150000.00")),
    DemoUser("DEMO05", "Vikram Singh Rathore", "Vikram", "vikram.rathore@example.com", Decimal("750000.00")),
)


class AccountBook:
    """Registered apps by api_key and users by user_id."""

    def __init__(self, *, apps: list[DemoApp], users: list[DemoUser]) -> None:
        self.apps: dict[str, DemoApp] = {app.api_key: app for app in apps}
        self.users: dict[str, DemoUser] = {user.user_id: user for user in users}

    def add_user(self, user: DemoUser) -> bool:
        """Register a user; False (and nothing changes) when the user_id is taken."""
        if user.user_id in self.users:
            return False
        self.users[user.user_id] = user
        return True

    def add_app(self, app: DemoApp) -> None:
        self.apps[app.api_key] = app

    def app_for(self, api_key: str) -> DemoApp | None:
        return self.apps.get(api_key)

    def user(self, user_id: str) -> DemoUser:
        return self.users[user_id]

    def authenticate(self, *, user_id: str, password: str) -> DemoUser | None:
        # Kite user ids are upper case; people type them any way.
        user = self.users.get(user_id.strip().upper())
        if user is None:
            return None
        expected = user.password.get_secret_value().encode()
        if not hmac.compare_digest(expected, password.encode()):
            return None
        return user


def demo_accounts(settings: KitesimSettings) -> AccountBook:
    app = DemoApp(
        api_key=settings.api_key,
        api_secret=settings.api_secret,
        redirect_url=settings.redirect_url,
    )
    return AccountBook(apps=[app], users=list(DEMO_USERS))
