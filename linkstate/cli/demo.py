"""`linkstate demo`: the README's main job, as a list of steps over a local multi-process cluster.

Owns: materialising an embedded example (`linkstate/examples/<name>.toml`, package data) into a fresh work
directory with a freshly generated organization secret, the convergence checks, and the step list
`STEPS[example]`. Each step is `Step(title, coroutine(DemoRun))`; to extend the demo (the four-group
organization with SMTP between groups) add a list to STEPS and, where needed, a predicate like `converged`.
Flow of the default demo (`seattle`, the seed's four groups): start all eight servers, wait for one digest, show a
member's WinRoute view and Seattle's route to Brussels (via London, cost 20) from Seattle's live table, stop
London's bridgehead, wait until the change commits and propagates (via Tokyo, 35), start London again, wait for the
route to fail back, stop everything. Flow of the single-group demo: start every server as its own process (the
machinery of `cluster up`), wait until every server holds one digest and every member is attached, show a member's
WinRoute view and the per-server table, stop the master (the members keep their table and report "connected NO"),
start it again, wait for convergence on a version of the group above the old one, stop everything.
With `--netns` (real network mode, linkstate.netns) every server runs in its own network namespace: the first
step builds the network, the last removes it, and in the seed's scenario London's bridgehead becomes unreachable
because every link of it goes down (`NETNS_STEPS`), not because its process stops; the other groups find out
through their own failing probes.
Invariants: every process started is stopped on every exit path (success, failure, Ctrl-C), and in netns mode
every namespace made is removed on every exit path; each wait is
bounded (`timeout`), a miss exits 1 naming what was missing and where the node logs are; the work directory
is removed after a successful run and kept after a failure.
May import: anything (CLI layer).
"""

from __future__ import annotations

import math
import secrets
import shutil
import signal
import sys
import tempfile
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import click
import trio

from linkstate.cli.cluster import START_WAIT, Cluster, NodeStatus, format_status
from linkstate.cli.common import CliError
from linkstate.cli.netns_cmd import remove_network
from linkstate.cli.route_cmd import describe, query_for, route_from_answer
from linkstate.cli.winroute import render
from linkstate.core.routing import MessageClass, Route
from linkstate.core.topology import Topology, TopologyError
from linkstate.netns import fabric
from linkstate.netns.enter import call_in
from linkstate.netns.fabric import Fabric
from linkstate.netns.plan import NetPlan, NetPlanError, new_prefix, plan_network
from linkstate.service.client import ClientError, ask_route, dump_frame
from linkstate.service.topofile import load_topology
from proto.model import Version

POLL = 0.5
PROGRESS_EVERY = 3.0  # seconds between progress lines when the output is not a terminal


class DemoFailed(Exception):
    """A step did not reach its goal in time; the message says what was missing."""


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[DemoRun], Awaitable[None]]


@dataclass
class DemoRun:
    cluster: Cluster
    topo: Topology
    time_scale: float
    timeout: float
    notes: dict[str, object] = field(default_factory=dict)
    network: NetPlan | None = None  # real network mode (--netns)

    # --- output --------------------------------------------------------------------------------------------

    @staticmethod
    def say(text: str = "") -> None:
        click.echo(text)

    def table(self, statuses: list[NodeStatus]) -> None:
        for line in format_status(statuses):
            self.say(f"    {line}")

    # --- waiting -------------------------------------------------------------------------------------------

    async def wait_for(self, what: str, check: Callable[[list[NodeStatus]], str | None]) -> list[NodeStatus]:
        """Poll every node until `check` returns None (done); otherwise it returns the progress line."""
        progress = Progress(sys.stdout.isatty())
        start = trio.current_time()
        while True:
            statuses = await self.cluster.statuses(timeout=2.0)
            state = check(statuses)
            elapsed = trio.current_time() - start
            if state is None:
                progress.finish()
                self.say(f"  {what}: done in {elapsed:.1f} s")
                return statuses
            if elapsed > self.timeout:
                progress.finish(keep=True)
                self.table(statuses)
                raise DemoFailed(f"{what}: not reached within {self.timeout:g} s ({state})")
            progress.update(state, f"  waiting: {what} — {state} [{elapsed:4.1f} s]", elapsed)
            await trio.sleep(POLL)

    # --- helpers over the topology -------------------------------------------------------------------------

    def masters(self) -> list[str]:
        return [rg.master for rg in self.topo.routing_groups]

    def members(self) -> list[str]:
        masters = set(self.masters())
        return [s.name for s in self.topo.servers if s.name not in masters]


