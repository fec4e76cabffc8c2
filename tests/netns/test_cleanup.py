"""The netns tests' safety net (tests/netns/cleanup.py), on a run left as a test that failed midway leaves it: its
supervisor, a node and a process inside its namespaces still running, its namespaces still there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from linkstate.cli.cluster import NodeRecord, RunState, alive, save_state
from linkstate.netns import fabric
from linkstate.netns.enter import child_setup
from linkstate.netns.plan import new_prefix
from tests.netns.cleanup import clean_runs

pytestmark = pytest.mark.usefixtures("netns_ok")
SLEEP = "import time; time.sleep(60)"


def test_what_a_failed_run_left_is_stopped_by_pid_and_removed_by_prefix(tmp_path: Path) -> None:
    prefix = new_prefix()
    run_dir = tmp_path / "xdg" / "linkstate" / "org-00000000"
    run_dir.mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (prefix + "A1", prefix + "rg-A"):
            fabric.create(ns)
        supervisor = subprocess.Popen([sys.executable, "-c", SLEEP, "cluster", "up"])
        node = subprocess.Popen([sys.executable, "-c", SLEEP, "serve", "--server", "A1"])
        with child_setup(prefix + "rg-A") as setup:
            inside = subprocess.Popen([sys.executable, "-c", SLEEP], preexec_fn=setup)
        procs = [supervisor, node, inside]
        record = NodeRecord("A1", "198.18.0.1", 691, 25, "t.toml", "A1.log", node.pid, "running", netns=prefix + "A1")
        save_state(RunState("t.toml", "t.toml", str(run_dir), True, 60.0, supervisor.pid, "cluster",
                            netns_prefix=prefix, servers={"A1": record}))  # fmt: skip

        left = clean_runs(tmp_path)

        assert sorted(left) == sorted([f"supervisor pid {supervisor.pid}", f"node A1 pid {node.pid}",
                                       f"pid {inside.pid} in {prefix}rg-A", f"namespace {prefix}A1",
                                       f"namespace {prefix}rg-A"])  # fmt: skip
        assert not any(alive(p.pid) for p in procs)
        assert fabric.leftovers(prefix) == []
        assert clean_runs(tmp_path) == []  # nothing twice
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)
        fabric.remove(fabric.leftovers(prefix))
