"""The signed-in user's orders (place, modify, cancel, read), trades, positions and margins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form

from kitesim.accounts import DemoUser
from kitesim.book import MarginCheck
from kitesim.dependencies import CurrentUser, Sim, check_kite_version
from kitesim.envelope import ERROR_RESPONSES, Envelope
from kitesim.errors import InputError
from kitesim.orders import Order, OrderRequest, validate_modification, validate_order
from kitesim.portfolio import margins, positions, required_margin, today
from kitesim.state import SimState

router = APIRouter(tags=["orders"], dependencies=[Depends(check_kite_version)], responses=ERROR_RESPONSES)

SEGMENTS = ("equity", "commodity")


def _margin_check(sim: SimState, user: DemoUser) -> MarginCheck:
    def check(request: OrderRequest, price: float, replacing: Order | None) -> str | None:
        now = sim.clock.now()
        account = sim.orders.account(user.user_id)
        needed = required_margin(sim.market, account, request, price, now=now)
        if needed <= 0:
            return None
        every = margins(sim.market, account, user.starting_margin_inr, now=now, leaving_out=replacing)
        available: float = every["equity"]["net"]
        if needed <= available:
            return None
        return (
            f"Insufficient funds. Required margin is {needed:.2f} but available margin is {available:.2f}. "
            "Check the orderbook for open orders."
        )

    return check


def _regular(variety: str) -> None:
    if variety != "regular":
        raise InputError("Invalid `variety`: only regular orders are accepted.")


def _synced(sim: SimState, user: DemoUser) -> None:
    sim.orders.sync(user.user_id, sim.clock.now())


@router.post("/orders/{variety}", summary="Place an order")
async def place_order(
    sim: Sim,
    user: CurrentUser,
    variety: str,
    tradingsymbol: Annotated[str, Form()] = "",
    exchange: Annotated[str, Form()] = "",
    transaction_type: Annotated[str, Form()] = "",
    order_type: Annotated[str, Form()] = "",
    quantity: Annotated[str, Form()] = "",
    product: Annotated[str, Form()] = "",
    price: Annotated[str, Form()] = "0",
    trigger_price: Annotated[str, Form()] = "0",
    validity: Annotated[str, Form()] = "DAY",
    tag: Annotated[str | None, Form()] = None,
) -> Envelope[dict[str, str]]:
    _regular(variety)
    for name, value in (
        ("tradingsymbol", tradingsymbol),
        ("exchange", exchange),
        ("transaction_type", transaction_type),
        ("order_type", order_type),
        ("quantity", quantity),
        ("product", product),
    ):
        if not value.strip():
            raise InputError(f"Missing `{name}`.")
    now = sim.clock.now()
    request = validate_order(
        sim.instruments,
        sim.market,
        now=now,
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        transaction_type=transaction_type,
        order_type=order_type,
        quantity=quantity,
        product=product,
        price=price,
        trigger_price=trigger_price,
        validity=validity,
        tag=tag,
    )
    order = sim.orders.place(user.user_id, request, now=now, margin_check=_margin_check(sim, user))
    return Envelope(data={"order_id": order.order_id})


@router.put("/orders/{variety}/{order_id}", summary="Modify an open order")
async def modify_order(
    sim: Sim,
    user: CurrentUser,
    variety: str,
    order_id: str,
    quantity: Annotated[str | None, Form()] = None,
    price: Annotated[str | None, Form()] = None,
    trigger_price: Annotated[str | None, Form()] = None,
    order_type: Annotated[str | None, Form()] = None,
    validity: Annotated[str | None, Form()] = None,
) -> Envelope[dict[str, str]]:
    _regular(variety)
    now = sim.clock.now()
    order = sim.orders.modifiable(user.user_id, order_id, now=now)
    request = validate_modification(
        order,
        sim.market,
        now=now,
        quantity=quantity,
        price=price,
        trigger_price=trigger_price,
        order_type=order_type,
        validity=validity,
    )
    sim.orders.modify(order, request, now=now, margin_check=_margin_check(sim, user))
    return Envelope(data={"order_id": order.order_id})


@router.delete("/orders/{variety}/{order_id}", summary="Cancel an open order")
async def cancel_order(sim: Sim, user: CurrentUser, variety: str, order_id: str) -> Envelope[dict[str, str]]:
    _regular(variety)
    order = sim.orders.cancel(user.user_id, order_id, now=sim.clock.now())
    return Envelope(data={"order_id": order.order_id})


@router.get("/orders", summary="Today's orders")
async def list_orders(sim: Sim, user: CurrentUser) -> Envelope[list[dict[str, Any]]]:
    _synced(sim, user)
    day = today(sim.clock.now())
    return Envelope(data=[order.as_dict() for order in sim.orders.orders_of_day(user.user_id, day)])


@router.get("/orders/{order_id}", summary="An order's history, oldest state first")
async def order_history(sim: Sim, user: CurrentUser, order_id: str) -> Envelope[list[dict[str, Any]]]:
    _synced(sim, user)
    return Envelope(data=list(sim.orders.get(user.user_id, order_id).history))


@router.get("/orders/{order_id}/trades", summary="The fills of one order")
async def order_trades(sim: Sim, user: CurrentUser, order_id: str) -> Envelope[list[dict[str, Any]]]:
    _synced(sim, user)
    return Envelope(data=[fill.as_dict() for fill in sim.orders.fills_of_order(user.user_id, order_id)])


@router.get("/trades", summary="Today's fills")
async def list_trades(sim: Sim, user: CurrentUser) -> Envelope[list[dict[str, Any]]]:
    _synced(sim, user)
    day = today(sim.clock.now())
    return Envelope(data=[fill.as_dict() for fill in sim.orders.fills_of_day(user.user_id, day)])


@router.get("/portfolio/positions", summary="Net and day positions")
async def list_positions(sim: Sim, user: CurrentUser) -> Envelope[dict[str, list[dict[str, Any]]]]:
    _synced(sim, user)
    now = sim.clock.now()
    return Envelope(data=positions(sim.market, sim.orders.account(user.user_id), now=now))


@router.get("/user/margins", summary="Funds and margins of every segment")
async def all_margins(sim: Sim, user: CurrentUser) -> Envelope[dict[str, Any]]:
    _synced(sim, user)
    now = sim.clock.now()
    return Envelope(
        data=margins(sim.market, sim.orders.account(user.user_id), user.starting_margin_inr, now=now)
    )


@router.get("/user/margins/{segment}", summary="Funds and margins of one segment")
async def segment_margins(sim: Sim, user: CurrentUser, segment: str) -> Envelope[dict[str, Any]]:
    if segment not in SEGMENTS:
        raise InputError(f"Invalid `segment`: expected one of {', '.join(SEGMENTS)}.")
    _synced(sim, user)
    now = sim.clock.now()
    every = margins(sim.market, sim.orders.account(user.user_id), user.starting_margin_inr, now=now)
    segment_data: dict[str, Any] = every[segment]
    return Envelope(data=segment_data)
