"""Shared test fixtures: every test starts with structlog's default configuration; `--exchange full` runs the suite
with the seed's exchange as the default (issue 13: every test passes in both modes).

Code under test (the CLI, the benchmarks) may call `linkstate.logconfig.configure`, which filters by level; a
later test that captures log events with `structlog.testing.capture_logs` must not inherit that filter.
`--exchange full` changes the default of `exchange` for topologies parsed or built in this process (a topology
that names its exchange keeps it); processes a test starts keep the built-in default.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from linkstate.core import topology


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


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
