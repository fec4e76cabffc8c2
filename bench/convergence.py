"""Convergence benchmark: how long after a change until every server holds the same OrgInfo table, and at what cost.

Owns: generated organizations (line, ring, hub, grid, random: G routing groups x S servers; each group's first
server is its master and the source/remote bridgehead of every connector, connectors both ways between adjacent
groups, costs 1-100 from the seed), the events (major, minor, user, oscillation), three transports (the pure
simulated network `sim`, the real services over in-memory streams under MockClock `memory`, loopback TCP with one
process per server `tcp`), the measurements (per-server arrival of the final digest, messages and bytes on the
wire split 691/SMTP, the floor t_hop x d), and the outputs (tables, JSON, CSV, PNG plots, `compare`).

Usage (see bench/README.md, section "Convergence"):
  python bench/convergence.py run --shape ring --groups 250 --servers 4 --event minor --transport sim --runs 3
  python bench/convergence.py run --shape ring --groups 20 --servers 2 --event minor --transport tcp --runs 5
  python bench/convergence.py run --shape ring --sizes 10x4,50x4,100x4 --event minor --transport sim --plots
  python bench/convergence.py run --event oscillation --transport sim        # and its compat_e2k baseline
  python bench/convergence.py compare before.json after.json
Also reachable as `linkstate bench convergence ...` (linkstate/cli/bench_cmd.py).

Invariants: runs are bounded (a virtual-time budget per run on sim/memory, a wall-clock budget on tcp) and stop by
themselves; tcp binds loopback addresses only (127.x.y.z, checked) and every child process is stopped on success,
failure and Ctrl-C; the convergence definition (DEFINITION) is printed with every result and stored in every file.
May import: anything (a bench script).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.metadata
import json
import math
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from linkstate.cli.cluster import Cluster, NodeRecord, _child_env, check_loopback, dumps_toml, save_state  # noqa: E402
from linkstate.core import events as ev  # noqa: E402
from linkstate.core.routing import pinned_connectors  # noqa: E402
from linkstate.core.topology import Topology, parse_topology  # noqa: E402
from linkstate.sim.network import SimNetwork, Traffic  # noqa: E402
from proto.model import BridgeheadState  # noqa: E402

DEFINITION = (
    "convergence = t(last server first holds the final digest) - t(commit); the final digest is the MD5 digest "
    "of the OrgInfo table every server holds once the event has settled; the commit is the first moment any "
    "server holds it (the origin master writing its new section: for a minor update after the state delay, for "
    "a major or user update at once); every server counts, members included; messages and bytes are every write "
    "on the wire (691 and SMTP separately) from the commit to convergence (tcp: from the injection); "
    "t_hop = the first neighbouring group's bridgehead holding the final digest - t(commit) (one bridgehead-to-"
    "bridgehead exchange of the same packet, in the same run); d = the origin group's eccentricity in group "
    "hops; floor ratio = convergence / (d x t_hop)."
)

SHAPES = ("line", "ring", "hub", "grid", "random")
EVENTS = ("major", "minor", "user", "oscillation")
TRANSPORTS = ("sim", "memory", "tcp")
DOWN = BridgeheadState.CONN_NOT_AVAILABLE
PORT_691 = 16910
PORT_SMTP = 12525
SECRET = "bench-convergence-secret"


# ============================================================================================ organizations


def group_name(i: int) -> str:
    return f"G{i:03d}"


def server_name(i: int, j: int) -> str:
    return f"{group_name(i)}-S{j + 1}"


def address(i: int, j: int) -> str:
    """A distinct loopback address per server: 127.<1 + i // 250>.<1 + i % 250>.<1 + j>."""
    return f"127.{1 + i // 250}.{1 + i % 250}.{1 + j}"


def group_edges(shape: str, groups: int, seed: int) -> list[tuple[int, int]]:
    """Undirected group adjacency (each becomes two connectors), deterministic in `seed`."""
    n = groups
    if n < 2:
        return []
    if shape == "line":
        return [(i, i + 1) for i in range(n - 1)]
    if shape == "ring":
        return [(i, (i + 1) % n) for i in range(n)] if n > 2 else [(0, 1)]
    if shape == "hub":
        return [(0, i) for i in range(1, n)]
    if shape == "grid":
        side = math.ceil(math.sqrt(n))
        edges = []
        for i in range(n):
            r, c = divmod(i, side)
            if c + 1 < side and i + 1 < n:
                edges.append((i, i + 1))
            if (r + 1) * side + c < n:
                edges.append((i, i + side))
        return edges
    if shape == "random":  # a random spanning tree plus n/2 extra links: average degree about 3
        rng = random.Random(f"edges:{seed}:{n}")
        edges: set[tuple[int, int]] = set()
        for i in range(1, n):
            j = rng.randrange(i)
            edges.add((j, i))
        tries = 0
        while len(edges) < (n - 1) + n // 2 and tries < 20 * n:
            tries += 1
            a, b = sorted(rng.sample(range(n), 2))
            edges.add((a, b))
        return sorted(edges)
    raise ValueError(f"unknown shape {shape!r} (one of {', '.join(SHAPES)})")


