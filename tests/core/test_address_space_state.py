"""Address-space connectors have state (issue 10 item 4; seed L6495, L4527; R32, G40; fixture F5).

One group, Corp: two SMTP connectors for `*`, Primary (cost 1, smart host 127.0.0.1:2501, source bridgehead
CORP-A) and Backup (cost 5, smart host 127.0.0.1:2502, CORP-B); an X.400 connector to a partner through a next-hop
MTA (CORP-B); and a DNS-routed SMTP connector for one domain (never down). The smart hosts are the simulated
network's `external` hosts: present and greeting 220, greeting something else, or absent (refused).
"""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.core.topology import Topology, parse_topology
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState, ConnectorState
from tests.core.failure_helpers import bridgehead_states, committed, connector_state, events, via

CORP = """
[organization]
name = "Corp"
domain = "corp.example"
secret = "corp-secret"

[settings]
state_delay = 600

[[routing_groups]]
name = "Corp"
master = "CORP-M"

[[servers]]
name = "CORP-M"
routing_group = "Corp"

[[servers]]
name = "CORP-A"
routing_group = "Corp"

[[servers]]
name = "CORP-B"
routing_group = "Corp"

[[connectors]]
name = "Primary"
type = "smtp"
routing_group = "Corp"
cost = 1
source_bridgeheads = ["CORP-A"]
smart_host = "[127.0.0.1]:2501"
address_spaces = [{ type = "SMTP", address = "*", cost = 1 }]

[[connectors]]
name = "Backup"
type = "smtp"
routing_group = "Corp"
cost = 5
source_bridgeheads = ["CORP-B"]
smart_host = "[127.0.0.1]:2502"
address_spaces = [{ type = "SMTP", address = "*", cost = 5 }]

[[connectors]]
name = "Partner-X400"
type = "x400"
routing_group = "Corp"
cost = 1
source_bridgeheads = ["CORP-B"]
smart_host = "mta.partner.example"
address_spaces = [{ type = "X400", address = "c=US;a=;p=Partner;*", cost = 1 }]

[[connectors]]
name = "Fabrikam-DNS"
type = "smtp"
routing_group = "Corp"
cost = 1
source_bridgeheads = ["CORP-A", "CORP-B"]
dns_routed = true
address_spaces = [{ type = "SMTP", address = "fabrikam.example", cost = 1 }]
"""

PRIMARY, BACKUP, MTA = "127.0.0.1:2501", "127.0.0.1:2502", "mta.partner.example:102"
GREETING = b"220 relay.example ESMTP ready\r\n"
DELAY = 600
AVAIL, NOT_AVAILABLE, NOT_STARTED = (BridgeheadState.CONN_AVAIL, BridgeheadState.CONN_NOT_AVAILABLE,
                                     BridgeheadState.CONN_NOT_STARTED)  # fmt: skip


def corp() -> Topology:
    return parse_topology(CORP, "corp.toml")


def running(**external: bytes) -> SimNetwork:
    net = SimNetwork(corp())
    net.external.update({PRIMARY: GREETING, BACKUP: GREETING, MTA: b""} | external)
    net.start_all()
    net.run_for(30)
    return net


INTERNET = {"to": "someone@contoso.com"}


def test_smart_host_unavailable_moves_mail_to_the_next_connector_and_back() -> None:
    """F5: cost 1 is chosen; its smart host goes away: cost 5 after the state delay; back: cost 1 again (R54)."""
    net = running()
    assert via(net, "CORP-M", **INTERNET) == ("Primary", 1, "CORP-A")
    del net.external[PRIMARY]  # the smart host is gone: connections refused
    net.run_for(300)  # CORP-A's probes fail three times (its probe interval and backoff): reported, window opens
    assert via(net, "CORP-M", **INTERNET) == ("Primary", 1, "CORP-A")
    net.run_for(DELAY)
    assert committed(net) == [("Primary", "DOWN")]
    assert bridgehead_states(net, "CORP-B", "Primary") == {"CORP-A": NOT_AVAILABLE}
    assert via(net, "CORP-M", **INTERNET) == ("Backup", 5, "CORP-B")
    assert via(net, "CORP-A", **INTERNET) == ("Backup", 5, "CORP-B")
    net.external[PRIMARY] = GREETING
    net.run_for(70)  # the next probe succeeds: UP commits at once
    assert committed(net) == [("Primary", "DOWN"), ("Primary", "UP")]
    assert via(net, "CORP-M", **INTERNET) == ("Primary", 1, "CORP-A")
    failed = {f["reason"] for f in events(net, "bridgehead_session_failed", "CORP-A")}
    assert failed == {"connection refused"}  # the simulated network's words for it


def test_a_smart_host_that_does_not_greet_with_220_is_unavailable() -> None:
    """It refuses service from the start: CORP-A reports it before the master's first publication, which
    publishes Primary DOWN (from evidence, R130: no commit needed)."""
    net = running(**{PRIMARY: b"554 5.3.2 relay.example not accepting mail\r\n"})
    assert committed(net) == [] and connector_state(net, "CORP-B", "Primary") is ConnectorState.DOWN
    assert bridgehead_states(net, "CORP-B", "Primary") == {"CORP-A": NOT_AVAILABLE}
    reasons = {str(f["reason"]) for f in events(net, "bridgehead_session_failed", "CORP-A")}
    assert "smart host [127.0.0.1]:2501 answered '554 5.3.2 relay.example not accepting mail' instead of 220" in reasons
    assert via(net, "CORP-M", **INTERNET)[:2] == ("Backup", 5)


