"""Route selection: seed fixtures F3–F8 and properties checked against networkx on random graphs."""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.directory import build_orginfo, tombstone
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.routing import (
    MessageClass,
    Router,
    RouteStatus,
    RoutingError,
    match_rank,
    pinned_connectors,
)
from linkstate.core.topology import parse_topology
from proto.model import (
    AddressSpace,
    Bridgehead,
    BridgeheadState,
    Connector,
    ConnectorState,
    Member,
    OrgInfo,
    RoutingGroup,
)
from tests.core.topology_helpers import base, dump, example

SALES = "CN=Alice,CN=Users,DC=example,DC=com"
OTHER = "CN=Carol,CN=Users,DC=example,DC=com"


# ------------------------------------------------------------------------------------------ F3 Seattle


def test_f3_seattle_to_brussels_with_failover_and_failback() -> None:
    topo = example("seattle.toml")
    router = Router(topo)
    up = router.route(build_orginfo(topo), "SEA-S2", to_group="Brussels")
    assert (up.status, up.cost, up.path) == (RouteStatus.ROUTE, 20, ("Seattle", "London", "Brussels"))
    assert up.connector is not None and up.connector.name == "Seattle-London"
    assert up.next_hop == "SEA-BH1"  # a member hands the message to its bridgehead
    down = router.route(build_orginfo(topo, ["LON-BH1"]), "SEA-S2", to_group="Brussels")
    assert (down.cost, down.path) == (35, ("Seattle", "Tokyo", "Brussels"))
    back = router.route(build_orginfo(topo), "SEA-S2", to_group="Brussels")
    assert back.path == up.path  # R54: different costs fail back


def test_f3_bridgehead_next_hop_is_the_remote_bridgehead() -> None:
    topo = example("seattle.toml")
    r = Router(topo).route(build_orginfo(topo), "SEA-BH1", to_server="BRU-S2")
    assert r.next_hop == "LON-BH1" and r.cost == 20


def test_internet_mail_total_cost_adds_the_address_space() -> None:
    topo = example("seattle.toml")
    r = Router(topo).route(build_orginfo(topo), "SEA-BH1", to="someone@contoso.com")
    assert r.status == RouteStatus.ROUTE and r.cost == 20 + 10
    assert r.address_space is not None and r.address_space.connector.name == "Brussels-Internet"


def test_same_group_destination() -> None:
    topo = example("seattle.toml")
    r = Router(topo).route(build_orginfo(topo), "TOK-S2", to_server="TOK-BH1")
    assert (r.status, r.cost, r.path, r.next_hop, r.connector) == (RouteStatus.ROUTE, 0, ("Tokyo",), "TOK-BH1", None)


def test_lookups_accept_a_linkstate_db_and_cache() -> None:
    topo = example("seattle.toml")
    db = LinkStateDB.from_topology(topo)
    router = Router(topo)
    first = router.route(db, "SEA-S2", to_group="Brussels")
    assert router.route(db, "SEA-S2", to_group="Brussels") is first
    assert router.graph_for(db) is router.graph_for(db)


def test_routes_from_agrees_with_single_lookups() -> None:
    topo = example("seattle.toml")
    router = Router(topo)
    for down in ([], ["LON-BH1"]):
        org = build_orginfo(topo, down)
        table = router.routes_from(org, "SEA-S2")
        assert len(table) == 4
        for rg in topo.routing_groups:
            one = router.route(org, "SEA-S2", to_group=rg.name)
            r = table.route(rg.guid)
            assert (r.status, r.cost, r.connector) == (one.status, one.cost, one.connector)
            assert table.path_guids(rg.guid) == one.path_guids
            assert r.path == one.path == tuple(topo.routing_group_by_guid(g).name for g in r.path_guids)  # type: ignore[union-attr]


def test_unknown_names_raise_routing_error() -> None:
    topo = example("seattle.toml")
    org = build_orginfo(topo)
    router = Router(topo)
    for kwargs in ({"to_server": "nope"}, {"to_group": "Atlantis"}, {"to": "a@b..c"}, {}):
        with pytest.raises(RoutingError):
            router.route(org, "SEA-S2", **kwargs)
    with pytest.raises(RoutingError):
        router.route(org, "nobody", to="x.com")


def test_tombstoned_group_is_unreachable() -> None:
    topo = example("seattle.toml")
    db = LinkStateDB.from_topology(topo)
    tokyo = db.section(topo.routing_group("Tokyo").guid)
    assert tokyo is not None
    db.put(tombstone(tokyo))
    router = Router(topo)
    assert router.route(db, "SEA-S2", to_group="Tokyo").status == RouteStatus.UNREACHABLE
    assert router.route(db, "SEA-S2", to_group="Brussels").cost == 20


