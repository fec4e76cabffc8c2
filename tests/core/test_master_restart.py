"""A restarted master rebuilds from "everything unavailable" (issue 10 item 3; seed L6305, R128–R130, G31,
DECISIONS §2): it never announces UP for a connector it has no evidence for, and publishes above every version
it saw. On the failover example (examples/failover.toml)."""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState, ConnectorState, Version
from tests.core.failure_helpers import (
    bridgehead_states,
    committed,
    connector_state,
    events,
    failover,
    started,
    version,
    via,
)

DELAY, SETTLE = 600, 300  # the example's state delay; master_settle defaults to the poll interval
NOT_AVAILABLE, AVAIL = BridgeheadState.CONN_NOT_AVAILABLE, BridgeheadState.CONN_AVAIL


def _hub_branch_down(net: SimNetwork) -> None:
    net.stop("HUB-A")
    net.run_for(DELAY + 10)
    assert committed(net) == [("Hub-Branch", "DOWN")]


def test_a_master_restarted_while_the_bridgehead_is_dead_never_routes_over_it() -> None:
    net = started(failover())
    _hub_branch_down(net)
    old = version(net, "HUB-B")
    net.stop("HUB-M")
    net.run_for(60)
    net.start("HUB-M")
    seen: set[tuple[str | None, int | None]] = set()
    for _ in range(100):  # its first seconds, before anyone attached: it starts from "everything unavailable"
        assert via(net)[0] != "Hub-Branch", net.now
        net.run_for(0.05)
    for _ in range(2 * SETTLE // 10):  # through the settle period and after: every server, every 10 s
        net.run_for(10)
        for server in ("HUB-M", "HUB-B", "BR-1"):
            assert connector_state(net, server, "Hub-Branch") is ConnectorState.DOWN, (net.now, server)
        seen.add(via(net)[:2])
        seen.add(via(net, "HUB-B")[:2])
    assert seen == {("Hub-Branch-Backup", 5)}
    new = version(net, "HUB-M")
    assert new == Version(old.major + 1, 0, 0)  # above everything it saw, at its first publication
    assert [f["reason"] for f in events(net, "master_published", "HUB-M")][-1] == "settle period over"
    assert committed(net) == [("Hub-Branch", "DOWN")]  # nothing committed after the restart: it rebuilt
    assert bridgehead_states(net, "BR-1", "Hub-Branch") == {"HUB-A": NOT_AVAILABLE}
    assert net.converged()


def test_the_restarted_master_holds_the_organizations_copy_of_its_section_until_it_publishes() -> None:
    """Before its first publication its own table carries what its members hold (R129), not the directory's
    defaults: its own routes avoid the dead connector too."""
    net = started(failover())
    _hub_branch_down(net)
    held = version(net, "HUB-B")
    net.stop("HUB-M")
    net.run_for(60)
    net.start("HUB-M")
    net.run_for(5)  # HUB-B attached; the master is not published (HUB-A is missing)
    assert not net.nodes["HUB-M"].view().published
    assert version(net, "HUB-M") == held
    assert via(net) == ("Hub-Branch-Backup", 5, "HUB-B")


def test_a_restarted_master_publishes_early_from_the_members_reports() -> None:
    """Every member attached and every bridgehead reported: the rebuild has nothing to guess, so the master
    publishes at once, with the states its members report (a forced NOT_AVAILABLE is reported again on attach)."""
    net = started(failover())
    connector = net.topology.connector("Hub-Branch").guid
    net.inject("HUB-A", ev.FaultInjected(connector, NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    assert committed(net) == [("Hub-Branch", "DOWN")]
    old = version(net, "HUB-A")
    net.stop("HUB-M")
    net.run_for(60)
    start = net.now
    net.start("HUB-M")
    net.run_for(70)  # the members come back within their reconnect backoff (at most 60 s)
    attached = [t for t, n, d in net.diagnostics if n == "HUB-M" and d.event == "member_attached" and t > start]
    published = [(t, d.fields) for t, n, d in net.diagnostics if n == "HUB-M" and d.event == "master_published"]
    assert len(attached) == 2 and len(published) == 2
    assert 0 < published[-1][0] - max(attached) < 0.1 and published[-1][0] - start < SETTLE
    assert published[-1][1]["reason"] == "every member attached and reported"
    assert version(net, "HUB-M") == Version(old.major + 1, 0, 0)
    assert connector_state(net, "BR-1", "Hub-Branch") is ConnectorState.DOWN
    assert via(net) == ("Hub-Branch-Backup", 5, "HUB-B")


def test_without_any_evidence_nothing_is_up() -> None:
    """A fresh organization whose bridgeheads cannot reach Branch (not started) and have not concluded yet (a high
    failure threshold): at the end of the settle period both connectors to Branch are published DOWN (R130)."""
    net = started(failover(bh_fail_threshold=50), seconds=SETTLE + 10, skip=("BR-1",))
    assert events(net, "master_published", "HUB-M")[0]["reason"] == "settle period over"
    assert connector_state(net, "HUB-M", "Hub-Branch") is ConnectorState.DOWN
    assert connector_state(net, "HUB-M", "Hub-Branch-Backup") is ConnectorState.DOWN
    assert bridgehead_states(net, "HUB-B", "Hub-Branch") == {"HUB-A": NOT_AVAILABLE}
    assert connector_state(net, "HUB-M", "Hub-Internet") is ConnectorState.UP  # never down (R50)
    assert bridgehead_states(net, "HUB-M", "Hub-Internet") == {"HUB-A": AVAIL, "HUB-B": AVAIL}  # live: evidence


def test_a_live_bridgehead_not_heard_from_keeps_the_previous_publication() -> None:
    """The organization's copy from before the restart is the evidence for a live bridgehead that has not concluded
    yet: publishing it changes no route. HUB-A and the master restart while Branch is unreachable."""
    net = started(failover(bh_fail_threshold=50))
    assert connector_state(net, "HUB-B", "Hub-Branch") is ConnectorState.UP
    net.stop("BR-1")
    net.stop("HUB-A")
    net.stop("HUB-M")
    net.run_for(60)
    net.start("HUB-A")
    net.start("HUB-M")
    net.run_for(SETTLE + 10)
    assert events(net, "master_published", "HUB-M")[-1]["reason"] == "settle period over"
    assert connector_state(net, "HUB-M", "Hub-Branch") is ConnectorState.UP
    assert bridgehead_states(net, "HUB-M", "Hub-Branch") == {"HUB-A": AVAIL}
