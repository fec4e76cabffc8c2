"""Peer benchmark: linkstate beside FRR's ospfd on one real network (Linux network namespaces), the same link cut.

Owns: the side-by-side run. The organization is the convergence benchmark's (ring or grid of G groups x S servers,
connectors both ways between adjacent groups, costs 1-100 from the seed); linkstate.netns lays it out (a namespace
per server, a bridge per group, a veth link between the bridgeheads of adjacent groups). In each group's bridgehead
namespace FRR runs zebra + ospfd (one router per group: point-to-point interfaces on the links with `ip ospf cost`
= the cost of the connector leaving that group, the group's LAN as a passive stub of cost 1, everything else FRR's
defaults); linkstate runs one `python -m linkstate.bench.convergence serve` per server in its namespace, in each
profile in turn:
  seed  the seed's timers scaled by --time-scale (state_delay 600 s -> 10 s at 60x, probe 60 s -> 1 s);
  fast  the same with state_delay = 0 (linkstate has no delta exchange yet: a change still ships whole tables).
Each run cuts one link (both ends administratively down: both routers see the carrier go, both bridgeheads' probes
fail with "network unreachable") and measures, in the same run, when every router and every server holds its new
routes (DEFINITION); then restores the link and measures the way back.
ospfd is pointed only at the namespaces this run creates: its daemons are started inside a bridgehead namespace,
with every path (config, pid, vty and zebra sockets, log) in this run's directory, the TCP vty disabled (-P 0)
and zebra told not to install OSPF routes into the kernel (`ip protocol ospf route-map` deny), so the forwarding
tables linkstate's own connections use are the ones linkstate.netns built; FRR's system configuration
(/etc/frr) and service are not used at all.

Usage (root; Debian's frr package: the script checks for it and says how to install it, it never installs it):
  python bench/peer_ospf.py run --shape ring --groups 20 --servers 2 --runs 3 --plots
  python bench/peer_ospf.py run --shape grid --groups 9 --servers 2 --runs 3
Invariants: runs are bounded in time; every process started (FRR daemons, linkstate nodes) is stopped and every
namespace removed on success, failure and Ctrl-C; nothing is created outside the run's namespaces and directory.
May import: anything (a bench script).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from linkstate.bench.convergence.organizations import group_name, server_name  # noqa: E402
from linkstate.bench.convergence.plan import Plan, make_plan  # noqa: E402
from linkstate.bench.convergence.report import fmt_n, fmt_s, machine  # noqa: E402
from linkstate.bench.convergence.results import diff, percentile  # noqa: E402
from linkstate.bench.convergence.tcp import BenchCluster, EventsReader, tcp_counters  # noqa: E402
from linkstate.cli.cluster import NodeRecord, dumps_toml  # noqa: E402
from linkstate.core.routing import Router  # noqa: E402
from linkstate.netns import fabric  # noqa: E402
from linkstate.netns.enter import call_in, child_setup, socket_in  # noqa: E402
from linkstate.netns.fabric import Fabric  # noqa: E402
from linkstate.netns.plan import Link, NetPlan, new_prefix, plan_network  # noqa: E402
from linkstate.service.client import ClientError, dump  # noqa: E402

FRR_DIR = Path("/usr/lib/frr")
FRR_USER = "frr"
LAN_COST = 1
POLL_S = 0.002
DEFINITION = (
    "new routes = t(the last router or server holding its routes for the new topology) - t(the cut); the cut "
    "takes both ends of one link administratively down at once. FRR: a router holds its routes when zebra's RIB "
    "(`show ip route json` over the daemon's vty socket, polled every few ms) has, for every other group's LAN "
    "prefix, the OSPF route with the shortest-path metric of the new topology (cost sum + the stub's 1); "
    "linkstate: a server holds them when it first holds the final table (the digest every server ends with, "
    "checked by DUMP to route both ends of the cut around it); its routes are computed from that table on demand. "
    "first change = the first router or server whose routes or table changed. restored = the same after the link "
    "comes back up, measured to the pre-cut routes."
)
PROFILES: dict[str, dict[str, Any]] = {
    "seed": {},  # the seed's timers, divided by --time-scale
    "fast": {"state_delay": 0},
}


def frr_missing() -> str | None:
    missing = [d for d in ("zebra", "ospfd") if not (FRR_DIR / d).exists()]
    if missing:
        return (f"FRR's {' and '.join(missing)} not found in {FRR_DIR}: install Debian's frr package "
                "(apt-get install frr) and run again; this benchmark does not install it")  # fmt: skip
    try:
        pwd.getpwnam(FRR_USER)
    except KeyError:
        return f"FRR's user {FRR_USER!r} does not exist (a broken frr install?)"
    return None


# ============================================================================================ shortest paths


def directed_costs(data: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(c["routing_group"], c["connected_routing_group"]): int(c["cost"]) for c in data["connectors"]}


def shortest(costs: dict[tuple[str, str], int], src: str) -> dict[str, int]:
    adj: dict[str, list[tuple[str, int]]] = {}
    for (a, b), c in costs.items():
        adj.setdefault(a, []).append((b, c))
    dist = {src: 0}
    heap = [(0, src)]
    while heap:
        d, g = heapq.heappop(heap)
        if d > dist.get(g, math.inf):
            continue
        for h, c in adj.get(g, ()):
            if d + c < dist.get(h, math.inf):
                dist[h] = d + c
                heapq.heappush(heap, (d + c, h))
    return dist


# ============================================================================================ FRR


class Vty:
    """A daemon's vty socket, spoken as vtysh does: a command and a NUL; the answer ends with 3 NULs and a status."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(path))

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\0")
        buf = b""
        while not (len(buf) >= 4 and buf[-4:-1] == b"\0\0\0"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed its vty")
            buf += chunk
        return buf[:-4]

    def close(self) -> None:
        self.sock.close()


@dataclass
class FrrRouter:
    group: str
    netns: str
    router_id: str
    dir: Path
    interfaces: dict[str, int]  # wan ifname -> cost
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    vty: Vty | None = None

    def ospf_metrics(self) -> dict[str, int]:
        """prefix -> metric of zebra's OSPF route (selected or not: zebra keeps them out of the kernel)."""
        assert self.vty is not None
        rib = json.loads(self.vty.command("show ip route json") or b"{}")
        return {p: int(r["metric"]) for p, routes in rib.items() for r in routes if r.get("protocol") == "ospf"}


class Frr:
    """zebra + ospfd in each group's bridgehead namespace."""

    def __init__(self, net: NetPlan, data: dict[str, Any], base: Path) -> None:
        self.net = net
        self.base = base
        costs = directed_costs(data)
        self.lans = {h.group: f"{h.address.rsplit('.', 1)[0]}.0/24" for h in net.hosts}
        self.routers: dict[str, FrrRouter] = {}
        for rg in data["routing_groups"]:
            host = net.host(rg["master"])
            wans = {}
            for link in net.links:
                for end, other in ((link.a, link.b), (link.b, link.a)):
                    if end.server == host.server:
                        wans[end.ifname] = costs[(rg["name"], net.host(other.server).group)]
            self.routers[rg["name"]] = FrrRouter(rg["name"], host.netns, host.address, base / rg["name"], wans)

    def version(self) -> str:
        out = subprocess.run([str(FRR_DIR / "zebra"), "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0] if out.stdout else "unknown"

    def write_configs(self) -> None:
        frr = pwd.getpwnam(FRR_USER)
        for r in self.routers.values():
            r.dir.mkdir(parents=True)
            head = [f"hostname {r.group}", "log timestamp precision 6"]
            zebra = [*head, f"log file {r.dir / 'zebra.log'} informational", "route-map LS-NOFIB deny 10",
                     "ip protocol ospf route-map LS-NOFIB"]  # fmt: skip
            ospf = [*head, f"log file {r.dir / 'ospfd.log'} informational", "interface lan", " ip ospf passive",
                    f" ip ospf cost {LAN_COST}"]  # fmt: skip
            for ifname, cost in sorted(r.interfaces.items()):
                ospf += [f"interface {ifname}", " ip ospf network point-to-point", f" ip ospf cost {cost}"]
            ospf += ["router ospf", f" ospf router-id {r.router_id}", " network 198.18.0.0/15 area 0"]
            (r.dir / "zebra.conf").write_text("\n".join(zebra) + "\n")
            (r.dir / "ospfd.conf").write_text("\n".join(ospf) + "\n")
            for p in (r.dir, *r.dir.iterdir()):
                os.chown(p, frr.pw_uid, frr.pw_gid)

    def _daemon(self, r: FrrRouter, name: str) -> subprocess.Popen[bytes]:
        cmd = [str(FRR_DIR / name), "-f", str(r.dir / f"{name}.conf"), "-i", str(r.dir / f"{name}.pid"),
               "-z", str(r.dir / "zserv.api"), "--vty_socket", str(r.dir), "-N", f"{self.net.prefix}{r.group}",
               "-A", "127.0.0.1", "-P", "0"]  # fmt: skip
        with open(r.dir / f"{name}.out", "ab") as out, child_setup(r.netns) as setup:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=setup, start_new_session=True)  # fmt: skip

    def start(self) -> None:
        for r in self.routers.values():
            r.procs.append(self._daemon(r, "zebra"))
        for r in self.routers.values():
            _wait_for(lambda r=r: (r.dir / "zebra.vty").exists(), 20, f"zebra of {r.group} did not start")  # type: ignore[misc]
            r.procs.append(self._daemon(r, "ospfd"))
            r.vty = Vty(r.dir / "zebra.vty")

    def check_alive(self) -> None:
        for r in self.routers.values():
            for p in r.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"an FRR daemon of {r.group} exited: see {r.dir}")

    def stop(self) -> None:
        procs = [p for r in self.routers.values() for p in r.procs]
        for r in self.routers.values():
            if r.vty is not None:
                r.vty.close()
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def expected(self, costs: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
        """router -> {LAN prefix of every other group: metric} for a topology with these directed costs."""
        out = {}
        for g in self.routers:
            dist = shortest(costs, g)
            out[g] = {self.lans[h]: d + LAN_COST for h, d in dist.items() if h != g}
        return out

    def kernel_has_ospf_routes(self) -> bool:
        """Did any OSPF route reach a kernel table (it must not: linkstate shares these namespaces)?"""
        import pyroute2

        for r in self.routers.values():
            with pyroute2.IPRoute(use_socket=socket_in(r.netns, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)) as ipr:
                if any(route.get("proto") == 188 for route in ipr.get_routes()):  # 188: RTPROT_OSPF
                    return True
        return False


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        time.sleep(0.05)


# ============================================================================================ linkstate


class NetnsBenchCluster(BenchCluster):
    """The convergence benchmark's tcp machinery (serve processes with an events file and a control pipe), each node
    started inside its namespace."""

    def child_setup(self, rec: NodeRecord) -> contextlib.AbstractContextManager[Callable[[], None] | None]:
        assert rec.netns is not None
        return child_setup(rec.netns)


class Linkstate:
    """One profile's nodes on the network, and the route check of a table."""

    def __init__(self, plan: Plan, net: NetPlan, run_dir: Path) -> None:
        self.plan = plan
        self.net = net
        src = run_dir / "source.toml"
        run_dir.mkdir(parents=True)
        src.write_text(dumps_toml(plan.data))
        self.cluster = NetnsBenchCluster(src, run_dir)
        self.reader = EventsReader(run_dir, plan.servers)
        self.router = Router(plan.topology)

    def start(self, budget: float) -> float:
        t0 = time.monotonic()
        self.cluster.prepare(self.plan.topology, None, supervisor_kind="bench", network=self.net)
        for name in self.plan.servers:
            self.cluster.spawn(name)
        while not (len(self.reader.ready) == len(self.plan.servers) and self.reader.converged(self.plan.servers)):
            self.reader.poll()
            self.cluster.check_children()
            if time.monotonic() - t0 > budget:
                raise RuntimeError(f"linkstate did not converge at start ({len(self.reader.ready)} nodes up)")
            time.sleep(0.05)
        took = time.monotonic() - t0
        # start-up probes fail until every neighbour listens: those flaps open dampening windows (R117); a cut
        # inside one would be judged with them, so let them close (state delay + two probes) before measuring
        settings = self.plan.topology.settings
        time.sleep(settings.scaled("state_delay") + 2 * settings.scaled("bh_probe_interval") + 0.5)
        _wait_for(lambda: self.digest() != "" and self.reader.converged(self.plan.servers), budget,
                  "linkstate did not settle after start-up")  # fmt: skip
        return took

    def digest(self) -> str:
        self.reader.poll()
        return self.reader.digest[self.plan.servers[0]]

    def routes_match(self, pairs: dict[tuple[str, str], int]) -> bool:
        """Does the table of the first server route each (from group, to group) at the given cost?"""
        rec = self.cluster.require_state().servers[self.plan.servers[0]]
        secret = self.plan.topology.secret
        try:
            _, decoded = trio.run(lambda: call_in(rec.netns, dump, rec.host, rec.port, secret, timeout=5))
        except ClientError:
            return False
        for (a, b), cost in pairs.items():
            route = self.router.route(decoded.orginfo, server_name(int(a[1:]), 0), to_group=b)
            if route.cost != cost:
                return False
        return True

    def stop(self) -> None:
        self.cluster.stop_all(timeout=5)
        for proc in self.cluster.children.values():
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=2)


# ============================================================================================ one measured change


@dataclass
class Side:
    """One protocol's times in one run: seconds after the cut (or the restore) for each router or server."""

    first_change: float | None = None
    done: dict[str, float] = field(default_factory=dict)
    total: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def all(self) -> float | None:
        return max(self.done.values()) if len(self.done) == self.total and self.done else None


@dataclass
class Measured:
    profile: str
    what: str  # cut | restore
    frr: Side
    linkstate: Side


def measure(frr: Frr, ls: Linkstate, fab: Fabric, links: list[Link], up: bool, expected: dict[str, dict[str, int]],
            ls_pairs: dict[tuple[str, str], int], budget: float, profile: str) -> Measured:  # fmt: skip
    """Change the links, then poll FRR's RIBs and linkstate's digests until both hold the expected routes."""
    before = {g: r.ospf_metrics() for g, r in frr.routers.items()}
    old = ls.digest()
    mark = len(ls.reader.timeline)
    counters = tcp_counters(ls.cluster, ls.reader, ls.plan.servers)
    f_side, l_side = Side(total=len(frr.routers)), Side(total=len(ls.plan.servers))
    checked: dict[str, bool] = {}
    final: str | None = None
    t0 = time.time()
    fab.set_links(links, up)
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline and (f_side.all is None or final is None):
        for g, r in frr.routers.items():
            if g in f_side.done:
                continue
            metrics = r.ospf_metrics()
            now = time.time() - t0
            if f_side.first_change is None and metrics != before[g]:
                f_side.first_change = now
            if all(metrics.get(p) == m for p, m in expected[g].items()):
                f_side.done[g] = now
        ls.reader.poll()
        digest = ls.reader.digest.get(ls.plan.servers[0])
        if final is None and digest != old and ls.reader.converged(ls.plan.servers):
            if digest not in checked:
                checked[str(digest)] = ls.routes_match(ls_pairs)
            final = digest if checked[str(digest)] else None
        frr.check_alive()
        ls.cluster.check_children()
        time.sleep(POLL_S)
    for t, name, digest in ls.reader.timeline[mark:]:
        if digest != old and l_side.first_change is None:
            l_side.first_change = t - t0
        if digest == final and name not in l_side.done:
            l_side.done[name] = t - t0
    time.sleep(0.2)
    after = tcp_counters(ls.cluster, ls.reader, ls.plan.servers)
    m691, b691, msmtp, bsmtp = diff(after, counters)
    l_side.extra = {"messages": m691 + msmtp, "bytes": b691 + bsmtp}
    return Measured(profile, "restore" if up else "cut", f_side, l_side)


def settle(frr: Frr, expected: dict[str, dict[str, int]], budget: float) -> None:
    """Wait until every router's RIB holds the expected routes (FRR's start-up)."""

    def ok() -> bool:
        frr.check_alive()
        return all(all(r.ospf_metrics().get(p) == m for p, m in expected[g].items()) for g, r in frr.routers.items())

    _wait_for(ok, budget, f"FRR did not converge within {budget:g} s (logs in {frr.base})")


# ============================================================================================ the run


@dataclass
class Scenario:
    shape: str
    groups: int
    servers_per_group: int
    cut: tuple[str, str]
    time_scale: float
    runs: int
    seed: int
    profiles: dict[str, dict[str, Any]]
    gap: float = 6.0  # quiet seconds before each change
    frr_version: str = ""
    note: str = ""
    results: list[Measured] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.shape}-{self.groups}x{self.servers_per_group}"


