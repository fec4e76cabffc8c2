"""The topology loader: examples load, GUIDs are derived as documented, every problem is reported with its path."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkstate.core.topology import (
    EMPTY_TOPOLOGY,
    Settings,
    TopologyError,
    derive_guid,
    parse_topology,
)
from linkstate.service.topofile import load_topology
from tests.core.topology_helpers import EXAMPLES, base, dump, example


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(TopologyError) as info:
        parse_topology(dump(data), "t.toml")
    return [(p.path, p.message) for p in info.value.problems]


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_examples_load(name: str) -> None:
    topo = example(name)
    assert topo.routing_groups and topo.servers
    for rg in topo.routing_groups:
        assert topo.master_of(rg.name).routing_group == rg.name


def test_seattle_shape() -> None:
    topo = example("seattle.toml")
    assert [rg.name for rg in topo.routing_groups] == ["Seattle", "London", "Brussels", "Tokyo"]
    assert all(len(topo.servers_in(rg.name)) == 2 for rg in topo.routing_groups)
    assert len({s.address for s in topo.servers}) == 8
    assert topo.connector("Seattle-London").cost == 10
    assert topo.connector("Tokyo-Brussels").cost == 20
    assert topo.secret


def test_guids_are_uuid5_of_org_kind_name() -> None:
    topo = example("seattle.toml")
    org = topo.organization
    expect = uuid.uuid5(uuid.NAMESPACE_OID, f"linkstate:{org}:routing_group:Seattle").hex
    assert topo.routing_group("Seattle").guid == expect == derive_guid(org, "routing_group", "Seattle")
    assert topo.server("SEA-BH1").guid == derive_guid(org, "server", "SEA-BH1")
    assert topo.bridgehead_of("SEA-BH1") == derive_guid(org, "vs", "SEA-BH1")
    assert topo.connector("Seattle-London").guid == derive_guid(org, "connector", "Seattle-London")
    assert topo.version_guid("Seattle") == derive_guid(org, "version", "Seattle:0")


def test_lookups() -> None:
    topo = example("seattle.toml")
    rg = topo.routing_group("London")
    assert topo.routing_group_by_guid(rg.guid) == rg
    s = topo.server("LON-S2")
    assert topo.server_by_guid(s.guid) == s and topo.server_by_guid(s.vs_guid) == s
    c = topo.connector("London-Tokyo")
    assert topo.connector_by_guid(c.guid) == c
    assert {c.name for c in topo.connectors_from("London")} == {"London-Seattle", "London-Brussels", "London-Tokyo"}
    assert topo.is_master("LON-BH1") and not topo.is_master("LON-S2")
    with pytest.raises(KeyError):
        topo.server("nope")


def test_explicit_guid_forms_are_normalized() -> None:
    data = base()
    data["routing_groups"][0]["guid"] = "A2A0F896-D197-B849-9955-7850AC796258"
    topo = parse_topology(dump(data))
    assert topo.routing_group("A").guid == "a2a0f896d197b84999557850ac796258"


def test_settings_defaults_and_scaling() -> None:
    topo = parse_topology(dump({**base(), "settings": {"poll_interval": 10, "time_scale": 100}}))
    s = topo.settings
    assert s.master_settle == 10 and s.state_delay == 600 and s.chunk_raw_bytes == 993
    assert s.scaled("poll_interval") == pytest.approx(0.1)
    assert Settings().scaled("state_delay") == 600
    with pytest.raises(KeyError):
        s.scaled("leaf_rule")


def test_secret_file_is_relative_to_the_topology(tmp_path: Any) -> None:
    (tmp_path / "org.secret").write_text("abc\n")
    data = base()
    data["organization"] = {"name": "Org", "secret_file": "org.secret"}
    path = tmp_path / "t.toml"
    path.write_text(dump(data))
    assert load_topology(path).secret == b"abc"
    data["organization"] = {"name": "Org", "secret_file": "missing.secret"}
    path.write_text(dump(data))
    with pytest.raises(TopologyError, match=r"organization\.secret_file"):
        load_topology(path)


def test_the_parser_reads_no_file_it_asks_its_caller() -> None:
    data = base()
    data["organization"] = {"name": "Org", "secret_file": "org.secret"}
    asked: list[str] = []
    topo = parse_topology(dump(data), "t.toml", read_file=lambda name: asked.append(name) or b"xyz\n")
    assert topo.secret == b"xyz" and asked == ["org.secret"]
    with pytest.raises(TopologyError, match=r"organization\.secret_file.*without its files"):
        parse_topology(dump(data), "t.toml")


def mutate(path: str, value: Any) -> dict[str, Any]:
    """base() with one value set (`connectors.0.cost`); `None` deletes the key."""
    data = base()
    parts = path.split(".")
    node: Any = data
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node[p]
    last = parts[-1]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


INVALID = [
    ("connectors.0.cost", 0, "connectors[0].cost", "between 1 and 100"),
    ("connectors.0.cost", 101, "connectors[0].cost", "between 1 and 100"),
    ("connectors.0.connected_routing_group", "Z", "connectors[0].connected_routing_group", "unknown routing group"),
    ("connectors.0.connected_routing_group", "A", "connectors[0].connected_routing_group", "itself"),
    ("connectors.0.source_bridgeheads", ["b1"], "connectors[0].source_bridgeheads[0]", "not in 'A'"),
    ("connectors.0.source_bridgeheads", ["zz"], "connectors[0].source_bridgeheads[0]", "unknown server"),
    ("connectors.0.remote_bridgeheads", ["a2"], "connectors[0].remote_bridgeheads[0]", "not in 'B'"),
    ("connectors.0.address_spaces", [{"address": "*.com"}], "connectors[0].address_spaces", "R6"),
    ("connectors.2.source_bridgeheads", [], "connectors[2].source_bridgeheads", "explicit source bridgeheads"),
    ("connectors.2.address_spaces", [{"type": "SMTP", "address": "a..b"}], "connectors[2].address_spaces[0].address",
     "not a valid SMTP"),
    ("connectors.2.address_spaces", [{"type": "FAX", "address": "x"}], "connectors[2].address_spaces[0].type",
     "one of"),
    ("connectors.2.address_spaces", [{"address": "*", "cost": 500}], "connectors[2].address_spaces[0].cost", "between"),
    ("connectors.2.type", "carrier-pigeon", "connectors[2].type", "must be one of"),
    ("connectors.2.smart_host", "not a host!", "connectors[2].smart_host", "FQDN"),
    ("connectors.2.smart_host", "relay.example.org:0", "connectors[2].smart_host", ":port (1-65535)"),
    ("connectors.2.smart_host", "relay.example.org:70000", "connectors[2].smart_host", ":port (1-65535)"),
    ("connectors.0.smart_host", "relay.example.org", "connectors[0].smart_host", "x400 connector (its next-hop"),
    ("connectors.0.guid", "xyz", "connectors[0].guid", "not a GUID"),
    ("connectors.0.cosst", 3, "connectors[0].cosst", "unknown key"),
    ("connectors.1.name", "A-B", "connectors[1].name", "duplicate connector name"),
    ("servers.1.name", "a1", "servers[1].name", "duplicate server name"),
    ("servers.1.routing_group", "Q", "servers[1].routing_group", "unknown routing group"),
    ("servers.1.address", "localhost", "servers[1].address", "IPv4"),
    ("servers.1.address", "10.0.0.300", "servers[1].address", "0-255"),
    ("servers.1.address", "127.0.0.01.2", "servers[1].address", "IPv4"),
    ("servers.1.port_691", 70000, "servers[1].port_691", "between"),
    ("servers.1.port_691", 0, "servers[1].port_691", "between"),
    ("servers.1.port_smtp", 65536, "servers[1].port_smtp", "between"),
    ("routing_groups.0.master", "b1", "routing_groups[0].master", "not in this group"),
    ("routing_groups.0.master", "nobody", "routing_groups[0].master", "unknown server"),
    ("routing_groups.0.master", None, "routing_groups[0].master", "required"),
    ("routing_groups.1.guid", derive_guid("Org", "routing_group", "A"), "routing_groups[1].guid", "duplicate GUID"),
    ("organization.secret", None, "organization.secret_file", "required"),
    ("organization.nmae", "x", "organization.nmae", "unknown key"),
    ("settings", {"chunk_raw_bytes": 2048}, "settings.chunk_raw_bytes", "between"),
    ("settings", {"poll_interval": -1}, "settings.poll_interval", "between"),
    ("settings", {"leaf_rule": "maybe"}, "settings.leaf_rule", "one of"),
    ("settings", {"reconnect_min": 90}, "settings.reconnect_min", "reconnect_max"),
    ("settings", {"compat_e2k": "yes"}, "settings.compat_e2k", "true or false"),
    ("extra", {"a": 1}, "extra", "unknown key"),
]  # fmt: skip


@pytest.mark.parametrize(("where", "value", "path", "message"), INVALID, ids=[i[2] + ":" + i[3] for i in INVALID])
def test_invalid_topologies_name_the_key(where: str, value: Any, path: str, message: str) -> None:
    found = problems_of(mutate(where, value))
    assert any(p == path and message in m for p, m in found), found


def test_every_problem_is_listed_with_lines() -> None:
    data = base()
    data["connectors"][0]["cost"] = 0
    data["connectors"][1]["connected_routing_group"] = "Nowhere"
    data["servers"][2]["routing_group"] = "Elsewhere"
    text = dump(data)
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "t.toml")
    probs = info.value.problems
    assert {p.path for p in probs} >= {
        "connectors[0].cost",
        "connectors[1].connected_routing_group",
        "servers[2].routing_group",
    }
    lines = text.splitlines()
    for p in probs:
        if p.path == "connectors[0].cost":
            assert p.line is not None and lines[p.line - 1].startswith("cost")
    assert "t.toml:" in str(info.value)


def test_locating_many_problems_reads_each_line_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """N problems cost one pass over the file, not N (found by fuzzing: 10,000 problems took 95 s)."""
    from linkstate.core import topology

    calls = 0
    header = topology._HEADER

    class Counting:
        def match(self, line: str) -> Any:
            nonlocal calls
            calls += 1
            return header.match(line)

    monkeypatch.setattr(topology, "_HEADER", Counting())
    text = 'organization = { name = "O", secret = "s" }\n[[routing_groups]]\nname = "A"\nmaster = "s0"\n'
    entry = '[[servers]]\nname = "s{}"\nrouting_group = "A"\naddress = "bad"\nbogus = 1\n'
    text += "".join(entry.format(i) for i in range(300))
    with pytest.raises(TopologyError) as info:
        parse_topology(text)
    assert len(info.value.problems) == 600
    assert [p.line for p in info.value.problems[-2:]] == [text.count("\n") - 1, text.count("\n")]
    assert calls <= 2 * text.count("\n")


def test_invalid_toml_reports_its_line() -> None:
    with pytest.raises(TopologyError) as info:
        parse_topology('[organization]\nname = "x"\nbroken = = 3\n', "bad.toml")
    (p,) = info.value.problems
    assert p.line == 3 and "invalid TOML" in p.message


def test_empty_file_is_one_problem() -> None:
    assert problems_of({}) == [("", EMPTY_TOPOLOGY)]


def test_missing_organization_is_one_problem() -> None:
    data = base()
    del data["organization"]
    found = problems_of(data)
    assert [p for p in found if p[0].startswith("organization")] == [
        ("organization", "the [organization] table is required")
    ]


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 200), st.text(max_size=6), st.lists(st.text(max_size=3), max_size=2)
)


@st.composite
def mangled(draw: st.DrawFn) -> dict[str, Any]:
    """base() with a few values replaced, deleted or added at random places."""
    data = base()
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(["organization", "routing_groups", "servers", "connectors", "settings"]))
        node: Any = data.setdefault(section, {})
        if isinstance(node, list):
            node = node[draw(st.integers(0, len(node) - 1))]
        key = draw(st.sampled_from([*node.keys(), "cost", "name", "guid", "master", "bogus", "address_spaces"]))
        value = draw(_scalars)
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled())
def test_mangled_topologies_never_crash(data: dict[str, Any]) -> None:
    text = dump(copy.deepcopy(data))
    try:
        parse_topology(text, "m.toml")
    except TopologyError as exc:
        assert exc.problems
        assert all(p.path or p.message.startswith("invalid TOML") for p in exc.problems)


def test_backoff_doubles_to_its_cap_and_never_overflows() -> None:
    s = Settings()
    assert [s.backoff(a, "reconnect_max", 0.999999) for a in range(3)] == pytest.approx([1, 2, 4], rel=1e-5)
    assert s.backoff(10, "reconnect_max", 0.0) == 30  # capped at 60 s, halved by the lowest jitter
    assert s.backoff(100_000, "bh_probe_interval", 0.5) == pytest.approx(45)


@pytest.mark.parametrize(
    ("kind", "smart_host", "next_hop"),
    [
        ("smtp", "relay.example.org", ("relay.example.org", 25)),
        ("smtp", "[127.0.0.1]:2599", ("127.0.0.1", 2599)),
        ("x400", "mta.partner.example", ("mta.partner.example", 102)),
        ("x400", "mta.partner.example:1102", ("mta.partner.example", 1102)),
    ],
)
def test_a_smart_host_or_next_hop_mta_with_an_optional_port(kind: str, smart_host: str, next_hop: Any) -> None:
    data = base()
    net = data["connectors"][2]
    net.pop("dns_routed")
    net.update(type=kind, smart_host=smart_host)
    if kind == "x400":
        net["address_spaces"] = [{"type": "X400", "address": "c=US;a=;p=Partner;*", "cost": 5}]
    topo = parse_topology(dump(data), "t.toml")
    assert topo.connector("Net").next_hop == next_hop
    assert topo.connector("A-B").next_hop is None
