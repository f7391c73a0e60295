"""create_app(): settings, typed state, middleware in order, routers, one error handler."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from tradedesk.agents.router import router as agents_router
from tradedesk.agents.services import build_agent_services
from tradedesk.audit.router import router as audit_router
from tradedesk.auth.cookies import SignInCookieTransport
from tradedesk.auth.limits import SignInLimiter
from tradedesk.auth.pending import RedisPendingSignIns, SqlPendingSignIns
from tradedesk.auth.router import router as auth_router
from tradedesk.auth.service import AuthService
from tradedesk.brokers.kite.client import KiteClient
from tradedesk.brokers.kite.simclock import KitesimClock
from tradedesk.config import Environment, Settings
from tradedesk.db import create_engine, create_sessionmaker
from tradedesk.docs import OPENAPI_URL, install_docs
from tradedesk.errors import install_error_handlers
from tradedesk.kit.clock import Clock, SystemClock
from tradedesk.kit.crypto import CredentialCipher
from tradedesk.kit.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tradedesk.kit.signing import CookieSigner
from tradedesk.metrics.agents import RuntimeMetrics
from tradedesk.metrics.exposition import MetricsListener, count_session_store_errors, metrics_router
from tradedesk.metrics.instruments import AppMetrics
from tradedesk.middleware import (
    ClientAddressMiddleware,
    RequestGuardMiddleware,
    ResponseHardeningMiddleware,
    origin_of,
)
from tradedesk.ops.router import router as ops_router
from tradedesk.redis import create_redis
from tradedesk.sessions.cookies import SessionCookieTransport
from tradedesk.sessions.record import SessionRecordCodec
from tradedesk.sessions.redis_store import RedisSessionStore
from tradedesk.sessions.service import SessionService
from tradedesk.sessions.sql_store import SqlSessionStore
from tradedesk.sessions.store import SessionStore
from tradedesk.state import ApiServices
from tradedesk.trading.router import router as trading_router
from tradedesk.trading.service import TradingService

# httpx logs full request URLs at INFO; Kite's logout URL carries the access token.
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def build_state(
    settings: Settings,
    *,
    clock: Clock | None = None,
    kite_transport: httpx.AsyncBaseTransport | None = None,
) -> ApiServices:
    clock = clock or SystemClock()
    engine = create_engine(settings.database_url, statement_cache=settings.database_statement_cache)
    sessionmaker = create_sessionmaker(engine)
    cipher = CredentialCipher(settings.effective_encryption_keys)
    redis = (
        create_redis(settings.redis_url, timeout_s=settings.redis_timeout_s) if settings.redis_url else None
    )
    keys = settings.effective_secret_keys
    codec = SessionRecordCodec(keys)
    store: SessionStore = (
        RedisSessionStore(
            redis, prefix=settings.redis_key_prefix, codec=codec, timeout_s=settings.redis_timeout_s
        )
        if redis
        else SqlSessionStore(sessionmaker, codec=codec)
    )
    sessions = SessionService(store=store, settings=settings, clock=clock, cipher=cipher)
    kite = KiteClient(
        base_url=settings.kite_api_url, timeout_s=settings.kite_timeout_s, transport=kite_transport
    )
    return ApiServices(
        settings=settings,
        clock=clock,
        engine=engine,
        sessionmaker=sessionmaker,
        redis=redis,
        kite=kite,
        cipher=cipher,
        sessions=sessions,
        cookies=SessionCookieTransport(settings, device_signer=CookieSigner(keys, salt="tradedesk.device")),
        auth=AuthService(
            sessions=sessions,
            sessionmaker=sessionmaker,
            pending_signins=RedisPendingSignIns(redis, prefix=settings.redis_key_prefix)
            if redis
            else SqlPendingSignIns(sessionmaker),
            kite=kite,
            cipher=cipher,
            clock=clock,
            kite_login_url=settings.kite_login_url,
            pending_signin_ttl_s=settings.pending_signin_ttl_s,
            pending_signin_max=settings.pending_signin_max,
        ),
        sign_in_limiter=SignInLimiter(
            RedisRateLimiter(redis, prefix=settings.redis_key_prefix) if redis else MemoryRateLimiter(),
            per_address_limit=settings.signin_rate_limit,
            per_key_limit=settings.signin_rate_limit_per_key,
            window_s=settings.signin_rate_window_s,
        ),
        sign_in_cookie=SignInCookieTransport(settings, signer=CookieSigner(keys, salt="tradedesk.signin")),
        trading=TradingService(kite=kite, cipher=cipher, sessionmaker=sessionmaker, clock=clock),
    )


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    kite_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or Settings()
    sim_clock = (
        KitesimClock(settings.kite_api_url, transport=kite_transport)
        if clock is None and settings.clock == "kitesim"
        else None
    )
    state = build_state(settings, clock=clock or sim_clock, kite_transport=kite_transport)
    metrics = state.metrics = AppMetrics(state)
    metrics_listener = MetricsListener(metrics, port=settings.metrics_port, host=settings.metrics_host)
    agents = build_agent_services(
        settings,
        sessionmaker=state.sessionmaker,
        redis=state.redis,
        kite=state.kite,
        cipher=state.cipher,
        clock=state.clock,
        with_runtime=settings.agent_runtime == "on",
    )
    if agents.runtime is not None:
        RuntimeMetrics(metrics.registry, agents.runtime, clock=state.clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything built so far lives as long as the process: keep it out of the collector's full
        # passes, which otherwise walk it every time and show up as 30-50 ms pauses under load.
        if sim_clock is not None:
            await sim_clock.start()
        await metrics_listener.start()
        gc.freeze()
        agents.start()
        try:
            yield
        finally:
            await agents.close()
            if sim_clock is not None:
                await sim_clock.aclose()
            gc.unfreeze()
            await metrics_listener.stop()
            await state.kite.aclose()
            await state.sessions.store.close()
            await state.engine.dispose()

    production = settings.env is Environment.PRODUCTION
    app = FastAPI(
        title="tradedesk",
        version="0.1.0",
        summary="Multi-user dashboard and strategy agents for Zerodha Kite Connect traders.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL if settings.docs_on else None,
        # A trailing-slash redirect would be built from the client's Host header; /api has none.
        redirect_slashes=False,
        separate_input_output_schemas=False,
        # Off unless asked for: with no provider configured it still probes the environment per request.
        telemetry=None if settings.otel_enabled else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.td = state
    app.state.agents = agents
    install_error_handlers(app)
    count_session_store_errors(app, metrics)
    install_docs(app, settings)
    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(audit_router)
    app.include_router(trading_router)
    app.include_router(agents_router)
    app.include_router(metrics_router(metrics, token=settings.metrics_token))

    # Added innermost first: CORS ends up outermost so every answer, errors included, carries its headers.
    # The API's own origin may make changes only while it serves the docs page that would send them.
    unsafe_origins = [
        *settings.cors_origins,
        *([origin_of(settings.api_public_url)] if settings.docs_on else []),
    ]
    app.add_middleware(
        RequestGuardMiddleware,
        allowed_origins=[o for o in unsafe_origins if o],
        allowed_hosts=settings.effective_allowed_hosts,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        session_cookie=state.cookies.name,
        cookie_is_signed=lambda value: state.sessions.key_hash_of_cookie(value) is not None,
    )
    app.add_middleware(
        ResponseHardeningMiddleware,
        hsts=production or settings.cookie_secure,
        access_log=settings.access_log,
        observe=metrics.observe_request,
    )
    if settings.trusted_proxies:
        app.add_middleware(ClientAddressMiddleware, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Content-Type", "X-CSRF-Token"],
        # The CSV export names its file in Content-Disposition; cross-origin scripts see only exposed headers.
        expose_headers=["Retry-After", "Content-Disposition"],
        max_age=600,
    )
    return app
