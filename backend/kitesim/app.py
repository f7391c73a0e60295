"""Builds the kitesim FastAPI app: state on ``app.state.sim``, Kite-style error envelopes, the routers."""

from __future__ import annotations

from fastapi import FastAPI

from kitesim import auth, login, quotes, sim, trading
from kitesim.config import KitesimSettings
from kitesim.envelope import install_error_handlers
from kitesim.state import SimState


def create_app(settings: KitesimSettings | None = None) -> FastAPI:
    settings = settings or KitesimSettings()
    app = FastAPI(
        title="kitesim",
        summary="A Kite Connect v3 simulator: sign-in, a simulated clock and market, orders, positions.",
        version="0.1.0",
    )
    app.state.sim = SimState.from_settings(settings)
    install_error_handlers(app)
    app.include_router(login.router)
    app.include_router(auth.router)
    app.include_router(quotes.router)
    app.include_router(trading.router)
    app.include_router(sim.router)
    return app
