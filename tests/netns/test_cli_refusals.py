"""Real network mode's refusals, which need no namespace (these run everywhere): no root, no netns cluster,
arguments that do not go together, nothing to clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from linkstate.netns import fabric
from tests.netns.test_cluster_netns import two_group_file
from tests.service.node_cli_helpers import invoke


@pytest.fixture
def not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fabric.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(fabric.sys, "platform", "linux")


@pytest.mark.parametrize("args", [("cluster", "up", "{f}", "--netns"), ("demo", "--netns")])
def test_without_root_netns_mode_says_so_in_one_line(
    not_root: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    topo = str(two_group_file(tmp_path / "org.toml"))
    result = invoke(*(a.format(f=topo) for a in args))
    assert result.exit_code == 1
    assert (
        result.output.strip() == "error: netns mode needs root (it creates network namespaces, veth pairs and bridges)"
    )


def test_fault_arguments_that_do_not_go_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    topo = str(two_group_file(tmp_path / "org.toml"))
    cases = {
        ("cluster", "fault", topo): "give TARGET and ACTION",
        ("cluster", "fault", topo, "A-B", "--heal"): "take no TARGET or ACTION",
        ("cluster", "fault", topo, "--partition", "A", "--heal"): "not both",
        ("cluster", "fault", topo, "--heal"): "need a cluster started with 'cluster up --netns'",
    }
    for args, message in cases.items():
        result = invoke(*args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_clean_with_nothing_to_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    topo = str(two_group_file(tmp_path / "org.toml"))
    result = invoke("cluster", "clean", topo)
    assert result.exit_code == 0 and "nothing to clean" in result.output
