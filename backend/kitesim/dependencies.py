"""FastAPI dependencies: the simulator state, the ``X-Kite-Version`` check, the caller behind a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader

from kitesim.accounts import DemoUser
from kitesim.errors import INVALID_ACCESS_TOKEN, UNSUPPORTED_KITE_VERSION, InputError, TokenError
from kitesim.sessions import AccessToken
from kitesim.state import SimState


def get_sim(request: Request) -> SimState:
    sim = request.app.state.sim
    if not isinstance(sim, SimState):
        raise RuntimeError("app.state.sim is not set up; build the app with kitesim.app.create_app")
    return sim


Sim = Annotated[SimState, Depends(get_sim)]


async def check_kite_version(
    x_kite_version: Annotated[
        str | None, Header(description="Kite Connect API version; 3 when given")
    ] = None,
) -> None:
    # Old clients send no header at all; a different version would mean a different wire format.
    if x_kite_version is not None and x_kite_version.strip() != "3":
        raise InputError(UNSUPPORTED_KITE_VERSION)


_authorization = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    description="`token {api_key}:{access_token}`",
)


def parse_authorization(value: str | None) -> tuple[str, str] | None:
    """``token api_key:access_token`` → (api_key, access_token), or None when it is not that shape."""
    if not value:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "token":
        return None
    api_key, sep, access_token = credentials.strip().partition(":")
    if not sep or not api_key or not access_token:
        return None
    return api_key, access_token


async def get_access_token(
    sim: Sim, authorization: Annotated[str | None, Depends(_authorization)]
) -> AccessToken:
    parsed = parse_authorization(authorization)
    if parsed is None:
        raise TokenError(INVALID_ACCESS_TOKEN)
    api_key, access_token = parsed
    return sim.sessions.resolve_access_token(api_key=api_key, access_token=access_token, now=sim.clock.now())


CurrentAccess = Annotated[AccessToken, Depends(get_access_token)]


async def get_current_user(sim: Sim, access: CurrentAccess) -> DemoUser:
    return sim.accounts.user(access.user_id)


CurrentUser = Annotated[DemoUser, Depends(get_current_user)]