@dataclass
class Progress:
    """The line of a wait in progress. On a terminal it is rewritten in place; otherwise (a pipe, a log) it is
    printed when its state changes and at least every PROGRESS_EVERY seconds, so a reader sees it is alive."""

    tty: bool
    shown: str = ""
    line: str = ""
    printed_at: float = -math.inf

    def update(self, state: str, line: str, elapsed: float) -> None:
        if self.tty:
            sys.stdout.write("\r\x1b[2K" + line)
            sys.stdout.flush()
        elif state != self.shown or elapsed - self.printed_at >= PROGRESS_EVERY:
            click.echo(line)
            self.printed_at = elapsed
        self.shown, self.line = state, line

    def finish(self, keep: bool = False) -> None:
        """Before the next output: a terminal's progress line is erased (or ended, to keep it)."""
        if self.tty and self.line:
            sys.stdout.write("\n" if keep else "\r\x1b[2K")
            sys.stdout.flush()
        self.line = ""


def converged(
    topo: Topology, min_versions: dict[str, Version] | None = None
) -> Callable[[list[NodeStatus]], str | None]:
    """Every server answers, one digest everywhere, every member attached, every group above `min_versions`."""
    masters = {rg.master for rg in topo.routing_groups}

    def check(statuses: list[NodeStatus]) -> str | None:
        up = [s for s in statuses if s.state == "running"]
        digests = {s.digest for s in up}
        members = [s for s in statuses if s.name not in masters]
        attached = [s for s in members if s.state == "running" and s.role == "member" and s.attached]
        versions = {s.routing_group or "?": s.version or "0.0.0" for s in up if s.role == "master"}
        low = [rg for rg, v in (min_versions or {}).items() if _version(versions.get(rg, "0.0.0")) <= v]
        unpublished = [rg for rg, v in versions.items() if _version(v) == Version()]
        done = len(up) == len(statuses) and len(digests) == 1 and len(attached) == len(members)
        if done and not low and not unpublished:
            return None
        parts = [
            f"answering {len(up)}/{len(statuses)}",
            f"digests {len(digests)}",
            f"members attached {len(attached)}/{len(members)}",
        ]
        parts += [f"{rg} version {v}" for rg, v in sorted(versions.items())]
        return ", ".join(parts)

    return check


def _version(text: str) -> Version:
    try:
        major, minor, user = (int(x) for x in text.split("."))
    except ValueError:
        return Version()
    return Version(major, minor, user)


# --------------------------------------------------------------------------------------------- steps


async def start_all(run: DemoRun) -> None:
    state = run.cluster.prepare(run.topo, run.time_scale, supervisor_kind="demo", network=run.network)
    if run.network is not None:
        plan = run.network
        await trio.to_thread.run_sync(Fabric(plan).build)
        run.say(
            f"  network: {len(plan.hosts)} server namespaces, {len(plan.switches)} group bridges, {len(plan.links)} "
            f"bridgehead links (namespaces {plan.prefix}*, addresses from 198.18.0.0/15)"
        )
    elif state.derived:
        run.say(f"  real ports not usable ({state.port_note}): dev ports from {state.topology}")
    recs = [run.cluster.spawn(name) for name in state.servers]
    problems = await run.cluster.await_answers([r.name for r in recs], START_WAIT)
    for rec in recs:
        role = "master" if rec.name in run.masters() else "member"
        where = f"did not come up: {problems[rec.name]}" if rec.name in problems else f"on {rec.host}:{rec.port}"
        run.say(f"  {rec.name:<8} {role:<6} pid {rec.pid:<7} {where}")
    if problems:
        raise DemoFailed(f"{', '.join(problems)} did not come up")


async def wait_converged(run: DemoRun) -> None:
    statuses = await run.wait_for("one digest everywhere, every member attached", converged(run.topo))
    run.notes["versions"] = {s.routing_group: _version(s.version or "") for s in statuses if s.role == "master"}
    run.notes["digest"] = statuses[0].digest


