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


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--attacks", "nope"], "unknown attack(s): nope"),
        (["--duration", "0"], "--duration must be between 0.5 and 600 seconds"),
        (["--time-scale", "0"], "--time-scale must be between 1 (production timers) and 1000"),
        (["--time-scale", "nan"], "--time-scale must be between 1 (production timers) and 1000"),
        (["--settle", "-5"], "--settle must be between 0.5 and 3600 seconds"),
        (["--topology", "/nonexistent.toml"], "--topology: /nonexistent.toml: cannot read /nonexistent.toml: no such"),
    ],
)
def test_bad_options_are_refused_before_a_cluster_starts(
    attack: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    """Each used to start an organization and wait a minute for it (or end in a traceback)."""
    with pytest.raises(SystemExit) as exc:
        attack.main(["run", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"attack: error: {says}" in err


def test_help_lists_run_and_nothing_hidden(attack: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        attack.main(["--help"])
    out = capsys.readouterr().out
    assert "SUPPRESS" not in out and "_attack" not in out and "{run}" in out


@pytest.mark.tcp
def test_a_short_dump_flood_holds(attack: ModuleType, tmp_path: Path) -> None:
    argv = ["run", "--topology", str(EXAMPLES / "net-star.toml"), "--attacks", "dump-flood", "--duration", "2",
            "--settle", "20", "--out", str(tmp_path)]  # fmt: skip
    assert attack.main(argv) == 0
    (result,) = json.loads(next(tmp_path.glob("attack-*.json")).read_text())["results"]
    assert result["held"] and result["evidence"]["dump_rate_exceeded"] >= 1
    assert result["honest_dumps"].split("/")[0] != "0"
