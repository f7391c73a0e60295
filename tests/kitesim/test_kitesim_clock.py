"""The sim clock and the 06:00 IST token calendar, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kitesim.clock import IST, SimClock, format_ist, next_token_expiry


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


START = datetime(2025, 1, 6, 3, 45, tzinfo=UTC)


class TestNextTokenExpiry:
    def test_before_six_ist_expires_the_same_morning(self) -> None:
        issued = datetime(2025, 1, 6, 5, 59, 59, tzinfo=IST)
        assert next_token_expiry(issued) == datetime(2025, 1, 6, 0, 30, tzinfo=UTC)

    def test_exactly_six_ist_expires_the_next_morning(self) -> None:
        issued = datetime(2025, 1, 6, 6, 0, tzinfo=IST)
        assert next_token_expiry(issued) == datetime(2025, 1, 7, 0, 30, tzinfo=UTC)

    def test_just_after_six_ist_lives_a_day(self) -> None:
        issued = datetime(2025, 1, 6, 6, 0, 1, tzinfo=IST)
        assert next_token_expiry(issued) == datetime(2025, 1, 7, 0, 30, tzinfo=UTC)

    def test_evening_ist_expires_next_morning(self) -> None:
        issued = datetime(2025, 1, 6, 21, 0, tzinfo=IST)
        assert next_token_expiry(issued) == datetime(2025, 1, 7, 0, 30, tzinfo=UTC)

    def test_2330_utc_is_0500_ist_next_day_so_expires_within_the_hour(self) -> None:
        issued = datetime(2025, 1, 6, 23, 30, tzinfo=UTC)
        expiry = next_token_expiry(issued)
        assert expiry == datetime(2025, 1, 7, 0, 30, tzinfo=UTC)
        assert expiry.astimezone(IST) == datetime(2025, 1, 7, 6, 0, tzinfo=IST)

    def test_answer_is_utc_and_strictly_after(self) -> None:
        issued = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
        expiry = next_token_expiry(issued)
        assert expiry.utcoffset() == timedelta(0)
        assert expiry > issued
        assert expiry - issued <= timedelta(days=1)

    def test_naive_time_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            next_token_expiry(datetime(2025, 1, 6, 5, 0))


def test_format_ist_is_kite_style() -> None:
    assert format_ist(datetime(2025, 1, 6, 3, 45, 7, 999, tzinfo=UTC)) == "2025-01-06 09:15:07"


class TestSimClock:
    def test_runs_at_speed_from_start(self) -> None:
        mono = FakeMonotonic()
        clock = SimClock(start=START, speed=60, monotonic=mono)
        assert clock.now() == START
        mono.value += 2
        assert clock.now() == START + timedelta(minutes=2)

    def test_now_is_utc_aware(self) -> None:
        clock = SimClock(start=datetime(2025, 1, 6, 9, 15, tzinfo=IST))
        assert clock.now().tzinfo is UTC

    def test_advance_adds_sim_seconds(self) -> None:
        mono = FakeMonotonic()
        clock = SimClock(start=START, monotonic=mono)
        clock.advance(90)
        assert clock.now() == START + timedelta(seconds=90)

    def test_advance_refuses_going_back(self) -> None:
        clock = SimClock(start=START)
        with pytest.raises(ValueError, match="forward"):
            clock.advance(-1)

    def test_set_to_jumps_and_keeps_running(self) -> None:
        mono = FakeMonotonic()
        clock = SimClock(start=START, speed=2, monotonic=mono)
        target = datetime(2024, 12, 31, 18, 0, tzinfo=UTC)
        clock.set_to(target)
        assert clock.now() == target
        mono.value += 5
        assert clock.now() == target + timedelta(seconds=10)

    def test_set_to_refuses_naive(self) -> None:
        clock = SimClock(start=START)
        with pytest.raises(ValueError):
            clock.set_to(datetime(2025, 1, 1))

    def test_speed_change_does_not_jump(self) -> None:
        mono = FakeMonotonic()
        clock = SimClock(start=START, speed=10, monotonic=mono)
        mono.value += 3
        before = clock.now()
        clock.set_speed(100)
        assert clock.now() == before
        assert clock.speed == 100
        mono.value += 1
        assert clock.now() == before + timedelta(seconds=100)

    @pytest.mark.parametrize("speed", [0, -1, float("inf"), float("nan")])
    def test_bad_speed_is_refused(self, speed: float) -> None:
        with pytest.raises(ValueError, match="speed"):
            SimClock(start=START, speed=speed)
