"""Operator commands against running nodes: `cluster fault`, `remonitor inject`, and `route --node`.

Owns: fault injection into a running local cluster (a server: stop/start its process; a connector: force its
source bridgeheads' state over TCP 691 with `STATE FAULT`, or in netns mode take its links down, see netns_cmd;
a group's links cut, every link healed), the Remonitor-style tombstone (`INJECT`, G53–G54,
refused by the node when the tool runs on it, R135), and the live route query (`ROUTE ASK`: the node answers
from its own router and table instead of the directory).
May import: anything in the project.
"""

from __future__ import annotations

from pathlib import Path

import click
import trio

from linkstate.cli import netns_cmd
from linkstate.cli.cluster import Cluster
from linkstate.cli.common import EXIT_FAILED, HelpGroup, fail, print_json
from linkstate.cli.node_cmd import _target, cluster_group, start_server
from linkstate.cli.route_cmd import describe, query_for, route_from_answer
from linkstate.cli.topology_cmd import load_or_fail
from linkstate.core.routing import MessageClass
from linkstate.core.topology import Topology
from linkstate.service.client import ClientError, ask_route, command, dump
from proto import rg691

STATES = {"down": "CONN_NOT_AVAILABLE", "up": "CLEAR"}


# --------------------------------------------------------------------------------------------- cluster fault


def _running_node(cluster: Cluster, name: str) -> tuple[str, int]:
    state = cluster.require_state()
    rec = state.servers.get(name)
    if rec is None:
        fail(f"{name} is not a server of this cluster")
    return rec.host, rec.port


async def _force(cluster: Cluster, topo: Topology, connector: str, value: str) -> list[str]:
    spec = topo.connector(connector)
    servers = spec.source_bridgeheads or (topo.routing_group(spec.routing_group).master,)
    done = []
    for name in servers:
        host, port = _running_node(cluster, name)
        try:
            await command(host, port, topo.secret, rg691.StateReport("FAULT", spec.guid, "", value), timeout=5)
        except ClientError as exc:
            fail(f"{name}: {exc.reason}", EXIT_FAILED)
        done.append(name)
    return done


@cluster_group.command("fault")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("target", required=False)
@click.argument("action", type=click.Choice(["up", "down", "flap"]), required=False)
@click.option("--count", type=click.IntRange(min=1), default=3, show_default=True, help="Flaps (down+up).")
@click.option("--interval", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="Seconds between the halves of a flap.")  # fmt: skip
@click.option("--partition", metavar="GROUP", help="netns mode: cut every link of GROUP's bridgeheads.")
@click.option("--heal", is_flag=True, help="netns mode: bring every link of the network up again.")
def cluster_fault(
    file: str,
    target: str | None,
    action: str | None,
    count: int,
    interval: float,
    partition: str | None,
    heal: bool,
) -> None:
    """Inject a failure into a running cluster: TARGET is a server (its process is stopped / started) or a
    connector (its source bridgeheads report CONN_NOT_AVAILABLE / recover; in netns mode the link carrying it
    goes down / up, and the nodes find out through their own probes). `--partition GROUP` and `--heal` (netns
    mode) isolate a group's bridge from every other and restore every link."""
    cluster = Cluster(Path(file))
    if partition is not None or heal:
        _network_fault(cluster, target, partition, heal)
        return
    if target is None or action is None:
        fail("give TARGET and ACTION (up, down or flap), or --partition GROUP, or --heal")
    state = cluster.state()
    topo = cluster.topology(state) if state else load_or_fail(file)
    names = {s.name for s in topo.servers}
    connectors = {c.name for c in topo.connectors}
    if target not in names | connectors:
        fail(f"{target!r} is neither a server nor a connector of {file}")
    if not cluster.is_running(state):
        fail(f"no cluster is running for {file} (start one with 'linkstate cluster up')", EXIT_FAILED)
    if target in names:
        _server_fault(cluster, target, action, count, interval)
        return
    network = netns_cmd.running_network(cluster)
    if network is not None:
        netns_cmd.link_fault(network, target, action, count, interval)
        return
    plan = [STATES[action]] if action != "flap" else ["CONN_NOT_AVAILABLE", "CLEAR"] * count

    async def run() -> None:
        for i, value in enumerate(plan):
            if i:
                await trio.sleep(interval)
            done = await _force(cluster, topo, target, value)
            what = "down (CONN_NOT_AVAILABLE)" if value != "CLEAR" else "up (cleared)"
            click.echo(f"{target}: {what} on {', '.join(done)}")

    trio.run(run)


def _network_fault(cluster: Cluster, target: str | None, partition: str | None, heal: bool) -> None:
    if target is not None:
        fail("--partition GROUP and --heal take no TARGET or ACTION")
    if partition is not None and heal:
        fail("give --partition GROUP or --heal, not both")
    network = netns_cmd.running_network(cluster)
    if network is None:
        fail(f"--partition and --heal need a cluster started with 'cluster up --netns' ({cluster.source.name} "
             "runs on loopback)")  # fmt: skip
    if partition is not None:
        netns_cmd.partition(network, partition)
    else:
        netns_cmd.heal(network)


