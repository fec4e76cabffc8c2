"""Real network mode of a local cluster (`cluster up --netns`, `cluster fault` on links, `cluster clean`,
`demo --netns`): linkstate.netns under the CLI.

Owns: planning a run's network (refusing, in one line, where netns mode cannot run; removing what a previous run
of the same file left behind), building it before the nodes start and removing it after they stop, `cluster clean
FILE` (what a crashed supervisor left: its nodes, then the run's namespaces), link faults (a connector's links
down/up/flapping, a group's links cut with `--partition`, every link restored with `--heal`), and the namespace a
CLI query enters to reach a node (`query_namespace`: the file's netns cluster, else the one run namespace of this
machine that holds the address; an address of 198.18.0.0/15 that no run holds is refused unless `--outside-netns`).
Invariants: only namespaces with the run's recorded prefix are removed; a process is stopped only if the state
records it as a node of the run or its command line names one of the run's namespaces (a `serve --netns` of this
run); a link fault changes links only, never a node's state (the nodes find out through their own probes and
sessions); network operations are synchronous and run before, between or after trio runs, never inside one.
May import: anything (CLI layer).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click
import trio

from linkstate.cli.cluster import Cluster, NodeRecord, alive, wait_gone
from linkstate.cli.common import EXIT_FAILED, fail
from linkstate.core.topology import Topology
from linkstate.netns import fabric
from linkstate.netns.enter import NETNS_DIR, NetnsError, call_in
from linkstate.netns.fabric import Fabric
from linkstate.netns.plan import Link, NetPlan, NetPlanError, in_bench_range, new_prefix, plan_network

P = ParamSpec("P")
T = TypeVar("T")
STOP_WAIT = 5.0
RUN_PREFIX_LEN = len("ls-000000-")

# --------------------------------------------------------------------------------------------- the network of a run


def require_support() -> None:
    reason = fabric.unsupported()
    if reason is not None:
        fail(reason, EXIT_FAILED)


def plan_for(cluster: Cluster, topo: Topology) -> NetPlan:
    """A fresh network plan for `topo` (after removing a stopped previous run's namespaces)."""
    require_support()
    old = cluster.state()
    if old is not None and old.netns_prefix and not (cluster.supervisor_alive(old) or cluster.running(old)):
        removed = remove_network(cluster, old.netns_prefix)
        if removed:
            click.echo(f"removed {len(removed)} namespace(s) a previous run left behind ({old.netns_prefix}*)")
    try:
        return plan_network(topo, new_prefix())
    except NetPlanError as exc:
        fail(f"cannot lay out {cluster.source.name} as a network: {exc}")


def build(plan: NetPlan) -> None:
    """Create the run's namespaces, bridges, links, addresses and routes (one line on failure, nothing left)."""
    start = time.monotonic()
    try:
        Fabric(plan).build()
    except NetnsError as exc:
        fail(str(exc), EXIT_FAILED)
    click.echo(
        f"network: {len(plan.hosts)} server namespaces, {len(plan.switches)} group bridges, {len(plan.links)} "
        f"bridgehead links, namespaces {plan.prefix}* ({time.monotonic() - start:.1f} s)"
    )


def remove_network(cluster: Cluster, prefix: str) -> list[str]:
    """Stop what still runs inside the run's namespaces (its own nodes only), then remove the namespaces."""
    names = fabric.leftovers(prefix)
    for ns, pids in fabric.processes_in(names).items():
        _stop_own([pid for pid in pids if alive(pid, ns)], ns)
    try:
        return fabric.remove(fabric.leftovers(prefix))
    except NetnsError as exc:
        fail(str(exc), EXIT_FAILED)


def leftover_network(cluster: Cluster) -> list[str]:
    """Remove the run's namespaces if they outlived their supervisor (call after the nodes stopped)."""
    state = cluster.state()
    if state is None or not state.netns_prefix or not fabric.leftovers(state.netns_prefix):
        return []
    require_support()
    return remove_network(cluster, state.netns_prefix)


def _stop_own(pids: list[int], ns: str) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        if not wait_gone(pid, ns, STOP_WAIT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, ns, 2.0)


def namespace_of(topology_file: str | None, host: str) -> str | None:
    """The namespace a query for `host` must enter: the node's, when a netns cluster of the file records it and
    its namespace exists."""
    return next((rec.netns for rec in _netns_records(topology_file) if rec.host == host), None)


def server_namespace(topology_file: str | None, server: str) -> str | None:
    """The namespace of `server` in the file's netns cluster (None: not a netns cluster, or its network is gone)."""
    return next((rec.netns for rec in _netns_records(topology_file) if rec.name == server), None)


def _netns_records(topology_file: str | None) -> list[NodeRecord]:
    if topology_file is None:
        return []
    state = Cluster(Path(topology_file)).state()
    if state is None or not state.netns_prefix:
        return []
    return [rec for rec in state.servers.values() if rec.netns is not None and (NETNS_DIR / rec.netns).exists()]


OUTSIDE_NETNS_HELP = (
    "Connect from this network namespace even to an address of 198.18.0.0/15 that no netns cluster on this machine "
    "holds (refused by default: the connection would leave the machine)."
)
outside_netns_option = click.option("--outside-netns", "outside", is_flag=True, help=OUTSIDE_NETNS_HELP)


def query_namespace(topology_file: str | None, host: str, *, outside: bool = False) -> str | None:
    """The namespace a tool's connection to `host` is made from (None: this process's own). A node of the file's
    netns cluster: its namespace; else an address held by exactly one run namespace of this machine (any run's):
    that one. An address of 198.18.0.0/15 that no run here holds is refused in one line unless `outside`: from
    this namespace the connection would leave the machine by its default route."""
    ns = namespace_of(topology_file, host)
    if ns is not None or outside:
        return ns
    found = _holders(host)
    if len(found) == 1:
        return found[0]
    if found:
        runs = ", ".join(sorted({name[:RUN_PREFIX_LEN] + "*" for name in found}))
        fail(f"{host} is an address of more than one netns run on this machine ({runs}): give --topology FILE of "
             "the cluster you mean")  # fmt: skip
    if in_bench_range(host):
        fail(f"{host} is in 198.18.0.0/15, the range of netns clusters, but no netns cluster on this machine holds "
             "it, so the connection would leave the machine: start the cluster ('cluster up --netns'), or give "
             "--outside-netns if that address really is reachable from here")  # fmt: skip
    return None


def run_in(ns: str | None, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """`trio.run` of `fn` with its connections made inside `ns` (None: here); a namespace that is gone is one
    line, exit 1."""
    try:
        return trio.run(lambda: call_in(ns, fn, *args, **kwargs))
    except NetnsError as exc:
        fail(str(exc), EXIT_FAILED)


def _holders(host: str) -> list[str]:
    """The run namespaces holding `host`: only for an IP address that is neither loopback (every namespace has
    its own) nor one of this namespace's own, and only where namespaces can be entered."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return []
    if address.is_loopback or address.is_unspecified or _local_here(host) or fabric.unsupported() is not None:
        return []
    return fabric.holders(host)


def _local_here(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


def link_summary(cluster: Cluster) -> str | None:
    """`links: N up, M down (names)` for a netns cluster whose network exists (None otherwise)."""
    plan = cluster.network()
    if plan is None or not fabric.leftovers(plan.prefix):
        return None
    try:
        states = Fabric(plan).link_states()
    except NetnsError as exc:
        return f"links: unknown ({exc})"
    down = [name for name, up in states.items() if not up]
    text = f"links: {len(states) - len(down)} up, {len(down)} down"
    return text + (f" ({', '.join(down)})" if down else "")


# --------------------------------------------------------------------------------------------- faults


def running_network(cluster: Cluster) -> NetPlan | None:
    """The network of the file's netns cluster when it exists now (None for a loopback cluster)."""
    plan = cluster.network()
    if plan is None:
        return None
    require_support()
    if not fabric.leftovers(plan.prefix):
        fail(f"the network of {cluster.source.name} is gone (no namespace {plan.prefix}*): is the cluster up?",
             EXIT_FAILED)  # fmt: skip
    return plan


def _apply(plan: NetPlan, links: list[Link], up: bool, what: str) -> None:
    try:
        names = Fabric(plan).set_links(links, up)
    except NetnsError as exc:
        fail(str(exc), EXIT_FAILED)
    state = "up" if up else "down"
    click.echo(f"{what}: {len(names)} link(s) {state}" + (f" ({', '.join(names)})" if names else ""))


def link_fault(plan: NetPlan, connector: str, action: str, count: int, interval: float) -> None:
    """Take the links carrying `connector` down, up, or down and up `count` times."""
    links = plan.links_of_connector(connector)
    if not links:
        fail(f"connector {connector} has no link in this network (it does not connect two routing groups)")
    steps = {"down": [False], "up": [True], "flap": [False, True] * count}[action]
    for i, up in enumerate(steps):
        if i:
            time.sleep(interval)
        _apply(plan, links, up, connector)


def partition(plan: NetPlan, group: str) -> None:
    try:
        links = plan.links_of_group(group)
    except KeyError:
        fail(f"unknown routing group {group!r} (groups: {', '.join(s.group for s in plan.switches)})")
    _apply(plan, links, False, f"{group} cut off")


def heal(plan: NetPlan) -> None:
    _apply(plan, list(plan.links), True, "healed")


# --------------------------------------------------------------------------------------------- cluster clean


def clean(cluster: Cluster) -> None:
    """What `cluster clean FILE` does (see the command)."""
    state = cluster.state()
    if state is None:
        click.echo(f"nothing to clean: no cluster has run for {cluster.source.name}")
        return
    if cluster.supervisor_alive(state):
        fail(f"the cluster of {cluster.source.name} is running (supervisor pid {state.supervisor}): stop it "
             "(Ctrl-C, or 'linkstate cluster stop') before cleaning", EXIT_FAILED)  # fmt: skip
    stopped = cluster.stop_all()
    removed = leftover_network(cluster)
    click.echo(f"stopped {len(stopped)} server(s)" + (f": {', '.join(stopped)}" if stopped else ""))
    click.echo(f"removed {len(removed)} namespace(s)" + (f" ({state.netns_prefix}*)" if removed else ""))


@click.command("clean")
@click.argument("file", type=click.Path(dir_okay=False))
def cluster_clean(file: str) -> None:
    """Remove what a cluster of FILE left behind when its supervisor died: its nodes, and in netns mode the
    run's network namespaces (refused while the cluster's `cluster up` still runs)."""
    clean(Cluster(Path(file)))


def register(cli: click.Group) -> None:
    """`cluster clean` joins the `cluster` group (registered before this module by node_cmd)."""
    group = cli.commands.get("cluster")
    if isinstance(group, click.Group):
        group.add_command(cluster_clean)