def org_data(shape: str, groups: int, servers: int, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """The topology as TOML-ready data (see the module docstring for the rules)."""
    rng = random.Random(f"costs:{seed}:{shape}:{groups}")
    data: dict[str, Any] = {
        "organization": {"name": "Bench", "domain": "bench.example", "secret": SECRET},
        "settings": dict(settings),
        "routing_groups": [{"name": group_name(i), "master": server_name(i, 0)} for i in range(groups)],
        "servers": [
            {
                "name": server_name(i, j),
                "routing_group": group_name(i),
                "address": address(i, j),
                "port_691": PORT_691,
                "port_smtp": PORT_SMTP,
            }
            for i in range(groups)
            for j in range(servers)
        ],
        "connectors": [],
    }
    for a, b in group_edges(shape, groups, seed):
        for src, dst in ((a, b), (b, a)):
            data["connectors"].append(connector_data(src, dst, rng.randint(1, 100)))
    return data


def connector_data(src: int, dst: int, cost: int, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or f"{group_name(src)}-{group_name(dst)}",
        "routing_group": group_name(src),
        "connected_routing_group": group_name(dst),
        "cost": cost,
        "source_bridgeheads": [server_name(src, 0)],
        "remote_bridgeheads": [server_name(dst, 0)],
    }


def topology_of(data: dict[str, Any]) -> Topology:
    return parse_topology(dumps_toml(data), "<bench>")


def distances(data: dict[str, Any], origin: str) -> dict[str, int]:
    """Group hops from `origin` along connectors (the direction a change travels: source to remote)."""
    adj: dict[str, list[str]] = {}
    for c in data["connectors"]:
        adj.setdefault(c["routing_group"], []).append(c["connected_routing_group"])
    dist = {origin: 0}
    queue = deque([origin])
    while queue:
        g = queue.popleft()
        for h in adj.get(g, ()):
            if h not in dist:
                dist[h] = dist[g] + 1
                queue.append(h)
    return dist


# ============================================================================================ results


@dataclass
class Run:
    """One measured event."""

    convergence: float | None  # seconds (virtual on sim/memory, wall on tcp); None: did not converge
    t_hop: float | None
    depth: int
    ratio: float | None
    messages_691: int
    bytes_691: int
    messages_smtp: int
    bytes_smtp: int
    packet_bytes: int  # the final OrgInfo frame
    wall_s: float
    servers: int
    arrivals: dict[str, float] = field(default_factory=dict)  # server -> seconds after the commit
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return self.messages_691 + self.messages_smtp

    @property
    def bytes(self) -> int:
        return self.bytes_691 + self.bytes_smtp

    @property
    def bytes_per_server_packets(self) -> float:
        return self.bytes / max(1, self.servers) / max(1, self.packet_bytes)


@dataclass
class Scenario:
    shape: str
    groups: int
    servers_per_group: int
    event: str
    transport: str
    settings: dict[str, Any]
    seed: int
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def servers(self) -> int:
        return self.groups * self.servers_per_group

    @property
    def key(self) -> str:
        compat = "-e2k" if self.settings.get("compat_e2k") else ""
        return f"{self.shape}-{self.groups}x{self.servers_per_group}-{self.event}{compat}-{self.transport}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["key"] = self.key
        data["servers"] = self.servers
        data["summary"] = summary(self)
        return data


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in 0..100."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(s: Scenario) -> dict[str, Any]:
    conv = [r.convergence for r in s.runs if r.convergence is not None]
    ratios = [r.ratio for r in s.runs if r.ratio is not None]
    hops = [r.t_hop for r in s.runs if r.t_hop is not None]
    n = max(1, len(s.runs))
    out: dict[str, Any] = {
        "runs": len(s.runs),
        "converged": len(conv),
        "p50": percentile(conv, 50),
        "p90": percentile(conv, 90),
        "p99": percentile(conv, 99),
        "max": max(conv) if conv else math.nan,
        "messages": sum(r.messages for r in s.runs) / n,
        "messages_691": sum(r.messages_691 for r in s.runs) / n,
        "messages_smtp": sum(r.messages_smtp for r in s.runs) / n,
        "bytes": sum(r.bytes for r in s.runs) / n,
        "bytes_691": sum(r.bytes_691 for r in s.runs) / n,
        "bytes_smtp": sum(r.bytes_smtp for r in s.runs) / n,
        "packet_bytes": max((r.packet_bytes for r in s.runs), default=0),
        "bytes_per_server_packets": sum(r.bytes_per_server_packets for r in s.runs) / n,
        "t_hop_p50": percentile(hops, 50),
        "depth": max((r.depth for r in s.runs), default=0),
        "ratio_p50": percentile(ratios, 50),
        "ratio_max": max(ratios) if ratios else math.nan,
        "wall_s_max": max((r.wall_s for r in s.runs), default=0.0),
    }
    extras = [r.extra for r in s.runs if r.extra]
    if extras:
        out["extra"] = extras[0] if len(extras) == 1 else extras
    return out


def finish_run(
    timeline: list[tuple[float, str, str]],
    old: str,
    final: str | None,
    servers: list[str],
    neighbours: set[str],
    depth: int,
) -> tuple[float | None, float | None, dict[str, float]]:
    """From (time, server, digest) records after the event: (convergence, t_hop, arrivals after the commit)."""
    if final is None:
        return None, None, {}
    first: dict[str, float] = {}
    for t, name, digest in timeline:
        if digest == final and name not in first:
            first[name] = t
    if not first:
        return None, None, {}
    commit = min(first.values())
    arrivals = {name: first[name] - commit for name in servers if name in first}
    if len(arrivals) < len(servers):
        return None, None, arrivals
    hop_times = [arrivals[n] for n in neighbours if n in arrivals]
    t_hop = min(hop_times) if hop_times else None
    return max(arrivals.values()), t_hop, arrivals


def ratio_of(conv: float | None, t_hop: float | None, depth: int) -> float | None:
    if conv is None or not t_hop or depth <= 0:
        return None
    return conv / (depth * t_hop)


# ============================================================================================ progress


class Progress:
    """A plain stderr progress bar (one rewritten line on a terminal, one line per step otherwise)."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.done = max(1, total), label, 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()

    def step(self, what: str = "") -> None:
        self.done += 1
        self.show(what)

    def show(self, what: str = "") -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.monotonic() - self.t0
        line = f"[{bar}] {self.done}/{self.total} {self.label} {what} ({elapsed:.1f}s)"
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line)
            if self.done >= self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


# ============================================================================================ the plan


@dataclass
class Plan:
    """What every transport needs to know about a scenario, computed once from the generated organization."""

    data: dict[str, Any]
    topology: Topology
    origin_group: str
    origin: str  # the origin group's master (and bridgehead)
    servers: list[str]
    neighbours: set[str]  # bridgeheads one group hop from the origin
    depth: int
    candidates: list[str]  # connectors of the origin side usable for a minor update (not pinned), GUIDs
    member: str | None  # the member restarted by a user update

    def major_topology(self, k: int) -> tuple[dict[str, Any], Topology]:
        """The organization with k+1 extra connectors from the origin group (a major update per run)."""
        data = json.loads(json.dumps(self.data))
        groups = len(data["routing_groups"])
        far = max(range(groups), key=lambda i: (distances(self.data, self.origin_group).get(group_name(i), 0), -i))
        for n in range(k + 1):
            dst = far if groups > 1 else 0
            data["connectors"].append(connector_data(0, dst, 1 + (n * 7) % 100, name=f"bench-major-{n}"))
        return data, topology_of(data)


def make_plan(shape: str, groups: int, servers: int, seed: int, settings: dict[str, Any]) -> Plan:
    data = org_data(shape, groups, servers, seed, settings)
    topo = topology_of(data)
    origin_group = group_name(0)
    dist = distances(data, origin_group)
    depth = max(dist.values()) if dist else 0
    neighbours = {server_name(int(g[1:]), 0) for g, d in dist.items() if d == 1}
    from linkstate.core.lsdb import LinkStateDB

    pinned = pinned_connectors(LinkStateDB.from_topology(topo).snapshot(), topo.settings.leaf_rule)
    # prefer the origin's own connectors, then the nearest group's: the change starts as close to group 0 as it can
    order = sorted(topo.connectors, key=lambda c: (dist.get(c.routing_group, 1 << 30), c.name))
    candidates = [c.guid for c in order if c.connected_routing_group and c.guid not in pinned]
    member = server_name(0, 1) if servers > 1 else None
    return Plan(data, topo, origin_group, server_name(0, 0), [s.name for s in topo.servers], neighbours, depth,
                candidates, member)  # fmt: skip


def minor_connector(plan: Plan) -> tuple[str, str]:
    """(connector GUID, its source bridgehead) for a minor update, or raise why there is none."""
    if not plan.candidates:
        raise NotApplicable(
            "every connector is pinned (no alternate path, R121/G42): a connector going down publishes no minor "
            "update on this shape; use ring, grid or random"
        )
    guid = plan.candidates[0]
    spec = plan.topology.connector_by_guid(guid)
    assert spec is not None
    return guid, spec.source_bridgeheads[0]


def after_major(plan: Plan, data: dict[str, Any], topo: Topology) -> Plan:
    """The plan measured against the new organization (the added connector shortens the way from the origin)."""
    dist = distances(data, plan.origin_group)
    neighbours = {server_name(int(g[1:]), 0) for g, d in dist.items() if d == 1}
    return replace(plan, data=data, topology=topo, neighbours=neighbours, depth=max(dist.values()))


def origin_of(plan: Plan, bridgehead: str) -> Plan:
    """The plan re-centred on the group whose bridgehead reports the minor update."""
    group = plan.topology.server(bridgehead).routing_group
    if group == plan.origin_group:
        return plan
    dist = distances(plan.data, group)
    neighbours = {server_name(int(g[1:]), 0) for g, d in dist.items() if d == 1}
    return replace(plan, origin_group=group, origin=bridgehead, neighbours=neighbours, depth=max(dist.values()))


class NotApplicable(Exception):
    """The event cannot happen on this organization (reported, not an error)."""


# ============================================================================================ transport: sim


class SimDriver:
    """The pure simulated network (virtual time): every TableChanged is timestamped through the on_output hook."""

    def __init__(self, plan: Plan, latency: float, seed: int) -> None:
        self.plan = plan
        self.net = SimNetwork(plan.topology, latency=latency, seed=seed)
        self.timeline: list[tuple[float, str, str]] = []
        self.watch_old: str | None = None
        self.mark: Traffic | None = None
        self.current: dict[str, str] = {}  # server -> digest, kept by the hook (the stop test is O(1))
        self.counts: dict[str, int] = {}
        self.net.on_output = self._hook

    def _hook(self, name: str, out: ev.Output) -> None:
        if type(out) is ev.TableChanged:
            self.timeline.append((self.net.now, name, out.digest))
            self._set(name, out.digest)
            if self.mark is None and self.watch_old is not None and out.digest != self.watch_old:
                self.mark = snapshot(self.net.traffic)

    def _set(self, name: str, digest: str | None) -> None:
        old = self.current.pop(name, None)
        if old is not None:
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]
        if digest is not None:
            self.current[name] = digest
            self.counts[digest] = self.counts.get(digest, 0) + 1

    def resync(self) -> None:
        """Re-read every digest (after nodes stopped or started: a fresh core emits no TableChanged)."""
        self.current.clear()
        self.counts.clear()
        for name, digest in self.net.digests().items():
            self._set(name, digest)

    def settled(self, old: str | None = None) -> bool:
        """Every server holds one digest (not `old`) and every member is attached; O(1) until it may be true."""
        if len(self.counts) != 1 or len(self.current) != len(self.plan.servers) or old in self.counts:
            return False
        nodes = self.net.nodes
        return len(nodes) == len(self.plan.servers) and all(c.attached for c in nodes.values()) and self.net.converged()

    def warm_up(self, budget: float = 7200.0, organic: bool = False) -> None:
        """Start every server and run until the organization has converged.

        Unless `organic`, once every master has published its section the published sections are handed to every
        server directly (a merge, as a bridgehead exchange would do): the start-up storm (every group's first
        publication crossing the whole organization: O(G^2) packet exchanges) is not what is measured, and at
        250 groups it would take longer than every measured run together.
        """
        self.net.start_all()
        self.resync()
        if not organic:
            from proto.model import OrgInfo

            masters = [self.net.nodes[rg.master] for rg in self.plan.topology.routing_groups]
            end = self.net.now + budget
            while self.net.now < end and not all(m.role.published for m in masters):  # type: ignore[union-attr]
                self.net.run_for(0.005)
            own = tuple(m.lsdb.section(m.rg.guid) for m in masters)
            sections = OrgInfo(tuple(s for s in own if s is not None))
            for core in self.net.nodes.values():
                core.lsdb.merge(sections, own_group=core.rg.guid if core.is_master else None)
            self.resync()
        end = self.net.now + budget
        while self.net.now < end:
            if self.net.run_for(30, stop=self.settled):
                break
        if not self.settled():
            raise RuntimeError(f"the organization did not converge within {budget:.0f} s of virtual time at start")
        self.net.run_for(1)

    def digest(self) -> str:
        return next(iter(self.current.values()))

    def measure(self, action: Callable[[], None], budget: float) -> Run:
        """Apply `action` (the event) and run until every server holds one new digest."""
        net, plan = self.net, self.plan
        old = self.digest()
        self.timeline.clear()
        self.watch_old, self.mark = old, None
        before = snapshot(net.traffic)
        t0 = time.perf_counter()
        action()
        self.resync()
        done = net.run_for(budget, stop=lambda: self.settled(old))
        wall = time.perf_counter() - t0
        final = self.digest() if done else None
        conv, t_hop, arrivals = finish_run(self.timeline, old, final, plan.servers, plan.neighbours, plan.depth)
        spent = diff(snapshot(net.traffic), self.mark or before)
        packet = len(next(iter(net.nodes.values())).lsdb.frame())
        self.watch_old = None
        return Run(conv, t_hop, plan.depth, ratio_of(conv, t_hop, plan.depth), *spent, packet, wall,
                   len(plan.servers), arrivals)  # fmt: skip


def snapshot(t: Traffic) -> Traffic:
    return Traffic(t.messages, t.bytes, {k: Traffic(v.messages, v.bytes) for k, v in t.by_proto.items()})


def diff(after: Traffic, before: Traffic) -> tuple[int, int, int, int]:
    """(messages_691, bytes_691, messages_smtp, bytes_smtp) between two snapshots."""
    out = []
    for proto in ("691", "smtp"):
        a, b = after.by_proto.get(proto, Traffic()), before.by_proto.get(proto, Traffic())
        out += [a.messages - b.messages, a.bytes - b.bytes]
    return out[0], out[1], out[2], out[3]


def run_sim(scn: Scenario, latency: float, progress: Progress, organic: bool = False) -> None:
    plan = make_plan(scn.shape, scn.groups, scn.servers_per_group, scn.seed, scn.settings)
    if scn.event == "oscillation":
        scn.runs.append(oscillation_sim(plan, latency, scn.seed, organic=organic))
        progress.step("oscillation")
        return
    drv = SimDriver(plan, latency, scn.seed)
    t0 = time.perf_counter()
    drv.warm_up(organic=organic)
    scn.note = f"warm-up {time.perf_counter() - t0:.1f}s wall"
    state_delay = float(scn.settings.get("state_delay", 600))
    budget = state_delay + 3600
    guid, bh = minor_connector(plan) if scn.event == "minor" else ("", "")
    for k in range(len(scn.runs), scn.runs_wanted):  # type: ignore[attr-defined]
        if scn.event == "minor":
            drv.plan = origin_of(plan, bh)
            run = drv.measure(lambda: drv.net.inject(bh, ev.FaultInjected(guid, DOWN)), budget)
            # restore (an UP commits at once) before the next run; not measured
            drv.measure(lambda: drv.net.inject(bh, ev.FaultInjected(guid, None)), budget)
            drv.plan = plan
        elif scn.event == "major":
            data, topo = plan.major_topology(k)

            def major(topo: Topology = topo) -> None:
                drv.net.topology = topo
                for name in list(drv.net.nodes):
                    drv.net.inject(name, ev.TopologyChanged(topo))

            drv.plan = after_major(plan, data, topo)
            run = drv.measure(major, budget)
            drv.plan = plan
        elif scn.event == "user":
            member = plan.member
            if member is None:
                raise NotApplicable("a user update restarts a member: give --servers 2 or more")

            def restart(member: str = member) -> None:
                drv.net.stop(member)
                drv.resync()
                drv.net.run_for(1.0)
                drv.net.start(member)

            run = drv.measure(restart, budget)
        else:
            raise ValueError(scn.event)
        scn.runs.append(run)
        progress.step(f"run {k + 1}: {fmt_s(run.convergence)}")


def oscillation_sim(
    plan: Plan, latency: float, seed: int, period: float = 30.0, duration: float = 600.0, organic: bool = False
) -> Run:
    """Down/up every `period` s for `duration` s on one connector; count minor updates and state commits."""
    guid, bh = minor_connector(plan)
    drv = SimDriver(plan, latency, seed)
    drv.warm_up(organic=organic)
    net = drv.net
    master = plan.topology.master_of(plan.topology.server(bh).routing_group).name
    before_minor = net.nodes[master].counters.table_changes["minor"]
    before_diag = len(net.diagnostics)
    before = snapshot(net.traffic)
    t0 = time.perf_counter()
    start = net.now
    flaps = 0
    while net.now - start < duration - 1e-9:
        net.inject(bh, ev.FaultInjected(guid, DOWN))
        net.run_for(period)
        net.inject(bh, ev.FaultInjected(guid, None))
        net.run_for(period)
        flaps += 1
    state_delay = plan.topology.settings.state_delay
    batch = plan.topology.settings.poll_interval
    net.run_for(max(state_delay, batch) + 60)  # let the last window or batch close
    wall = time.perf_counter() - t0
    minor = net.nodes[master].counters.table_changes["minor"] - before_minor
    commits = sum(1 for _, n, d in net.diagnostics[before_diag:] if d.event == "connector_state_committed")
    suppressed = sum(1 for _, n, d in net.diagnostics[before_diag:] if d.event == "oscillation_suppressed")
    windows = max(1, math.ceil(duration / state_delay)) if state_delay > 0 else flaps * 2
    spent = diff(snapshot(net.traffic), before)
    packet = len(net.nodes[master].lsdb.frame())
    extra = {
        "flaps": flaps,
        "reports": 2 * flaps,
        "period_s": period,
        "duration_s": duration,
        "state_delay_s": state_delay,
        "windows": windows,
        "minor_updates": minor,
        "state_commits": commits,
        "oscillations_suppressed": suppressed,
        "minor_per_window": minor / windows,
        "minor_per_flap": minor / max(1, flaps),
        "converged": net.converged(),
    }
    return Run(None, None, 0, None, *spent, packet, wall, len(plan.servers), {}, extra)


# ============================================================================================ transport: memory


def run_memory(scn: Scenario, latency: float, progress: Progress) -> None:
    """The real NodeService over in-memory streams, under trio's MockClock (virtual time)."""
    import structlog

    from linkstate.logconfig import configure

    saved = structlog.get_config()
    configure("json", "error", stream=open(os.devnull, "w"))  # noqa: SIM115 - the services log a lot
    try:
        _run_memory(scn, latency, progress)
    finally:
        structlog.configure(**saved)  # the caller's logging as it was (tests, the CLI)


def _run_memory(scn: Scenario, latency: float, progress: Progress) -> None:
    import trio
    import trio.testing

    plan = make_plan(scn.shape, scn.groups, scn.servers_per_group, scn.seed, scn.settings)
    if scn.event == "oscillation":
        raise NotApplicable("the oscillation scenario runs on the sim transport (it counts updates, not time)")
    clock = trio.testing.MockClock(autojump_threshold=0)
    wanted = scn.runs_wanted  # type: ignore[attr-defined]

    async def main() -> None:
        drv = MemoryDriver(plan, latency)
        async with trio.open_nursery() as nursery:
            drv.nursery = nursery
            await drv.start_all()
            await drv.wait(drv.settled, 7200)
            await trio.sleep(1)
            state_delay = float(scn.settings.get("state_delay", 600))
            budget = state_delay + 3600
            guid, bh = minor_connector(plan) if scn.event == "minor" else ("", "")
            for k in range(wanted):
                if scn.event == "minor":
                    drv.plan = origin_of(plan, bh)
                    run = await drv.measure(lambda: drv.post(bh, ev.FaultInjected(guid, DOWN)), budget)
                    await drv.measure(lambda: drv.post(bh, ev.FaultInjected(guid, None)), budget)
                    drv.plan = plan
                elif scn.event == "major":
                    data, topo = plan.major_topology(k)
                    drv.plan = after_major(plan, data, topo)
                    run = await drv.measure(lambda topo=topo: drv.major(topo), budget)
                    drv.plan = plan
                elif scn.event == "user":
                    member = plan.member
                    if member is None:
                        raise NotApplicable("a user update restarts a member: give --servers 2 or more")
                    run = await drv.measure_restart(member, budget)
                else:
                    raise ValueError(scn.event)
                scn.runs.append(run)
                progress.step(f"run {k + 1}: {fmt_s(run.convergence)}")
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)


