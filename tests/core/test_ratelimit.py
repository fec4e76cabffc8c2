"""The token bucket behind per-connection rate limits: a burst, then the rate, never above the burst."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from linkstate.core.ratelimit import TokenBucket


def test_burst_then_rate() -> None:
    b = TokenBucket(rate=2.0, burst=3, at=10.0)
    assert [b.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert b.take(10.5) and not b.take(10.5)  # half a second: one more
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]  # idle time never stores more than burst


@given(st.lists(st.floats(0, 5), max_size=50), st.floats(0.1, 10), st.integers(1, 10))
def test_never_more_than_burst_plus_rate_times_elapsed(gaps: list[float], rate: float, burst: int) -> None:
    b = TokenBucket(rate, burst, at=0.0)
    now, granted = 0.0, 0
    for gap in gaps:
        now += gap
        granted += b.take(now)
    assert granted <= burst + rate * now + 1e-9
