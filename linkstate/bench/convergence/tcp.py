"""The tcp transport: loopback TCP, one process per server (the real NodeService), wall-clock time.

Owns: `BenchCluster` (linkstate.cli.cluster's run directory, state file, loopback check and stop, with each node
run as `python -m linkstate.bench.convergence serve`), `EventsReader` (tails every node's events file), `run_tcp`,
`tcp_measure`, and `serve_node` (the child: a NodeService, commands on stdin, table changes and write counters to
its events file).
Invariants: binds loopback addresses only (checked); every child process is stopped on success, failure and
Ctrl-C; runs are bounded by a wall-clock budget.
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from linkstate.bench.convergence.counting import counting_transport
from linkstate.bench.convergence.organizations import PORT_691, PORT_SMTP, topology_of
from linkstate.bench.convergence.plan import (
    DOWN,
    NotApplicable,
    Plan,
    ScenarioFailed,
    after_major,
    make_plan,
    minor_connector,
    origin_of,
)
from linkstate.bench.convergence.report import Progress, fmt_s
from linkstate.bench.convergence.results import Run, Scenario, diff, finish_run, ratio_of
from linkstate.cli.cluster import Cluster, NodeRecord, can_bind, check_loopback, dumps_toml, save_state
from linkstate.core import events as ev
from linkstate.logconfig import configure
from linkstate.service.node import NodeService
from linkstate.service.topofile import load_topology
from linkstate.service.transport import TcpTransport
from linkstate.sim.network import Traffic
from proto.model import BridgeheadState


class BenchCluster(Cluster):
    """linkstate.cli.cluster's machinery (run directory, state file, loopback check, SIGTERM/SIGKILL stop), with
    each node run by `python -m linkstate.bench.convergence serve`: the real NodeService on TCP, plus a control pipe
    (stdin) and an events file (every table change with its wall-clock time, and the 691/SMTP write counters)."""

    def spawn(self, name: str) -> NodeRecord:
        state = self.require_state()
        rec = state.servers[name]
        events = self.run_dir / f"{name}.events.jsonl"
        cmd = [sys.executable, "-m", "linkstate.bench.convergence", "serve", "--topology", rec.topology,
               "--server", name, "--events", str(events)]  # fmt: skip
        with open(rec.log, "ab") as log, self.child_setup(rec) as setup:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.run_dir, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                    start_new_session=True, preexec_fn=setup)  # fmt: skip
        self.children[proc.pid] = proc
        rec.pid, rec.state, rec.started_at = proc.pid, "running", time.time()
        save_state(state)
        return rec

    def child_setup(self, rec: NodeRecord) -> contextlib.AbstractContextManager[Callable[[], None] | None]:
        """What a node's child process runs before exec (nothing here; bench/peer_ospf.py enters a namespace)."""
        return contextlib.nullcontext()

    def check_children(self) -> None:
        for pid, proc in self.children.items():
            if proc.poll() is not None:
                raise ScenarioFailed(f"a node process ({pid}) exited: see the logs in {self.run_dir} (--keep)")

    def command(self, name: str, line: str) -> None:
        rec = self.require_state().servers[name]
        proc = self.children.get(rec.pid or -1)
        if proc is None or proc.stdin is None:
            raise RuntimeError(f"{name} is not a child of this benchmark")
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()


class EventsReader:
    """Tails every node's events file."""

    def __init__(self, run_dir: Path, servers: list[str]) -> None:
        self.paths = {n: run_dir / f"{n}.events.jsonl" for n in servers}
        self.offsets = dict.fromkeys(servers, 0)
        self.digest: dict[str, str] = {}
        self.counters: dict[str, dict[str, list[int]]] = {}
        self.timeline: list[tuple[float, str, str]] = []
        self.ready: set[str] = set()

    def poll(self) -> None:
        for name, path in self.paths.items():
            try:
                with open(path, "rb") as fh:
                    fh.seek(self.offsets[name])
                    chunk = fh.read()
            except FileNotFoundError:
                continue
            end = chunk.rfind(b"\n") + 1
            self.offsets[name] += end
            for line in chunk[:end].splitlines():
                rec = json.loads(line)
                if "digest" in rec:
                    self.digest[name] = rec["digest"]
                    self.timeline.append((rec["t"], name, rec["digest"]))
                if "counters" in rec:
                    self.counters[name] = rec["counters"]
                if rec.get("kind") == "start":
                    self.ready.add(name)

    def converged(self, servers: list[str]) -> bool:
        return all(n in self.digest for n in servers) and len({self.digest[n] for n in servers}) == 1


