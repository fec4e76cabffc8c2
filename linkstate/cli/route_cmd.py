"""`linkstate route`: ask the route engine where a message from a server would go.

Owns: the what-if route query over a topology file: the table is built from the directory (build_orginfo)
with `--down` servers/connectors marked unavailable, then one lookup; with `--node HOST[:PORT]` the running node
answers from its own router and table (`ROUTE ASK`, linkstate.cli.ops_cmd), sticky choices included (R55).
Text output for a person, `--json` for tools: `{status, connector, next_hop, cost, path, address_space}`.
Unknown names: one `error:` line, exit 2.
May import: click, the standard library, proto, linkstate.core, linkstate.cli.
"""

from __future__ import annotations

import click

from linkstate.cli.common import fail, print_json
from linkstate.cli.netns_cmd import outside_netns_option
from linkstate.cli.topology_cmd import load_or_fail
from linkstate.core.directory import build_orginfo
from linkstate.core.routing import ConnectorRef, MessageClass, Route, Router, RouteStatus, RoutingError, SpaceRef
from linkstate.core.topology import Topology
from proto import rg691


def _check_names(topo: Topology, names: tuple[str, ...]) -> None:
    known = {s.name for s in topo.servers} | {c.name for c in topo.connectors}
    for n in names:
        if n not in known:
            fail(f"--down {n!r}: no server or connector of that name")


def query_for(topo: Topology, from_server: str, dest: dict[str, str | None], msg: MessageClass) -> rg691.RouteQuery:
    """The `ROUTE ASK` for a question put by name (`dest`: exactly one of to, to_server, to_group)."""
    kind, value = next((k, v) for k, v in dest.items() if v is not None)
    destination = {"to": lambda: value, "to_server": lambda: topo.server(value).guid,
                   "to_group": lambda: topo.routing_group(value).guid}[kind]()  # fmt: skip
    kinds = {"to": "ADDRESS", "to_server": "SERVER", "to_group": "GROUP"}
    return rg691.RouteQuery(topo.server(from_server).guid, kinds[kind], destination, msg.sender or "", msg.size,
                            msg.priority, msg.referral)  # fmt: skip


def route_from_answer(answer: rg691.RouteAnswer, topo: Topology) -> Route:
    """A node's `ROUTE ANSWER` as a Route, named with the directory (GUIDs it does not know stay GUIDs)."""

    def ref(guid: str) -> ConnectorRef:
        spec = topo.connector_by_guid(guid)
        return ConnectorRef(guid, spec.name if spec else None)

    def group(guid: str) -> str:
        spec = topo.routing_group_by_guid(guid)
        return spec.name if spec else guid

    space = None
    if answer.space_type:
        space = SpaceRef(answer.space_type, answer.space_address, answer.space_cost or 0, ref(answer.space_connector))
    return Route(
        status=RouteStatus(answer.status),
        connector=ref(answer.connector) if answer.connector else None,
        next_hop=answer.next_hop or None,
        cost=answer.cost,
        path=tuple(group(g) for g in answer.path),
        path_guids=answer.path,
        address_space=space,
    )


def describe(route: Route) -> str:
    """One line a person reads at a glance."""
    if route.status is RouteStatus.ROUTE:
        path = " → ".join(route.path)
        via = f"  via connector {route.connector.label()}" if route.connector else "  (same routing group)"
        hop = f" (next hop {route.next_hop})" if route.next_hop else ""
        space = ""
        if route.address_space:
            sp = route.address_space
            space = f"  address space {sp.type}:{sp.address} on {sp.connector.label()}"
        return f"route  {path}  cost {route.cost}{via}{hop}{space}"
    if route.status is RouteStatus.QUEUED:
        a = route.address_space
        what = f" for {a.type}:{a.address} on {a.connector.label()}" if a else ""
        return f"queued  no available connector{what}; mail waits (no fallback to a less specific space)"
    return "unreachable  no connector or path matches this destination"


@click.command("route")
@click.option("--topology", "topology_file", required=True, type=click.Path(dir_okay=False), help="Topology file.")
@click.option("--from", "from_server", required=True, help="Sending server name.")
@click.option("--to", "to", help="Destination address (user@domain, a domain, X.400 or X.500).")
@click.option("--to-server", "to_server", help="Destination server name.")
@click.option("--to-group", "to_group", help="Destination routing group name.")
@click.option("--sender", help="Sender DN (delivery restrictions).")
@click.option("--size", type=click.IntRange(min=0), help="Message size in bytes.")
@click.option("--priority", type=click.Choice(["high", "normal", "low"]), default="normal", show_default=True)
@click.option("--down", multiple=True, help="A server or connector to treat as unavailable (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--node", metavar="HOST[:PORT]", help="Ask a running node's live table instead of the directory.")
@outside_netns_option
def route_command(
    topology_file: str,
    from_server: str,
    to: str | None,
    to_server: str | None,
    to_group: str | None,
    sender: str | None,
    size: int | None,
    priority: str,
    down: tuple[str, ...],
    as_json: bool,
    node: str | None,
    outside: bool,
) -> None:
    """Compute the route a message from --from would take, given the topology and --down failures."""
    if sum(x is not None for x in (to, to_server, to_group)) != 1:
        fail("give exactly one of --to, --to-server, --to-group")
    topo = load_or_fail(topology_file)
    _check_names(topo, down)
    try:
        topo.server(from_server)
        if to_server is not None:
            topo.server(to_server)
        if to_group is not None:
            topo.routing_group(to_group)
    except KeyError as exc:
        fail(str(exc.args[0]))
    msg = MessageClass(sender=sender, size=size, priority=priority)
    if node is not None:
        if down:
            fail("--down is for what-if queries on the directory; a live node knows what is down")
        from linkstate.cli.ops_cmd import live_route

        live_route(node, topology_file, from_server, {"to": to, "to_server": to_server, "to_group": to_group},
                   msg, as_json, outside)  # fmt: skip
        return
    router = Router(topo)
    try:
        result = router.route(
            build_orginfo(topo, down), from_server, to=to, to_server=to_server, to_group=to_group, msg=msg
        )
    except RoutingError as exc:
        fail(str(exc))
    if as_json:
        print_json(result.to_json())
    else:
        click.echo(describe(result))


def register(cli: click.Group) -> None:
    cli.add_command(route_command)
