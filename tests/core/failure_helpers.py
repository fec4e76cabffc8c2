"""Test support for the failure-handling tests (issue 10): the failover example on the simulated network, and
what the tests read from it (routes from a node's own table, committed states, versions, published states).

May import: anything (tests).
"""

from __future__ import annotations

from linkstate.core.routing import Route, Router
from linkstate.core.topology import Topology, parse_topology
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState, ConnectorState, RoutingGroup, Version
from tests.core.topology_helpers import EXAMPLES

FAILOVER = EXAMPLES / "failover.toml"


def failover(extra: str = "", **settings: object) -> Topology:
    """The failover example (examples/failover.toml), with `settings` set and `extra` TOML appended."""
    text = FAILOVER.read_text()
    for key, value in settings.items():
        shown = str(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"')
        text = text.replace("[settings]\n", f"[settings]\n{key} = {shown}\n")
    return parse_topology(text + extra, str(FAILOVER))


def started(topo: Topology, seconds: float = 30, skip: tuple[str, ...] = ()) -> SimNetwork:
    net = SimNetwork(topo)
    for server in topo.servers:
        if server.name not in skip:
            net.start(server.name)
    net.run_for(seconds)
    return net


def route(net: SimNetwork, server: str = "HUB-M", **dest: str) -> Route:
    """Where `server` sends, from its own live table (to the Branch group unless told otherwise)."""
    dest = dest or {"to_group": "Branch"}
    return Router(net.topology).route(net.nodes[server].lsdb, server, **dest)  # type: ignore[arg-type]


def via(net: SimNetwork, server: str = "HUB-M", **dest: str) -> tuple[str | None, int | None, str | None]:
    """(connector name, cost, next hop) of `route`."""
    r = route(net, server, **dest)
    return (r.connector.name if r.connector else None, r.cost, r.next_hop)


def committed(net: SimNetwork, server: str | None = None) -> list[tuple[str, str]]:
    """Every connector_state_committed (connector, state), in order (of one master when `server` is given)."""
    return [
        (d.fields["connector"], d.fields["state"])
        for _, n, d in net.diagnostics
        if d.event == "connector_state_committed" and (server is None or n == server)
    ]


def events(net: SimNetwork, name: str, server: str | None = None) -> list[dict[str, object]]:
    return [dict(d.fields) for _, n, d in net.diagnostics if d.event == name and (server is None or n == server)]


def section(net: SimNetwork, holder: str, group: str) -> RoutingGroup:
    found = net.nodes[holder].lsdb.section(net.topology.routing_group(group).guid)
    assert found is not None
    return found


def version(net: SimNetwork, holder: str, group: str = "Hub") -> Version:
    return section(net, holder, group).version


def connector_state(net: SimNetwork, holder: str, connector: str) -> ConnectorState:
    spec = net.topology.connector(connector)
    return next(c.state for c in section(net, holder, spec.routing_group).connectors if c.guid == spec.guid)


def bridgehead_states(net: SimNetwork, holder: str, connector: str) -> dict[str, BridgeheadState]:
    """The published state of each source bridgehead of `connector`, by server name."""
    spec = net.topology.connector(connector)
    published = next(c for c in section(net, holder, spec.routing_group).connectors if c.guid == spec.guid)
    names = {net.topology.server(n).vs_guid: n for n in spec.source_bridgeheads}
    return {names[b.guid]: b.state for b in published.bridgeheads}