# ------------------------------------------------------------------------------------------ F4 *.net


def test_f4_specific_space_wins_regardless_of_cost() -> None:
    topo = example("net-star.toml")
    router = Router(topo, check_restrictions=False)
    org = build_orginfo(topo)
    net = router.route(org, "EX2", to="ted@treyresearch.net")
    assert net.address_space is not None and net.address_space.address == "*.net" and net.cost == 20
    star = router.route(org, "EX2", to="adam@contoso.com")
    assert star.address_space is not None and star.address_space.address == "*" and star.cost == 10


def test_f4_no_fallback_to_less_specific_space() -> None:
    topo = example("net-star.toml")
    router = Router(topo, check_restrictions=False)
    r = router.route(build_orginfo(topo, ["Net-Connector"]), "EX2", to="ted@treyresearch.net")
    assert r.status == RouteStatus.QUEUED and r.address_space is not None and r.address_space.address == "*.net"


def test_f4_restrictions_remove_connectors_for_a_sender_before_matching() -> None:
    topo = example("net-star.toml")
    router = Router(topo)  # the example turns check_connector_restrictions on
    up, down = build_orginfo(topo), build_orginfo(topo, ["Net-Connector"])

    def space(org: OrgInfo, sender: str) -> tuple[str, str | None]:
        r = router.route(org, "EX2", to="ted@treyresearch.net", msg=MessageClass(sender=sender))
        return r.status, r.address_space.address if r.address_space else None

    assert space(up, SALES) == (RouteStatus.ROUTE, "*.net")
    assert space(up, OTHER) == (RouteStatus.ROUTE, "*")
    assert space(down, SALES) == (RouteStatus.QUEUED, "*.net")
    assert space(down, OTHER) == (RouteStatus.ROUTE, "*")


def test_restrictions_ignored_when_the_switch_is_off() -> None:
    topo = example("net-star.toml")
    r = Router(topo, check_restrictions=False).route(
        build_orginfo(topo), "EX2", to="ted@treyresearch.net", msg=MessageClass(sender=OTHER)
    )
    assert r.address_space is not None and r.address_space.address == "*.net"


def test_content_restrictions_and_scope() -> None:
    data = base()
    data["connectors"].append(
        {"name": "Big", "type": "smtp", "routing_group": "B", "cost": 1, "source_bridgeheads": ["b1"],
         "dns_routed": True, "max_size_kb": 10, "allowed_priorities": ["high", "normal"],
         "address_spaces": [{"address": "*.org", "cost": 1}]}
    )  # fmt: skip
    data["connectors"].append(
        {"name": "Local", "type": "smtp", "routing_group": "B", "cost": 1, "source_bridgeheads": ["b1"],
         "dns_routed": True, "scope": "routing_group", "address_spaces": [{"address": "*.edu", "cost": 1}]}
    )  # fmt: skip
    topo = parse_topology(dump(data))
    org, router = build_orginfo(topo), Router(topo)

    def via(src: str, to: str, **kw: Any) -> str | None:
        r = router.route(org, src, to=to, msg=MessageClass(**kw))
        return r.address_space.address if r.address_space else None

    assert via("a1", "x@y.org") == "*.org"
    assert via("a1", "x@y.org", size=20 * 1024) == "*"
    assert via("a1", "x@y.org", priority="low") == "*"
    assert via("b1", "x@y.edu") == "*.edu"
    assert via("a1", "x@y.edu") == "*"  # routing-group scope: only senders in B


def test_match_rank_specificity() -> None:
    d = "mail.sales.contoso.com"
    ranks = [match_rank("SMTP", p, d) for p in ("*", "*.com", "*.contoso.com", d)]
    assert all(r is not None for r in ranks)
    assert sorted(ranks, key=lambda r: r or ()) == ranks
    assert match_rank("SMTP", "*.com", "com") is None
    assert match_rank("SMTP", "contoso.com", "mail.contoso.com") is None
    assert match_rank("X400", "c=US;a= ;p=Org;*", "c=US;a= ;p=Org;o=X") is not None


# ------------------------------------------------------------------------------------------ F5–F7 ties, BHs


