"""Competing masters (issue 10 item 2; fixture F12; seed L6384, R80, R81, R132, G28).

"(N/2)+1 servers in the routing group must agree and acknowledge the master." A master without quorum never
publishes above another epoch's version (so two masters never outbid each other), and once it has lacked quorum
for the grace period (`master_settle`) and a probe finds a master of its group with quorum, it relinquishes
(event 958) and follows it. A master that merely lacks quorum, with no rival (a 2-server group whose member is
down), keeps publishing (G28: "it keeps serving but reports quorum=false"; R128, R129).
"""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.core.role import RoleName
from linkstate.core.topology import Topology, parse_topology
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState, ConnectorState, Version
from tests.core.failure_helpers import FAILOVER, committed, connector_state, events, failover, started, version, via
from tests.core.group_fixtures import ONE_GROUP, one_group
from tests.core.topology_helpers import EXAMPLES

HOUR = 3600


def stale_group(master: str = "RED-2") -> Topology:
    """The one-group directory as an old copy that names `master` master of Redmond."""
    return parse_topology(ONE_GROUP.format(cost=1).replace('master = "RED-1"', f'master = "{master}"'), "stale.toml")


def majors(net: SimNetwork, group: str) -> set[int]:
    guid = net.topology.routing_group(group).guid
    return {v.major for core in net.nodes.values() if (v := core.lsdb.version_of(guid)) is not None}


def test_a_stale_master_in_one_group_is_outvoted_and_follows_the_master_with_quorum() -> None:
    net = SimNetwork(one_group())
    net.start("RED-1")
    net.start("RED-3")
    net.start("RED-2", stale_group())  # its copy of the directory names itself master
    net.run_for(5)
    assert net.nodes["RED-2"].view().is_master and not net.nodes["RED-2"].view().quorum
    assert net.nodes["RED-1"].view().quorum  # RED-1 and RED-3: 2 of 3
    net.run_for(HOUR)
    stale = net.nodes["RED-2"].view()
    assert (stale.role, stale.master, stale.attached) == (RoleName.MEMBER, "RED-1", True)
    (relinquished,) = events(net, "master_relinquished", "RED-2")
    assert relinquished["new_master"] == "RED-1"
    assert [d.event_id for _, n, d in net.diagnostics if n == "RED-2" and d.event == "master_relinquished"] == [958]
    outvoted_at = next(t for t, n, d in net.diagnostics if n == "RED-2" and d.event == "master_relinquished")
    assert 60 <= outvoted_at < 61  # the grace period: master_settle (60 s in this fixture)
    master = net.nodes["RED-1"].view()
    assert set(master.attached_members) == {"RED-2", "RED-3"} and master.quorum
    assert majors(net, "Redmond") == {1} and net.converged()


def test_two_masters_with_a_stale_directory_do_not_make_versions_climb() -> None:
    """F12 across groups: HUB-B's old directory names it master of Hub; it bridges to Branch, so both masters'
    sections meet in the organization. Before, the group's major version climbed from 1 to 110 in an hour."""
    stale = parse_topology(FAILOVER.read_text().replace('master = "HUB-M"', 'master = "HUB-B"'), "stale.toml")
    net = SimNetwork(failover())
    for name in ("HUB-M", "HUB-A", "BR-1"):
        net.start(name)
    net.start("HUB-B", stale)
    seen: set[int] = set()
    for _ in range(29):  # the grace period (master_settle, 300 s): both are masters all along
        net.run_for(10)
        seen |= majors(net, "Hub")
    assert max(seen) <= 2  # at most one publication above the other's (by HUB-M, which has quorum), then nothing
    assert net.nodes["HUB-B"].view().is_master
    for _ in range(55):
        net.run_for(60)
        seen |= majors(net, "Hub")
    assert max(seen) <= 2
    assert net.nodes["HUB-B"].view().master == "HUB-M" and net.nodes["HUB-B"].view().attached
    assert [f["new_master"] for f in events(net, "master_relinquished", "HUB-B")] == ["HUB-M"]
    assert net.converged()
    assert via(net) == ("Hub-Branch", 1, "HUB-A") and via(net, "BR-1", to_group="Hub")[:2] == ("Branch-Hub", 1)


def test_the_master_with_quorum_wins_even_against_the_current_directory() -> None:
    """Two of three servers hold the old copy (RED-2 master): RED-2 has quorum, RED-1 does not; RED-1 is outvoted.
    The seed's rule is the acknowledgement of (N/2)+1 servers, not whose copy of the directory is newer."""
    net = SimNetwork(one_group())
    net.start("RED-1")
    net.start("RED-2", stale_group())
    net.start("RED-3", stale_group())
    net.run_for(HOUR)
    assert net.nodes["RED-2"].view().is_master and net.nodes["RED-2"].view().quorum
    assert net.nodes["RED-1"].view().master == "RED-2" and net.nodes["RED-1"].view().attached
    assert [f["new_master"] for f in events(net, "master_relinquished", "RED-1")] == ["RED-2"]
    assert events(net, "master_relinquished", "RED-2") == [] and net.converged()


