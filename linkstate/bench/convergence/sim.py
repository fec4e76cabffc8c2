"""The sim transport: the pure simulated network (linkstate.sim), virtual time, every TableChanged timestamped.

Owns: `SimDriver` (start, warm-up, measure one event), `run_sim` (a scenario's measured events) and
`oscillation_sim` (down/up every period on one connector: updates and commits counted, not timed).
Invariants: the nodes are read through their public view and the table's digest and frame, and changed only by
inputs: the warm-up shortcut hands the published sections to every node as `TableSeeded`.
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

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
from linkstate.bench.convergence.results import Run, Scenario, diff, finish_run, ratio_of, snapshot
from linkstate.core import events as ev
from linkstate.core.lsdb import size_problem
from linkstate.core.topology import Topology
from linkstate.sim.network import SimNetwork, Traffic


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
        self._checked_at = float("-inf")  # when settled() last looked at every node
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

    def settled(self, old: str | None = None, force: bool = False) -> bool:
        """Every server holds one digest (not `old`) and every member is attached; O(1) until it may be true, and
        unless `force` the O(servers) part at most once per 10 ms of virtual time (the convergence time comes from
        the timeline, not from when this says yes)."""
        if len(self.counts) != 1 or len(self.current) != len(self.plan.servers) or old in self.counts:
            return False
        nodes = self.net.nodes
        if len(nodes) != len(self.plan.servers) or (not force and self.net.now < self._checked_at + 0.01):
            return False
        self._checked_at = self.net.now
        return all(c.view().attached for c in nodes.values()) and self.net.converged()

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

            groups = self.plan.topology.routing_groups
            masters = [self.net.nodes[rg.master] for rg in groups]
            end = self.net.now + budget
            while self.net.now < end and not all(m.view().published for m in masters):
                self.net.run_for(0.005)
            own = tuple(m.lsdb.section(rg.guid) for m, rg in zip(masters, groups, strict=True))
            self.net.seed_table(OrgInfo(tuple(s for s in own if s is not None)))
            self.resync()
        end = self.net.now + budget
        while self.net.now < end:
            if self.net.run_for(30, stop=self.settled):
                break
        if not self.settled(force=True):
            raise ScenarioFailed(f"the organization did not converge within {budget:.0f} s of virtual time at start")
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


def run_sim(scn: Scenario, runs: int, latency: float, progress: Progress, organic: bool = False) -> None:
    plan = make_plan(scn.shape, scn.groups, scn.servers_per_group, scn.seed, scn.settings)
    too_big = size_problem(plan.topology)
    if too_big is not None:  # every node would refuse part of it: it could never converge
        raise ScenarioFailed(f"{too_big.path}: {too_big.message}")
    if scn.event == "oscillation":
        scn.runs.append(oscillation_sim(plan, latency, scn.seed, organic=organic))
        progress.step("oscillation")
        return
    drv = SimDriver(plan, latency, scn.seed)
    drv.net.keep_diagnostics = False  # nothing here reads them, and at 10,000 servers they would fill the memory
    t0 = time.perf_counter()
    drv.warm_up(organic=organic)
    scn.warmup_s = time.perf_counter() - t0
    scn.note = f"warm-up {scn.warmup_s:.1f}s wall"
    state_delay = float(scn.settings.get("state_delay", 600))
    budget = state_delay + 3600
    guid, bh = minor_connector(plan) if scn.event == "minor" else ("", "")
    for k in range(len(scn.runs), runs):
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
    before_minor = net.nodes[master].view().table_changes.get("minor", 0)
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
    minor = net.nodes[master].view().table_changes.get("minor", 0) - before_minor
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
