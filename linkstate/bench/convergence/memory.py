"""The memory transport: the real NodeService over in-memory streams, under trio's MockClock (virtual time).

Owns: `MemoryDriver` (start/restart services, measure one event through their table-change hooks) and
`run_memory` (a scenario's measured events; the services' logging silenced while it runs).
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import structlog
import trio

from linkstate.bench.convergence.counting import counting_transport
from linkstate.bench.convergence.organizations import PORT_SMTP
from linkstate.bench.convergence.plan import (
    DOWN,
    NotApplicable,
    Plan,
    after_major,
    make_plan,
    minor_connector,
    origin_of,
)
from linkstate.bench.convergence.report import Progress, fmt_s
from linkstate.bench.convergence.results import Run, Scenario, diff, finish_run, ratio_of, snapshot
from linkstate.core import events as ev
from linkstate.core.topology import Topology
from linkstate.logconfig import configure
from linkstate.service.node import NodeService
from linkstate.service.transport import MemoryTransport
from linkstate.sim.network import Traffic


def run_memory(scn: Scenario, runs: int, latency: float, progress: Progress) -> None:
    """The real NodeService over in-memory streams, under trio's MockClock (virtual time)."""


    saved = structlog.get_config()
    configure("json", "error", stream=open(os.devnull, "w"))  # noqa: SIM115 - the services log a lot
    try:
        _run_memory(scn, runs, latency, progress)
    finally:
        structlog.configure(**saved)  # the caller's logging as it was (tests, the CLI)


def _run_memory(scn: Scenario, runs: int, latency: float, progress: Progress) -> None:
    import trio.testing

    plan = make_plan(scn.shape, scn.groups, scn.servers_per_group, scn.seed, scn.settings)
    if scn.event == "oscillation":
        raise NotApplicable("the oscillation scenario runs on the sim transport (it counts updates, not time)")
    clock = trio.testing.MockClock(autojump_threshold=0)

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
            for k in range(runs):
                if scn.event == "minor":
                    drv.plan = origin_of(plan, bh)
                    run = await drv.measure(lambda: drv.post(bh, ev.FaultInjected(guid, DOWN)), budget)
                    await drv.measure(lambda: drv.post(bh, ev.FaultInjected(guid, None)), budget)
                    drv.plan = plan
                elif scn.event == "major":
                    data, topo = plan.major_topology(k)
                    drv.plan = after_major(plan, data, topo)
                    run = await drv.measure(partial(drv.major, topo), budget)
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


class MemoryDriver:
    def __init__(self, plan: Plan, latency: float) -> None:

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
        if not all(s.core is not None and s.core.view().attached for s in self.services.values()):
            return False
        return len(set(self.digests().values())) == 1

    async def wait(self, predicate: Callable[[], bool], budget: float) -> bool:

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

        async def restart() -> None:
            self.scopes[member].cancel()
            await trio.sleep(1.0)
            await self.start(member)

        return await self.measure(restart, budget)
