"""Shared test fixtures: every test starts with structlog's default configuration.

Code under test (the CLI, the benchmarks) may call `linkstate.logconfig.configure`, which filters by level; a
later test that captures log events with `structlog.testing.capture_logs` must not inherit that filter.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
