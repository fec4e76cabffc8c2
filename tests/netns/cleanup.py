"""What a netns test's runs left behind, found and removed whatever happened to the test: every run state
(`cluster.json`) under the test's directory names its supervisor, its nodes and its namespace prefix; they are
stopped by PID (only a live process whose command line is that supervisor's or that node's `serve`) and the
namespaces with that prefix removed (after stopping whatever still runs inside them).

May import: anything (tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from linkstate.cli.cluster import STATE_FILE, alive, load_state, node_alive, wait_gone
from linkstate.netns import fabric


def clean_runs(root: Path) -> list[str]:
    """Stop and remove what the runs recorded under `root` left; returns what there was, one line each."""
    found: list[str] = []
    for path in sorted(root.rglob(STATE_FILE)):
        state = load_state(path.parent)
        if state is None:
            continue
        if state.supervisor is not None and alive(state.supervisor, state.supervisor_kind):
            _kill(state.supervisor, state.supervisor_kind)
            found.append(f"supervisor pid {state.supervisor}")
        for rec in state.servers.values():
            if node_alive(rec) and rec.pid is not None:
                _kill(rec.pid, rec.name)
                found.append(f"node {rec.name} pid {rec.pid}")
        names = fabric.leftovers(state.netns_prefix)
        for ns, pids in fabric.processes_in(names).items():
            for pid in pids:
                _kill(pid, None)
                found.append(f"pid {pid} in {ns}")
        found.extend(f"namespace {name}" for name in fabric.remove(names))
    return found


def _kill(pid: int, needle: str | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, needle, 5.0)
