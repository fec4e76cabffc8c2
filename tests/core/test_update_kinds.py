"""Update kinds as the seed names them (issue 10 item 5; seed L8980–L9014, R105, G48, G61).

Major: a connector added, removed or changed, a new master. Minor: a connector's (or bridgehead's) state. User: a
server added to or removed from the group, a member attaching or detaching, a service starting or stopping.
"Reset routes" (4005) only when routes can change: a major or minor version moved, never for a user update.
"""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.core.topology import Topology, parse_topology
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState, Version
from tests.core.failure_helpers import failover, started, version
from tests.core.group_fixtures import ONE_GROUP

RED_4 = '\n[[servers]]\nname = "RED-4"\nrouting_group = "Redmond"\naddress = "127.0.9.4"\n'


def group(extra: str = "", cost: int = 1) -> Topology:
    return parse_topology(ONE_GROUP.format(cost=cost) + extra, "one-group.toml")


def recording(topo: Topology) -> tuple[SimNetwork, list[tuple[str, ev.TableChanged]]]:
    net = SimNetwork(topo)
    changes: list[tuple[str, ev.TableChanged]] = []
    net.on_output = lambda name, out: changes.append((name, out)) if isinstance(out, ev.TableChanged) else None
    net.start_all()
    net.run_for(5)
    changes.clear()
    return net, changes


def reload(net: SimNetwork, topo: Topology) -> None:
    net.topology = topo
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(topo))
    net.run_for(2)


def kinds(changes: list[tuple[str, ev.TableChanged]]) -> set[tuple[str, str, bool]]:
    return {(name, c.kind.value, c.resets_routes) for name, c in changes}


def test_a_server_added_to_the_group_is_a_user_update_without_reset_routes() -> None:
    net, changes = recording(group())
    before = version(net, "RED-1", "Redmond")
    reload(net, group(RED_4))
    assert version(net, "RED-1", "Redmond") == Version(before.major, before.minor, before.user + 1)
    assert kinds(changes) == {("RED-1", "user", False), ("RED-2", "push", False), ("RED-3", "push", False)}
    section = net.nodes["RED-2"].lsdb.section(net.topology.routing_group("Redmond").guid)
    assert section is not None and len(section.members) == 4


def test_a_server_removed_from_the_group_is_a_user_update() -> None:
    net, changes = recording(group(RED_4))
    before = version(net, "RED-1", "Redmond")
    reload(net, group())
    assert version(net, "RED-1", "Redmond") == Version(before.major, before.minor, before.user + 1)
    assert all(not c.resets_routes for _, c in changes)


def test_a_connector_changed_is_a_major_update_that_resets_routes() -> None:
    net, changes = recording(group())
    before = version(net, "RED-1", "Redmond")
    reload(net, group(cost=7))
    assert version(net, "RED-1", "Redmond") == Version(before.major + 1, 0, 0)
    assert kinds(changes) == {("RED-1", "major", True), ("RED-2", "push", True), ("RED-3", "push", True)}


def test_attach_detach_and_service_changes_reset_no_routes() -> None:
    net, changes = recording(group())
    before = version(net, "RED-1", "Redmond")
    net.stop("RED-3")
    net.run_for(2)
    net.inject("RED-2", ev.ServiceStatusChanged("0701000000000100"))
    net.run_for(2)
    net.start("RED-3")
    net.run_for(60)
    after = version(net, "RED-1", "Redmond")
    assert (after.major, after.minor) == (before.major, before.minor) and after.user >= before.user + 3
    steady = [(n, c) for n, c in changes if n != "RED-3"]  # RED-3 restarted: its first push takes it from 0.0.0
    assert kinds(steady) == {("RED-1", "user", False), ("RED-2", "push", False)} and len(steady) == 6


def test_a_committed_state_is_a_minor_update_that_resets_routes_everywhere() -> None:
    net = started(failover())
    changes: list[tuple[str, ev.TableChanged]] = []
    net.on_output = lambda name, out: changes.append((name, out)) if isinstance(out, ev.TableChanged) else None
    connector = net.topology.connector("Hub-Branch").guid
    net.inject("HUB-A", ev.FaultInjected(connector, BridgeheadState.CONN_NOT_AVAILABLE))
    net.run_for(700)
    assert ("HUB-M", "minor", True) in kinds(changes)
    assert ("HUB-B", "push", True) in kinds(changes) and ("BR-1", "merge", True) in kinds(changes)