def run(sc: Scenario, budget: float, keep: bool, progress: Callable[[str], None]) -> Path:
    """Build, start FRR, run each linkstate profile's cuts and restores; returns the work directory."""
    base = {"time_scale": sc.time_scale}
    plan0 = make_plan(sc.shape, sc.groups, sc.servers_per_group, sc.seed, base)
    net = plan_network(plan0.topology, new_prefix())
    a, b = sc.cut
    links = net.links_of_connector(f"{a}-{b}")
    if not links:
        raise RuntimeError(f"no link between {a} and {b} in a {sc.shape} of {sc.groups} groups")
    costs = directed_costs(plan0.data)
    after = {k: v for k, v in costs.items() if k not in ((a, b), (b, a))}
    pairs_before = {(a, b): shortest(costs, a)[b], (b, a): shortest(costs, b)[a]}
    pairs_after = {(a, b): shortest(after, a)[b], (b, a): shortest(after, b)[a]}
    work = Path(tempfile.mkdtemp(prefix="linkstate-peer-"))
    work.chmod(0o755)  # FRR's daemons run as user frr and write below it
    fab = Fabric(net)
    frr = Frr(net, plan0.data, work / "frr")
    sc.frr_version = frr.version()
    try:
        t = time.monotonic()
        fab.build()
        frr.write_configs()
        frr.start()
        before_all, after_all = frr.expected(costs), frr.expected(after)
        settle(frr, before_all, budget)
        if frr.kernel_has_ospf_routes():
            raise RuntimeError("an OSPF route reached a kernel table: zebra's route-map did not hold")
        progress(f"network built, FRR converged ({time.monotonic() - t:.1f} s)")
        for name, settings in sc.profiles.items():
            plan = make_plan(sc.shape, sc.groups, sc.servers_per_group, sc.seed, {**base, **settings})
            ls = Linkstate(plan, net, work / name)
            try:
                progress(f"linkstate {name}: converged at start in {ls.start(budget + 5 * len(plan.servers)):.1f} s")
                for k in range(sc.runs):
                    for up, want, pairs in ((False, after_all, pairs_after), (True, before_all, pairs_before)):
                        time.sleep(sc.gap)
                        m = measure(frr, ls, fab, links, up, want, pairs, budget, name)
                        sc.results.append(m)
                        progress(f"linkstate {name} run {k + 1} {m.what}: FRR {fmt(m.frr.all)}, "
                                 f"linkstate {fmt(m.linkstate.all)}")  # fmt: skip
            finally:
                ls.stop()
    finally:
        frr.stop()
        fab.teardown()
        if fabric.leftovers(net.prefix):
            print(f"warning: namespaces left behind: {fabric.leftovers(net.prefix)}", file=sys.stderr)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return work