async def show_member(run: DemoRun) -> None:
    member = run.members()[0]
    state = run.cluster.require_state()
    rec = state.servers[member]
    try:
        result = await call_in(rec.netns, dump_frame, rec.host, rec.port, run.topo.secret, timeout=5)
    except ClientError as exc:
        raise DemoFailed(f"WinRoute on {member}: {exc.reason}") from None
    run.say(f"  $ linkstate winroute {rec.host}:{rec.port} --topology …")
    for line in render(result, run.topo, f"{rec.host}:{rec.port}"):
        run.say(f"  | {line}")
    run.say()
    run.say("  Every server:")
    run.table(await run.cluster.statuses(timeout=2.0))


async def stop_master(run: DemoRun) -> None:
    master = run.masters()[0]
    before = run.notes.get("digest")
    rec, _ = await trio.to_thread.run_sync(run.cluster.stop, master)
    run.say(f"  stopped {master} (pid {rec.pid})")

    def members_alone(statuses: list[NodeStatus]) -> str | None:
        by_name = {s.name: s for s in statuses}
        pending = [
            n
            for n in run.members()
            if by_name[n].state != "running" or by_name[n].attached or by_name[n].digest != before
        ]
        if by_name[master].state not in ("stopped", "exited"):
            return f"{master} still {by_name[master].state}"
        return f"waiting for {', '.join(pending)}" if pending else None

    statuses = await run.wait_for("members report 'connected NO' and keep their table", members_alone)
    run.table(statuses)
    member = run.members()[0]
    rec = run.cluster.require_state().servers[member]
    try:
        result = await call_in(rec.netns, dump_frame, rec.host, rec.port, run.topo.secret, timeout=5)
    except ClientError as exc:
        raise DemoFailed(f"WinRoute on {member}: {exc.reason}") from None
    run.say(f"  $ linkstate winroute {rec.host}:{rec.port} --topology …   (first lines)")
    for line in render(result, run.topo, f"{rec.host}:{rec.port}")[:7]:
        run.say(f"  | {line}")
    run.say(f"  the members keep their table (digest {str(before)[:8]}…) and report 'connected NO'")


async def restart_master(run: DemoRun) -> None:
    master = run.masters()[0]
    old: dict[str, Version] = dict(run.notes.get("versions", {}))  # type: ignore[call-overload]
    rec = await trio.to_thread.run_sync(run.cluster.spawn, master)
    run.say(f"  started {master} again (pid {rec.pid})")
    statuses = await run.wait_for("convergence on a version above the old one", converged(run.topo, old))
    for s in statuses:
        if s.role == "master" and s.routing_group:
            run.say(f"  {s.routing_group}: version {old.get(s.routing_group, Version())} -> {s.version}")
    run.table(statuses)


async def stop_everything(run: DemoRun) -> None:
    stopped = await trio.to_thread.run_sync(run.cluster.stop_all)
    run.say(f"  stopped {len(stopped)} server(s): {', '.join(stopped)}")
    if run.network is not None:
        removed = await trio.to_thread.run_sync(remove_network, run.cluster, run.network.prefix)
        left = fabric.leftovers(run.network.prefix)
        run.say(f"  removed {len(removed)} network namespaces ({run.network.prefix}*); left behind: {len(left)}")


# --- the organization (four groups, SMTP between them): the seed's London/Tokyo scenario (R36, G24, F3) ------

SOURCE, DEST, LOST = "SEA-S2", "BRU-S2", "LON-BH1"  # Seattle's mail for Brussels; London's bridgehead
VIA_LONDON, VIA_TOKYO = ("Seattle", "London", "Brussels"), ("Seattle", "Tokyo", "Brussels")


async def live_route(run: DemoRun) -> Route:
    """Where SEA-S2 sends Brussels' mail now, as SEA-S2 itself answers (what `route --node` asks)."""
    rec = run.cluster.require_state().servers[SOURCE]
    query = query_for(run.topo, SOURCE, {"to_server": DEST}, MessageClass())
    try:
        answer = await call_in(rec.netns, ask_route, rec.host, rec.port, run.topo.secret, query, timeout=5)
    except ClientError as exc:
        raise DemoFailed(f"route query to {SOURCE}: {exc.reason}") from None
    return route_from_answer(answer, run.topo)


