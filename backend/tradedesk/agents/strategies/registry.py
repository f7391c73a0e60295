"""The strategies this product ships, by the name the API and the stored agents use."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from tradedesk.agents.strategies.base import Strategy
from tradedesk.agents.strategies.short_strangle import ShortStrangle
from tradedesk.agents.strategies.sma_crossover import SmaCrossover

STRATEGIES: Mapping[str, Strategy[Any, Any]] = MappingProxyType(
    {strategy.name: strategy for strategy in (ShortStrangle(), SmaCrossover())}
)


def get_strategy(name: str) -> Strategy[Any, Any]:
    """The strategy named ``name``; a KeyError naming the known ones otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"No strategy is named {name!r}; known: {', '.join(sorted(STRATEGIES))}.") from None
