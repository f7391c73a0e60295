"""What a strategy's unit tests hand it as the broker's view of an order, built from the intent itself."""

from __future__ import annotations

from tradedesk.agents.strategies.base import OrderStatus, OrderView, PlaceOrder


def broker_view(
    intent: PlaceOrder,
    *,
    status: OrderStatus = "COMPLETE",
    average_price: float = 0.0,
    filled: int | None = None,
    message: str | None = None,
) -> OrderView:
    if filled is None:
        filled = intent.quantity if status == "COMPLETE" else 0
    return OrderView(
        intent_id=intent.intent_id,
        order_id=f"order-{intent.intent_id}",
        status=status,
        transaction_type=intent.transaction_type,
        order_type=intent.order_type,
        tradingsymbol=intent.tradingsymbol,
        exchange=intent.exchange,
        quantity=intent.quantity,
        filled_quantity=filled,
        average_price=average_price,
        price=intent.price,
        trigger_price=intent.trigger_price,
        status_message=message,
    )
