"""Shared test fixtures: every test starts with structlog's default configuration, property tests are not timed by
the wall clock, and `--exchange full` runs the suite with the seed's exchange as the default (issue 13: every test
passes in both modes).

Code under test (the CLI, the benchmarks) may call `linkstate.logconfig.configure`, which filters by level; a
later test that captures log events with `structlog.testing.capture_logs` must not inherit that filter.
Hypothesis fails an example that takes over 200 ms (its deadline) or data that is slow to generate (the too_slow
health check): on a loaded machine (CI shares its cores) that is a failure of the machine, not of the code, so
the profile loaded here turns both off for every property test (they assert behaviour; speed is bench/'s).
`--exchange full` changes the default of `exchange` for topologies parsed or built in this process (a topology
that names its exchange keeps it); processes a test starts keep the built-in default.
Under mutation testing (`make mutation`: mutmut sets MUTANT_UNDER_TEST to a mutant's name in the worker that runs
it) the tests mutmut picked run fastest first, by the durations of its own clean run (mutmut-stats.json in its
working copy): pytest stops at the first failure (-x), so a killed mutant costs its quickest failing test instead
of every slower test collected before it. What runs, and what counts as killed, is unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings

from linkstate.core import topology

settings.register_profile("linkstate", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("linkstate")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--exchange", choices=topology.EXCHANGES, default=None,
                     help="the default of the exchange setting for this run (delta: the extensions; full: the seed's)")


def pytest_configure(config: pytest.Config) -> None:
    exchange = config.getoption("--exchange")
    if exchange is not None:
        topology.DEFAULT_EXCHANGE = exchange
        defaults = topology.Settings.__init__.__kwdefaults__
        assert defaults is not None and "exchange" in defaults
        defaults["exchange"] = exchange


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    stats = Path("mutmut-stats.json")
    if "__mutmut_" not in mutant or not stats.is_file():
        return
    durations: dict[str, float] = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