def two_star(cost_a: int, cost_b: int, bhs: int = 1) -> str:
    servers = [{"name": f"s{i}", "routing_group": "G"} for i in range(1, 4)]
    conns = [
        {"name": n, "type": "smtp", "routing_group": "G", "cost": c, "smart_host": f"{n.lower()}.relay.example",
         "source_bridgeheads": [f"s{i}" for i in range(1, bhs + 1)], "address_spaces": [{"address": "*", "cost": c}]}
        for n, c in (("A", cost_a), ("B", cost_b))
    ]  # fmt: skip
    org = {"name": "O", "secret": "x"}
    groups = [{"name": "G", "master": "s1"}]
    return dump({"organization": org, "routing_groups": groups, "servers": servers, "connectors": conns})


def chosen(router: Router, org: OrgInfo, src: str = "s3") -> str | None:
    r = router.route(org, src, to="x@example.org")
    return r.address_space.connector.name if r.address_space else None


def test_f5_lower_cost_then_failover_then_failback() -> None:
    topo = parse_topology(two_star(1, 5))
    router = Router(topo)
    assert chosen(router, build_orginfo(topo)) == "A"
    assert chosen(router, build_orginfo(topo, ["A"])) == "B"
    assert chosen(router, build_orginfo(topo)) == "A"


def test_f6_equal_costs_fail_over_without_failback() -> None:
    topo = parse_topology(two_star(3, 3))
    first = {s.name: chosen(Router(topo), build_orginfo(topo), s.name) for s in topo.servers}
    again = {s.name: chosen(Router(topo), build_orginfo(topo), s.name) for s in topo.servers}
    assert first == again  # deterministic per server GUID (R53)
    router = Router(topo)
    initial = chosen(router, build_orginfo(topo))
    other = "B" if initial == "A" else "A"
    assert chosen(router, build_orginfo(topo, [str(initial)])) == other
    assert chosen(router, build_orginfo(topo)) == other  # sticky: no failback at equal cost (R55)


def test_equal_costs_do_not_fail_back_even_to_a_table_asked_before() -> None:
    """The router keeps its answers per table; an answer given before the sticky choice moved is not given again."""
    topo = parse_topology(two_star(3, 3))
    router = Router(topo)
    up = build_orginfo(topo)
    initial = chosen(router, up)
    other = "B" if initial == "A" else "A"
    assert chosen(router, build_orginfo(topo, [str(initial)])) == other
    assert chosen(router, up) == other  # the same table object as the first question (R55)


def test_f7_one_connector_three_bridgeheads() -> None:
    topo = parse_topology(two_star(1, 50, bhs=3))
    router = Router(topo)
    r = router.route(build_orginfo(topo, ["s1", "s2"]), "s3", to="x@example.org")
    assert r.address_space is not None and r.address_space.connector.name == "A"
    assert r.next_hop == "a.relay.example"  # s3 is the surviving bridgehead and sends itself
    hops = {
        Router(topo, seed=str(i)).route(build_orginfo(topo, ["s3"]), "s3", to="x@e.org").next_hop for i in range(30)
    }
    assert hops == {"s1", "s2"}  # random among the available bridgeheads only (R52)
    r = router.route(build_orginfo(topo, ["s1", "s2", "s3"]), "s3", to="x@example.org")
    assert r.status == RouteStatus.QUEUED  # every bridgehead of both connectors is down: both connectors are DOWN


def test_f7_any_local_server_connector_never_down() -> None:
    topo = parse_topology(dump(base()))
    org = build_orginfo(topo, ["b1"])
    r = Router(topo, compat_e2k=True).route(org, "b1", to_group="A")
    assert r.status == RouteStatus.ROUTE and r.connector is not None and r.connector.name == "B-A"


# ------------------------------------------------------------------------------------------ F8 hub and spoke


def test_f8_spoke_connector_is_pinned_and_mail_queues_at_the_bridgehead() -> None:
    topo = example("hub-spoke.toml")
    org = build_orginfo(topo, ["Hub-SpokeB"])
    r = Router(topo).route(org, "SPA-1", to_server="SPB-1")
    assert r.status == RouteStatus.ROUTE and r.path == ("Spoke-A", "Hub", "Spoke-B")
    assert Router(topo, compat_e2k=True).route(org, "SPA-1", to_server="SPB-1").status == RouteStatus.QUEUED
    seed_rule = Router(topo, leaf_rule="seed").route(org, "SPA-1", to_server="SPB-1")
    assert seed_rule.status == RouteStatus.ROUTE
    pinned = pinned_connectors(org)
    assert topo.connector("Hub-SpokeB").guid in pinned
    assert pinned == pinned_connectors(org, "seed")


