"""The typed application state the lifespan owns; dependencies read it from ``app.state.td``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tradedesk.auth.pending import PendingSignInStore
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.config import Settings
from tradedesk.kit.clock import Clock
from tradedesk.kit.crypto import CredentialCipher
from tradedesk.kit.ratelimit import RateLimiter
from tradedesk.kit.signing import CookieSigner
from tradedesk.sessions.cookies import SessionCookieTransport
from tradedesk.sessions.service import SessionService

if TYPE_CHECKING:
    from tradedesk.metrics.instruments import AppMetrics


@dataclass(slots=True)
class AppState:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis | None
    sessions: SessionService
    pending_signins: PendingSignInStore
    kite: KiteClient
    cipher: CredentialCipher
    cookies: SessionCookieTransport
    signin_signer: CookieSigner
    rate_limiter: RateLimiter
    # Set once the app's metrics exist (they read this state at scrape time).
    metrics: AppMetrics | None = None