class _Counted:
    """Per-protocol write counters shared by the counting streams of one transport."""

    def __init__(self) -> None:
        self.traffic = Traffic()


def counting_stream(inner: Any, proto: str, counted: _Counted, latency: float = 0.0) -> Any:
    import trio

    class CountingStream(trio.abc.HalfCloseableStream):
        def __init__(self) -> None:
            self.inner = inner
            self.socket = getattr(inner, "socket", None)

        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            counted.traffic.count(proto, len(data))
            if latency:  # a one-way delay per write (in-memory streams have none; virtual time under MockClock)
                await trio.sleep(latency)
            await self.inner.send_all(data)

        async def wait_send_all_might_not_block(self) -> None:
            await self.inner.wait_send_all_might_not_block()

        async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
            return await self.inner.receive_some(max_bytes)  # type: ignore[no-any-return]

        async def send_eof(self) -> None:
            if hasattr(self.inner, "send_eof"):
                await self.inner.send_eof()

        async def aclose(self) -> None:
            await self.inner.aclose()

    return CountingStream()


def counting_transport(base: Any, smtp_port: int, latency: float = 0.0) -> tuple[Any, _Counted]:
    """Wrap a Transport so that every write is counted as 691 or SMTP (by the port it belongs to)."""
    counted = _Counted()

    class Counting:
        async def connect(self, host: str, port: int) -> Any:
            stream = await base.connect(host, port)
            return counting_stream(stream, "smtp" if port == smtp_port else "691", counted, latency)

        async def serve(self, host: str, port: int, handler: Any, *, task_status: Any = None) -> None:
            proto = "smtp" if port == smtp_port else "691"

            async def wrapped(stream: Any) -> None:
                await handler(counting_stream(stream, proto, counted, latency))

            import trio

            await base.serve(host, port, wrapped, task_status=task_status or trio.TASK_STATUS_IGNORED)

    return Counting(), counted


