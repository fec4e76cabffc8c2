"""`linkstate winroute` and `linkstate serve` against real nodes on loopback (started by the tests)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from linkstate.service.client import ClientError, dump
from linkstate.service.node import NodeService
from linkstate.service.topofile import load_topology
from tests.service.node_cli_helpers import ENTRY, SECRET, free_ports, invoke, run_cli, write_topology

pytestmark = pytest.mark.tcp


async def _attached(svc: NodeService, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while svc.core is None or not svc.core.view().attached:
            await trio.sleep(0.02)


async def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a user runs it (a subprocess), so its output is not mixed with the nodes' logs."""
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-c", ENTRY, *args], capture_stdout=True, capture_stderr=True, check=False
        )


def _one_error_line(stderr: bytes | str) -> str:
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    assert "Traceback" not in text
    return lines[0]


# --------------------------------------------------------------------------------------------- winroute


async def test_winroute_against_running_nodes(tmp_path: Path) -> None:
    ports = free_ports(2)
    path = write_topology(tmp_path / "topology.toml", ["A", "B"], ports)
    topo = load_topology(path)
    (tmp_path / "wrong.secret").write_text("not-the-secret\n")
    async with trio.open_nursery() as nursery:
        master = await nursery.start(NodeService(topo, "A").run)
        member = await nursery.start(NodeService(topo, "B").run)
        await _attached(member)
        assert master.core is not None and member.core is not None
        with trio.fail_after(10):  # the member holds what the master published
            while member.core.lsdb.digest != master.core.lsdb.digest:
                await trio.sleep(0.05)
        target = f"127.0.0.1:{ports[1]}"
        results: dict[str, subprocess.CompletedProcess[bytes]] = {}

        async def run(key: str, *args: str) -> None:
            results[key] = await _cli("winroute", *args)

        async with trio.open_nursery() as calls:
            calls.start_soon(run, "json", target, "--topology", str(path), "--json")
            calls.start_soon(run, "text", "B", "--topology", str(path))
            calls.start_soon(run, "raw", target, "--topology", str(path), "--raw")
            calls.start_soon(run, "wrong", target, "--secret-file", str(tmp_path / "wrong.secret"))
        assert member.core is not None and master.core is not None
        member_digest, member_frame = member.core.lsdb.digest, member.core.lsdb.frame()
        nursery.cancel_scope.cancel()

    js = results["json"]
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["digest"] == member_digest
    assert {"digest", "computed_digest", "length", "warnings", "routing_groups", "local"} <= set(data)
    assert data["local"] == {
        "node": "B",
        "routing_group": "RG",
        "role": "member",
        "master": "A",
        "attached": True,
        "quorum": True,
        "attached_count": 1,
        "servers": 2,
    }
    (rg,) = data["routing_groups"]
    assert rg["guid"] == topo.routing_group("RG").guid
    assert {m["guid"]: m["connected"] for m in rg["members"]} == {s.guid: True for s in topo.servers}

    text = results["text"]
    assert text.returncode == 0, text.stderr
    out = text.stdout.decode()
    assert "Am I connected to the Master?: YES" in out
    assert f"Digest:       {member_digest}" in out
    assert "Routing group RG {" in out and "Master:       A" in out
    assert "connected to master: YES" in out

    raw = results["raw"]
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == member_frame

    wrong = results["wrong"]
    assert wrong.returncode == 1
    assert "authentication" in _one_error_line(wrong.stderr)


def test_winroute_unreachable_and_bad_arguments(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    path = write_topology(tmp_path / "topology.toml", ["A"], [port])
    res = invoke("winroute", f"127.0.0.1:{port}", "--topology", str(path), "--timeout", "3")
    assert res.exit_code == 1
    assert "refused" in _one_error_line(res.stderr).lower()
    res = invoke("winroute", f"127.0.0.1:{port}")
    assert res.exit_code == 2 and "secret" in _one_error_line(res.stderr)
    res = invoke("winroute", "127.0.0.1:99999", "--topology", str(path))
    assert res.exit_code == 2 and "port" in _one_error_line(res.stderr)
    res = invoke("winroute", "A", "--topology", str(path), "--json", "--raw")
    assert res.exit_code == 2
    _one_error_line(res.stderr)


# --------------------------------------------------------------------------------------------- serve


def test_serve_bad_topology_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[organization]\nname = "x"\nsecret = "s"\n[[servers]]\nname = "A"\nrouting_group = "nope"\n')
    res = invoke("serve", "--topology", str(bad), "--server", "A")
    assert res.exit_code == 2
    assert "invalid topology" in _one_error_line(res.stderr)
    res = invoke("serve", "--topology", str(tmp_path / "missing.toml"), "--server", "A")
    assert res.exit_code == 2
    _one_error_line(res.stderr)


def test_serve_unknown_server_and_bad_time_scale(tmp_path: Path) -> None:
    path = write_topology(tmp_path / "topology.toml", ["A"], free_ports(1))
    res = invoke("serve", "--topology", str(path), "--server", "NOPE")
    assert res.exit_code == 2 and "unknown server 'NOPE'" in _one_error_line(res.stderr)
    res = invoke("serve", "--topology", str(path), "--server", "A", "--time-scale", "0")
    assert res.exit_code == 2 and "--time-scale" in _one_error_line(res.stderr)


def test_serve_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write_topology(tmp_path / "topology.toml", ["A"], [port])
        res = run_cli("serve", "--topology", str(path), "--server", "A", "--log-format", "json")
    assert res.returncode == 1
    assert "address already in use" in _one_error_line(res.stderr)


async def test_serve_runs_reloads_on_sighup_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    ports = free_ports(2)
    path = write_topology(tmp_path / "topology.toml", ["A", "B"], ports)
    log = tmp_path / "a.log"
    with open(log, "wb") as fh:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-c", ENTRY, "serve", "--topology", str(path), "--server", "A", "--log-format", "json"],
            stdout=fh,
            stderr=fh,
        )
    try:
        topo = load_topology(path)
        async with trio.open_nursery() as nursery:
            member = await nursery.start(NodeService(topo, "B").run)
            await _attached(member, timeout=30)
            view, _ = await dump("127.0.0.1", ports[0], SECRET.encode())
            assert view.role == "master"
            proc.send_signal(signal.SIGHUP)
            with trio.fail_after(10):
                while b"topology_loaded" not in log.read_bytes():
                    await trio.sleep(0.05)
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(15):
                rc = await proc.wait()
            assert rc == 0, log.read_text()
            with trio.fail_after(10):
                while member.core is not None and member.core.view().attached:
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        with pytest.raises(ClientError):
            await dump("127.0.0.1", ports[0], SECRET.encode(), timeout=2)
        events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")]
        assert "signal" in events and events[-1] == "stopped"
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(5):
                await proc.wait()
