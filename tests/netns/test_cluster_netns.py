"""Real network mode end to end, as a user runs it (root only): `linkstate demo --netns` (the seed scenario over
real links, the one test here that waits for protocol timers) and `cluster up --netns` with link faults, the
queries that enter a node's namespace, a supervisor killed with SIGKILL and `cluster clean`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from linkstate.netns import fabric
from tests.service.node_cli_helpers import (
    SECRET,
    SEED_ROUTES,
    demo_routes,
    reaped,
    run_cli,
    run_demo,
    spawn_cli,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("netns_ok", "runs_cleaned")
LOADED = 60  # seconds a step may take on a loaded machine (a bound, not a speed: the steps usually take one or two)


def test_demo_netns_reroutes_over_real_links_and_leaves_nothing(tmp_path: Path) -> None:
    rc, text = run_demo(tmp_path / "demo.out", "--netns", "--timeout", "60", timeout=240)
    assert rc == 0, text
    assert demo_routes(text) == SEED_ROUTES, text
    assert "took down 3 links, both ends: SEA-BH1~LON-BH1, LON-BH1~BRU-BH1, LON-BH1~TOK-BH1" in text
    assert "on 198.18.0.1:691" in text  # loopback addresses replaced from the benchmarking range
    prefix = re.search(r"namespaces (ls-[0-9a-f]{6}-)\*", text).group(1)  # type: ignore[union-attr]
    assert "left behind: 0" in text and fabric.leftovers(prefix) == []


def two_group_file(path: Path) -> Path:
    """Two groups of one server each (no addresses: the network plan gives them), a connector both ways."""
    text = f'[organization]\nname = "T"\ndomain = "t.example"\nsecret = "{SECRET}"\n'
    for g in ("A", "B"):
        text += f'\n[[routing_groups]]\nname = "{g}"\nmaster = "{g}1"\n'
        text += f'\n[[servers]]\nname = "{g}1"\nrouting_group = "{g}"\n'
    for src, dst in (("A", "B"), ("B", "A")):
        text += (f'\n[[connectors]]\nname = "{src}-{dst}"\ntype = "routing_group"\nrouting_group = "{src}"\n'
                 f'connected_routing_group = "{dst}"\ncost = 10\n')  # fmt: skip
    path.write_text(text)
    return path


def test_cluster_up_netns_link_faults_queries_and_clean_after_a_crash(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    topo = str(two_group_file(tmp_path / "org.toml"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=env, timeout=2 * LOADED)

    def status() -> dict:  # type: ignore[type-arg]
        return json.loads(cli("cluster", "status", topo, "--json").stdout)  # type: ignore[no-any-return]

    up = spawn_cli("cluster", "up", topo, "--netns", "--no-status", "--time-scale", "60", "--wait", str(LOADED),
                   env=env)  # fmt: skip
    with reaped(up):
        assert wait_until(lambda: all(s["state"] == "running" for s in status()["servers"]), LOADED), status()
        run_dir = Path(status()["run_dir"])
        state = json.loads((run_dir / "cluster.json").read_text())
        prefix, supervisor = state["netns_prefix"], state["supervisor"]
        assert len(fabric.leftovers(prefix)) == 4  # two servers, two group bridges
        assert [s["host"] for s in status()["servers"]] == ["198.18.0.1", "198.18.1.1"]
        metrics = status()["servers"][0]["metrics"]  # reachable from here: 127.0.0.1, forwarded into A1's namespace
        assert metrics.startswith("http://127.0.0.1:"), metrics
        with urllib.request.urlopen(metrics, timeout=10) as page:
            assert 'linkstate_node_info{master="A1",role="master"' in page.read().decode()

        down = cli("cluster", "fault", topo, "A-B", "down")
        assert down.returncode == 0 and "A-B: 1 link(s) down (A1~B1)" in down.stdout, down.stderr
        assert "links: 0 up, 1 down (A1~B1)" in cli("cluster", "status", topo).stdout
        assert "B cut off: 1 link(s) down" in cli("cluster", "fault", topo, "--partition", "B").stdout
        assert "healed: 1 link(s) up" in cli("cluster", "fault", topo, "--heal").stdout
        assert "links: 1 up, 0 down" in cli("cluster", "status", topo).stdout
        view = cli("winroute", "B1", "--topology", topo)  # enters B1's namespace
        assert view.returncode == 0 and "Local node:   B1" in view.stdout, view.stderr
        route = ("route", "--node", "A1", "--topology", topo, "--from", "A1", "--to-group", "B")
        # the link was down for a few CLI calls: past the state delay (10 s) on a loaded machine, and then the
        # connector's way back waits out its oscillation window too
        assert wait_until(lambda: "route  A → B  cost 10" in cli(*route).stdout, LOADED), cli(*route)
        assert "stopped B1" in cli("cluster", "stop", topo, "B1").stdout  # a process fault, as on loopback
        started = cli("cluster", "start", topo, "B1", "--wait", str(LOADED))  # back in its namespace, answering there
        assert started.returncode == 0 and "on 198.18.1.1:691" in started.stdout, started.stderr
        wrong = cli("cluster", "fault", topo, "--partition", "Z")
        assert wrong.returncode == 2 and wrong.stderr.startswith("error: unknown routing group 'Z'")

        refused = cli("cluster", "clean", topo)
        assert refused.returncode == 1 and "is running" in refused.stderr
        nodes = [rec["pid"] for rec in json.loads((run_dir / "cluster.json").read_text())["servers"].values()]
        os.kill(supervisor, signal.SIGKILL)  # a crashed supervisor leaves its nodes and namespaces
        up.wait(timeout=LOADED)
    assert len(fabric.leftovers(prefix)) == 4
    cleaned = cli("cluster", "clean", topo)
    assert cleaned.returncode == 0 and "removed 4 namespace(s)" in cleaned.stdout, cleaned.stderr
    assert fabric.leftovers(prefix) == []
    assert not any(Path(f"/proc/{pid}").exists() and b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
                   for pid in nodes)  # fmt: skip
