"""What the API process builds once (``main.build_state``) and keeps on ``app.state.td``. Only the request
dependencies that hand out one member, and the app's metrics, read it whole; no service receives it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tradedesk.auth.cookies import SignInCookieTransport
from tradedesk.auth.limits import SignInLimiter
from tradedesk.auth.service import AuthService
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.config import Settings
from tradedesk.kit.clock import Clock
from tradedesk.kit.crypto import CredentialCipher
from tradedesk.redis import RedisClient
from tradedesk.sessions.cookies import SessionCookieTransport
from tradedesk.sessions.service import SessionService
from tradedesk.trading.service import TradingService

if TYPE_CHECKING:
    from tradedesk.metrics.instruments import AppMetrics


@dataclass(slots=True)
class ApiServices:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: RedisClient | None
    kite: KiteClient
    cipher: CredentialCipher
    sessions: SessionService
    cookies: SessionCookieTransport
    auth: AuthService
    sign_in_limiter: SignInLimiter
    sign_in_cookie: SignInCookieTransport
    trading: TradingService
    # Set once the app's metrics exist (they read these services at scrape time).
    metrics: AppMetrics | None = None
