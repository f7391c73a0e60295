"""Controls for tests and demos, only on the simulator: read and move the sim clock, add users."""

from __future__ import annotations

from fastapi import APIRouter

from kitesim.accounts import DemoUser
from kitesim.dependencies import Sim
from kitesim.envelope import ERROR_RESPONSES
from kitesim.errors import ConflictError
from kitesim.schemas import ClockRead, ClockUpdate, CreatedUser, NewUser

router = APIRouter(prefix="/sim", tags=["sim"], responses=ERROR_RESPONSES)


@router.get("/clock", summary="The simulated time and speed")
async def read_clock(sim: Sim) -> ClockRead:
    return ClockRead.of(sim.clock)


@router.post("/clock", summary="Jump, advance or change the speed of the simulated clock")
async def update_clock(sim: Sim, update: ClockUpdate) -> ClockRead:
    if update.set_to is not None:
        sim.clock.set_to(update.set_to)
    if update.advance_s is not None:
        sim.clock.advance(update.advance_s)
    if update.speed is not None:
        sim.clock.set_speed(update.speed)
    return ClockRead.of(sim.clock)


@router.post("/users", status_code=201, summary="Add a broker account (409 when the user_id is taken)")
async def create_user(sim: Sim, new: NewUser) -> CreatedUser:
    user = DemoUser(
        user_id=new.user_id.upper(),
        user_name=new.user_name,
        user_shortname=new.user_name.split()[0],
        email=new.email,
        starting_margin_inr=new.starting_margin_inr,
        password=new.password,
    )
    if not sim.accounts.add_user(user):
        raise ConflictError(f"User `{user.user_id}` already exists.")
    return CreatedUser.of(user)
