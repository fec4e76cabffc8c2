"""The rough edges a new user hit (issue 14, item 4), each pinned: help on a bare group, address and port checks,
one-line errors for empty/unreadable topologies, the --tolerant hint, server names for tools, `cluster fault` and
`cluster stop|status` without a running cluster, the demo's progress lines in a pipe, and the README's run-state
path. Everything here runs in-process (no node is started)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from linkstate.cli import demo
from linkstate.cli.cluster import Cluster, run_dir_for, save_state
from linkstate.cli.main import cli, main
from linkstate.cli.node_cmd import _target
from linkstate.service.topofile import load_topology
from tests.service.node_cli_helpers import free_ports, write_topology

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "vectors" / "seed-sample-l8818.txt"
SEATTLE = str(ROOT / "examples" / "seattle.toml")


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def run_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """Through `main()` itself (its own error handling), as the installed `linkstate` script runs."""
    monkeypatch.setattr(sys, "argv", ["linkstate", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.mark.parametrize("args", [[], ["cluster"], ["orginfo"], ["topology"], ["remonitor"], ["bench"]])
def test_a_bare_group_prints_its_help_and_exits_0(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_main(capsys, monkeypatch, *args)
    assert code == 0 and err == ""
    assert out.startswith(f"Usage: linkstate {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND")
    assert "Commands:" in out


def test_a_wrong_subcommand_is_still_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_main(capsys, monkeypatch, "cluster", "upp")
    assert code == 2 and err.startswith("error: No such command 'upp'")


# --------------------------------------------------------------------------------------------- topologies


def _topology(tmp_path: Path, *, address: str = "127.0.0.1", port: int = 17000) -> Path:
    return write_topology(tmp_path / "t.toml", ["A", "B"], [port, 17001], host=address, smtp=[17002, 17003])


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        ("10.0.0.300", 17000, "servers[0].address: is not an IPv4 address (four numbers 0-255"),
        ("127.0.0.1", 0, "servers[0].port_691: must be between 1 and 65535, got 0"),
        ("127.0.0.1", 65536, "servers[0].port_691: must be between 1 and 65535, got 65536"),
    ],
)
def test_check_rejects_impossible_addresses_and_ports(tmp_path: Path, address: str, port: int, expected: str) -> None:
    path = _topology(tmp_path, address=address, port=port)
    code, out, _ = run("topology", "check", str(path))
    assert code == 2 and expected in out, out


def test_cluster_up_says_up_front_that_it_needs_loopback(tmp_path: Path) -> None:
    path = _topology(tmp_path, address="10.0.0.3")
    code, out, err = run("cluster", "up", str(path))
    assert code == 2 and out == ""
    assert err.startswith("error: a local cluster runs every server on this machine, so every address must be "
                          "loopback (127.0.0.0/8); not loopback: A (10.0.0.3), B (10.0.0.3)")  # fmt: skip
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty: a topology needs [organization], [[routing_groups]] and [[servers]]"),
        ("# nothing but a comment\n", "the file is empty"),
        ('[[routing_groups]]\nname = "RG"\nmaster = "A"\n[[servers]]\nname = "A"\nrouting_group = "RG"\n',
         "organization: the [organization] table is required"),
    ],
)  # fmt: skip
def test_an_empty_topology_or_one_without_organization_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    code, out, _ = run("topology", "check", str(path))
    assert code == 2 and len(out.splitlines()) == 1 and expected in out, out
    code, _, err = run("cluster", "status", str(path))
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err


def test_a_missing_file_reads_no_such_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    for args in (["topology", "check"], ["cluster", "up"], ["winroute", "X", "--topology"], ["orginfo", "decode"]):
        code, _, err = run(*args, str(missing))
        assert (code, err) == (2, f"error: cannot read {missing}: no such file\n"), args


def test_decode_of_the_printed_form_suggests_tolerant() -> None:
    code, _, err = run("orginfo", "decode", str(SEED))
    assert code == 2
    assert err == "error: expected a separator (0x20), found b'.' at byte 10; this is the printed/sanitized form: " \
                  "try --tolerant\n"  # fmt: skip
    code, out, _ = run("orginfo", "decode", "--tolerant", str(SEED))
    assert code == 0 and '"digest": "a9c421ebe14f06710f6ab596345ac615"' in out


def test_decode_of_garbage_does_not_suggest_tolerant(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"{00000005} HELLO")
    code, _, err = run("orginfo", "decode", str(junk))
    assert code == 2 and "tolerant" not in err


def test_bench_convergence_help_hides_the_internal_subcommand() -> None:
    code, out, _ = run("bench", "convergence", "--help")
    assert code == 0 and "{run,compare}" in out
    assert "SUPPRESS" not in out and not re.search(r"\bserve\b", out)


# --------------------------------------------------------------------------------------------- names for tools


@pytest.mark.parametrize(
    "args",
    [
        ["winroute", "SEA-S3", "--topology", SEATTLE],
        ["route", "--node", "SEA-S3", "--topology", SEATTLE, "--from", "SEA-S2", "--to-server", "BRU-S2"],
        ["remonitor", "inject", "--node", "SEA-S3", "--routing-group", "Tokyo", "--topology", SEATTLE, "--force"],
    ],
    ids=["winroute", "route --node", "remonitor --node"],
)
def test_a_mistyped_server_name_is_an_unknown_server(args: list[str]) -> None:
    code, _, err = run(*args)
    assert code == 2 and err.startswith(f"error: unknown server 'SEA-S3' in {SEATTLE} (servers: SEA-BH1, SEA-S2,")


@contextlib.contextmanager
def fake_node(name: str) -> Iterator[int]:
    """A process whose command line looks like a node's (`… serve … NAME`), so the run state believes in it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "serve", "--server", name])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_server_names_resolve_to_the_running_clusters_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    ports = free_ports(4)
    path = write_topology(tmp_path / "t.toml", ["A", "B"], ports[:2], smtp=ports[2:])
    topo = load_topology(path)
    cluster = Cluster(path)
    state = cluster.prepare(topo, None)
    state.servers["A"].port = 4242  # as a derived dev-port copy would have it
    with fake_node("A") as pid:
        state.servers["A"].pid, state.servers["A"].state = pid, "running"
        save_state(state)
        assert _target("A", topo, str(path)) == ("127.0.0.1", 4242)
        assert _target("a", topo, str(path)) == ("127.0.0.1", 4242)
        assert _target("B", topo, str(path)) == ("127.0.0.1", ports[1])  # not running: the file's port
        assert _target("127.0.0.1", topo, str(path)) == ("127.0.0.1", 4242)
        assert _target("127.0.0.1:99", topo, str(path)) == ("127.0.0.1", 99)
    assert _target("A", topo, str(path)) == ("127.0.0.1", ports[0])  # gone: the file's port again