class MemoryDriver:
    def __init__(self, plan: Plan, latency: float) -> None:
        from linkstate.service.transport import MemoryTransport

        self.plan = plan
        self.transport, self.counted = counting_transport(MemoryTransport(), PORT_SMTP, latency)
        self.services: dict[str, Any] = {}
        self.scopes: dict[str, Any] = {}
        self.timeline: list[tuple[float, str, str]] = []
        self.watch_old: str | None = None
        self.mark: Traffic | None = None
        self.nursery: Any = None
        self.topology = plan.topology

    async def start(self, name: str) -> None:
        import trio

        from linkstate.service.node import NodeService

        scope = trio.CancelScope()
        rng = random.Random(f"memory:{name}:{len(self.timeline)}")
        svc = NodeService(self.topology, name, transport=self.transport, rand=rng.random,
                          nonce=lambda: f"{rng.getrandbits(128):032x}")  # fmt: skip

        def hook(out: ev.TableChanged, name: str = name) -> None:
            self.timeline.append((trio.current_time(), name, out.digest))
            if self.mark is None and self.watch_old is not None and out.digest != self.watch_old:
                self.mark = snapshot(self.counted.traffic)

        svc.on_table_changed = hook

        async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await svc.run(task_status=task_status)

        self.services[name] = await self.nursery.start(run)
        self.scopes[name] = scope

    async def start_all(self) -> None:
        for name in self.plan.servers:
            await self.start(name)

    def digests(self) -> dict[str, str]:
        return {n: s.core.lsdb.digest for n, s in self.services.items() if s.core is not None}

    def settled(self) -> bool:
        if len(self.services) < len(self.plan.servers):
            return False
        if not all(s.core is not None and s.core.attached for s in self.services.values()):
            return False
        return len(set(self.digests().values())) == 1

    async def wait(self, predicate: Callable[[], bool], budget: float) -> bool:
        import trio

        with trio.move_on_after(budget):
            while not predicate():
                await trio.sleep(0.25)
            return True
        return False

    def post(self, name: str, event: ev.Input) -> None:
        self.services[name].post(event)

    def major(self, topo: Topology) -> None:
        self.topology = topo
        for svc in self.services.values():
            svc.topology = topo
            svc.post(ev.TopologyChanged(topo))

    def digest(self) -> str:
        return next(iter(self.digests().values()))

    async def measure(self, action: Callable[[], Any], budget: float) -> Run:
        import trio

        plan = self.plan
        old = self.digest()
        self.timeline.clear()
        self.watch_old, self.mark = old, None
        before = snapshot(self.counted.traffic)
        t0 = time.perf_counter()
        result = action()
        if hasattr(result, "__await__"):
            await result
        done = await self.wait(lambda: self.settled() and self.digest() != old, budget)
        await trio.sleep(0)
        wall = time.perf_counter() - t0
        final = self.digest() if done else None
        conv, t_hop, arrivals = finish_run(self.timeline, old, final, plan.servers, plan.neighbours, plan.depth)
        spent = diff(snapshot(self.counted.traffic), self.mark or before)
        packet = len(next(iter(self.services.values())).core.lsdb.frame())
        self.watch_old = None
        return Run(conv, t_hop, plan.depth, ratio_of(conv, t_hop, plan.depth), *spent, packet, wall,
                   len(plan.servers), arrivals)  # fmt: skip

    async def measure_restart(self, member: str, budget: float) -> Run:
        import trio

        async def restart() -> None:
            self.scopes[member].cancel()
            await trio.sleep(1.0)
            await self.start(member)

        return await self.measure(restart, budget)


