"""Smoke run of bench/attack.py: its organization is moved off the example's addresses, its options are checked, and
one short attack runs end to end against a two-server `cluster up` organization and holds.

The full run (every attack, minutes) is the benchmark's own, from bench/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.bench.scripts import BENCH, load

EXAMPLES = BENCH.parent / "examples"


@pytest.fixture(scope="module")
def attack() -> ModuleType:
    return load("attack")


def test_the_organization_gets_its_own_loopback_net(attack: ModuleType, tmp_path: Path) -> None:
    moved = attack.bench_topology(EXAMPLES / "seattle.toml", tmp_path / "seattle.toml").read_text()
    assert 'address = "127.77.1.1"' in moved and 'address = "127.77.4.2"' in moved
    assert 'address = "127.0.' not in moved
    assert 'address = "*"' in moved  # an address space is not a server address


def test_unknown_attacks_and_durations_are_refused(attack: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["run", "--attacks", "nope"], ["run", "--duration", "0"]):
        with pytest.raises(SystemExit) as exc:
            attack.main(argv)
        assert exc.value.code == 2
    assert "unknown attack(s): nope" in capsys.readouterr().err


@pytest.mark.tcp
def test_a_short_dump_flood_holds(attack: ModuleType, tmp_path: Path) -> None:
    argv = ["run", "--topology", str(EXAMPLES / "net-star.toml"), "--attacks", "dump-flood", "--duration", "2",
            "--settle", "20", "--out", str(tmp_path)]  # fmt: skip
    assert attack.main(argv) == 0
    (result,) = json.loads(next(tmp_path.glob("attack-*.json")).read_text())["results"]
    assert result["held"] and result["evidence"]["dump_rate_exceeded"] >= 1
    assert result["honest_dumps"].split("/")[0] != "0"
