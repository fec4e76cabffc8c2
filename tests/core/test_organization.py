"""A whole organization on the pure simulated network: bridgeheads, X-LINK2STATE, propagation, suppression.

The seed's scenario (requirements R36, G24, F3): Seattle's mail for Brussels goes through London (cost 20); with
London's bridgehead down it goes through Tokyo (35); when London returns, back through London. Plus F9
(oscillation), F10 (SuppressStateChanges) and F13 (tombstones), counted rather than assumed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from linkstate.core import events as ev
from linkstate.core.routing import Router
from linkstate.core.topology import Topology, parse_topology
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "seattle.toml"
DOWN = BridgeheadState.CONN_NOT_AVAILABLE


def seattle(**settings: object) -> Topology:
    text = EXAMPLE.read_text()
    for key, value in settings.items():
        value_text = str(value).lower() if isinstance(value, bool) else repr(value)
        text = text.replace("[settings]\n", f"[settings]\n{key} = {value_text}\n".replace("'", '"'))
    return parse_topology(text, str(EXAMPLE))


def route(net: SimNetwork, server: str = "SEA-S2", to: str = "BRU-S2") -> tuple[str, int | None, tuple[str, ...]]:
    r = Router(net.topology).route(net.nodes[server].lsdb, server, to_server=to)
    return r.status, r.cost, r.path


def minor_updates(net: SimNetwork) -> int:
    return sum(core.view().table_changes.get("minor", 0) for core in net.nodes.values())


def committed(net: SimNetwork) -> list[tuple[str, str]]:
    return [
        (d.fields["connector"], d.fields["state"])
        for _, _, d in net.diagnostics
        if d.event == "connector_state_committed"
    ]


@pytest.fixture
def net() -> SimNetwork:
    n = SimNetwork(seattle())
    n.start_all()
    n.run_for(30)
    return n


def test_the_organization_converges_on_one_digest(net: SimNetwork) -> None:
    assert net.converged()
    core = net.nodes["TOK-S2"]
    assert {str(core.lsdb.section(g).version) for g in core.lsdb.guids()} == {"1.0.0"}  # type: ignore[union-attr]
    assert sum(c.view().exchanges for c in net.nodes.values()) > 0


def test_london_bridgehead_down_reroutes_through_tokyo_and_back(net: SimNetwork) -> None:
    assert route(net) == ("route", 20, ("Seattle", "London", "Brussels"))
    net.stop("LON-BH1")
    net.run_for(300)
    assert route(net)[1] == 20  # the state delay (600 s) holds the change back
    net.run_for(400)
    assert route(net) == ("route", 35, ("Seattle", "Tokyo", "Brussels"))
    assert ("Seattle-London", "DOWN") in committed(net)
    running = {n: c.lsdb.digest for n, c in net.nodes.items() if n != "LON-S2"}  # LON-S2 lost its master
    assert len(set(running.values())) == 1
    net.start("LON-BH1")
    net.run_for(600)
    assert route(net) == ("route", 20, ("Seattle", "London", "Brussels"))
    assert net.converged()
    # every server's live table answers what an offline query on the final state answers
    offline = Router(net.topology).route(net.nodes["BRU-BH1"].lsdb, "SEA-S2", to_server="BRU-S2")
    assert (offline.cost, offline.path) == (20, ("Seattle", "London", "Brussels"))


def test_a_flapping_connector_inside_one_window_sends_no_minor_update(net: SimNetwork) -> None:
    connector = net.topology.connector("Seattle-London").guid
    before, digests = minor_updates(net), net.digests()
    for _ in range(4):  # down/up every 60 s, four times, all inside one 600 s window
        net.inject("SEA-BH1", ev.FaultInjected(connector, DOWN))
        net.run_for(60)
        net.inject("SEA-BH1", ev.FaultInjected(connector, None))
        net.run_for(60)
    net.run_for(700)
    assert minor_updates(net) == before
    assert committed(net) == []
    assert net.digests() == digests
    windows = [(t, d) for t, _, d in net.diagnostics if d.event == "oscillation_window_opened"]
    assert [d.fields["bridgehead"] for _, d in windows] == ["SEA-BH1", ""]  # the bridgehead's and the connector's
    (opened_at, opened) = windows[1]
    suppressions = [d for _, _, d in net.diagnostics if d.event == "oscillation_suppressed"]
    [suppressed] = [d for d in suppressions if not d.fields["bridgehead"]]
    # times are Instants on the core's clock (the service writes them as wall-clock ISO-8601), never raw floats
    assert opened.fields["window_end"] == ev.Instant(opened_at + 600) == suppressed.fields["window_end"]
    assert suppressed.fields["window_start"] == ev.Instant(opened_at) and suppressed.fields["changes"] >= 2


def test_compat_e2k_sends_one_minor_update_per_flap() -> None:
    net = SimNetwork(seattle(compat_e2k=True))
    net.start_all()
    net.run_for(30)
    connector = net.topology.connector("Seattle-London").guid
    for _ in range(2):  # two flaps, each down for a whole batch interval
        net.inject("SEA-BH1", ev.FaultInjected(connector, DOWN))
        net.run_for(310)
        net.inject("SEA-BH1", ev.FaultInjected(connector, None))
        net.run_for(310)
    assert committed(net) == [("Seattle-London", "DOWN"), ("Seattle-London", "UP")] * 2
    assert net.converged()


def test_a_single_down_report_commits_after_the_state_delay(net: SimNetwork) -> None:
    connector = net.topology.connector("Seattle-Tokyo").guid
    net.inject("SEA-BH1", ev.FaultInjected(connector, DOWN))
    net.run_for(599)
    assert committed(net) == []
    net.run_for(30)
    assert committed(net) == [("Seattle-Tokyo", "DOWN")]
    assert net.converged()
    section = net.nodes["BRU-S2"].lsdb.section(net.topology.routing_group("Seattle").guid)
    assert section is not None and section.version.minor == 1
    assert next(c for c in section.connectors if c.guid == connector).state.value == "DOWN"


def test_suppress_state_changes_keeps_the_connector_up_and_others_still_propagate() -> None:
    text = EXAMPLE.read_text().replace(
        'name = "SEA-BH1"\nrouting_group = "Seattle"',
        'name = "SEA-BH1"\nrouting_group = "Seattle"\nsuppress_state_changes = true',
    )
    net = SimNetwork(parse_topology(text, str(EXAMPLE)))
    net.start_all()
    net.run_for(30)
    sea = net.topology.connector("Seattle-London").guid
    tok = net.topology.connector("Tokyo-London").guid
    net.inject("SEA-BH1", ev.FaultInjected(sea, DOWN))
    net.inject("TOK-BH1", ev.FaultInjected(tok, DOWN))
    net.run_for(700)
    assert committed(net) == [("Tokyo-London", "DOWN")]
    assert net.converged()
    assert any(d.event == "state_change_suppressed" for _, n, d in net.diagnostics if n == "SEA-BH1")


def test_a_deleted_group_stays_until_a_tombstone_spreads_org_wide(net: SimNetwork) -> None:
    tokyo = net.topology.routing_group("Tokyo").guid
    old = net.nodes["SEA-S2"].lsdb.section(tokyo)
    assert old is not None
    net.stop("TOK-BH1")  # the group is deleted: its servers are gone ...
    net.stop("TOK-S2")
    net.run_for(1300)
    for core in net.nodes.values():  # ... but every table keeps its section (R63, R133)
        assert core.lsdb.section(tokyo) is not None
    net.inject("BRU-S2", ev.TombstoneRequested(tokyo))  # remonitor -i BRU-S2, run from another server
    net.run_for(60)
    for name, core in net.nodes.items():
        section = core.lsdb.section(tokyo)
        assert section is not None and section.is_tombstone, name
        assert section.version.major == old.version.major + 1
        assert section.smtp_address.startswith("deleted") and not section.members and not section.connectors
    assert net.converged()
    assert route(net, "SEA-S2", "TOK-S2") == ("unreachable", None, ())  # a tombstoned group: no path (G53)
    assert route(net, "SEA-S2") == ("route", 20, ("Seattle", "London", "Brussels"))  # nothing else changed


def test_inject_is_refused_from_the_server_itself(net: SimNetwork) -> None:
    tokyo = net.topology.routing_group("Tokyo").guid
    address = net.topology.server("BRU-S2").address or ""
    net.inject("BRU-S2", ev.TombstoneRequested(tokyo, peer_host=address))
    net.run_for(5)
    assert not net.nodes["BRU-S2"].lsdb.section(tokyo).is_tombstone  # type: ignore[union-attr]
    assert any(d.event == "inject_refused" for _, n, d in net.diagnostics if n == "BRU-S2")


def test_a_bridgehead_whose_peers_are_not_up_yet_logs_info_until_the_start_up_period_ends() -> None:
    """docs/EVENTS.md: within `master_settle` (300 s) of the start, before a link's first success, a failed
    X-LINK2STATE session is info; after it, one warning per streak (then info past `bh_fail_threshold`)."""
    net = SimNetwork(seattle())
    net.start("SEA-BH1")
    net.start("SEA-S2")
    net.run_for(600)
    failed = [(t, d.fields["connector"], d.level) for t, n, d in net.diagnostics
              if n == "SEA-BH1" and d.event == "bridgehead_session_failed"]  # fmt: skip
    early = {level for t, _, level in failed if t < 300}
    assert len(failed) > 10 and early == {"info"}
    for connector in {c for _, c, _ in failed}:
        late = [level for t, c, level in failed if t >= 300 and c == connector]
        assert late[0] == "warning" and set(late[1:]) == {"info"}, (connector, late)
