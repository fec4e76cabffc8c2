"""Property tests are not timed by the wall clock (tests/conftest.py): an example that takes longer than
Hypothesis's default deadline (200 ms), as any may on a loaded machine, is not a failure."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st


def test_a_slow_example_is_not_a_failure() -> None:
    @settings(max_examples=1, database=None)
    @given(st.just(0))
    def slow(_: int) -> None:
        time.sleep(0.3)  # a loaded machine's pause, past the default deadline and its 25 % grace

    slow()