def test_seed_leaf_rule_only_pins_leaf_groups() -> None:
    topo = example("seattle.toml")
    assert pinned_connectors(build_orginfo(topo)) == frozenset()
    topo2 = parse_topology(dump(base()))
    org = build_orginfo(topo2)
    both = {topo2.connector("A-B").guid, topo2.connector("B-A").guid}
    assert pinned_connectors(org) == both
    assert pinned_connectors(org, "seed") == both  # A is a leaf group: one connector in, one out
    data = base()
    data["connectors"].append(
        {"name": "A-Net", "type": "smtp", "routing_group": "A", "cost": 1, "source_bridgeheads": ["a1"],
         "dns_routed": True, "address_spaces": [{"address": "*.org", "cost": 1}]}
    )  # fmt: skip
    org3 = build_orginfo(parse_topology(dump(data)))
    assert pinned_connectors(org3) == both
    assert pinned_connectors(org3, "seed") == frozenset()  # neither group is a leaf any more


# ------------------------------------------------------------------------------------------ properties


def gid(i: int) -> str:
    return f"{i + 1:032x}"


def cid(i: int) -> str:
    return f"c{i:031x}"


def org_from(n: int, edges: list[tuple[int, int, int, bool]], spaces: list[tuple[int, str, int, bool]]) -> OrgInfo:
    """Groups 0..n-1 (one server each); RGC edges (src, dst, cost, up); SMTP spaces (home, pattern, cost, up)."""
    conns: dict[int, list[Connector]] = {i: [] for i in range(n)}

    def bh(up: bool) -> tuple[Bridgehead, ...]:
        state = BridgeheadState.CONN_AVAIL if up else BridgeheadState.CONN_NOT_AVAILABLE
        return (Bridgehead("b" * 32, state, "bh.example"),)

    for k, (a, b, cost, up) in enumerate(edges):
        state = ConnectorState.UP if up else ConnectorState.DOWN
        arrows = (AddressSpace("RG", gid(b), cost),)
        conns[a].append(Connector(guid=cid(k), type="RGC", address_spaces=arrows, bridgeheads=bh(up), state=state))
    for k, (home, pattern, cost, up) in enumerate(spaces, start=len(edges)):
        conns[home].append(Connector(guid=cid(k), type="SMTP", target_address="relay.example",
                                     address_spaces=(AddressSpace("SMTP", pattern, cost),), bridgeheads=bh(up),
                                     state=ConnectorState.UP if up else ConnectorState.DOWN))  # fmt: skip
    return OrgInfo(
        tuple(RoutingGroup(guid=gid(i), master=f"{i + 1:032x}", members=(Member(f"{i + 1:032x}"),),
                           connectors=tuple(conns[i])) for i in range(n))
    )  # fmt: skip


def nx_graph(n: int, edges: list[tuple[int, int, int, bool]], only_up: bool) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from(range(n))
    for k, (a, b, cost, up) in enumerate(edges):
        if up or not only_up:
            g.add_edge(a, b, key=k, weight=cost)
    return g


@st.composite
def random_org(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, int, bool]]]:
    n = draw(st.integers(2, 9))
    pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1])
    raw = draw(st.lists(st.tuples(pair, st.integers(1, 100), st.booleans()), max_size=3 * n))
    return n, [(a, b, c, up) for (a, b), c, up in raw]


@settings(max_examples=300, deadline=None)
@given(random_org(), st.data())
def test_route_cost_is_the_minimum_over_available_paths(graph: Any, data: st.DataObject) -> None:
    n, edges = graph
    src, dst = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
    org = org_from(n, edges, [])
    r = Router(compat_e2k=True).route(org, gid(src), to_group=gid(dst))
    g = nx_graph(n, edges, only_up=True)
    assert Router(compat_e2k=True).routes_from(org, gid(src)).route(gid(dst)).cost == r.cost
    if nx.has_path(g, src, dst):
        assert r.status == RouteStatus.ROUTE and r.cost == nx.dijkstra_path_length(g, src, dst)
        hops = list(zip(r.path, r.path[1:], strict=False))
        assert all(any(gid(a) == x and gid(b) == y and up for a, b, _, up in edges) for x, y in hops)
    else:
        full = nx_graph(n, edges, only_up=False)
        assert r.status == (RouteStatus.QUEUED if nx.has_path(full, src, dst) else RouteStatus.UNREACHABLE)


@settings(max_examples=200, deadline=None)
@given(random_org())
def test_pinned_means_no_alternate_path(graph: Any) -> None:
    n, edges = graph
    org = org_from(n, edges, [])
    pinned = pinned_connectors(org)
    g = nx_graph(n, edges, only_up=False)
    for k, (a, b, _, _) in enumerate(edges):
        g.remove_edge(a, b, key=k)
        assert (cid(k) in pinned) == (not nx.has_path(g, a, b))
        g.add_edge(a, b, key=k)