# ============================================================================================ transport: tcp


class BenchCluster(Cluster):
    """linkstate.cli.cluster's machinery (run directory, state file, loopback check, SIGTERM/SIGKILL stop), with
    each node run by `convergence.py serve`: the real NodeService on TCP, plus a control pipe (stdin) and an
    events file (every table change with its wall-clock time, and the 691/SMTP write counters)."""

    def spawn(self, name: str) -> NodeRecord:
        state = self.require_state()
        rec = state.servers[name]
        events = self.run_dir / f"{name}.events.jsonl"
        cmd = [sys.executable, str(Path(__file__).resolve()), "serve", "--topology", rec.topology, "--server", name,
               "--events", str(events)]  # fmt: skip
        with open(rec.log, "ab") as log, self.child_setup(rec) as setup:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.run_dir, env=_child_env(), start_new_session=True,
                                    preexec_fn=setup)  # fmt: skip
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
                raise RuntimeError(f"a node process ({pid}) exited: see the logs in {self.run_dir} (--keep)")

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


def run_tcp(scn: Scenario, progress: Progress, keep: bool = False, budget: float = 120.0) -> None:
    plan = make_plan(scn.shape, scn.groups, scn.servers_per_group, scn.seed, scn.settings)
    if scn.event == "oscillation":
        raise NotApplicable("the oscillation scenario runs on the sim transport (it counts updates, not time)")
    check_loopback(plan.topology)
    busy = [s.address for s in plan.topology.servers if not _can_bind(s.address or "127.0.0.1", PORT_691)]
    if busy:
        raise RuntimeError(f"{busy[0]}:{PORT_691} is in use (another benchmark running?)")
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
                raise RuntimeError(f"the cluster did not converge at start ({len(reader.ready)} nodes up)")
            for rec in cluster.require_state().servers.values():
                proc = cluster.children.get(rec.pid or -1)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{rec.name} exited at start: see {rec.log}")
            time.sleep(0.05)
        time.sleep(1.0)
        scn.note = f"start-up {time.monotonic() - t_start:.1f}s wall"
        guid, bh = minor_connector(plan) if scn.event == "minor" else ("", "")
        down = f"fault {guid} {DOWN.value}"
        for k in range(scn.runs_wanted):  # type: ignore[attr-defined]
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


