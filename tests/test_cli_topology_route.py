"""`linkstate topology check|show` and `linkstate route`: outputs, exit codes, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from linkstate.cli.main import cli

EX = Path(__file__).resolve().parent.parent / "examples"
SEATTLE = str(EX / "seattle.toml")


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_check_ok_summary() -> None:
    code, out, _ = run("topology", "check", SEATTLE)
    assert code == 0
    assert out.startswith("ok: 4 routing groups, 8 servers, 13 connectors, digest ")


def test_check_lists_every_problem(tmp_path: Path) -> None:
    text = (EX / "seattle.toml").read_text()
    text = text.replace("cost = 40", "cost = 400").replace(
        'connected_routing_group = "Tokyo"', 'connected_routing_group = "Tokio"', 1
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    code, out, _ = run("topology", "check", str(bad))
    assert code == 2
    lines = out.strip().splitlines()
    assert len(lines) == 3  # two cost 400 connectors, one unknown group
    assert all(line.startswith(f"{bad}:") for line in lines)
    assert any(".cost: must be between 1 and 100" in line for line in lines)
    assert any("connected_routing_group: unknown routing group 'Tokio'" in line for line in lines)


def test_show_text_and_json() -> None:
    code, out, _ = run("topology", "show", SEATTLE)
    assert code == 0 and "routing group Seattle" in out and "Seattle-London" in out
    code, out, _ = run("topology", "show", SEATTLE, "--json")
    data = json.loads(out)
    assert {rg["name"] for rg in data["routing_groups"]} == {"Seattle", "London", "Brussels", "Tokyo"}


def test_route_text_and_json() -> None:
    code, out, _ = run("route", "--topology", SEATTLE, "--from", "SEA-S2", "--to-server", "BRU-S2")
    assert code == 0
    assert out.strip() == "route  Seattle → London → Brussels  cost 20  via connector Seattle-London (next hop SEA-BH1)"
    code, out, _ = run(
        "route", "--topology", SEATTLE, "--from", "SEA-S2", "--to-server", "BRU-S2", "--down", "LON-BH1", "--json"
    )
    data = json.loads(out)
    assert set(data) == {"status", "connector", "next_hop", "cost", "path", "address_space"}
    assert (data["status"], data["cost"], data["path"]) == ("route", 35, ["Seattle", "Tokyo", "Brussels"])


def test_route_queued_for_net() -> None:
    net = str(EX / "net-star.toml")
    code, out, _ = run(
        "route", "--topology", net, "--from", "EX2", "--to", "ted@treyresearch.net", "--down", "Net-Connector"
    )
    assert code == 0 and out.startswith("queued")


@pytest.mark.parametrize(
    "args",
    [
        ("--from", "NOPE", "--to", "a@b.com"),
        ("--from", "SEA-S2", "--to-server", "NOPE"),
        ("--from", "SEA-S2", "--to", "a@b.com", "--down", "NOPE"),
        ("--from", "SEA-S2"),
        ("--from", "SEA-S2", "--to", "a@b..com"),
    ],
)
def test_route_errors_are_one_line(args: tuple[str, ...]) -> None:
    code, _, err = run("route", "--topology", SEATTLE, *args)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_no_traceback_from_the_entry_point(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text("this is = = not toml")
    for args in (["topology", "show", str(bad)], ["route", "--topology", str(bad), "--from", "a", "--to", "b.com"],
                 ["topology", "check", str(tmp_path / "missing.toml")]):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-c", "from linkstate.cli.main import main; main()", *args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
