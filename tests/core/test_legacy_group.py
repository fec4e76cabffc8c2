"""Fixture F16: a legacy (Exchange 5.5) routing group, version 0 (R113, R136, G63).

Its servers do not run link state (they are not started): its section stays as the directory describes it,
version 0.0.0, everywhere, and never changes; its connectors (EDK, or with a 5.5 bridgehead) are never marked
down (R50), so routes to it keep working although nothing there answers a probe.
"""

from __future__ import annotations

from linkstate.core.topology import Topology, parse_topology
from proto.model import ConnectorState, Version
from tests.core.failure_helpers import committed, connector_state, events, started, version, via
from tests.core.topology_helpers import EXAMPLES

LEGACY = """
[[routing_groups]]
name = "Site55"
master = "EX55-1"

[[servers]]
name = "EX55-1"
routing_group = "Site55"
address = "127.0.9.1"
legacy = true

[[connectors]]
name = "Seattle-Site55"
type = "routing_group"
routing_group = "Seattle"
connected_routing_group = "Site55"
cost = 5
source_bridgeheads = ["SEA-BH1"]
remote_bridgeheads = ["EX55-1"]

[[connectors]]
name = "Site55-Seattle"
type = "routing_group"
routing_group = "Site55"
connected_routing_group = "Seattle"
cost = 5
source_bridgeheads = ["EX55-1"]
remote_bridgeheads = ["SEA-BH1"]
"""


def seattle_with_a_legacy_site() -> Topology:
    text = (EXAMPLES / "seattle.toml").read_text()
    head, connectors = text.split("[[connectors]]", 1)
    return parse_topology(head + LEGACY + "\n[[connectors]]" + connectors, "legacy.toml")


def test_a_legacy_group_stays_at_version_zero_and_its_connectors_are_never_down() -> None:
    net = started(seattle_with_a_legacy_site(), seconds=3600, skip=("EX55-1",))
    for server in net.nodes:
        assert version(net, server, "Site55") == Version(0, 0, 0), server
    for server in ("SEA-S2", "BRU-S2", "TOK-BH1"):
        assert connector_state(net, server, "Seattle-Site55") is ConnectorState.UP
        assert connector_state(net, server, "Site55-Seattle") is ConnectorState.UP
    section = net.nodes["LON-S2"].lsdb.section(net.topology.routing_group("Seattle").guid)
    assert section is not None and {c.type for c in section.connectors if c.guid == net.topology.connector(
        "Seattle-Site55").guid} == {"EDK"}
    assert committed(net) == []  # SEA-BH1's probes of EX55-1 fail all along, and change nothing
    assert events(net, "bridgehead_session_failed", "SEA-BH1")
    assert via(net, "SEA-S2", to_group="Site55") == ("Seattle-Site55", 5, "SEA-BH1")
    assert via(net, "BRU-S2", to_group="Site55")[1] == 25  # Brussels -> London -> Seattle -> Site55
    assert net.converged()