def test_a_relinquished_master_follows_until_its_directory_names_another_master() -> None:
    net = SimNetwork(one_group())
    net.start("RED-1")
    net.start("RED-3")
    net.start("RED-2", stale_group())
    net.run_for(120)
    assert net.nodes["RED-2"].view().master == "RED-1"
    net.inject("RED-2", ev.TopologyChanged(stale_group()))  # a reload of the same old copy changes nothing
    net.run_for(5)
    assert net.nodes["RED-2"].view().master == "RED-1" and not net.nodes["RED-2"].view().is_master
    net.inject("RED-2", ev.TopologyChanged(one_group()))  # its directory now names RED-1: nothing to switch
    net.run_for(5)
    assert net.nodes["RED-2"].view().master == "RED-1" and net.nodes["RED-2"].view().attached


def seattle() -> Topology:
    return parse_topology((EXAMPLES / "seattle.toml").read_text(), "seattle.toml")


def test_a_master_alone_in_a_two_server_group_keeps_publishing() -> None:
    """Seattle has two servers: with SEA-S2 down SEA-BH1 lacks quorum (1 of 2), but nobody else claims the group:
    its state changes are still published and reach the organization (R128, R129)."""
    net = started(seattle())
    net.stop("SEA-S2")
    net.run_for(400)  # past the grace period: it probed SEA-S2 and found nobody
    assert not net.nodes["SEA-BH1"].view().quorum and net.nodes["SEA-BH1"].view().is_master
    connector = net.topology.connector("Seattle-Tokyo").guid
    net.inject("SEA-BH1", ev.FaultInjected(connector, BridgeheadState.CONN_NOT_AVAILABLE))
    net.run_for(700)
    assert committed(net) == [("Seattle-Tokyo", "DOWN")]
    assert connector_state(net, "BRU-S2", "Seattle-Tokyo") is ConnectorState.DOWN
    assert events(net, "master_relinquished") == []


def test_a_restarted_master_without_quorum_does_not_publish_above_the_organization_until_it_has_it() -> None:
    """SEA-BH1 restarts while SEA-S2 is down: it publishes (its own table needs a section) but not above the
    version the organization holds; when SEA-S2 attaches it has quorum and publishes above everything."""
    net = started(seattle())
    held = version(net, "BRU-S2", "Seattle")
    net.stop("SEA-S2")
    net.stop("SEA-BH1")
    net.run_for(30)
    net.start("SEA-BH1")
    net.run_for(400)
    assert version(net, "BRU-S2", "Seattle") == held  # the organization keeps what it had
    assert version(net, "SEA-BH1", "Seattle").major <= held.major
    net.start("SEA-S2")
    net.run_for(120)
    assert version(net, "BRU-S2", "Seattle") == Version(held.major + 1, 0, 0) and net.converged()


STALE_ALONE = """
[organization]
name = "Example"
admin_group = "First Administrative Group"
domain = "example.com"
secret = "failover-example-secret-change-me"

[[routing_groups]]
name = "Hub"
master = "HUB-B"

[[routing_groups]]
name = "Branch"
master = "BR-1"

[[servers]]
name = "HUB-B"
routing_group = "Hub"
address = "127.0.5.3"

[[servers]]
name = "BR-1"
routing_group = "Branch"
address = "127.0.6.1"

[[connectors]]
name = "Hub-Branch-Backup"
routing_group = "Hub"
connected_routing_group = "Branch"
cost = 5
source_bridgeheads = ["HUB-B"]
remote_bridgeheads = ["BR-1"]
"""


def test_two_masters_that_both_have_quorum_do_not_outbid_each_other() -> None:
    """An old copy of the directory in which Hub is HUB-B alone: by its count HUB-B has quorum (1 of 1), as HUB-M
    has by its own (2 of 3). Neither publishes above the other: the organization keeps the higher, HUB-M's, and
    HUB-B says why (master_conflict); versions stay put."""
    stale = parse_topology(STALE_ALONE, "stale-alone.toml")
    net = SimNetwork(failover())
    for name in ("HUB-M", "HUB-A", "BR-1"):
        net.start(name)
    net.start("HUB-B", stale)
    seen: set[int] = set()
    for minute in range(60):
        net.run_for(60)
        seen |= majors(net, "Hub")
        if minute == 29:
            halfway = net.digests()
    assert seen == {1} and net.digests() == halfway  # nothing moves any more
    assert net.nodes["HUB-B"].view().is_master and net.nodes["HUB-M"].view().is_master
    conflicts = {(n, d.fields["other_master"]) for _, n, d in net.diagnostics if d.event == "master_conflict"}
    assert conflicts == {("HUB-M", "HUB-B"), ("HUB-B", net.topology.server("HUB-M").guid)}  # not in HUB-B's copy
