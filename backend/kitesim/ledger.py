"""The average-cost book of one position: quantity, average price, realised P&L, buy and sell totals."""

from __future__ import annotations

from dataclasses import dataclass

PositionKey = tuple[str, str, str]  # exchange, tradingsymbol, product


@dataclass(slots=True)
class Ledger:
    """A fill that reduces the position realises (fill price - average price) on the closed quantity."""

    quantity: int = 0
    average_price: float = 0.0
    realised: float = 0.0
    buy_quantity: int = 0
    buy_value: float = 0.0
    sell_quantity: int = 0
    sell_value: float = 0.0

    def add(self, signed_quantity: int, price: float) -> None:
        if signed_quantity > 0:
            self.buy_quantity += signed_quantity
            self.buy_value += signed_quantity * price
        else:
            self.sell_quantity -= signed_quantity
            self.sell_value -= signed_quantity * price
        if self.quantity == 0 or (self.quantity > 0) == (signed_quantity > 0):
            total = abs(self.quantity) + abs(signed_quantity)
            self.average_price = (
                self.average_price * abs(self.quantity) + price * abs(signed_quantity)
            ) / total
            self.quantity += signed_quantity
            return
        closing = min(abs(signed_quantity), abs(self.quantity))
        direction = 1 if self.quantity > 0 else -1
        self.realised += closing * (price - self.average_price) * direction
        self.quantity += signed_quantity
        if self.quantity == 0:
            self.average_price = 0.0
        elif (self.quantity > 0) != (direction > 0):
            self.average_price = price  # flipped: what is left was opened by this fill

    def unrealised(self, last_price: float) -> float:
        return (last_price - self.average_price) * self.quantity