def run_tcp(scn: Scenario, runs: int, progress: Progress, keep: bool = False, budget: float = 120.0) -> None:
    plan = make_plan(scn.shape, scn.groups, scn.servers_per_group, scn.seed, scn.settings)
    if scn.event == "oscillation":
        raise NotApplicable("the oscillation scenario runs on the sim transport (it counts updates, not time)")
    check_loopback(plan.topology)
    busy = [s.address for s in plan.topology.servers if not can_bind(s.address or "127.0.0.1", PORT_691)]
    if busy:
        raise ScenarioFailed(f"{busy[0]}:{PORT_691} is in use (another benchmark running?)")
    run_dir = Path(tempfile.mkdtemp(prefix="linkstate-bench-"))
    topo_file = run_dir / "source.toml"
    topo_file.write_text(dumps_toml(plan.data))
    cluster = BenchCluster(topo_file, run_dir)
    try:
        cluster.prepare(plan.topology, None, supervisor_kind="bench")
        reader = EventsReader(run_dir, plan.servers)
        for name in plan.servers:
            cluster.spawn(name)
        t_start = time.monotonic()
        while True:
            reader.poll()
            if len(reader.ready) == len(plan.servers) and reader.converged(plan.servers):
                break
            if time.monotonic() - t_start > budget + 5 * len(plan.servers):
                raise ScenarioFailed(f"the cluster did not converge at start ({len(reader.ready)} nodes up)")
            for rec in cluster.require_state().servers.values():
                proc = cluster.children.get(rec.pid or -1)
                if proc is not None and proc.poll() is not None:
                    raise ScenarioFailed(f"{rec.name} exited at start: see {rec.log}")
            time.sleep(0.05)
        time.sleep(1.0)
        scn.warmup_s = time.monotonic() - t_start
        scn.note = f"start-up {scn.warmup_s:.1f}s wall"
        guid, bh = minor_connector(plan) if scn.event == "minor" else ("", "")
        down = f"fault {guid} {DOWN.value}"
        for k in range(runs):
            if scn.event == "minor":
                sub = origin_of(plan, bh)
                run = tcp_measure(cluster, reader, sub, lambda: cluster.command(bh, down), budget)
                tcp_measure(cluster, reader, sub, lambda: cluster.command(bh, f"fault {guid} CLEAR"), budget)
            elif scn.event == "major":
                data, _ = plan.major_topology(k)
                path = run_dir / f"major-{k}.toml"
                path.write_text(dumps_toml(data))

                def major(path: Path = path) -> None:
                    for name in plan.servers:
                        cluster.command(name, f"topology {path}")

                run = tcp_measure(cluster, reader, after_major(plan, data, topology_of(data)), major, budget)
            elif scn.event == "user":
                member = plan.member
                if member is None:
                    raise NotApplicable("a user update restarts a member: give --servers 2 or more")

                def restart(member: str = member) -> None:
                    cluster.stop(member, timeout=5)
                    reader.digest.pop(member, None)
                    cluster.spawn(member)

                run = tcp_measure(cluster, reader, plan, restart, budget)
            else:
                raise ValueError(scn.event)
            scn.runs.append(run)
            progress.step(f"run {k + 1}: {fmt_s(run.convergence)}")
    finally:
        cluster.stop_all(timeout=5)
        for proc in cluster.children.values():
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=2)
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def tcp_counters(cluster: BenchCluster, reader: EventsReader, servers: list[str]) -> Traffic:
    """Ask every node for its write counters and sum them."""
    seq = time.monotonic_ns()
    for name in servers:
        cluster.command(name, f"counters {seq}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reader.poll()
        if all(reader.counters.get(n, {}).get("seq") == [seq] for n in servers):
            break
        time.sleep(0.01)
    total = Traffic()
    for n in servers:
        c = reader.counters.get(n, {})
        for proto in ("691", "smtp"):
            m, b = c.get(proto, [0, 0])
            split = total.by_proto.setdefault(proto, Traffic())
            split.messages += m
            split.bytes += b
            total.messages += m
            total.bytes += b
    return total


def tcp_measure(cluster: BenchCluster, reader: EventsReader, plan: Plan, action: Callable[[], None],
                budget: float) -> Run:  # fmt: skip
    reader.poll()
    old = reader.digest[plan.servers[0]]
    before = tcp_counters(cluster, reader, plan.servers)
    mark = len(reader.timeline)
    t0 = time.perf_counter()
    action()
    deadline = time.monotonic() + budget
    done = False
    while time.monotonic() < deadline:
        reader.poll()
        if reader.converged(plan.servers) and reader.digest[plan.servers[0]] != old:
            done = True
            break
        cluster.check_children()
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    time.sleep(0.2)  # let the last writes (ACKs, QUIT) land before counting
    after = tcp_counters(cluster, reader, plan.servers)
    final = reader.digest[plan.servers[0]] if done else None
    timeline = reader.timeline[mark:]
    conv, t_hop, arrivals = finish_run(timeline, old, final, plan.servers, plan.neighbours, plan.depth)
    packet = reader.counters.get(plan.origin, {}).get("frame", [0])[0]
    return Run(conv, t_hop, plan.depth, ratio_of(conv, t_hop, plan.depth), *diff(after, before), packet, wall,
               len(plan.servers), arrivals)  # fmt: skip


def serve_node(topology: str, server: str, events: str) -> None:
    """The child process of the tcp transport (see BenchCluster): commands on stdin, records to `events`."""


    configure("json", "warning")
    topo = load_topology(topology)
    spec = topo.server(server)
    out = open(events, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    transport, counted = counting_transport(TcpTransport(), spec.port_smtp or PORT_SMTP)
    svc = NodeService(topo, server, transport=transport)

    def emit(rec: dict[str, Any]) -> None:
        out.write(json.dumps(rec) + "\n")

    def command(words: list[str]) -> None:
        if not words:
            return
        if words[0] == "fault":  # fault CONNECTOR-GUID STATE|CLEAR
            state = None if words[2] == "CLEAR" else BridgeheadState(words[2])
            svc.post(ev.FaultInjected(words[1], state))
        elif words[0] == "topology":  # topology PATH: a directory change (a major update)
            new = load_topology(words[1])
            svc.topology = new
            svc.post(ev.TopologyChanged(new))
        elif words[0] == "counters":  # counters SEQ: the write counters, tagged with SEQ
            c = counted.traffic.by_proto
            frame = len(svc.core.lsdb.frame()) if svc.core is not None else 0
            emit({"counters": {"seq": [int(words[1])], **{p: [c[p].messages, c[p].bytes] for p in c},
                               "frame": [frame]}})  # fmt: skip
        else:
            raise ValueError(f"unknown command {words[0]!r}")

    async def main() -> None:
        svc.on_table_changed = lambda o: emit({"t": time.time(), "digest": o.digest, "kind": o.kind})
        async with trio.open_nursery() as nursery:
            await nursery.start(svc.run)
            assert svc.core is not None
            emit({"t": time.time(), "digest": svc.core.lsdb.digest, "kind": "start"})
            stdin = trio.lowlevel.FdStream(os.dup(0))
            buf = b""
            while True:
                data = await stdin.receive_some(4096)
                if not data:  # the benchmark went away: so do we
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        command(line.decode().split())
                    except Exception as exc:  # a bad command never takes the node down
                        emit({"error": f"{line!r}: {exc!r}"})
            nursery.cancel_scope.cancel()

    trio.run(main)
