"""The seed's exchange writes the same bytes as before issue 13 (bench/wire-baseline.json, recorded before it):
`exchange = "full"` and `compat_e2k = true` on fixed simulated scenarios, every Send hashed in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linkstate.bench.wiretrace import SCENARIOS, trace

BASELINE = json.loads((Path(__file__).resolve().parents[2] / "bench" / "wire-baseline.json").read_text())
CHECKED = ("ring-6x2-minor-organic", "grid-4x3-user-organic", "hub-spoke-example", "grid-9x2-major")


@pytest.mark.parametrize("scenario", CHECKED)
@pytest.mark.parametrize(("settings", "label"), [({"exchange": "full"}, ""), ({"compat_e2k": True}, "compat_e2k=true")])
def test_the_seeds_exchange_writes_the_bytes_it_always_did(scenario: str, settings: dict[str, object],
                                                           label: str) -> None:  # fmt: skip
    assert trace(scenario, settings) == BASELINE[label][scenario]


def test_the_delta_exchange_ends_on_the_same_tables_with_fewer_bytes() -> None:
    for scenario in ("ring-6x2-minor-organic", "grid-9x2-major"):
        got, before = trace(scenario, {"exchange": "delta"}), BASELINE[""][scenario]
        assert got["digests"] == before["digests"] and got["bytes"] < before["bytes"] * 0.6


def test_every_scenario_has_a_baseline() -> None:
    assert set(BASELINE[""]) == set(BASELINE["compat_e2k=true"]) == set(SCENARIOS)
