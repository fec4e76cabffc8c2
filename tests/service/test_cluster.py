"""`linkstate cluster …`: run directory, port policy, derived topology, status of a stopped cluster, and a
short `cluster up` smoke run as real processes on loopback high ports."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import trio

from linkstate.cli.cluster import (
    DEV_PORT_691,
    DEV_PORT_SMTP,
    Cluster,
    NodeRecord,
    NodeStatus,
    RunState,
    derive_topology,
    dumps_toml,
    format_status,
    node_alive,
    query_all,
    run_dir_for,
    save_state,
)
from linkstate.cli.node_cmd import parse_hostport
from linkstate.service.topofile import load_topology
from tests.service.node_cli_helpers import (
    SEED_ROUTES,
    demo_routes,
    free_ports,
    invoke,
    kill_quietly,
    reaped,
    run_cli,
    run_demo,
    spawn_cli,
    squat,
    wait_until,
    write_topology,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LOADED = 60  # seconds a step may take on a loaded machine (a bound, not a speed: the steps usually take one or two)
PACKAGED = Path(__file__).resolve().parents[2] / "linkstate" / "examples"


# --------------------------------------------------------------------------------------------- units


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_toml_writer_round_trips_the_examples(path: Path) -> None:
    raw = tomllib.loads(path.read_text())
    assert tomllib.loads(dumps_toml(raw)) == raw


def test_packaged_examples_are_copies_of_the_examples() -> None:
    for name in ("single-group.toml", "seattle.toml"):
        assert (PACKAGED / name).read_text() == (EXAMPLES / name).read_text()


def test_derived_topology_gets_dev_ports_and_an_absolute_secret_file(tmp_path: Path) -> None:
    src = tmp_path / "org"
    src.mkdir()
    (src / "single-group.toml").write_text((EXAMPLES / "single-group.toml").read_text())
    (src / "single-group.secret").write_text("s3cret\n")
    dest = tmp_path / "run" / "topology.toml"
    dest.parent.mkdir()
    topo = derive_topology(src / "single-group.toml", dest)
    assert [(s.port_691, s.port_smtp) for s in topo.servers] == [
        (DEV_PORT_691 + n, DEV_PORT_SMTP + n) for n in range(len(topo.servers))
    ]
    assert topo.secret == b"s3cret"
    original = load_topology(src / "single-group.toml")
    assert [s.guid for s in topo.servers] == [s.guid for s in original.servers]
    assert load_topology(dest).servers == topo.servers


def test_run_dir_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topo = tmp_path / "a" / "org.toml"
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert run_dir_for(topo) == tmp_path / "a" / ".linkstate" / "org"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    one, two = run_dir_for(topo), run_dir_for(tmp_path / "b" / "org.toml")
    assert one.parent == tmp_path / "xdg" / "linkstate" and one.name.startswith("org-")
    assert one != two


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.1.2", ("127.0.1.2", None)), ("127.0.1.2:6911", ("127.0.1.2", 6911)), ("[::1]:691", ("::1", 691))],
)
def test_parse_hostport(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_hostport(text, None) == expected


def test_status_lines() -> None:
    running = NodeStatus("EX1", "127.0.1.1", 691, "running", role="master", attached=True, quorum=True)
    running.digest, running.version = "0123456789abcdef" * 2, "2.0.1"
    lines = format_status([running, NodeStatus("EX2", "127.0.1.2", 691, "stopped")])
    expected = "EX1 127.0.1.1:691 master attached YES quorum YES digest 01234567 version 2.0.1"
    assert lines[0].split() == expected.split()
    assert lines[1].split() == ["EX2", "127.0.1.2:691", "stopped"]


# --------------------------------------------------------------------------------------------- commands


def test_cluster_status_of_a_cluster_that_never_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = write_topology(tmp_path / "topology.toml", ["A", "B", "C"], free_ports(3))
    res = invoke("cluster", "status", str(path))
    assert res.exit_code == 0, res.output
    assert [ln.split()[-1] for ln in res.stdout.splitlines()] == ["stopped"] * 3
    res = invoke("cluster", "status", str(path), "--json")
    data = json.loads(res.stdout)
    assert [(s["name"], s["state"]) for s in data["servers"]] == [("A", "stopped"), ("B", "stopped"), ("C", "stopped")]
    assert data["supervisor"] is None
    res = invoke("cluster", "stop", str(path), "B")
    assert res.exit_code == 1 and res.stderr.startswith("error: no cluster has run")
    res = invoke("cluster", "up", str(tmp_path / "missing.toml"))
    assert res.exit_code == 2 and res.stderr == f"error: cannot read {tmp_path / 'missing.toml'}: no such file\n"


def test_cluster_refuses_non_loopback_addresses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = write_topology(tmp_path / "topology.toml", ["A"], [17999], host="192.0.2.10")
    res = invoke("cluster", "up", str(path))
    assert res.exit_code == 2 and "loopback" in res.stderr


@pytest.mark.tcp
def test_cluster_up_fails_when_a_node_dies_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cluster up` waits until every node answers on 691; one that exits is reported with its own error line,
    and the others are stopped again (issue 11, item 9)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    ports = free_ports(4)
    path = write_topology(tmp_path / "topology.toml", ["A", "B"], ports[:2], smtp=ports[2:])
    with squat(ports[1]):
        res = run_cli("cluster", "up", str(path), "--no-status")
    assert res.returncode == 1, res.stdout + res.stderr
    assert re.search(rf"  A +pid \d+ +listens on 127\.0\.0\.1:{ports[0]}", res.stdout), res.stdout
    assert re.search(rf"  B +pid \d+ +did not come up: it exited: cannot listen on 127\.0\.0\.1:{ports[1]} \(691\): "
                     "address already in use", res.stdout), res.stdout  # fmt: skip
    assert res.stdout.endswith("stopped 1 server: A\n")
    assert res.stderr == "error: 1 server of 2 did not come up (B): stopping the cluster\n"
    assert [s.state for s in _statuses(Cluster(path))] == ["stopped", "stopped"]


def _statuses(cluster: Cluster) -> list[NodeStatus]:
    return trio.run(cluster.statuses)


@pytest.mark.tcp
def test_cluster_up_converges_and_stops_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    ports = free_ports(6)
    names = ["A", "B", "C"]
    path = write_topology(tmp_path / "topology.toml", names, ports[:3], smtp=ports[3:])
    cluster = Cluster(path)
    out = tmp_path / "up.out"
    with open(out, "w") as fh, reaped(spawn_cli("cluster", "up", str(path), "--time-scale", "60", stdout=fh)) as up:
        try:

            def converged() -> bool:
                sts = _statuses(cluster)
                return (
                    all(s.state == "running" for s in sts)
                    and len({s.digest for s in sts}) == 1
                    and all(s.attached for s in sts)
                    and sts[0].version not in (None, "0.0.0")
                )

            assert wait_until(converged, timeout=LOADED), out.read_text() + str(_statuses(cluster))
            state = cluster.state()
            assert state is not None and not state.derived and state.supervisor == up.pid
            assert {n: (r.host, r.port) for n, r in state.servers.items()} == {
                n: ("127.0.0.1", p) for n, p in zip(names, ports[:3], strict=True)
            }

            # stop one member on purpose: it shows `stopped`, and `cluster up` leaves it stopped
            res = run_cli("cluster", "stop", str(path), "C")
            assert res.returncode == 0 and "stopped C" in res.stdout, res.stderr
            # (a DUMP may take its whole timeout on a loaded machine: "no-answer" is asked again, never accepted)
            assert wait_until(lambda: [s.state for s in _statuses(cluster)] == ["running", "running", "stopped"],
                              LOADED), _statuses(cluster)  # fmt: skip

            def states() -> list[str]:
                res = run_cli("cluster", "status", str(path), "--json")
                return [s["state"] for s in json.loads(res.stdout)["servers"]]

            assert wait_until(lambda: states() == ["running", "running", "stopped"], LOADED), states()

            res = run_cli("cluster", "status", str(path), "C")
            assert res.returncode == 0 and res.stdout.split() == ["C", f"127.0.0.1:{ports[2]}", "stopped"]

            # a start whose node dies at once (its port is taken) fails with the node's own error line
            with squat(ports[2]):
                res = run_cli("cluster", "start", str(path), "C", "--wait", str(LOADED), timeout=2 * LOADED)
            assert res.returncode == 1, res.stdout
            assert re.fullmatch(r"error: C \(pid \d+\) did not come up: it exited: cannot listen on "
                                rf"127\.0\.0\.1:{ports[2]} \(691\): address already in use\n", res.stderr)  # fmt: skip

            # and start it again
            res = run_cli("cluster", "start", str(path), "C", "--wait", str(LOADED), timeout=2 * LOADED)
            assert res.returncode == 0 and "started C" in res.stdout, res.stderr
            assert wait_until(converged, timeout=LOADED), str(_statuses(cluster))
            pids = [r.pid for r in cluster.require_state().servers.values()]
            logs = [Path(r.log) for r in cluster.require_state().servers.values()]
            logged = [log.stat().st_size for log in logs]

            # `cluster stop FILE` stops everything, `cluster up` included, and a planned stop warns no one
            res = run_cli("cluster", "stop", str(path), timeout=2 * LOADED)
            assert res.returncode == 0, res.stderr
            assert res.stdout == f"stopped 3 servers: A, B, C\nand its 'linkstate cluster up' (pid {up.pid})\n"
            assert up.wait(timeout=LOADED) == 0, out.read_text()
            tails = [log.read_bytes()[size:].decode() for log, size in zip(logs, logged, strict=True)]
            assert not [ln for t in tails for ln in t.splitlines() if '"level": "warning"' in ln], tails
        finally:
            state = cluster.state()
            for rec in state.servers.values() if state else ():
                if node_alive(rec):
                    kill_quietly(rec.pid)
    text = out.read_text()
    assert "listens on 127.0.0.1" in text and "stopped 3 servers" in text, text
    assert all(not _pid_alive(p) for p in pids)
    sts = _statuses(cluster)
    assert [s.state for s in sts] == ["stopped"] * 3
    res = run_cli("cluster", "status", str(path))
    assert res.returncode == 0 and [ln.split()[-1] for ln in res.stdout.splitlines()] == ["stopped"] * 3


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.tcp
def test_single_group_demo_runs_to_the_end(tmp_path: Path) -> None:
    """`linkstate demo --example single-group`: converge, lose the master, converge above the old version."""
    rc, text = run_demo(tmp_path / "demo.out", "--example", "single-group", "--time-scale", "20", "--timeout", "60",
                        timeout=240)  # fmt: skip
    assert rc == 0, text
    assert "Am I connected to the Master?: YES" in text
    assert "Am I connected to the Master?: NO" in text
    old, new = re.search(r"version (\d+\.\d+\.\d+) -> (\d+\.\d+\.\d+)", text).groups()  # type: ignore[union-attr]
    assert tuple(map(int, new.split("."))) > tuple(map(int, old.split(".")))
    assert "stopped 3 server(s)" in text and "demo finished" in text


@pytest.mark.tcp
def test_the_main_job_reroutes_around_london_and_back(tmp_path: Path) -> None:
    """`linkstate demo` (what `make run` calls): the seed's organization, London's bridgehead lost and back."""
    rc, text = run_demo(tmp_path / "demo.out", "--timeout", "90", timeout=300)
    assert rc == 0, text
    assert demo_routes(text) == SEED_ROUTES, text
    assert "stopped 8 server(s)" in text and "demo finished" in text


def test_a_squatter_holds_a_port_its_last_owner_left_in_time_wait() -> None:
    """How the tests take a node's port: a stopped node that closed a connection first (a status DUMP in flight
    when it was stopped) leaves a TIME_WAIT on its port; the squatter binds anyway and the node still cannot."""
    with socket.socket() as owner:
        owner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        owner.bind(("127.0.0.1", 0))
        owner.listen()
        port = owner.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = owner.accept()
            conn.close()  # the owner closes first: TIME_WAIT on its port
            client.recv(1)
    with squat(port), socket.socket() as node:
        node.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as trio's listeners
        with pytest.raises(OSError, match="in use"):
            node.bind(("127.0.0.1", port))


def test_a_whole_cluster_stop_takes_the_members_before_the_masters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that no member ever loses its master in a planned stop (and warns, as for a crash)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = write_topology(tmp_path / "topology.toml", ["M", "A", "B"], free_ports(3))  # M: the group's master
    cluster = Cluster(path)
    state = cluster.prepare(load_topology(path), None)
    for pid, rec in enumerate(state.servers.values(), start=1000):
        rec.pid, rec.state = pid, "running"
    save_state(state)
    waves: list[list[str]] = []
    monkeypatch.setattr("linkstate.cli.cluster.node_alive", lambda rec: True)
    monkeypatch.setattr(Cluster, "_terminate", lambda self, pids, names, timeout: waves.append(sorted(names)))
    assert sorted(cluster.stop_all()) == ["A", "B", "M"]
    assert waves == [["A", "B"], ["M"]]


async def test_a_status_poll_cancelled_midway_keeps_its_connection_until_its_own_timeout(tmp_path: Path) -> None:
    """A node that accepts and answers slowly: the poll is cancelled 0.1 s in (a stopped `cluster up`), yet its
    connection stays open until the poll's own 1 s timeout — closed earlier, mid-authentication, every node would
    log auth_failed for a planned stop."""
    path = write_topology(tmp_path / "topology.toml", ["A"], free_ports(1), smtp=free_ports(1))
    topo = load_topology(path)
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    held: list[float] = []

    async def slow_node() -> None:
        with trio.fail_after(10):  # bounded, whatever happens
            conn, _ = await listener.accept()
            start = trio.current_time()
            with conn:
                while await conn.recv(4096):  # the client's bytes, until it closes
                    pass
            held.append(trio.current_time() - start)

    # a live process whose command line reads as node A's `serve`
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "serve", "A"])
    try:
        rec = NodeRecord("A", "127.0.0.1", port, 0, str(path), str(tmp_path / "A.log"), pid=stand_in.pid,
                         state="running", started_at=0.0)  # fmt: skip
        state = RunState(str(path), str(path), str(tmp_path), False, None, servers={"A": rec})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_node)
            with trio.move_on_after(0.1):
                await query_all(state, topo, timeout=1.0)
    finally:
        stand_in.kill()
        stand_in.wait()
        listener.close()
    assert held and held[0] >= 0.9, held
