"""Kite Connect's session API: exchange a request_token for an access_token, read the profile, log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query

from kitesim.dependencies import CurrentUser, Sim, check_kite_version
from kitesim.envelope import ERROR_RESPONSES, Envelope
from kitesim.errors import INVALID_API_KEY, TokenError
from kitesim.schemas import ProfileData, SessionData

router = APIRouter(tags=["session"], dependencies=[Depends(check_kite_version)], responses=ERROR_RESPONSES)

NonEmpty = Annotated[str, Form(min_length=1)]


@router.post("/session/token", summary="Exchange a request_token for an access_token")
async def create_session(
    sim: Sim, api_key: NonEmpty, request_token: NonEmpty, checksum: NonEmpty
) -> Envelope[SessionData]:
    app = sim.accounts.app_for(api_key)
    if app is None:
        raise TokenError(INVALID_API_KEY)
    now = sim.clock.now()
    redeemed = sim.sessions.redeem_request_token(
        app=app, request_token=request_token, checksum=checksum, now=now
    )
    token = sim.sessions.issue_access_token(api_key=app.api_key, user_id=redeemed.user_id, now=now)
    user = sim.accounts.user(redeemed.user_id)
    return Envelope(data=SessionData.of_token(user, token))


@router.delete("/session/token", summary="Invalidate an access_token")
async def delete_session(
    sim: Sim,
    api_key: Annotated[str, Query(min_length=1)],
    access_token: Annotated[str, Query(min_length=1)],
) -> Envelope[bool]:
    if sim.accounts.app_for(api_key) is None:
        raise TokenError(INVALID_API_KEY)
    sim.sessions.revoke_access_token(api_key=api_key, access_token=access_token)
    return Envelope(data=True)


@router.get("/user/profile", summary="The signed-in user's profile")
async def profile(user: CurrentUser) -> Envelope[ProfileData]:
    return Envelope(data=ProfileData.of(user))