# ============================================================================================ outputs


def fmt(v: float | None) -> str:
    return fmt_s(v)


def rows(sc: Scenario) -> list[dict[str, Any]]:
    """One row per protocol (FRR over every run, each linkstate profile) and event."""
    out = []
    for what in ("cut", "restore"):
        ms = [m for m in sc.results if m.what == what]
        groups: list[tuple[str, list[Side]]] = [("FRR ospfd", [m.frr for m in ms])]
        for name in sc.profiles:
            groups.append((f"linkstate {name}", [m.linkstate for m in ms if m.profile == name]))
        for label, sides in groups:
            alls = [s.all for s in sides if s.all is not None]
            firsts = [s.first_change for s in sides if s.first_change is not None]
            row = {"protocol": label, "event": what, "runs": len(sides), "converged": len(alls),
                   "first_change_p50": percentile(firsts, 50), "all_p50": percentile(alls, 50),
                   "all_p90": percentile(alls, 90), "all_max": max(alls) if alls else math.nan}  # fmt: skip
            if label.startswith("linkstate"):
                row["messages"] = sum(s.extra.get("messages", 0) for s in sides) / max(1, len(sides))
                row["bytes"] = sum(s.extra.get("bytes", 0) for s in sides) / max(1, len(sides))
            out.append(row)
    return out