async def wait_route(run: DemoRun, cost: int, path: tuple[str, ...], why: str) -> None:
    """Wait until SOURCE's route to DEST has this cost over this path of groups. Both: while the loss of London
    travels, an equal-cost path through a group that has not yet heard of it can show up for a moment (Tokyo →
    London → Brussels also costs 35 until Tokyo's own probe of London fails)."""
    start = trio.current_time()
    progress = Progress(sys.stdout.isatty())
    while True:
        route = await live_route(run)
        elapsed = trio.current_time() - start
        now = describe(route)
        if route.cost == cost and route.path == path:
            progress.finish()
            run.say(f"  $ linkstate route --node {SOURCE} --from {SOURCE} --to-server {DEST}")
            run.say(f"  {now}")
            run.say(f"  ({why}: {elapsed:.1f} s)")
            return
        if elapsed > run.timeout:
            progress.finish(keep=True)
            want = " → ".join(path)
            raise DemoFailed(f"route {want} cost {cost} not reached within {run.timeout:g} s (still: {now})")
        progress.update(now, f"  waiting: {why} [{elapsed:4.1f} s]  now: {now}", elapsed)
        await trio.sleep(POLL)


async def route_via_london(run: DemoRun) -> None:
    await wait_route(run, 20, VIA_LONDON, "Seattle → London → Brussels, the lowest cost")


async def via_tokyo(run: DemoRun, *lines: str) -> None:
    """London is lost: say how, then wait for Seattle's route to take Tokyo (35)."""
    for line in lines:
        run.say(f"  {line}")
    await wait_route(run, 35, VIA_TOKYO, "the change committed and propagated")
    run.table(await run.cluster.statuses(timeout=2.0))


async def back_via_london(run: DemoRun, line: str) -> None:
    """London is back: say how, then wait for the route to fail back (20) and for one digest everywhere."""
    run.say(f"  {line}")
    await wait_route(run, 20, VIA_LONDON, "London is back: the route fails back (different costs, R54)")
    await run.wait_for("one digest everywhere again", converged(run.topo))
    run.table(await run.cluster.statuses(timeout=2.0))


def _delay(run: DemoRun) -> str:
    return f"{run.topo.settings.state_delay / run.time_scale:g} s at this time scale"


async def stop_london(run: DemoRun) -> None:
    rec, _ = await trio.to_thread.run_sync(run.cluster.stop, LOST)
    await via_tokyo(
        run,
        f"stopped {LOST} (pid {rec.pid}), London's master and the bridgehead of all its connectors",
        "Seattle, Brussels and Tokyo probe it, report it unavailable, and commit the change after the",
        f"state delay ({_delay(run)}); the minor update then travels over X-LINK2STATE",
    )


async def restart_london(run: DemoRun) -> None:
    rec = await trio.to_thread.run_sync(run.cluster.spawn, LOST)
    await back_via_london(run, f"started {LOST} again (pid {rec.pid})")


# --- the same over real links (--netns): London's bridgehead becomes unreachable because its links go down ------


async def london_links(run: DemoRun, up: bool) -> list[str]:
    """Take every link of London's bridgehead down or up (both ends); returns their names."""
    plan = run.network
    assert plan is not None
    return await trio.to_thread.run_sync(Fabric(plan).set_links, plan.links_of_group("London"), up)


async def cut_london(run: DemoRun) -> None:
    cut = await london_links(run, False)
    await via_tokyo(
        run,
        f"took down {len(cut)} links, both ends: {', '.join(cut)}",
        f"{LOST} keeps running, but nothing reaches it from outside London: Seattle's, Brussels' and Tokyo's",
        "probes fail (network unreachable), each reports its connector to London unavailable and commits",
        f"after the state delay ({_delay(run)}); the minor update travels over X-LINK2STATE",
    )


async def reconnect_london(run: DemoRun) -> None:
    back = await london_links(run, True)
    await back_via_london(run, f"brought {len(back)} links up again; the probes succeed and the tables merge")