def _server_fault(cluster: Cluster, server: str, action: str, count: int, interval: float) -> None:
    import time

    steps = {"down": ["down"], "up": ["up"], "flap": ["down", "up"] * count}[action]
    for i, step in enumerate(steps):
        if i:
            time.sleep(interval)
        if step == "down":
            rec, was = cluster.stop(server)
            click.echo(f"{server}: stopped (pid {rec.pid})" if was else f"{server}: was not running")
        else:
            rec = start_server(cluster, server)
            click.echo(f"{server}: started (pid {rec.pid}) on {rec.host}:{rec.port}")


# --------------------------------------------------------------------------------------------- remonitor


@click.group("remonitor", cls=HelpGroup)
def remonitor_group() -> None:
    """Remonitor: write a tombstone for a deleted routing group (requirements R135, G53–G54)."""


@remonitor_group.command("inject")
@click.option("--node", "node", required=True, metavar="HOST[:PORT]", help="The node to inject into (not this one).")
@click.option("--routing-group", "group", required=True, help="The deleted routing group: name or 32-hex GUID.")
@click.option("--topology", "topology_file", required=True, type=click.Path(dir_okay=False),
              help="Names, the secret, a running cluster's ports.")  # fmt: skip
@click.option("--from-server", help="Run as if on this server of a local cluster (its address is the source).")
@click.option("--force", is_flag=True, help="Inject even though the group is in the directory and its master answers.")
@netns_cmd.outside_netns_option
def remonitor_inject(
    node: str, group: str, topology_file: str, from_server: str | None, force: bool, outside: bool
) -> None:
    """Inject a tombstone for a routing group into one node; the normal exchange spreads it org-wide."""
    topo = load_or_fail(topology_file)
    guid = group.lower()
    if not (len(guid) == 32 and all(ch in "0123456789abcdef" for ch in guid)):
        try:
            guid = topo.routing_group(group).guid
        except KeyError:
            fail(f"unknown routing group {group!r} (give its name or its 32-hex GUID)")
    if not force:
        _refuse_live_group(topo, topology_file, guid, outside)
    host, port = _target(node, topo, topology_file)
    local = None
    ns = netns_cmd.query_namespace(topology_file, host, outside=outside)
    if from_server is not None:
        try:
            local = topo.server(from_server).address or "127.0.0.1"
        except KeyError:
            fail(f"unknown server {from_server!r}")
        if ns is not None:  # netns mode: the tool runs in that server's namespace, from its own address
            ns, local = netns_cmd.server_namespace(topology_file, from_server), None
    inject = rg691.Inject(guid)
    try:
        digest = netns_cmd.run_in(ns, command, host, port, topo.secret, inject, local_address=local)
    except ClientError as exc:
        fail(exc.reason, EXIT_FAILED)
    except OSError as exc:
        fail(f"cannot use {local} as the source address: {exc.strerror or exc}", EXIT_FAILED)
    click.echo(f"tombstone for {group} injected into {host}:{port}; its digest is now {digest}")


def _refuse_live_group(topo: Topology, topology_file: str, guid: str, outside: bool) -> None:
    """A group still in the directory whose master answers would outvote the tombstone: refuse (exit 1)."""
    spec = topo.routing_group_by_guid(guid)
    if spec is None:
        return
    host, port = _target(spec.master, topo, topology_file)
    ns = netns_cmd.query_namespace(topology_file, host, outside=outside)
    try:
        view, _ = netns_cmd.run_in(ns, dump, host, port, topo.secret, timeout=3)
    except ClientError:
        return  # its master does not answer: the group may really be gone
    if view.role != "master" or view.routing_group != guid:
        return
    fail(
        f"routing group {spec.name} is still in the directory and its master {spec.master} answers at "
        f"{host}:{port}: it publishes its section above any tombstone, so the tombstone would be outvoted; "
        "delete the group from the topology and stop its servers first (or give --force)",
        EXIT_FAILED,
    )


# --------------------------------------------------------------------------------------------- route --node


def live_route(
    node: str,
    topology_file: str,
    from_server: str,
    dest: dict[str, str | None],
    msg: MessageClass,
    as_json: bool,
    outside: bool = False,
) -> None:
    """The route query of `linkstate route`, answered by a running node from its own router and table."""
    topo = load_or_fail(topology_file)
    host, port = _target(node, topo, topology_file)
    ns = netns_cmd.query_namespace(topology_file, host, outside=outside)
    query = query_for(topo, from_server, dest, msg)
    try:
        answer = netns_cmd.run_in(ns, ask_route, host, port, topo.secret, query, timeout=10)
    except ClientError as exc:
        fail(exc.reason, EXIT_FAILED)
    result = route_from_answer(answer, topo)
    if as_json:
        print_json({**result.to_json(), "node": f"{host}:{port}"})
    else:
        click.echo(describe(result))


def register(cli: click.Group) -> None:
    cli.add_command(remonitor_group)
