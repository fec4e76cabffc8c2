"""Operator commands against a running cluster: `route --node`, `cluster fault`, `remonitor inject`.

A three-group triangle (A→B direct 10, A→C→B 20) on its own loopback addresses and free ports, run by
`linkstate cluster up` as real processes.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from linkstate.cli.cluster import Cluster, node_alive
from tests.service.node_cli_helpers import SECRET, free_ports, kill_quietly, reaped, run_cli, spawn_cli, wait_until

pytestmark = pytest.mark.tcp


def triangle(path: Path) -> Path:
    ports = free_ports(6)
    lines = ["[organization]", 'name = "Tri"', 'domain = "example.com"', f'secret = "{SECRET}"', "",
             "[settings]", "state_delay = 300", ""]  # fmt: skip
    for i, g in enumerate("ABC"):
        lines += ["[[routing_groups]]", f'name = "{g}"', f'master = "{g}1"', ""]
        lines += ["[[servers]]", f'name = "{g}1"', f'routing_group = "{g}"', f'address = "127.0.6.{i + 1}"',
                  f"port_691 = {ports[i]}", f"port_smtp = {ports[i + 3]}", ""]  # fmt: skip
    for src, dst, cost in (("A", "B", 10), ("B", "A", 10), ("A", "C", 10), ("C", "A", 10), ("C", "B", 10),
                           ("B", "C", 10)):  # fmt: skip
        lines += ["[[connectors]]", f'name = "{src}-{dst}"', 'type = "routing_group"', f'routing_group = "{src}"',
                  f'connected_routing_group = "{dst}"', f"cost = {cost}", f'source_bridgeheads = ["{src}1"]',
                  f'remote_bridgeheads = ["{dst}1"]', ""]  # fmt: skip
    path.write_text("\n".join(lines))
    return path


def live_route(path: Path) -> dict[str, object]:
    res = run_cli("route", "--node", "A1", "--topology", str(path), "--from", "A1", "--to-group", "B", "--json")
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


def test_fault_inject_and_live_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = triangle(tmp_path / "tri.toml")
    cluster = Cluster(path)
    with open(tmp_path / "up.out", "w") as fh, reaped(spawn_cli("cluster", "up", str(path), "--time-scale", "60",
                                                                  "--no-status", stdout=fh)) as up:  # fmt: skip
        try:
            assert wait_until(lambda: live_route_ok(path), timeout=30), (tmp_path / "up.out").read_text()
            assert live_route(path)["cost"] == 10

            res = run_cli("cluster", "fault", str(path), "A-B", "down")
            assert res.returncode == 0 and "A-B: down" in res.stdout, res.stderr
            assert wait_until(lambda: live_route(path)["cost"] == 20, timeout=30)  # via C, after the state delay
            assert live_route(path)["path"] == ["A", "C", "B"]
            res = run_cli("cluster", "fault", str(path), "A-B", "up")
            assert res.returncode == 0, res.stderr
            assert wait_until(lambda: live_route(path)["cost"] == 10, timeout=30)  # an UP commits at once

            res = run_cli("cluster", "fault", str(path), "B-C", "down")  # B1 is its source bridgehead
            assert res.returncode == 0, res.stderr
            res = run_cli("cluster", "fault", str(path), "NOPE", "down")
            assert res.returncode == 2 and res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1

            refused = run_cli("remonitor", "inject", "--node", "B1", "--routing-group", "C", "--topology", str(path),
                              "--from-server", "B1", "--force")  # fmt: skip
            assert refused.returncode == 1 and "cannot inject on the server the tool runs on" in refused.stderr
            alive = run_cli("remonitor", "inject", "--node", "B1", "--routing-group", "C", "--topology", str(path),
                            "--from-server", "A1")  # fmt: skip
            assert alive.returncode == 1 and "its master C1 answers" in alive.stderr, alive.stderr
            assert "the tombstone would be outvoted" in alive.stderr and "--force" in alive.stderr
            ok = run_cli("remonitor", "inject", "--node", "B1", "--routing-group", "C", "--topology", str(path),
                         "--from-server", "A1", "--force")  # fmt: skip
            assert ok.returncode == 0 and "tombstone for C injected" in ok.stdout, ok.stderr
            own = run_cli("remonitor", "inject", "--node", "B1", "--routing-group", "B", "--topology", str(path),
                          "--force")  # fmt: skip
            assert own.returncode == 1 and "belongs to" in own.stderr

            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=20) == 0
        finally:
            state = cluster.state()
            for rec in state.servers.values() if state else ():
                if node_alive(rec):
                    kill_quietly(rec.pid)


def live_route_ok(path: Path) -> bool:
    res = run_cli("route", "--node", "A1", "--topology", str(path), "--from", "A1", "--to-group", "B", "--json")
    return res.returncode == 0 and json.loads(res.stdout)["status"] == "route"