NETNS_STEPS: dict[str, list[Step]] = {
    "seattle": [
        Step(
            "Build the network (a namespace per server, a bridge per group, a link per connected pair of "
            "bridgeheads) and start the seed's organization",
            start_all,
        ),
        Step("Wait until every server holds one digest", wait_converged),
        Step("What WinRoute shows on a member", show_member),
        Step("Route Seattle's mail for Brussels", route_via_london),
        Step("Cut London off: every link of its bridgehead goes down", cut_london),
        Step("Bring London's links up again", reconnect_london),
        Step("Stop everything and remove the network", stop_everything),
    ],
}


STEPS: dict[str, list[Step]] = {
    "seattle": [
        Step(
            "Start the seed's organization: four routing groups, two servers each, every server its own process",
            start_all,
        ),
        Step("Wait until every server holds one digest", wait_converged),
        Step("What WinRoute shows on a member", show_member),
        Step("Route Seattle's mail for Brussels", route_via_london),
        Step("Stop London's bridgehead", stop_london),
        Step("Start London again", restart_london),
        Step("Stop everything", stop_everything),
    ],
    "single-group": [
        Step("Start every server as its own process", start_all),
        Step("Wait for the group to converge", wait_converged),
        Step("What WinRoute shows on a member", show_member),
        Step("Stop the master", stop_master),
        Step("Start the master again", restart_master),
        Step("Stop everything", stop_everything),
    ],
}


# --------------------------------------------------------------------------------------------- driver


FINISHED = {
    "seattle": "the organization converged, rerouted around London through Tokyo (35), and failed back (20)",
    "single-group": "the group converged, survived its master's absence and converged again",
}
DEFAULT_TIME_SCALE = {"seattle": 60.0, "single-group": 10.0}


def materialise(example: str, workdir: Path) -> Path:
    """Copy an embedded example into `workdir`, with a fresh secret if it names a secret file."""
    text = resources.files("linkstate").joinpath("examples", f"{example}.toml").read_text()
    path = workdir / f"{example}.toml"
    path.write_text(text)
    org = tomllib.loads(text).get("organization", {})
    secret_file = org.get("secret_file") if isinstance(org, dict) else None
    if isinstance(secret_file, str) and not Path(secret_file).is_absolute():
        target = (workdir / secret_file).resolve()
        if workdir.resolve() in target.parents:
            target.write_text(secrets.token_hex(24) + "\n")
            target.chmod(0o600)
    return path


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def plan_demo_network(topo: Topology) -> NetPlan:
    try:
        return plan_network(topo, new_prefix())
    except NetPlanError as exc:
        raise DemoFailed(str(exc)) from None


def run_demo(example: str, time_scale: float, timeout: float, netns: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="linkstate-demo-"))
    ok = False
    cluster: Cluster | None = None
    network: NetPlan | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        path = materialise(example, workdir)
        try:
            topo = load_topology(path)
        except TopologyError as exc:
            click.echo(f"error: embedded example {example} is invalid: {exc.problems[0].format()}", err=True)
            return 1
        cluster = Cluster(path, workdir / "run")
        network = plan_demo_network(topo) if netns else None
        run = DemoRun(cluster, topo, time_scale, timeout, network=network)
        mode = ", real network: every server in its own network namespace" if netns else ""
        click.echo(f"linkstate demo: {example} ({len(topo.servers)} servers), time scale {time_scale:g}{mode}")
        steps = NETNS_STEPS.get(example, STEPS[example]) if netns else STEPS[example]
        for i, step in enumerate(steps, 1):
            click.echo(f"\n[{i}/{len(steps)}] {step.title}")
            trio.run(step.run, run)
        click.echo(f"\ndemo finished: {FINISHED[example]}")
        ok = True
        return 0
    except DemoFailed as exc:
        click.echo(f"error: {exc}; node logs are in {workdir / 'run'}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        if cluster is not None:
            cluster.stop_all()
            if network is not None:
                _remove_quietly(cluster, network)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)


def _remove_quietly(cluster: Cluster, network: NetPlan) -> None:
    """The demo's last word on its network: remove it; a failure is one line, never a traceback."""
    try:
        remove_network(cluster, network.prefix)
    except CliError as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
