"""Connectors that are never published DOWN (issue 10 item 7; R48, R50, R121, G40, G42; fixture F8).

DNS-routed SMTP, legacy (EDK / a 5.5 bridgehead) and "any local server" connectors keep STATE UP whatever their
bridgeheads do, their bridgehead states still published; a pinned connector (no alternate path) publishes nothing.
"""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.core.topology import parse_topology
from proto.model import BridgeheadState, ConnectorState
from tests.core.failure_helpers import (
    FAILOVER,
    bridgehead_states,
    committed,
    connector_state,
    events,
    failover,
    started,
    version,
    via,
)
from tests.core.topology_helpers import EXAMPLES

DELAY = 600
NOT_AVAILABLE, AVAIL = BridgeheadState.CONN_NOT_AVAILABLE, BridgeheadState.CONN_AVAIL


def test_a_dns_routed_connector_stays_up_when_all_its_bridgeheads_are_gone() -> None:
    net = started(failover())
    assert via(net, to="user@example.org") == ("Hub-Internet", 1, "HUB-B")  # one of the two, pseudo-randomly (R52)
    net.stop("HUB-A")
    net.stop("HUB-B")
    net.run_for(DELAY + 10)
    assert sorted(committed(net)) == [("Hub-Branch", "DOWN"), ("Hub-Branch-Backup", "DOWN")]
    assert connector_state(net, "HUB-M", "Hub-Internet") is ConnectorState.UP
    assert bridgehead_states(net, "HUB-M", "Hub-Internet") == {"HUB-A": NOT_AVAILABLE, "HUB-B": NOT_AVAILABLE}
    r = via(net, to="user@example.org")
    assert r[:2] == ("Hub-Internet", 1)  # still a route: mail queues at the bridgehead, never rerouted (R50)


def test_a_legacy_connector_is_never_marked_down() -> None:
    preferred = 'cost = 1\nsource_bridgeheads = ["HUB-A"]'
    text = FAILOVER.read_text().replace(preferred, "legacy = true\n" + preferred)
    net = started(parse_topology(text, "legacy.toml"))
    net.stop("HUB-A")
    net.run_for(DELAY + 10)
    assert committed(net) == []
    assert connector_state(net, "BR-1", "Hub-Branch") is ConnectorState.UP
    assert bridgehead_states(net, "BR-1", "Hub-Branch") == {"HUB-A": NOT_AVAILABLE}
    assert via(net) == ("Hub-Branch", 1, "HUB-A")  # EDK: routing does not look at its state (R50)


def hub_spoke() -> object:
    return parse_topology((EXAMPLES / "hub-spoke.toml").read_text(), "hub-spoke.toml")


def test_a_pinned_connector_publishes_nothing_when_its_bridgehead_reports_down() -> None:
    """F8 at the master: Spoke-A's only connector to the hub fails; no STATE change leaves the group."""
    net = started(hub_spoke())  # type: ignore[arg-type]
    spoke = net.topology.connector("SpokeA-Hub").guid
    before = version(net, "SPA-1", "Spoke-A")
    digests = net.digests()
    net.inject("SPA-1", ev.FaultInjected(spoke, NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    assert version(net, "SPA-1", "Spoke-A") == before and net.digests() == digests
    assert committed(net) == [] and events(net, "bridgehead_state_committed") == []
    assert {f["connector"] for f in events(net, "state_change_pinned", "SPA-1")} == {"SpokeA-Hub"}
    assert net.nodes["SPA-1"].view().table_changes.get("minor", 0) == 0


def test_a_pinned_connector_publishes_nothing_when_its_bridgehead_dies() -> None:
    """Hub-SpokeB's (and Hub-SpokeC's) source bridgehead HUB-2, a member of the hub, dies: both are pinned, so
    nothing about them is published; only the DNS-routed Hub-Internet's bridgehead state is (connector UP)."""
    net = started(hub_spoke())  # type: ignore[arg-type]
    before = version(net, "HUB-1", "Hub")
    net.stop("HUB-2")
    net.run_for(DELAY + 10)
    after = version(net, "HUB-1", "Hub")
    assert (after.major, after.minor, after.user) == (before.major, before.minor + 1, 0)
    assert committed(net) == []
    bridgeheads = [(f["connector"], f["bridgehead"], f["state"]) for f in events(net, "bridgehead_state_committed")]
    assert bridgeheads == [("Hub-Internet", "HUB-2", "CONN_NOT_AVAILABLE")]
    assert connector_state(net, "HUB-1", "Hub-SpokeB") is ConnectorState.UP
    assert bridgehead_states(net, "HUB-1", "Hub-SpokeB") == {"HUB-2": AVAIL}


def test_an_any_local_server_connector_stays_up() -> None:
    """SpokeC-Hub names no source bridgehead (R48): whatever Spoke-C's master observes, it stays UP."""
    net = started(hub_spoke())  # type: ignore[arg-type]
    connector = net.topology.connector("SpokeC-Hub").guid
    net.inject("SPC-1", ev.FaultInjected(connector, NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    assert committed(net) == []
    assert connector_state(net, "HUB-1", "SpokeC-Hub") is ConnectorState.UP
