"""What a master publishes from the directory: addresses, connector records, `down`, tombstones (G16–G20, G53)."""

from __future__ import annotations

from linkstate.core.directory import build_orginfo, build_section, tombstone
from linkstate.core.topology import hyphenated, parse_topology
from proto.encode import encode
from proto.model import BridgeheadState, ConnectorState, Version
from tests.core.topology_helpers import base, dump, example


def test_group_addresses_and_members() -> None:
    topo = example("seattle.toml")
    sec = build_section(topo, "Seattle")
    g = hyphenated(topo.routing_group("Seattle").guid)
    assert sec.smtp_address == f"*.{g}"
    assert sec.x400_address == f"c=US;a= ;p=Example;o=Exchange;cn={g};*"
    assert sec.x500_address == f"/o=Example/ou=First Administrative Group/*/{g}"
    assert sec.master == topo.server("SEA-BH1").guid
    assert sec.version == Version(0, 0, 0)
    assert {m.guid for m in sec.members} == {s.guid for s in topo.servers_in("Seattle")}
    assert all(m.connected for m in sec.members)
    assert [m.guid for m in sec.members] == sorted(m.guid for m in sec.members)


def test_group_connector_record() -> None:
    topo = example("seattle.toml")
    spec = topo.connector("Seattle-London")
    c = next(c for c in build_section(topo, "Seattle").connectors if c.guid == spec.guid)
    assert c.type == "RGC"
    assert c.source_address == f"_{spec.guid}_S" and c.target_address == f"_{spec.guid}_D"
    ag = "/o=Example/ou=First Administrative Group/cn=Configuration"
    assert c.dn == ag + "/cn=Routing Groups/cn=Seattle/cn=Connections/cn=Seattle-London"
    assert [(a.type, a.address, a.cost) for a in c.address_spaces] == [("RG", topo.routing_group("London").guid, 10)]
    assert [(b.guid, b.state, b.fqdn) for b in c.bridgeheads] == [
        (topo.bridgehead_of("SEA-BH1"), BridgeheadState.CONN_AVAIL, "SEA-BH1.example.com")
    ]
    assert c.target_bridgeheads == ("LON-BH1.example.com",)
    assert c.state is ConnectorState.UP and c.scope == 0 and c.priority == 0 and c.max_size is None


def test_smtp_connector_restrictions_encoding() -> None:
    data = base()
    data["connectors"][2].update(
        {"max_size_kb": 2048, "allowed_priorities": ["high"], "accept_by_default": False, "accept": ["CN=x"],
         "scope": "routing_group", "no_pf_referrals": True, "dns_routed": False, "smart_host": "relay.example.org"}
    )  # fmt: skip
    topo = parse_topology(dump(data))
    (c,) = [c for c in build_section(topo, "B").connectors if c.guid == topo.connector("Net").guid]
    assert c.type == "SMTP" and c.target_address == "relay.example.org"
    assert c.max_size == 2048  # kilobytes on the wire
    assert c.priority == 0x2 | 0x4  # disallowed: normal and low
    assert (c.accept_by_default, c.accept, c.reject) == (0, ("CN=x",), ())
    assert c.scope == 1 and c.no_pf_referrals == 1
    assert [(a.type, a.address, a.cost) for a in c.address_spaces] == [("SMTP", "*", 5)]


def test_down_marks_bridgeheads_and_connectors() -> None:
    topo = example("seattle.toml")
    org = build_orginfo(topo, down=["LON-BH1"])
    london = org.group(topo.routing_group("London").guid)
    assert london is not None
    for c in london.connectors:
        assert c.state is ConnectorState.DOWN
        assert all(b.state is BridgeheadState.CONN_NOT_AVAILABLE for b in c.bridgeheads)
    seattle = org.group(topo.routing_group("Seattle").guid)
    assert seattle is not None
    to_london = next(c for c in seattle.connectors if c.guid == topo.connector("Seattle-London").guid)
    assert to_london.state is ConnectorState.DOWN  # its only remote bridgehead is down (G40)
    to_tokyo = next(c for c in seattle.connectors if c.guid == topo.connector("Seattle-Tokyo").guid)
    assert to_tokyo.state is ConnectorState.UP


def test_never_down_kinds_stay_up_and_legacy_is_edk() -> None:
    data = base()
    data["servers"][2]["legacy"] = True
    topo = parse_topology(dump(data))
    org = build_orginfo(topo, down=["a1", "b1"])
    b = org.group(topo.routing_group("B").guid)
    assert b is not None
    for c in b.connectors:  # B-A: any local server; Net: DNS-routed and legacy bridgehead
        assert c.state is ConnectorState.UP
    net = next(c for c in b.connectors if c.guid == topo.connector("Net").guid)
    assert net.type == "EDK"
    assert net.bridgeheads[0].state is BridgeheadState.CONN_NOT_AVAILABLE  # still reported (G40)
    named = build_orginfo(topo, down=["Net"]).group(topo.routing_group("B").guid)
    assert named is not None and any(c.state is ConnectorState.DOWN for c in named.connectors)


def test_tombstone() -> None:
    topo = example("seattle.toml")
    sec = build_section(topo, "Tokyo", version=Version(3, 2, 1))
    t = tombstone(sec)
    assert t.is_tombstone and t.version == Version(4, 0, 0)
    assert t.smtp_address == "deleted" + sec.smtp_address
    assert t.x400_address == "deleted" + sec.x400_address and t.x500_address == "deleted" + sec.x500_address
    assert t.guid == sec.guid and t.master == sec.master
    assert tombstone(t).smtp_address == t.smtp_address


def test_orginfo_encodes_and_is_deterministic() -> None:
    topo = example("seattle.toml")
    assert encode(build_orginfo(topo)) == encode(build_orginfo(example("seattle.toml")))
