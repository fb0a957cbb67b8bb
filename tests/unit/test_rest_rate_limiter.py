"""The per-account REST buckets on a fake clock: separate budgets, refill, debt of large bodies."""

from __future__ import annotations

import pytest

from openevi.api.ratelimit import RestRateLimiter
from openevi.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock) -> RestRateLimiter:
    settings = Settings(
        rest_reads_per_s=2,
        rest_read_burst=2,
        rest_writes_per_s=1,
        rest_write_burst=2,
        rest_write_bytes_per_s=100,
        rest_write_bytes_burst=1000,
    )
    return RestRateLimiter(settings, clock)


def test_writes_refill_at_their_rate_and_say_how_long_to_wait() -> None:
    clock = Clock()
    rates = limiter(clock)
    assert [rates.admit("a", "POST", 0) for _ in range(2)] == [0.0, 0.0]
    assert rates.admit("a", "POST", 0) == 1.0
    clock.now = 0.5
    assert rates.admit("a", "DELETE", 0) == 0.5
    clock.now = 1.0
    assert rates.admit("a", "PATCH", 0) == 0.0
    assert rates.admit("b", "POST", 0) == 0.0  # another account: its own buckets


def test_reads_and_writes_have_separate_budgets() -> None:
    clock = Clock()
    rates = limiter(clock)
    assert [rates.admit("a", "GET", 0) for _ in range(2)] == [0.0, 0.0]
    assert rates.admit("a", "GET", 0) == 0.5
    assert rates.admit("a", "POST", 0) == 0.0


def test_a_body_over_what_is_left_passes_once_and_leaves_a_debt() -> None:
    clock = Clock()
    rates = limiter(clock)
    assert rates.admit("a", "POST", 1500) == 0.0
    # 500 bytes of debt plus the one byte needed: 5.01 s at 100 bytes a second.
    assert rates.admit("a", "POST", 10) == pytest.approx(5.01)
    clock.now = 5.01
    assert rates.admit("a", "POST", 10) == 0.0


def test_chunked_bytes_charged_as_they_arrive_hold_back_the_next_write() -> None:
    clock = Clock()
    rates = limiter(clock)
    assert rates.admit("a", "POST", 0) == 0.0
    rates.charge_bytes("a", 1200)
    assert rates.admit("a", "POST", 0) > 2.0
