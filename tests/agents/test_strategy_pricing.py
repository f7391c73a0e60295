"""The option maths strategies share: Black-Scholes delta, time to an expiry's close, the tick grid."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tradedesk.agents.strategies.pricing import bs_delta, ceil_to_tick, round_to_tick, years_to_expiry
from tradedesk.kit.clock import IST


def test_call_and_put_deltas_differ_by_one() -> None:
    call = bs_delta(spot=23600, strike=23800, years=0.01, vol=0.14, rate=0.05, call=True)
    put = bs_delta(spot=23600, strike=23800, years=0.01, vol=0.14, rate=0.05, call=False)
    assert call - put == pytest.approx(1.0)
    assert 0 < call < 0.5 < -put < 1


def test_delta_of_a_known_case() -> None:
    # d1 = (ln(100/100) + (0.05 + 0.02) * 1) / 0.2 = 0.35, N(0.35) = 0.63683
    assert bs_delta(spot=100, strike=100, years=1.0, vol=0.2, rate=0.05, call=True) == pytest.approx(
        0.63683, abs=1e-5
    )


def test_at_expiry_delta_is_all_or_nothing() -> None:
    assert bs_delta(spot=101, strike=100, years=0, vol=0.2, rate=0.05, call=True) == 1.0
    assert bs_delta(spot=101, strike=100, years=0, vol=0.2, rate=0.05, call=False) == 0.0
    assert bs_delta(spot=99, strike=100, years=0, vol=0.2, rate=0.05, call=False) == -1.0


def test_years_run_to_the_expiry_days_close() -> None:
    thursday = date(2025, 1, 9)
    assert years_to_expiry(thursday, now=datetime(2025, 1, 8, 15, 30, tzinfo=IST)) == pytest.approx(1 / 365)
    assert years_to_expiry(thursday, now=datetime(2025, 1, 9, 15, 31, tzinfo=IST)) == 0.0


@pytest.mark.parametrize(
    ("price", "nearest", "ceiling"),
    [(79.755, 79.75, 79.8), (60.9, 60.9, 60.9), (23.15, 23.15, 23.15), (10.01, 10.0, 10.05)],
)
def test_tick_grid(price: float, nearest: float, ceiling: float) -> None:
    assert round_to_tick(price, 0.05) == nearest
    assert ceil_to_tick(price, 0.05) == ceiling
