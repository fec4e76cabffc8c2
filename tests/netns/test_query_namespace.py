"""Where a tool's connection to a node is made from (`winroute`, `route --node`, `remonitor inject`): the
namespace of the netns run that holds the address, never this namespace for an address of 198.18.0.0/15 that no
run holds (from here it would leave the machine by the default route), unless `--outside-netns`.

No namespace is made here: which namespaces hold an address is stubbed (`fabric.holders`), and what the tool would
connect is recorded instead of connecting (`netns_cmd.run_in`); tests/netns/test_cluster_netns.py runs the real
thing against a real netns cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from linkstate.cli import netns_cmd
from linkstate.cli.common import CliError
from linkstate.netns import fabric
from linkstate.service.client import ClientError
from tests.netns.test_cluster_netns import two_group_file
from tests.service.node_cli_helpers import SECRET, invoke

REFUSED = "is in 198.18.0.0/15, the range of netns clusters, but no netns cluster on this machine holds it"


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str | None, str]]:
    """Every connection a tool makes, as (namespace, host); none is really made (each fails as refused)."""
    made: list[tuple[str | None, str]] = []

    def run_in(ns: str | None, fn: Callable[..., Any], host: str, *args: Any, **kwargs: Any) -> Any:
        made.append((ns, host))
        raise ClientError("refused", f"cannot connect to {host}: stubbed")

    monkeypatch.setattr(netns_cmd, "run_in", run_in)
    monkeypatch.setattr(fabric, "unsupported", lambda: None)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    return made


def holding(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    monkeypatch.setattr(fabric, "holders", lambda address: table.get(address, []))


def tools(topo: Path, secret: Path, host: str) -> list[tuple[str, ...]]:
    return [
        ("winroute", host, "--secret-file", str(secret)),
        ("winroute", host, "--topology", str(topo)),
        ("route", "--node", host, "--topology", str(topo), "--from", "A1", "--to-group", "B"),
        ("remonitor", "inject", "--node", host, "--routing-group", "0" * 32, "--topology", str(topo)),
    ]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    return two_group_file(tmp_path / "org.toml"), secret


def test_an_address_of_the_benchmarking_range_that_no_run_holds_is_refused_before_any_connection(
    connections: list[tuple[str | None, str]], monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    holding(monkeypatch, {})
    for args in tools(*files, "198.18.0.1"):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith(f"error: 198.18.0.1 {REFUSED}") and result.output.count("\n") == 1
        assert "--outside-netns" in result.output
    assert connections == []


def test_outside_netns_connects_from_here(
    connections: list[tuple[str | None, str]], monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    holding(monkeypatch, {})
    for args in tools(*files, "198.19.0.1"):
        result = invoke(*args, "--outside-netns")
        assert result.exit_code == 1 and "stubbed" in result.output, (args, result.output)
    assert connections == [(None, "198.19.0.1")] * 4


def test_an_address_one_run_holds_is_reached_inside_that_run(
    connections: list[tuple[str | None, str]], monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    holding(monkeypatch, {"198.18.1.1": ["ls-00beef-B1"]})
    for args in tools(*files, "198.18.1.1"):
        assert invoke(*args).exit_code == 1
    assert connections == [("ls-00beef-B1", "198.18.1.1")] * 4


def test_an_address_several_runs_hold_needs_the_topology_of_the_one_meant(
    connections: list[tuple[str | None, str]], monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    holding(monkeypatch, {"198.18.0.1": ["ls-00beef-A1", "ls-c0ffee-SEA-BH1"]})
    result = invoke("winroute", "198.18.0.1", "--secret-file", str(files[1]))
    assert result.exit_code == 2 and connections == []
    assert result.output == ("error: 198.18.0.1 is an address of more than one netns run on this machine "
                             "(ls-00beef-*, ls-c0ffee-*): give --topology FILE of the cluster you mean\n")  # fmt: skip


def test_loopback_and_other_addresses_are_reached_from_here(
    connections: list[tuple[str | None, str]], monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    """Every namespace has its own loopback: a loopback query is this namespace's, whatever runs exist."""
    holding(monkeypatch, {"127.0.0.1": ["ls-00beef-A1", "ls-00beef-B1"], "192.0.2.7": []})
    for host in ("127.0.0.1", "192.0.2.7"):
        assert invoke("winroute", host, "--secret-file", str(files[1])).exit_code == 1
    assert connections == [(None, "127.0.0.1"), (None, "192.0.2.7")]


def test_a_namespace_that_is_gone_is_one_line() -> None:
    async def never(*args: object) -> None:
        raise AssertionError("called outside its namespace")

    with pytest.raises(CliError, match=r"^no network namespace 'ls-000000-gone' \(is the cluster running\?\)$"):
        netns_cmd.run_in("ls-000000-gone", never)


def test_fuzz_node_fuzzes_a_netns_node_inside_its_namespace_and_refuses_an_address_no_run_holds(
    monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    from linkstate.fuzz import live

    made: list[tuple[str | None, str]] = []

    def run_in(ns: str | None, fn: Callable[..., Any], plan: live.Plan, *args: Any) -> Any:
        made.append((ns, plan.host))
        raise live.LiveError("stubbed")

    monkeypatch.setattr(netns_cmd, "run_in", run_in)
    monkeypatch.setattr(fabric, "unsupported", lambda: None)
    holding(monkeypatch, {"198.18.1.1": ["ls-00beef-B1"]})
    topo = str(files[0])
    refused = invoke("fuzz", "node", "198.18.0.1", "--topology", topo, "--i-own-this-target", "198.18.0.1")
    assert refused.exit_code == 2 and REFUSED in refused.output and made == []
    assert invoke("fuzz", "node", "198.18.1.1", "--topology", topo).exit_code == 1  # no --i-own-this-target needed
    assert made == [("ls-00beef-B1", "198.18.1.1")]
