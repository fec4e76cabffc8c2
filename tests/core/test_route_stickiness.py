"""Route stickiness lives in the daemon (issue 10 item 8; R52–R55, G44, G50; fixture F6).

Each node keeps one router for its whole life and routes again every question it was asked whenever routes may
have changed: after an equal-cost connector recovers, its traffic does not fail back (R55); a lower-cost one that
recovers wins again (R54). Answered through `NodeCore.route` — what a tool's `ROUTE ASK` gets.
"""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.core.routing import Router
from linkstate.core.topology import parse_topology
from linkstate.sim.network import SimNetwork
from proto import rg691
from tests.core.failure_helpers import FAILOVER, failover, started

DELAY = 600


def ask(net: SimNetwork, server: str = "HUB-M", group: str = "Branch") -> tuple[str | None, int | None]:
    query = rg691.RouteQuery(net.topology.server(server).guid, "GROUP", net.topology.routing_group(group).guid)
    r = net.nodes[server].route(query)
    return (r.connector.name if r.connector else None, r.cost)


def equal_costs() -> SimNetwork:
    """F6: Hub-Branch (HUB-A) and Hub-Branch-Backup (HUB-B) both cost 1."""
    return started(parse_topology(FAILOVER.read_text().replace("cost = 5\n", "cost = 1\n"), "equal.toml"))


SOURCE = {"Hub-Branch": "HUB-A", "Hub-Branch-Backup": "HUB-B"}


def test_after_an_equal_cost_connector_recovers_traffic_does_not_fail_back() -> None:
    net = equal_costs()
    first, cost = ask(net)
    assert cost == 1 and first in SOURCE
    other = next(c for c in SOURCE if c != first)
    net.stop(SOURCE[first])
    net.run_for(DELAY + 10)
    assert ask(net) == (other, 1)  # failed over (R55)
    net.start(SOURCE[first])
    net.run_for(60)  # back and UP at once
    assert ask(net) == (other, 1)  # no failback: the route has the same cost
    fresh = Router(net.topology).route(net.nodes["HUB-M"].lsdb, "HUB-M", to_group="Branch")
    assert fresh.connector is not None and fresh.connector.name == first  # a stateless lookup would fail back


def test_stickiness_follows_table_changes_nobody_asked_about() -> None:
    """The node routes its known questions again at every reset: the failover is remembered even when nobody
    asked while the connector was down."""
    net = equal_costs()
    first, _ = ask(net)
    other = next(c for c in SOURCE if c != first)
    net.stop(SOURCE[first])
    net.run_for(DELAY + 10)  # nobody asks now
    net.start(SOURCE[first])
    net.run_for(60)
    assert ask(net) == (other, 1)


def test_a_lower_cost_connector_that_recovers_wins_again() -> None:
    net = started(failover())
    assert ask(net) == ("Hub-Branch", 1)
    connector = net.topology.connector("Hub-Branch").guid
    from proto.model import BridgeheadState

    net.inject("HUB-A", ev.FaultInjected(connector, BridgeheadState.CONN_NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    assert ask(net) == ("Hub-Branch-Backup", 5)
    net.inject("HUB-A", ev.FaultInjected(connector, None))
    net.run_for(1)
    assert ask(net) == ("Hub-Branch", 1)  # R54


def test_a_question_the_node_cannot_answer_is_unreachable() -> None:
    net = started(failover())
    query = rg691.RouteQuery("f" * 32, "GROUP", net.topology.routing_group("Branch").guid)
    assert net.nodes["HUB-M"].route(query).status.value == "unreachable"
    bad = rg691.RouteQuery(net.topology.server("HUB-M").guid, "ADDRESS", "not an address")
    assert net.nodes["HUB-M"].route(bad).status.value == "unreachable"


def test_the_sticky_choice_survives_a_directory_reload() -> None:
    from proto.model import BridgeheadState

    net = equal_costs()
    first, _ = ask(net)
    other = next(c for c in SOURCE if c != first)
    connector = net.topology.connector(first).guid
    net.inject(SOURCE[first], ev.FaultInjected(connector, BridgeheadState.CONN_NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    assert ask(net) == (other, 1)
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(net.topology))  # the same directory, read again
    net.inject(SOURCE[first], ev.FaultInjected(connector, None))  # back: one minor update, routes reset
    net.run_for(5)
    assert ask(net) == (other, 1)