def _can_bind(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


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
    import trio

    from linkstate.core.topology import load_topology
    from linkstate.logconfig import configure
    from linkstate.service.node import NodeService
    from linkstate.service.transport import TcpTransport

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


# ============================================================================================ outputs


def fmt_s(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v >= 100:
        return f"{v:.0f}s"
    if v >= 1:
        return f"{v:.2f}s"
    return f"{v * 1000:.1f}ms"


def fmt_n(v: float) -> str:
    if v >= 10_000_000:
        return f"{v / 1e6:.0f}M"
    if v >= 10_000:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def table(s: Scenario) -> str:
    sm = summary(s)
    clock = "wall" if s.transport == "tcp" else "virtual"
    head = f"== {s.key}: {s.servers} servers ({s.groups} groups x {s.servers_per_group}), {s.event}, {clock} time"
    lines = [head]
    if s.note:
        lines.append(f"   {s.note}")
    if s.event == "oscillation":
        for r in s.runs:
            x = r.extra
            lines.append(
                f"   {x['flaps']} flaps ({x['reports']} reports, every {x['period_s']:.0f}s "
                f"for {x['duration_s']:.0f}s),"
                f" state_delay {x['state_delay_s']:.0f}s: {x['minor_updates']} minor updates, "
                f"{x['state_commits']} state commits, {x['oscillations_suppressed']} windows suppressed; "
                f"{x['minor_per_window']:.2f} minor updates per state-delay window, {x['minor_per_flap']:.2f} per "
                f"flap; {fmt_n(r.messages)} msgs, {fmt_n(r.bytes)} bytes; {r.wall_s:.1f}s wall"
            )
        return "\n".join(lines)
    cols = ["runs", "p50", "p90", "p99", "max", "messages", "691 msgs", "smtp msgs", "bytes", "691 bytes",
            "smtp bytes", "bytes/server/packet", "t_hop", "d", "conv/(d*t_hop)", "wall max"]  # fmt: skip
    vals = [
        f"{sm['converged']}/{sm['runs']}",
        fmt_s(sm["p50"]),
        fmt_s(sm["p90"]),
        fmt_s(sm["p99"]),
        fmt_s(sm["max"]),
        fmt_n(sm["messages"]),
        fmt_n(sm["messages_691"]),
        fmt_n(sm["messages_smtp"]),
        fmt_n(sm["bytes"]),
        fmt_n(sm["bytes_691"]),
        fmt_n(sm["bytes_smtp"]),
        f"{sm['bytes_per_server_packets']:.2f} (packet {fmt_n(sm['packet_bytes'])} B)",
        fmt_s(sm["t_hop_p50"]),
        str(sm["depth"]),
        "-" if math.isnan(sm["ratio_p50"]) else f"{sm['ratio_p50']:.2f} (max {sm['ratio_max']:.2f})",
        f"{sm['wall_s_max']:.2f}s",
    ]
    half = 8
    for part in (slice(0, half), slice(half, None)):
        c, v = cols[part], vals[part]
        widths = [max(len(a), len(b)) for a, b in zip(c, v, strict=True)]
        lines.append("   " + "  ".join(a.rjust(w) for a, w in zip(c, widths, strict=True)))
        lines.append("   " + "  ".join(b.rjust(w) for b, w in zip(v, widths, strict=True)))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    versions = {}
    for pkg in ("linkstate", "trio", "structlog", "construct", "click", "matplotlib"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    commit = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or None  # fmt: skip
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": versions,
        "git": commit,
    }


CSV_FIELDS = ["key", "shape", "groups", "servers_per_group", "servers", "event", "transport", "run", "convergence_s",
              "t_hop_s", "depth", "ratio", "messages_691", "bytes_691", "messages_smtp", "bytes_smtp", "packet_bytes",
              "bytes_per_server_packets", "wall_s"]  # fmt: skip


def write_outputs(scenarios: list[Scenario], out: Path, argv: list[str]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    doc = {
        "definition": DEFINITION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": argv,
        "machine": machine(),
        "scenarios": [s.to_json() for s in scenarios],
    }
    jpath = out / f"convergence-{stamp}.json"
    jpath.write_text(json.dumps(doc, indent=1, default=_nan_safe))
    cpath = out / f"convergence-{stamp}.csv"
    with open(cpath, "w", newline="") as fh:
        fh.write(f"# {DEFINITION}\n")
        m = doc["machine"]
        fh.write(f"# machine: {m['cpu']} x{m['cpus']}, Python {m['python']}, {m['versions']}, git {m['git']}\n")
        w = csv.writer(fh)
        w.writerow(CSV_FIELDS)
        for s in scenarios:
            for i, r in enumerate(s.runs):
                w.writerow([s.key, s.shape, s.groups, s.servers_per_group, s.servers, s.event, s.transport, i + 1,
                            r.convergence, r.t_hop, r.depth, r.ratio, r.messages_691, r.bytes_691, r.messages_smtp,
                            r.bytes_smtp, r.packet_bytes, round(r.bytes_per_server_packets, 4),
                            round(r.wall_s, 4)])  # fmt: skip
    return jpath, cpath


def _nan_safe(o: Any) -> Any:
    return str(o)


def plots(scenarios: list[Scenario], out: Path, stem: str) -> list[Path] | str:
    """Convergence time and bytes against organization size (p10-p90 band), and one run's arrival timeline."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plots skipped: matplotlib not installed (pip install -e '.[bench]')"
    made: list[Path] = []
    measured = [s for s in scenarios if s.event != "oscillation" and any(r.convergence is not None for r in s.runs)]
    if not measured:
        return "plots skipped: nothing converged to plot"
    series: dict[tuple[str, str, str], list[Scenario]] = {}
    for s in measured:
        series.setdefault((s.shape, s.event, s.transport), []).append(s)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (shape, event, transport), items in sorted(series.items()):
        items.sort(key=lambda s: s.servers)
        xs = [s.servers for s in items]
        conv = [[r.convergence for r in s.runs if r.convergence is not None] for s in items]
        byt = [[r.bytes for r in s.runs] for s in items]
        label = f"{shape} {event} ({transport})"
        for ax, vals in ((ax1, conv), (ax2, byt)):
            mid = [percentile(v, 50) for v in vals]
            lo = [percentile(v, 10) for v in vals]
            hi = [percentile(v, 90) for v in vals]
            (line,) = ax.plot(xs, mid, marker="o", label=label)
            ax.fill_between(xs, lo, hi, alpha=0.25, color=line.get_color())
    ax1.set_xlabel("servers in the organization")
    ax1.set_ylabel("convergence (s, p50; band p10-p90)")
    ax1.set_title("Convergence time against organization size")
    ax2.set_xlabel("servers in the organization")
    ax2.set_ylabel("bytes on the wire per event (p50; band p10-p90)")
    ax2.set_title("Bytes against organization size")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.text(0.01, 0.01, "convergence: commit -> last server holds the final digest (see the JSON's definition)",
             fontsize=7)  # fmt: skip
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    p = out / f"{stem}-size.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p)
    # one run's per-server arrivals: the largest scenario, its median run
    big = max(measured, key=lambda s: (s.servers, len(s.runs)))
    runs = sorted((r for r in big.runs if r.convergence is not None), key=lambda r: r.convergence or 0)
    run = runs[len(runs) // 2]
    arr = sorted(run.arrivals.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    masters = [i for i, (n, _) in enumerate(arr) if n.endswith("-S1")]
    ax.step([t for _, t in arr], range(1, len(arr) + 1), where="post", label="servers holding the final digest")
    ax.scatter([arr[i][1] for i in masters], [i + 1 for i in masters], s=8, color="C3", label="bridgeheads (S1)")
    if run.t_hop and run.depth:
        ax.axvline(run.depth * run.t_hop, color="grey", ls="--", label=f"floor d x t_hop = {run.depth} x "
                                                                        f"{fmt_s(run.t_hop)}")  # fmt: skip
    ax.set_xlabel("seconds after the commit")
    ax.set_ylabel("servers")
    ax.set_title(f"Arrival timeline, one run: {big.key} (convergence {fmt_s(run.convergence)})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out / f"{stem}-timeline.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p)
    return made


def compare(a_path: Path, b_path: Path) -> str:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    sa = {s["key"]: s["summary"] for s in a["scenarios"]}
    sb = {s["key"]: s["summary"] for s in b["scenarios"]}
    lines = [DEFINITION, "", f"A = {a_path} ({a['created']}, git {a['machine'].get('git')})",
             f"B = {b_path} ({b['created']}, git {b['machine'].get('git')})", ""]  # fmt: skip
    head = f"{'scenario':<40} {'metric':<22} {'A':>12} {'B':>12} {'B/A':>7}"
    lines.append(head)
    lines.append("-" * len(head))
    metrics = [("p50", fmt_s), ("p90", fmt_s), ("max", fmt_s), ("messages", fmt_n), ("bytes", fmt_n),
               ("bytes_per_server_packets", lambda v: f"{v:.2f}"), ("ratio_p50", lambda v: f"{v:.2f}"),
               ("wall_s_max", lambda v: f"{v:.2f}s")]  # fmt: skip
    for key in [k for k in sa if k in sb]:
        for name, f in metrics:
            va, vb = _num(sa[key].get(name)), _num(sb[key].get(name))
            if va is None and vb is None:
                continue
            rel = f"{vb / va:.2f}" if va and vb is not None and va != 0 else "-"
            lines.append(f"{key:<40} {name:<22} {f(va) if va is not None else '-':>12} "
                         f"{f(vb) if vb is not None else '-':>12} {rel:>7}")  # fmt: skip
    only = sorted(set(sa) ^ set(sb))
    if only:
        lines.append("")
        lines.append("in one file only: " + ", ".join(only))
    return "\n".join(lines)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


# ============================================================================================ driver


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        g, _, s = part.strip().partition("x")
        out.append((int(g), int(s or 1)))
    return out


def parse_settings(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        low = value.strip().lower()
        if low in ("true", "false"):
            out[key.strip()] = low == "true"
        else:
            try:
                out[key.strip()] = int(value) if value.strip().isdigit() else float(value)
            except ValueError:
                out[key.strip()] = value
    return out


def run_scenarios(args: argparse.Namespace) -> list[Scenario]:
    sizes = parse_sizes(args.sizes) if args.sizes else [(args.groups, args.servers)]
    events = [args.event] if args.event != "all" else [e for e in EVENTS]
    base = {"state_delay": 1.0 if args.transport == "tcp" else 600.0}
    base.update(parse_settings(args.set or []))
    plan: list[Scenario] = []
    for g, s in sizes:
        for event in events:
            settings = dict(base)
            if args.compat_e2k:
                settings["compat_e2k"] = True
            plan.append(Scenario(args.shape, g, s, event, args.transport, settings, args.seed))
            if event == "oscillation" and not args.compat_e2k:  # the baseline rides along
                plan.append(Scenario(args.shape, g, s, event, args.transport, {**settings, "compat_e2k": True},
                                     args.seed))  # fmt: skip
    total = sum(1 if sc.event == "oscillation" else args.runs for sc in plan)
    progress = Progress(total, "", enabled=not args.quiet)
    for sc in plan:
        sc.runs_wanted = args.runs  # type: ignore[attr-defined]
        progress.label = sc.key
        progress.show("starting")
        try:
            if sc.transport == "sim":
                run_sim(sc, args.latency, progress, organic=args.organic_warmup)
            elif sc.transport == "memory":
                run_memory(sc, args.latency, progress)
            else:
                run_tcp(sc, progress, keep=args.keep)
        except NotApplicable as exc:
            sc.note = f"not applicable: {exc}"
            progress.done += args.runs if sc.event != "oscillation" else 1
        print(table(sc), flush=True)
        print(f"   definition: {DEFINITION}\n", flush=True)
    return plan


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="convergence", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{run,compare}")
    r = sub.add_parser("run", help="run scenarios, print tables, write JSON/CSV (and PNG with --plots)")
    r.add_argument("--shape", choices=SHAPES, default="ring")
    r.add_argument("--groups", type=int, default=20)
    r.add_argument("--servers", type=int, default=2, help="servers per group (the first is master/bridgehead)")
    r.add_argument("--sizes", help="several organizations: GxS,GxS,... (overrides --groups/--servers)")
    r.add_argument("--event", choices=(*EVENTS, "all"), default="minor")
    r.add_argument("--transport", choices=TRANSPORTS, default="sim")
    r.add_argument("--runs", type=int, default=5, help="measured events per scenario")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--latency", type=float, default=0.001, help="sim, memory: one-way latency per write (s)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="a [settings] value (e.g. state_delay=600)")
    r.add_argument("--compat-e2k", action="store_true", help="run with compat_e2k = true")
    r.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for JSON/CSV/PNG")
    r.add_argument("--plots", action="store_true", help="write PNG plots (needs matplotlib: the bench extra)")
    r.add_argument("--organic-warmup", action="store_true", help="sim: reach the start state through the protocol "
                   "alone (the O(G^2) start-up storm; slow past ~50 groups)")
    r.add_argument("--keep", action="store_true", help="tcp: keep the run directory (logs, events)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--profile", metavar="HTML", help="profile the whole run with pyinstrument, write HTML here")
    c = sub.add_parser("compare", help="compare two result JSON files")
    c.add_argument("a")
    c.add_argument("b")
    s = sub.add_parser("serve")  # the tcp transport's child process: no help, so not listed
    s.add_argument("--topology", required=True)
    s.add_argument("--server", required=True)
    s.add_argument("--events", required=True)
    args = p.parse_args(argv)
    if args.cmd == "compare":
        print(compare(Path(args.a), Path(args.b)))
        return 0
    if args.cmd == "serve":
        serve_node(args.topology, args.server, args.events)
        return 0
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    try:
        scenarios = run_scenarios(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if profiler is not None:
        profiler.stop()
        Path(args.profile).write_text(profiler.output_html())
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000], file=sys.stderr)
    out = Path(args.out)
    jpath, cpath = write_outputs(scenarios, out, ["convergence.py", *argv])
    print(f"\nresults: {jpath}\n         {cpath}")
    if args.plots:
        made = plots(scenarios, out, jpath.stem)
        print(made if isinstance(made, str) else "plots:   " + "\n         ".join(str(m) for m in made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
