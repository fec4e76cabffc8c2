"""contrib/systemd/linkstate@.service: `systemd-analyze verify` accepts it without a warning, and its ExecStart
is a `linkstate serve` command line the CLI accepts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from linkstate.cli.node_cmd import serve

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "linkstate@.service"
INSTALLED = "/usr/local/bin/linkstate"


def _exec_start() -> str:
    m = re.search(r"^ExecStart=(.+)$", UNIT.read_text(), re.MULTILINE)
    assert m is not None
    return m.group(1)


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing in CI: .ci/run installs it (apt-get install systemd)")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    linkstate = Path(sys.executable).with_name("linkstate")  # the venv's entry point stands in for the install
    assert linkstate.exists()
    instance = tmp_path / "linkstate@EX1.service"
    instance.write_text(UNIT.read_text().replace(INSTALLED, str(linkstate)))
    res = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_exec_start_is_a_serve_command_the_cli_accepts() -> None:
    line = _exec_start().replace("${LINKSTATE_TOPOLOGY}", "/etc/linkstate/topology.toml")
    argv = shlex.split(line.replace("$LINKSTATE_OPTS", "--metrics 127.0.0.1:20691"))  # as README suggests
    assert argv[:2] == [INSTALLED, "serve"]
    args = [a.replace("%i", "EX1") for a in argv[2:]]
    ctx = serve.make_context("serve", args)
    assert ctx.params["server"] == "EX1" and ctx.params["topology_file"] == "/etc/linkstate/topology.toml"
    assert ctx.params["log_format"] == "json" and ctx.params["metrics_opt"] == "127.0.0.1:20691"