@settings(max_examples=200, deadline=None)
@given(random_org(), st.data())
def test_routes_never_use_a_down_connector_unless_pinned(graph: Any, data: st.DataObject) -> None:
    n, edges = graph
    org = org_from(n, edges, [])
    pinned = pinned_connectors(org)
    src, dst = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
    r = Router().route(org, gid(src), to_group=gid(dst))
    usable = [(a, b, c, up or cid(k) in pinned) for k, (a, b, c, up) in enumerate(edges)]
    g = nx_graph(n, usable, only_up=True)
    if not nx.has_path(g, src, dst):  # the exact outcome: queued while a (down) path exists, else unreachable
        queued = nx.has_path(nx_graph(n, edges, only_up=False), src, dst)
        assert r.status == (RouteStatus.QUEUED if queued else RouteStatus.UNREACHABLE)
        assert r.connector is None and r.cost is None
        return
    assert r.status == RouteStatus.ROUTE and r.cost == nx.dijkstra_path_length(g, src, dst)
    first = r.connector.guid if r.connector else None
    assert (first is None) == (src == dst)
    if first is not None:
        k = int(first[1:], 16)
        assert usable[k][3] and usable[k][0] == src


@settings(max_examples=200, deadline=None)
@given(random_org(), st.data())
def test_external_route_cost_and_specificity(graph: Any, data: st.DataObject) -> None:
    n, edges = graph
    patterns = ["*", "*.com", "*.contoso.com", "contoso.com", "*.net"]
    spaces = data.draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(patterns), st.integers(1, 50), st.booleans()),
                 min_size=1, max_size=6)
    )  # fmt: skip
    domain = data.draw(st.sampled_from(["mail.contoso.com", "contoso.com", "fabrikam.com", "x.net", "y.org"]))
    src = data.draw(st.integers(0, n - 1))
    org = org_from(n, edges, spaces)
    r = Router(compat_e2k=True).route(org, gid(src), to=f"u@{domain}")
    ranked = [(match_rank("SMTP", p, domain), k) for k, (_, p, _, _) in enumerate(spaces)]
    matching = [(rank, k) for rank, k in ranked if rank is not None]
    if not matching:
        assert r.status == RouteStatus.UNREACHABLE
        return
    top = max(rank for rank, _ in matching)
    level = [k for rank, k in matching if rank == top]
    g = nx_graph(n, edges, only_up=True)
    dist = nx.single_source_dijkstra_path_length(g, src)
    totals = [dist[spaces[k][0]] + spaces[k][2] for k in level if spaces[k][3] and spaces[k][0] in dist]
    if not totals:
        assert r.status == RouteStatus.QUEUED
        return
    assert r.status == RouteStatus.ROUTE and r.cost == min(totals)
    assert r.address_space is not None and r.address_space.address == spaces[level[0]][1]


@settings(max_examples=200, deadline=None)
@given(random_org(), st.data())
def test_a_more_specific_space_only_attracts_its_own_domains(graph: Any, data: st.DataObject) -> None:
    n, edges = graph
    home, src = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
    spaces = [(home, "*", 10, True)]
    contoso = data.draw(st.integers(0, n - 1))
    before = org_from(n, edges, spaces)
    after = org_from(n, edges, [*spaces, (contoso, "*.contoso.com", 1, True)])
    for domain in ("fabrikam.com", "contoso.com", "x.net"):
        a = Router(compat_e2k=True).route(before, gid(src), to=f"u@{domain}")
        b = Router(compat_e2k=True).route(after, gid(src), to=f"u@{domain}")
        assert a == b
    r = Router(compat_e2k=True).route(after, gid(src), to="u@mail.contoso.com")
    assert r.address_space is not None and r.address_space.address == "*.contoso.com"  # never "*" (R33)
    dist = nx.single_source_dijkstra_path_length(nx_graph(n, edges, only_up=True), src)
    if contoso in dist:
        assert r.status == RouteStatus.ROUTE and r.cost == dist[contoso] + 1
    else:
        assert r.status == RouteStatus.QUEUED and r.cost is None


def test_a_route_table_refuses_an_unknown_priority_as_a_single_lookup_does() -> None:
    topo = example("seattle.toml")
    with pytest.raises(RoutingError, match="priority must be high, normal or low, not 'urgent'"):
        Router(topo).routes_from(build_orginfo(topo), "SEA-S2", MessageClass(priority="urgent"))
