"""A source bridgehead that goes away takes its connector down (issue 10 item 1; seed L1828, R46–R49).

The failover example (examples/failover.toml) on the simulated network: Hub's preferred connector to Branch
(cost 1) has HUB-A as its only source bridgehead, the backup (cost 5) has HUB-B. Nothing but HUB-A's process
dying tells the master: no probe of anyone else fails.
"""

from __future__ import annotations

from linkstate.core.topology import parse_topology
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState, ConnectorState, Version
from tests.core.failure_helpers import (
    FAILOVER,
    bridgehead_states,
    committed,
    connector_state,
    failover,
    started,
    version,
    via,
)

DELAY = 600  # the example's state delay
AVAIL, NOT_AVAILABLE = BridgeheadState.CONN_AVAIL, BridgeheadState.CONN_NOT_AVAILABLE


def test_the_preferred_source_bridgehead_dying_moves_routes_to_the_backup_after_the_state_delay() -> None:
    net = started(failover())
    assert via(net) == ("Hub-Branch", 1, "HUB-A")
    before = version(net, "HUB-M")
    net.stop("HUB-A")
    net.run_for(5)
    assert version(net, "HUB-M") == Version(before.major, before.minor, before.user + 1)  # "connected NO": user
    assert bridgehead_states(net, "BR-1", "Hub-Internet") == {"HUB-A": AVAIL, "HUB-B": AVAIL}  # damped too
    assert via(net) == ("Hub-Branch", 1, "HUB-A")  # the state delay holds the change back
    net.run_for(DELAY - 10)
    assert committed(net) == [] and via(net) == ("Hub-Branch", 1, "HUB-A")
    net.run_for(10)
    assert committed(net) == [("Hub-Branch", "DOWN")]
    assert version(net, "HUB-M") == Version(before.major, before.minor + 1, 0)  # one minor update for all of it
    assert bridgehead_states(net, "BR-1", "Hub-Internet") == {"HUB-A": NOT_AVAILABLE, "HUB-B": AVAIL}
    for server in ("HUB-M", "HUB-B", "BR-1"):  # the whole organization routes around it
        assert connector_state(net, server, "Hub-Branch") is ConnectorState.DOWN
        assert bridgehead_states(net, server, "Hub-Branch") == {"HUB-A": NOT_AVAILABLE}
    assert via(net) == ("Hub-Branch-Backup", 5, "HUB-B")
    assert via(net, "HUB-B") == ("Hub-Branch-Backup", 5, "BR-1")  # HUB-B sends itself, to the remote
    assert net.converged()


def test_the_bridgehead_coming_back_is_up_at_once_and_wins_again() -> None:
    net = started(failover())
    net.stop("HUB-A")
    net.run_for(DELAY + 10)
    assert via(net) == ("Hub-Branch-Backup", 5, "HUB-B")
    down = version(net, "HUB-M")
    net.start("HUB-A")
    net.run_for(5)  # it attaches and reports its connector available: an UP commits at once (G41)
    assert committed(net) == [("Hub-Branch", "DOWN"), ("Hub-Branch", "UP")]
    assert bridgehead_states(net, "BR-1", "Hub-Branch") == {"HUB-A": AVAIL}
    assert via(net) == ("Hub-Branch", 1, "HUB-A")  # the lower cost wins back (R54)
    # two minor updates: Hub-Internet's bridgehead HUB-A at the attach (nothing to probe: live is available),
    # Hub-Branch and its bridgehead when HUB-A's first probe reports
    assert version(net, "HUB-M") == Version(down.major, down.minor + 2, 0)
    assert net.converged()


def test_a_bridgehead_back_inside_the_window_changes_no_state() -> None:
    net = started(failover())
    before = version(net, "HUB-M")
    net.stop("HUB-A")
    net.run_for(120)
    net.start("HUB-A")
    net.run_for(DELAY)
    assert committed(net) == []
    assert via(net) == ("Hub-Branch", 1, "HUB-A")
    after = version(net, "HUB-M")
    assert (after.major, after.minor) == (before.major, before.minor)  # only user updates (NO, then YES)
    assert any(d.event == "oscillation_suppressed" for _, _, d in net.diagnostics)


def shared(**settings: object) -> SimNetwork:
    """Hub-Branch with two source bridgeheads, HUB-A and HUB-B (and the backup, as in the example)."""
    text = FAILOVER.read_text().replace(
        'cost = 1\nsource_bridgeheads = ["HUB-A"]', 'cost = 1\nsource_bridgeheads = ["HUB-A", "HUB-B"]'
    )
    return started(parse_topology(text, "shared.toml"))