def label_of(sc: Scenario, row: dict[str, Any]) -> str:
    if row["protocol"] == "FRR ospfd":
        return f"FRR ospfd {sc.frr_version.split()[-1]} (defaults)"
    name = row["protocol"].split()[1]
    settings = {"state_delay": 600.0, **sc.profiles[name]}
    return f"{row['protocol']} (state_delay {float(settings['state_delay']) / sc.time_scale:g} s)"


def table(sc: Scenario) -> str:
    head = (f"== peer-ospf {sc.key}: {sc.groups * sc.servers_per_group} linkstate servers, {sc.groups} FRR routers; "
            f"link {sc.cut[0]}~{sc.cut[1]} cut (both ends down) then restored, {sc.runs} run(s) per profile; "
            f"{sc.gap:g} s quiet before each change; wall time; linkstate timers / {sc.time_scale:g}")  # fmt: skip
    cols = ["protocol", "event", "runs", "first change p50", "all p50", "all p90", "all max", "msgs", "bytes"]
    body = []
    for row in rows(sc):
        body.append([label_of(sc, row), row["event"], f"{row['converged']}/{row['runs']}",
                     fmt(row["first_change_p50"]), fmt(row["all_p50"]), fmt(row["all_p90"]), fmt(row["all_max"]),
                     fmt_n(row["messages"]) if "messages" in row else "-",
                     fmt_n(row["bytes"]) if "bytes" in row else "-"])  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *body, strict=True)]
    lines = [head, "   " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True)))]  # noqa: E501
    for r in body:
        lines.append("   " + "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                                      for i, (c, w) in enumerate(zip(r, widths, strict=True))))  # fmt: skip
    if sc.note:
        lines.append(f"   {sc.note}")
    return "\n".join(lines)


def write_json(sc: Scenario, out: Path, argv: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "definition": DEFINITION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": argv,
        "machine": {**machine(), "frr": sc.frr_version},
        "scenario": {k: v for k, v in asdict(sc).items() if k != "results"},
        "summary": rows(sc),
        "runs": [asdict(m) for m in sc.results],
    }
    path = out / f"peer-ospf-{sc.key}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(doc, indent=1, default=str))
    return path


def plot(sc: Scenario, stem: Path) -> Path | str:
    """Left: time to new routes per protocol (p50 bar, min-max whisker), cut and restore. Right: one cut, the share
    of routers/servers holding their new routes against time."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib not installed (pip install -e '.[bench]')"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    summary = rows(sc)
    labels = list(dict.fromkeys(label_of(sc, r) for r in summary))
    for j, what in enumerate(("cut", "restore")):
        for i, label in enumerate(labels):
            row = next(r for r in summary if label_of(sc, r) == label and r["event"] == what)
            sides = _sides(sc, row["protocol"], what)
            vals = [s.all for s in sides if s.all is not None]
            if not vals:
                continue
            mid = percentile(vals, 50)
            ax1.bar(i + 0.38 * j, mid, width=0.36, color=f"C{i}", alpha=1.0 if what == "cut" else 0.45,
                    label=f"{label} ({what})")  # fmt: skip
            ax1.errorbar(i + 0.38 * j, mid, yerr=[[mid - min(vals)], [max(vals) - mid]], color="k", capsize=3)
    ax1.set_yscale("log")
    ax1.set_xticks([i + 0.19 for i in range(len(labels))], [lb.split(" (")[0] for lb in labels], fontsize=8)
    ax1.set_ylabel("seconds to new routes everywhere (p50, min-max)")
    ax1.set_title(f"{sc.key}: link {sc.cut[0]}~{sc.cut[1]} cut (solid) and restored (light)")
    ax1.legend(fontsize=7)
    for i, label in enumerate(labels):
        row = next(r for r in summary if label_of(sc, r) == label and r["event"] == "cut")
        sides = sorted((s for s in _sides(sc, row["protocol"], "cut") if s.all is not None), key=lambda s: s.all or 0)
        if not sides:
            continue
        side = sides[len(sides) // 2]
        times = sorted(side.done.values())
        ax2.step(times, [(k + 1) / side.total for k in range(len(times))], where="post", color=f"C{i}", label=label)
    ax2.set_xscale("log")
    ax2.set_xlabel("seconds after the cut (median run)")
    ax2.set_ylabel("share of routers / servers holding their new routes")
    ax2.set_title("Who has the new routes when")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7)
    fig.text(0.01, 0.01, "definition in the JSON; FRR polled over vty sockets, linkstate timestamps from the nodes",
             fontsize=7)  # fmt: skip
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = stem.with_suffix(".png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sides(sc: Scenario, protocol: str, what: str) -> list[Side]:
    ms = [m for m in sc.results if m.what == what]
    if protocol == "FRR ospfd":
        return [m.frr for m in ms]
    return [m.linkstate for m in ms if m.profile == protocol.split()[1]]


# ============================================================================================ driver


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="peer_ospf", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="build the network, run FRR and linkstate side by side, cut a link, measure")
    r.add_argument("--shape", choices=("ring", "grid"), default="ring")
    r.add_argument("--groups", type=int, default=20)
    r.add_argument("--servers", type=int, default=2, help="linkstate servers per group (the first is bridgehead)")
    r.add_argument("--cut", default="0,1", help="the two adjacent groups (indices) whose link is cut")
    r.add_argument("--runs", type=int, default=3, help="cuts (each followed by a restore) per linkstate profile")
    r.add_argument("--profiles", default="seed,fast", help=f"linkstate profiles among {', '.join(PROFILES)}")
    r.add_argument("--time-scale", type=float, default=60.0, help="linkstate's timers are divided by this")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--gap", type=float, default=6.0, help="quiet seconds before each change (6: longer than OSPF's "
                   "MinLSInterval of 5 s, so a router may originate its new LSA at once; 0: changes back to back)")
    r.add_argument("--budget", type=float, default=90.0, help="seconds a change may take (else: not converged)")
    r.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for JSON and PNG")
    r.add_argument("--plots", action="store_true", help="write a PNG (needs matplotlib: the bench extra)")
    r.add_argument("--keep", action="store_true", help="keep the work directory (FRR configs and logs, node logs)")
    r.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    reason = fabric.unsupported() or frr_missing()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.profiles.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if unknown or not names:
        print(f"error: unknown profile(s) {unknown} (profiles: {', '.join(PROFILES)})", file=sys.stderr)
        return 2
    i, j = (int(x) for x in args.cut.split(","))
    sc = Scenario(args.shape, args.groups, args.servers, (group_name(i), group_name(j)), args.time_scale,
                  args.runs, args.seed, {n: PROFILES[n] for n in names}, args.gap)  # fmt: skip
    start = time.monotonic()

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - start:6.1f}s] {text}", file=sys.stderr, flush=True)

    try:
        work = run(sc, args.budget, args.keep, progress)
    except KeyboardInterrupt:
        print("interrupted (network removed, processes stopped)", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sc.note = "linkstate has no delta exchange yet: every change ships whole tables (fast = state_delay 0 only)"
    print(table(sc))
    print(f"   definition: {DEFINITION}")
    path = write_json(sc, Path(args.out), ["peer_ospf.py", *argv])
    print(f"\nresults: {path}" + (f"\nwork directory kept: {work}" if args.keep else ""))
    if args.plots:
        made = plot(sc, path)
        print(made if isinstance(made, str) else f"plot:    {made}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
