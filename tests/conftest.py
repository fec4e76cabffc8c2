"""Shared test fixtures: every test starts with structlog's default configuration, and property tests are not
timed by the wall clock.

Code under test (the CLI, the benchmarks) may call `linkstate.logconfig.configure`, which filters by level; a
later test that captures log events with `structlog.testing.capture_logs` must not inherit that filter.
Hypothesis fails an example that takes over 200 ms (its deadline) or data that is slow to generate (the too_slow
health check): on a loaded machine (CI shares its cores) that is a failure of the machine, not of the code, so
the profile loaded here turns both off for every property test (they assert behaviour; speed is bench/'s).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from hypothesis import HealthCheck, settings

settings.register_profile("linkstate", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("linkstate")


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
