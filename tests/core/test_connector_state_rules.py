"""The master's connector-state rules (docs/PROTOCOL.md §4, "Connector state"; linkstate.core.connstate) on the
simulated network, where earlier tests left a rule's edge unchecked: the settings the windows take (state delay,
the E2K batch interval and its epoch), the first second after a start, the exact end of a changed smart host's
grace, directory reloads that change nothing, a connector gaining an alternate path, the `seed` leaf rule, and a
master restarted while a bridgehead is dead.
"""

from __future__ import annotations

import pytest

from linkstate.core import events as ev
from linkstate.core.topology import Topology, parse_topology
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState
from tests.core.failure_helpers import FAILOVER, bridgehead_states, committed, events, failover, started, via
from tests.core.test_address_space_state import CORP, GREETING, PRIMARY
from tests.core.test_never_down import hub_spoke
from tests.core.topology_helpers import EXAMPLES

DELAY = 600
NOT_AVAILABLE, AVAIL = BridgeheadState.CONN_NOT_AVAILABLE, BridgeheadState.CONN_AVAIL


def commit_times(net: SimNetwork, event: str = "connector_state_committed") -> list[tuple[float, str, str]]:
    return [(t, d.fields["connector"], d.fields["state"]) for t, _, d in net.diagnostics if d.event == event]


def windows(net: SimNetwork) -> list[tuple[float, str, str, float]]:
    """Every oscillation window opened: (when, connector, bridgehead or "", its end)."""
    return [(t, d.fields["connector"], d.fields["bridgehead"], d.fields["window_end"].t)  # type: ignore[attr-defined]
            for t, _, d in net.diagnostics if d.event == "oscillation_window_opened"]  # fmt: skip


def test_the_master_holds_a_change_for_the_configured_state_delay() -> None:
    net = started(parse_topology(FAILOVER.read_text().replace("state_delay = 600", "state_delay = 120"), "f.toml"))
    net.stop("HUB-A")
    gone = net.now
    net.run_for(200)
    assert [(round(t - gone, 2), c, s) for t, c, s in commit_times(net)] == [(120.0, "Hub-Branch", "DOWN")]


def test_e2k_batches_fall_every_poll_interval_from_the_masters_start() -> None:
    """compat_e2k (G65): no windows; changes are applied at batch boundaries, multiples of the poll interval
    counted from when the master started (here 100.5 s, poll interval 60 s: 160.5, 220.5, ...)."""
    text = FAILOVER.read_text().replace("poll_interval = 300", "poll_interval = 60")
    net = SimNetwork(parse_topology(text.replace("[settings]\n", "[settings]\ncompat_e2k = true\n"), "f.toml"))
    for name in ("HUB-A", "HUB-B", "BR-1"):
        net.start(name)
    net.run_until(100.5)
    net.start("HUB-M")
    net.run_until(190)
    assert events(net, "master_published", "HUB-M")
    net.stop("HUB-A")
    net.run_until(400)
    assert [c for c in commit_times(net) if c[1] == "Hub-Branch"] == [(220.5, "Hub-Branch", "DOWN")]
    assert windows(net) == []


def hub_a_dead() -> SimNetwork:
    """The failover example after HUB-A died and the state delay passed: Hub-Branch committed DOWN."""
    net = started(failover())
    net.stop("HUB-A")
    net.run_for(DELAY + 10)
    return net


def test_a_bridgehead_back_is_committed_once_per_change() -> None:
    net = hub_a_dead()
    net.start("HUB-A")
    net.run_for(5)
    states = [(c, s) for _, c, s in commit_times(net, "bridgehead_state_committed")]
    assert states == [
        ("Hub-Branch", "CONN_NOT_AVAILABLE"),
        ("Hub-Internet", "CONN_NOT_AVAILABLE"),
        ("Hub-Internet", "CONN_AVAIL"),  # at the attach: nothing to probe, so live is available
        ("Hub-Branch", "CONN_AVAIL"),  # at its first report; never "still unavailable" in between
    ]


def test_a_failure_in_the_first_second_is_held_like_any_other() -> None:
    net = SimNetwork(failover())
    net.start_all()
    net.run_until(0.5)
    assert events(net, "master_published", "HUB-M")  # everyone attached and reported: published early
    net.inject("HUB-A", ev.FaultInjected(net.topology.connector("Hub-Branch").guid, NOT_AVAILABLE))
    net.run_until(0.5 + DELAY + 1)
    reported = 0.501  # HUB-A's STATE reaches the master one latency later
    assert [(round(t, 3), c, b, round(e, 3)) for t, c, b, e in windows(net)] == [
        (reported, "Hub-Branch", "HUB-A", reported + DELAY),
        (reported, "Hub-Branch", "", reported + DELAY),
    ]
    assert [d.fields["state"] for _, _, d in net.diagnostics if d.event == "oscillation_window_opened"] == ["DOWN"] * 2
    assert [(round(t, 3), c, s) for t, c, s in commit_times(net)] == [(reported + DELAY, "Hub-Branch", "DOWN")]
    assert bridgehead_states(net, "BR-1", "Hub-Branch") == {"HUB-A": NOT_AVAILABLE}