def test_one_of_two_source_bridgeheads_down_leaves_the_connector_up_through_the_other() -> None:
    """R46: "a connector is always considered available if one bridgehead server is available" (all down, not any)."""
    net = shared()
    assert via(net)[:2] == ("Hub-Branch", 1)
    net.stop("HUB-A")
    net.run_for(DELAY + 10)
    assert committed(net) == []  # the connector never changed state
    assert connector_state(net, "BR-1", "Hub-Branch") is ConnectorState.UP
    assert bridgehead_states(net, "BR-1", "Hub-Branch") == {"HUB-A": NOT_AVAILABLE, "HUB-B": AVAIL}
    assert via(net) == ("Hub-Branch", 1, "HUB-B")  # the survivor is chosen (R52)
    net.stop("HUB-B")
    net.run_for(DELAY + 10)
    assert sorted(committed(net)) == [("Hub-Branch", "DOWN"), ("Hub-Branch-Backup", "DOWN")]  # not DNS (R50)
    assert bridgehead_states(net, "HUB-M", "Hub-Branch") == {"HUB-A": NOT_AVAILABLE, "HUB-B": NOT_AVAILABLE}
    net.run_for(60)  # no Hub server bridges to Branch any more: BR-1's own probe of HUB-M brings the change
    assert net.converged()
    assert via(net)[0] is None  # the backup's only bridgehead is HUB-B too: nothing leaves the hub for Branch


def test_a_detached_bridgehead_forgets_what_it_reported() -> None:
    """A report from before the detach does not count once the server is back: it is live, and until it reports
    again it is taken as available."""
    net = started(failover())
    connector = net.topology.connector("Hub-Branch").guid
    from linkstate.core import events as ev

    net.inject("HUB-A", ev.FaultInjected(connector, NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    assert committed(net) == [("Hub-Branch", "DOWN")]
    net.stop("HUB-A")
    net.run_for(5)
    net.start("HUB-A")  # a fresh process: nothing forced any more
    net.run_for(30)
    assert committed(net) == [("Hub-Branch", "DOWN"), ("Hub-Branch", "UP")]
    assert via(net) == ("Hub-Branch", 1, "HUB-A")


# --- item 6: bridgehead-level churn is damped (seed L6467, L9010) -------------------------------------------


def test_one_bridgehead_of_two_flapping_inside_a_window_publishes_nothing() -> None:
    """Four flaps of HUB-A's state for a connector HUB-B also sources: no minor update, no table change."""
    from linkstate.core import events as ev

    net = shared()
    connector = net.topology.connector("Hub-Branch").guid
    before, digests = version(net, "HUB-M"), net.digests()
    for _ in range(4):  # down/up every 60 s, all inside one 600 s window
        net.inject("HUB-A", ev.FaultInjected(connector, NOT_AVAILABLE))
        net.run_for(60)
        net.inject("HUB-A", ev.FaultInjected(connector, None))
        net.run_for(60)
    net.run_for(DELAY)
    assert version(net, "HUB-M") == before and net.digests() == digests
    assert net.nodes["HUB-M"].view().table_changes.get("minor", 0) == 0
    suppressed = [f for f in _fields(net, "oscillation_suppressed") if f.get("bridgehead") == "HUB-A"]
    assert [(f["connector"], f["changes"]) for f in suppressed] == [("Hub-Branch", 8)]


def test_one_bridgehead_down_for_good_is_one_minor_update_after_the_delay() -> None:
    from linkstate.core import events as ev

    net = shared()
    connector = net.topology.connector("Hub-Branch").guid
    before = version(net, "HUB-M")
    net.inject("HUB-A", ev.FaultInjected(connector, BridgeheadState.CONN_NOT_STARTED))
    net.run_for(DELAY - 5)
    assert version(net, "HUB-M") == before
    net.run_for(10)
    assert version(net, "HUB-M") == Version(before.major, before.minor + 1, 0)
    assert [(f["connector"], f["bridgehead"], f["state"]) for f in _fields(net, "bridgehead_state_committed")] == [
        ("Hub-Branch", "HUB-A", "CONN_NOT_STARTED")
    ]
    assert committed(net) == []  # the connector itself stays UP
    assert bridgehead_states(net, "BR-1", "Hub-Branch") == {"HUB-A": BridgeheadState.CONN_NOT_STARTED, "HUB-B": AVAIL}
    net.inject("HUB-A", ev.FaultInjected(connector, None))
    net.run_for(1)  # back: at once (availability first, G41)
    assert bridgehead_states(net, "HUB-M", "Hub-Branch") == {"HUB-A": AVAIL, "HUB-B": AVAIL}
    assert version(net, "HUB-M") == Version(before.major, before.minor + 2, 0)


def _fields(net: SimNetwork, event: str) -> list[dict[str, object]]:
    return [dict(d.fields) for _, _, d in net.diagnostics if d.event == event]


def test_a_dead_bridgehead_after_an_oscillating_window_opens_the_next_window() -> None:
    """Down, back, down again inside one window: oscillation, the connector stays UP; the bridgehead stays dead
    and sends no report, so the master reports its state again at the window's end: the next window commits it
    (R117, R118: changes in different windows still produce traffic)."""
    net = started(failover())
    start = net.now
    net.stop("HUB-A")
    net.run_for(100)
    net.start("HUB-A")
    net.run_for(100)
    net.stop("HUB-A")
    net.run_for(DELAY - 200 + 10)
    assert committed(net) == []
    assert {f["connector"] for f in _fields(net, "oscillation_suppressed")} == {"Hub-Branch", "Hub-Internet"}
    net.run_for(DELAY - 20)
    assert committed(net) == []
    net.run_for(20)
    commit_at = [t for t, _, d in net.diagnostics if d.event == "connector_state_committed"]
    assert committed(net) == [("Hub-Branch", "DOWN")] and round(commit_at[0] - start) == 2 * DELAY
    assert via(net) == ("Hub-Branch-Backup", 5, "HUB-B")