# --------------------------------------------------------------------------------------------- no cluster


def test_cluster_commands_without_a_running_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = _topology(tmp_path)
    code, _, err = run("cluster", "fault", str(path), "B", "down")
    assert (code, err) == (1, f"error: no cluster is running for {path} (start one with 'linkstate cluster up')\n")
    code, _, err = run("cluster", "stop", str(path))
    assert code == 1 and err.startswith("error: no cluster has run for")

    Cluster(path).prepare(load_topology(path), None)  # a cluster that ran and is gone: state, no process
    code, _, err = run("cluster", "fault", str(path), "A", "up")
    assert code == 1 and "no cluster is running" in err
    code, out, _ = run("cluster", "stop", str(path))
    assert (code, out) == (0, f"no cluster is running for {path}: nothing to stop\n")
    code, out, _ = run("cluster", "status", str(path), "B")
    assert code == 0 and out.split() == ["B", "127.0.0.1:17001", "stopped"]
    code, _, err = run("cluster", "status", str(path), "Q")
    assert code == 2 and err.startswith("error: unknown server 'Q'")
    code, _, err = run("cluster", "stop", str(path), "Q")
    assert code == 2 and err.startswith("error: unknown server 'Q'")


# --------------------------------------------------------------------------------------------- the demo


def test_progress_in_a_pipe_is_printed_at_least_every_few_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    progress = demo.Progress(tty=False)
    for tenth in range(101):  # the same state for 10 s, polled every 0.1 s
        progress.update("answering 7/8", f"waiting [{tenth / 10:.1f} s]", tenth / 10)
    progress.update("answering 8/8", "waiting [10.1 s]", 10.1)  # a change is shown at once
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["waiting [0.0 s]", "waiting [3.0 s]", "waiting [6.0 s]", "waiting [9.0 s]", "waiting [10.1 s]"]


class _StuckCluster:
    async def statuses(self, timeout: float = 3.0) -> list[object]:
        await trio.sleep(0)
        return []


async def test_a_demo_wait_shows_progress_in_a_pipe(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    run_ = demo.DemoRun(_StuckCluster(), load_topology(SEATTLE), 60.0, timeout=20.0)  # type: ignore[arg-type]
    with pytest.raises(demo.DemoFailed, match="not reached within 20 s"):
        await run_.wait_for("one digest", lambda statuses: "answering 0/8")
    waiting = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  waiting: one digest")]
    seconds = [float(m.group(1)) for ln in waiting if (m := re.search(r"\[\s*([\d.]+) s\]", ln))]
    assert len(seconds) >= 6 and max(b - a for a, b in zip([0.0, *seconds], [*seconds, 20.0], strict=True)) <= 3.5


async def test_the_demo_waits_past_a_passing_equal_cost_path_through_the_lost_group(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While London's loss travels, Tokyo → London → Brussels costs 35 too (Tokyo has not probed London yet); the
    demo shows the route only once it is Tokyo → Brussels (the CI failure of stop 17)."""
    from linkstate.core.routing import Route, RouteStatus

    answers = iter([("Seattle", "Tokyo", "London", "Brussels")] * 3 + [("Seattle", "Tokyo", "Brussels")])

    async def live_route(run: demo.DemoRun) -> Route:
        await trio.sleep(0)
        return Route(status=RouteStatus.ROUTE, cost=35, path=next(answers))

    monkeypatch.setattr(demo, "live_route", live_route)
    run_ = demo.DemoRun(_StuckCluster(), load_topology(SEATTLE), 60.0, timeout=20.0)  # type: ignore[arg-type]
    await demo.wait_route(run_, 35, demo.VIA_TOKYO, "propagated")
    shown = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  route")]
    assert [ln.split("  cost")[0] for ln in shown] == ["  route  Seattle → Tokyo → Brussels"], shown


# --------------------------------------------------------------------------------------------- README


def test_the_readme_names_the_run_directory_used_without_xdg_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(r"`\$XDG_RUNTIME_DIR/linkstate/<stem>-<hash>/` \(or `([^`]+)` beside the file when it is unset\)",
                  text)  # fmt: skip
    assert m is not None, "the README's run-state sentence changed"
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    topo = tmp_path / "org.toml"
    assert run_dir_for(topo) == tmp_path / m.group(1).replace("<stem>", "org").rstrip("/")