def test_a_changed_smart_host_is_held_up_for_exactly_one_state_delay() -> None:
    """CORP-M, the master, is Primary's source bridgehead: its reports reach its own master at once, so a failure
    reported exactly one state delay after the smart host changed opens its windows then (the grace is over)."""
    text = CORP.replace('source_bridgeheads = ["CORP-A"]\nsmart_host = "[127.0.0.1]:2501"',
                        'source_bridgeheads = ["CORP-M"]\nsmart_host = "[127.0.0.1]:2501"')  # fmt: skip
    net = SimNetwork(parse_topology(text, "corp.toml"))
    net.external.update({PRIMARY: GREETING, "127.0.0.1:2503": GREETING, "mta.partner.example:102": b""})
    net.start_all()
    net.run_for(30)
    moved = parse_topology(text.replace("[127.0.0.1]:2501", "[127.0.0.1]:2503"), "corp.toml")
    changed = net.now
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(moved))
    primary = moved.connector("Primary").guid
    net.run_until(changed + DELAY - 1)
    net.inject("CORP-M", ev.FaultInjected(primary, NOT_AVAILABLE))  # inside the grace: held UP
    assert windows(net) == []
    net.inject("CORP-M", ev.FaultInjected(primary, None))
    net.run_until(changed + DELAY)
    net.inject("CORP-M", ev.FaultInjected(primary, NOT_AVAILABLE))
    end = changed + DELAY
    assert windows(net) == [(end, "Primary", "CORP-M", end + DELAY), (end, "Primary", "", end + DELAY)]


EXTRA = """
[[connectors]]
name = "Extra"
type = "smtp"
routing_group = "Corp"
cost = 1
source_bridgeheads = ["CORP-A"]
smart_host = "[127.0.0.1]:2504"
address_spaces = [{ type = "SMTP", address = "extra.example", cost = 1 }]
"""


def test_reloads_that_keep_a_smart_host_and_new_connectors_get_no_grace() -> None:
    """Only a smart host the directory *changed* is held up for a state delay (seed L6457): reading the same
    directory again, twice, changes no smart host, and a connector added by a reload has none to change. Their
    failures are held by the ordinary window only (Extra's smart host refuses from the start)."""
    net = SimNetwork(parse_topology(CORP, "corp.toml"))
    net.external.update({PRIMARY: GREETING, "127.0.0.1:2502": GREETING, "mta.partner.example:102": b""})
    net.start_all()
    net.run_for(30)
    reloaded = net.now
    for _ in range(2):
        again = parse_topology(CORP + EXTRA, "corp.toml")
        for name in net.nodes:
            net.inject(name, ev.TopologyChanged(again))
        net.run_for(5)
    del net.external[PRIMARY]
    net.run_until(reloaded + 60 + 10 + DELAY)  # Primary's next probe fails within a probe interval
    assert sorted((c, s) for _, c, s in commit_times(net)) == [("Extra", "DOWN"), ("Primary", "DOWN")]


SPOKE_A_HUB_2 = """
[[connectors]]
name = "SpokeA-Hub-2"
routing_group = "Spoke-A"
connected_routing_group = "Hub"
cost = 20
source_bridgeheads = ["SPA-1"]
remote_bridgeheads = ["HUB-2"]
"""