def test_both_smart_hosts_gone_queues_internet_mail_with_no_fallback() -> None:
    net = running()
    del net.external[PRIMARY]
    del net.external[BACKUP]
    net.run_for(DELAY + 300)
    assert sorted(committed(net)) == [("Backup", "DOWN"), ("Primary", "DOWN")]
    from tests.core.failure_helpers import route

    r = route(net, "CORP-M", **INTERNET)
    assert r.status.value == "queued" and r.address_space is not None and r.address_space.address == "*"


def test_an_x400_next_hop_mta_that_cannot_be_reached_takes_its_connector_down() -> None:
    net = running()
    x400 = {"to": "c=US;a=;p=Partner;o=Sales;s=Smith"}
    assert via(net, "CORP-M", **x400) == ("Partner-X400", 1, "CORP-B")
    del net.external[MTA]
    net.run_for(DELAY + 300)
    assert committed(net) == [("Partner-X400", "DOWN")]
    from tests.core.failure_helpers import route

    assert route(net, "CORP-M", **x400).status.value == "queued"


def test_a_bridgehead_whose_smtp_listener_is_not_running_reports_not_started() -> None:
    """G40: CONN_NOT_STARTED for every connector of a server whose own SMTP listener is down; the DNS-routed one
    stays UP (R50) with its bridgehead published NOT_STARTED; routing moves to the backup."""
    net = running()
    net.inject("CORP-A", ev.ListenerChanged(ev.Proto.SMTP, running=False))
    net.run_for(DELAY + 10)
    assert committed(net) == [("Primary", "DOWN")]
    assert bridgehead_states(net, "CORP-M", "Primary") == {"CORP-A": NOT_STARTED}
    assert connector_state(net, "CORP-M", "Fabrikam-DNS") is ConnectorState.UP
    assert bridgehead_states(net, "CORP-M", "Fabrikam-DNS") == {"CORP-A": NOT_STARTED, "CORP-B": AVAIL}
    assert via(net, "CORP-M", **INTERNET) == ("Backup", 5, "CORP-B")
    assert via(net, "CORP-M", to="x@fabrikam.example") == ("Fabrikam-DNS", 1, "CORP-B")  # the available one (R52)
    net.inject("CORP-A", ev.ListenerChanged(ev.Proto.SMTP, running=True))
    net.run_for(1)
    assert committed(net) == [("Primary", "DOWN"), ("Primary", "UP")]
    assert bridgehead_states(net, "CORP-M", "Fabrikam-DNS") == {"CORP-A": AVAIL, "CORP-B": AVAIL}


def test_an_operator_can_force_an_address_space_connectors_state() -> None:
    """`cluster fault Primary down` reaches its source bridgehead now that it has a link for it."""
    net = running()
    primary = net.topology.connector("Primary").guid
    net.inject("CORP-A", ev.FaultInjected(primary, NOT_AVAILABLE))
    net.run_for(DELAY + 10)
    assert committed(net) == [("Primary", "DOWN")]
    assert events(net, "fault_refused") == []


def test_a_smart_host_changed_very_recently_is_not_marked_down_for_a_state_delay() -> None:
    """R50, seed L6457: "connectors configured with a smart host that has changed very recently". Primary's smart
    host moves (in the directory) to one that does not answer: for one state delay nothing is marked down; the
    failure lasting beyond it is then committed like any other."""
    net = running()
    moved = parse_topology(CORP.replace('smart_host = "[127.0.0.1]:2501"', 'smart_host = "[127.0.0.1]:2503"'), "c.toml")
    net.topology = moved
    start = net.now
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(moved))
    net.run_for(1000)
    assert committed(net) == [] and events(net, "bridgehead_state_committed") == []
    assert via(net, "CORP-M", **INTERNET)[:2] == ("Primary", 1)
    net.run_for(300)
    assert committed(net) == [("Primary", "DOWN")]
    commit_at = next(t for t, _, d in net.diagnostics if d.event == "connector_state_committed")
    assert start + 2 * DELAY <= commit_at <= start + 2 * DELAY + 60 + 5  # after the re-report that followed it


def test_a_bridgehead_still_down_another_way_is_published_as_it_is() -> None:
    """NOT_AVAILABLE, then NOT_STARTED (its listener stops too): still unavailable, published at once as
    NOT_STARTED (a minor update), the connector's state unchanged."""
    net = running()
    del net.external[PRIMARY]
    net.run_for(DELAY + 300)
    assert bridgehead_states(net, "CORP-M", "Primary") == {"CORP-A": NOT_AVAILABLE}
    before = net.nodes["CORP-M"].view().version
    net.inject("CORP-A", ev.ListenerChanged(ev.Proto.SMTP, running=False))
    net.run_for(1)
    assert bridgehead_states(net, "CORP-M", "Primary") == {"CORP-A": NOT_STARTED}
    after = net.nodes["CORP-M"].view().version
    assert before is not None and after is not None and (after.major, after.minor) == (before.major, before.minor + 1)
    assert committed(net) == [("Primary", "DOWN")]
