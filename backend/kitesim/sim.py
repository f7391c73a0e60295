"""Controls for tests and demos, only on the simulator: read and move the sim clock."""

from __future__ import annotations

from fastapi import APIRouter

from kitesim.dependencies import Sim
from kitesim.envelope import ERROR_RESPONSES
from kitesim.schemas import ClockRead, ClockUpdate

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
