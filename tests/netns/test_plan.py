"""The network plan (pure): namespaces, addresses, links per connector, routes, JSON, and the refusals."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from linkstate.core.topology import Topology, parse_topology
from linkstate.netns.plan import LINK_PREFIXLEN, NetPlan, NetPlanError, new_prefix, plan_network
from linkstate.service.topofile import load_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PREFIX = "ls-abc123-"


def seattle() -> Topology:
    return load_topology(EXAMPLES / "seattle.toml")


def org(servers: list[tuple[str, str, str | None]], connectors: str = "", groups: list[str] | None = None) -> Topology:
    """Servers as (name, group, address or None); the first server of each group is its master."""
    groups = groups or list(dict.fromkeys(g for _, g, _ in servers))
    lines = ['[organization]\nname = "T"\ndomain = "t.example"\nsecret = "s"\n']
    for g in groups:
        master = next(n for n, gg, _ in servers if gg == g)
        lines.append(f'[[routing_groups]]\nname = "{g}"\nmaster = "{master}"\n')
    for name, g, addr in servers:
        extra = f'address = "{addr}"\n' if addr else ""
        lines.append(f'[[servers]]\nname = "{name}"\nrouting_group = "{g}"\n{extra}')
    return parse_topology("\n".join(lines) + connectors, "<test>")


def connector(name: str, src: str, dst: str, sources: list[str] | None = None, remotes: list[str] | None = None) -> str:
    text = f'\n[[connectors]]\nname = "{name}"\ntype = "routing_group"\nrouting_group = "{src}"\n'
    text += f'connected_routing_group = "{dst}"\ncost = 10\n'
    if sources:
        text += f"source_bridgeheads = {sources!r}\n".replace("'", '"')
    if remotes:
        text += f"remote_bridgeheads = {remotes!r}\n".replace("'", '"')
    return text


def test_seattle_is_laid_out_as_the_issue_describes() -> None:
    plan = plan_network(seattle(), PREFIX)
    assert len(plan.hosts) == 8 and len(plan.switches) == 4
    assert all(ns.startswith(PREFIX) for ns in plan.namespaces())
    assert len(set(plan.namespaces())) == 12
    # loopback addresses are replaced from 198.18.0.0/15, one /24 per group in file order
    assert plan.host("SEA-BH1").address == "198.18.0.1" and plan.host("SEA-S2").address == "198.18.0.2"
    assert plan.host("TOK-S2").address == "198.18.3.2"
    assert {h.prefixlen for h in plan.hosts} == {24}
    # one link per connected pair of bridgeheads, carrying both directions' connectors
    pairs = {frozenset((k.a.server, k.b.server)): set(k.connectors) for k in plan.links}
    assert len(pairs) == 6
    assert pairs[frozenset(("SEA-BH1", "LON-BH1"))] == {"Seattle-London", "London-Seattle"}
    assert [k.name for k in plan.links_of_connector("Tokyo-Brussels")] == ["TOK-BH1~BRU-BH1"]
    assert sorted(k.name for k in plan.links_of_group("London")) == [
        "LON-BH1~BRU-BH1", "LON-BH1~TOK-BH1", "SEA-BH1~LON-BH1",
    ]  # fmt: skip
    assert plan.links_of_group("Seattle") != plan.links_of_group("London")


def test_link_ends_share_a_31_and_routes_point_across() -> None:
    plan = plan_network(seattle(), PREFIX)
    for link in plan.links:
        net = ipaddress.ip_network(f"{link.a.address}/{LINK_PREFIXLEN}", strict=False)
        assert ipaddress.ip_address(link.b.address) in net and link.a.address != link.b.address
        assert net.subnet_of(ipaddress.IPv4Network("198.18.0.0/15"))
        ra, rb = plan.link_routes(link)
        assert (ra.dst, ra.gateway, ra.prefsrc) == (
            plan.host(link.b.server).address, link.b.address, plan.host(link.a.server).address,
        )  # fmt: skip
        assert (rb.dst, rb.gateway) == (plan.host(link.a.server).address, link.a.address)
    subnets = [ipaddress.ip_network(f"{k.a.address}/31", strict=False) for k in plan.links]
    assert len(set(subnets)) == len(subnets)


def test_interface_names_fit_the_kernel_and_are_unique_per_namespace() -> None:
    plan = plan_network(seattle(), PREFIX)
    per_ns: dict[str, list[str]] = {}
    for h in plan.hosts:
        per_ns.setdefault(h.netns, []).append("lan")
        per_ns.setdefault(plan.switch(h.group).netns, []).append(h.switch_port)
    for k in plan.links:
        for end in (k.a, k.b):
            per_ns.setdefault(end.netns, []).append(end.ifname)
    for names in per_ns.values():
        assert len(names) == len(set(names))
        assert all(len(n.encode()) <= 15 for n in names)
    assert per_ns[plan.host("SEA-BH1").netns] == ["lan", "wan0", "wan1", "wan2"]


def test_given_addresses_are_kept_with_host_routes_on_the_lan() -> None:
    topo = org([("A1", "A", "10.9.0.7"), ("A2", "A", None), ("B1", "B", "127.0.0.5")],
               connector("A-B", "A", "B"))  # fmt: skip
    plan = plan_network(topo, PREFIX)
    a1, a2, b1 = plan.host("A1"), plan.host("A2"), plan.host("B1")
    assert (a1.address, a1.prefixlen) == ("10.9.0.7", 32)
    assert a2.prefixlen == 32 and a2.address.startswith("198.18.0.")
    assert a1.onlink == (a2.address,) and a2.onlink == (a1.address,)
    assert [r.dst for r in plan.lan_routes(a1)] == [a2.address]
    assert (b1.address, b1.prefixlen, b1.onlink) == ("198.18.1.1", 24, ())  # loopback is replaced
    # the master stands in for empty bridgehead lists, as in the core
    (link,) = plan.links
    assert {link.a.server, link.b.server} == {"A1", "B1"} and link.connectors == ("A-B",)


def test_generated_addresses_skip_given_ones() -> None:
    topo = org([("A1", "A", None), ("A2", "A", "198.18.0.1")])
    plan = plan_network(topo, PREFIX)
    assert plan.host("A1").address == "198.18.0.2"


def test_explicit_bridgeheads_make_one_link_per_pair() -> None:
    topo = org(
        [("A1", "A", None), ("A2", "A", None), ("B1", "B", None)],
        connector("A-B", "A", "B", ["A1", "A2"], ["B1"]) + connector("B-A", "B", "A", ["B1"], ["A2"]),
    )
    plan = plan_network(topo, PREFIX)
    assert {k.name: k.connectors for k in plan.links} == {"A1~B1": ("A-B",), "A2~B1": ("A-B", "B-A")}
    assert plan.links_of_connector("B-A")[0].name == "A2~B1"


def test_plan_round_trips_through_json() -> None:
    plan = plan_network(seattle(), new_prefix())
    assert NetPlan.from_json(plan.to_json()) == plan
    with pytest.raises(NetPlanError):
        NetPlan.from_json({"prefix": PREFIX})


def test_namespace_names_are_sanitised_and_unique() -> None:
    topo = org([("rg-x", "x", None), ("S1", "First Group/One", None)])
    plan = plan_network(topo, PREFIX)
    assert plan.host("rg-x").netns == f"{PREFIX}rg-x"
    assert plan.switch("x").netns == f"{PREFIX}rg-x~2"
    assert plan.switch("First Group/One").netns == f"{PREFIX}rg-First_Group_One"


@pytest.mark.parametrize("prefix", ["", "ls-", "ls-ABCDEF-", "x-abc123-", "ls-abc123"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(NetPlanError):
        plan_network(seattle(), prefix)


def test_shared_given_addresses_are_refused() -> None:
    topo = org([("A1", "A", "10.0.0.1"), ("A2", "A", "10.0.0.1")])
    with pytest.raises(NetPlanError, match=r"share the address 10\.0\.0\.1"):
        plan_network(topo, PREFIX)


def test_lookups_of_unknown_names_raise_key_error() -> None:
    plan = plan_network(seattle(), PREFIX)
    for lookup in (plan.host, plan.switch, plan.link, plan.links_of_group):
        with pytest.raises(KeyError):
            lookup("nope")
