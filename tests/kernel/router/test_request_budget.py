"""The REST rate budget: a token bucket that never lets a burst exceed the broker's per-minute limit."""

from __future__ import annotations

from engine.kernel.request_budget import RequestBudget


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_the_burst_then_refills_at_the_rate():
    clock = FakeClock()
    budget = RequestBudget(per_minute=120, burst=5, clock=clock)
    assert [budget.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    assert abs(budget.delay_s() - 0.5) < 1e-9  # 2 tokens per second
    clock.t += 0.5
    assert budget.try_acquire()
    assert not budget.try_acquire()


def test_requests_in_any_minute_stay_within_the_limit():
    clock = FakeClock()
    budget = RequestBudget(per_minute=200, burst=20, clock=clock)
    granted = []
    for _ in range(60_000):  # poll every 10 ms for 10 minutes
        if budget.try_acquire():
            granted.append(clock.t)
        clock.t += 0.01
    j = 0
    for i, t in enumerate(granted):
        while granted[j] <= t - 60.0:
            j += 1
        assert i - j + 1 <= 200 + 20


def test_a_429_blocks_until_the_reset():
    clock = FakeClock()
    budget = RequestBudget(per_minute=200, burst=20, clock=clock)
    budget.on_rate_limited(retry_after_s=3.0)
    assert not budget.try_acquire()
    clock.t += 2.9
    assert not budget.try_acquire()
    clock.t += 0.2
    assert budget.try_acquire()
    assert budget.throttled == 1