def test_a_connector_that_gains_an_alternate_path_is_no_longer_pinned() -> None:
    net = started(hub_spoke())  # type: ignore[arg-type]
    wider = parse_topology((EXAMPLES / "hub-spoke.toml").read_text() + SPOKE_A_HUB_2, "hub-spoke.toml")
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(wider))
    net.run_for(30)
    net.inject("SPA-1", ev.FaultInjected(wider.connector("SpokeA-Hub").guid, NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    assert [f for f in events(net, "state_change_pinned") if f["state"] != "CONN_AVAIL"] == []
    assert [(c, s) for _, c, s in commit_times(net)] == [("SpokeA-Hub", "DOWN")]


CHAIN = """
# Other <-> Hub <-> Mid <-> Edge: Hub-Mid is the only way from Hub to Mid, but neither end is a leaf group
[organization]
name = "Chain"
secret = "chain-secret"

[settings]
leaf_rule = "{rule}"

[[routing_groups]]
name = "Hub"
master = "HUB-1"
[[routing_groups]]
name = "Mid"
master = "MID-1"
[[routing_groups]]
name = "Edge"
master = "EDGE-1"
[[routing_groups]]
name = "Other"
master = "OTH-1"

[[servers]]
name = "HUB-1"
routing_group = "Hub"
[[servers]]
name = "HUB-2"
routing_group = "Hub"
[[servers]]
name = "MID-1"
routing_group = "Mid"
[[servers]]
name = "EDGE-1"
routing_group = "Edge"
[[servers]]
name = "OTH-1"
routing_group = "Other"
"""


def chain(rule: str) -> Topology:
    links = [("Hub", "Mid", "HUB-2", "MID-1"), ("Mid", "Hub", "MID-1", "HUB-2"), ("Mid", "Edge", "MID-1", "EDGE-1"),
             ("Edge", "Mid", "EDGE-1", "MID-1"), ("Hub", "Other", "HUB-1", "OTH-1"),
             ("Other", "Hub", "OTH-1", "HUB-1")]  # fmt: skip
    text = CHAIN.format(rule=rule) + "".join(
        f'\n[[connectors]]\nname = "{a}-{b}"\nrouting_group = "{a}"\nconnected_routing_group = "{b}"\ncost = 1\n'
        f'source_bridgeheads = ["{src}"]\nremote_bridgeheads = ["{dst}"]\n'
        for a, b, src, dst in links
    )
    return parse_topology(text, "chain.toml")


@pytest.mark.parametrize(("rule", "pinned"), [("general", True), ("seed", False)])
def test_the_seed_leaf_rule_pins_only_the_connectors_of_leaf_groups(rule: str, pinned: bool) -> None:
    """R28, G42: with `leaf_rule = "seed"` only a connector to or from a leaf group is pinned; Hub-Mid joins two
    groups that are not leaves, so its failure is published (with the general rule it is pinned)."""
    net = started(chain(rule))
    net.inject("HUB-2", ev.FaultInjected(net.topology.connector("Hub-Mid").guid, NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    held = {f["connector"] for f in events(net, "state_change_pinned", "HUB-1") if f["state"] == "CONN_NOT_AVAILABLE"}
    assert (held, committed(net)) == (({"Hub-Mid"}, []) if pinned else (set(), [("Hub-Mid", "DOWN")]))


def test_a_master_restarted_while_a_bridgehead_is_dead_damps_nothing_before_it_publishes_then_takes_it_back() -> None:
    net = hub_a_dead()
    net.stop("HUB-M")
    net.run_for(60)
    restarted = net.now
    net.start("HUB-M")
    net.run_for(400)  # through its settle period: HUB-A never attached, so it publishes when that ends
    published = next(t for t, n, d in net.diagnostics if n == "HUB-M" and d.event == "master_published")
    assert [w for w in windows(net) if restarted <= w[0] <= published] == []  # nothing before the rebuild
    assert via(net) == ("Hub-Branch-Backup", 5, "HUB-B")
    net.start("HUB-A")
    net.run_for(5)  # it attaches and reports: UP at once, although this master never saw it UP
    assert committed(net)[-1] == ("Hub-Branch", "UP")
    assert via(net) == ("Hub-Branch", 1, "HUB-A")


def without(text: str, connector: str) -> str:
    """A topology file's text without one of its connectors."""
    head, *blocks = text.split("[[connectors]]\n")
    kept = [b for b in blocks if not b.startswith(f'name = "{connector}"\n')]
    assert len(kept) == len(blocks) - 1
    return "[[connectors]]\n".join([head, *kept])


def test_a_connector_removed_while_its_window_is_open_ends_it_quietly() -> None:
    net = started(failover())
    hub_branch = net.topology.connector("Hub-Branch").guid
    net.inject("HUB-A", ev.FaultInjected(hub_branch, NOT_AVAILABLE))
    net.run_for(10)
    net.inject("HUB-A", ev.FaultInjected(hub_branch, None))  # back: two changes, the window will be suppressed
    net.run_for(10)
    gone = parse_topology(without(FAILOVER.read_text(), "Hub-Branch"), "failover.toml")
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(gone))
    net.run_for(DELAY)
    assert committed(net) == [] and net.nodes["HUB-M"].view().is_master
    assert via(net)[:2] == ("Hub-Branch-Backup", 5)
    assert net.converged()
