"""Route selection, the parts the seed fixtures do not reach: a route's JSON form and labels, a route table's costs,
and the heap Dijkstra that takes over from the bucket queue when a cost is above DIAL_MAX_COST — checked against
networkx and against the bucket queue itself (every cost scaled by one factor: the same paths, the costs scaled),
with and without connectors a message's size excludes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.directory import build_orginfo, tombstone
from linkstate.core.routing import DIAL_MAX_COST, ConnectorRef, MessageClass, Router, RouteStatus
from proto.model import OrgInfo
from tests.core.test_address_space_state import corp
from tests.core.test_routing import gid, nx_graph, org_from, random_org
from tests.core.topology_helpers import example

SCALE = DIAL_MAX_COST + 9  # any cost of 1 or more, scaled, is above DIAL_MAX_COST: the heap runs
BIG = MessageClass(size=100_000)  # over the 10 KB limit below


def test_an_external_route_in_json_names_its_connector_path_and_address_space() -> None:
    topo = example("seattle.toml")
    r = Router(topo).route(build_orginfo(topo), "SEA-S2", to="SMTP:someone@example.org")
    internet = topo.connector("Brussels-Internet")
    london = topo.connector("Seattle-London")
    assert r.to_json() == {
        "status": "route",
        "connector": {"guid": london.guid, "name": "Seattle-London"},
        "next_hop": "SEA-BH1",
        "cost": 30,
        "path": ["Seattle", "London", "Brussels"],
        "address_space": {"type": "SMTP", "address": "*", "cost": 10,
                          "connector": {"guid": internet.guid, "name": "Brussels-Internet"}},
    }  # fmt: skip


def test_an_internal_route_in_json_has_no_address_space_and_a_failed_lookup_no_connector() -> None:
    topo = example("seattle.toml")
    router = Router(topo)
    r = router.route(build_orginfo(topo), "SEA-S2", to_group="Seattle")
    assert r.to_json() == {"status": "route", "connector": None, "next_hop": None, "cost": 0, "path": ["Seattle"],
                           "address_space": None}  # fmt: skip
    lost = router.route(build_orginfo(topo), "SEA-S2", to="X400:c=US;a= ;p=Nowhere")
    assert lost.to_json() == {"status": "unreachable", "connector": None, "next_hop": None, "cost": None,
                              "path": [], "address_space": None}  # fmt: skip


def test_a_connector_is_labelled_by_its_name_else_its_guid() -> None:
    assert ConnectorRef("c" * 32, "Seattle-London").label() == "Seattle-London"
    assert ConnectorRef("c" * 32).label() == "c" * 32


def test_a_route_table_gives_each_groups_cost_and_none_when_unreachable() -> None:
    org = org_from(3, [(0, 1, 7, True), (1, 2, 5, False)], [])  # group 2 only over a down connector
    table = Router(compat_e2k=True).routes_from(org, gid(0))
    assert [table.cost(gid(i)) for i in range(3)] == [0, 7, None]


def scaled(n: int, edges: list[tuple[int, int, int, bool]], factor: int, limited: set[int]) -> OrgInfo:
    """The random organization with every cost times `factor`; the connectors in `limited` take messages of at
    most 10 KB."""
    org = org_from(n, [(a, b, c * factor, up) for a, b, c, up in edges], [])
    groups = []
    for rg in org.routing_groups:
        conns = tuple(replace(c, max_size=10) if int(c.guid[1:], 16) in limited else c for c in rg.connectors)
        groups.append(replace(rg, connectors=conns))
    return OrgInfo(tuple(groups))


@settings(max_examples=200, deadline=None)
@given(random_org(), st.data())
def test_above_the_bucket_bound_the_heap_finds_the_same_routes_scaled(graph: Any, data: st.DataObject) -> None:
    n, edges = graph
    src = data.draw(st.integers(0, n - 1))
    limited = set(data.draw(st.lists(st.integers(0, max(len(edges) - 1, 0)), max_size=3))) if edges else set()
    msg = data.draw(st.sampled_from([MessageClass(), BIG]))
    small = Router(compat_e2k=True).routes_from(scaled(n, edges, 1, limited), gid(src), msg)
    big = Router(compat_e2k=True).routes_from(scaled(n, edges, SCALE, limited), gid(src), msg)
    usable = [(a, b, c, up and not (msg is BIG and k in limited)) for k, (a, b, c, up) in enumerate(edges)]
    g = nx_graph(n, [(a, b, c * SCALE, up) for a, b, c, up in usable], only_up=True)
    for dst in range(n):
        one, other = small.route(gid(dst)), big.route(gid(dst))
        assert other.status == one.status and other.path == one.path
        if one.status is RouteStatus.ROUTE:
            assert one.cost is not None and other.cost == one.cost * SCALE == big.cost(gid(dst))
            assert other.cost == nx.dijkstra_path_length(g, src, dst)
        else:
            assert big.cost(gid(dst)) is None and not nx.has_path(g, src, dst)


def test_a_patched_table_keeps_its_tombstones() -> None:
    """Only London's states change between the two tables: the second graph is the first one patched, and Tokyo,
    tombstoned in both, stays unreachable in it."""
    topo = example("seattle.toml")
    tokyo = topo.routing_group("Tokyo").guid

    gone = tombstone(next(rg for rg in build_orginfo(topo).routing_groups if rg.guid == tokyo))

    def without_tokyo(down: list[str]) -> OrgInfo:
        org = build_orginfo(topo, down)
        return OrgInfo(tuple(gone if rg.guid == tokyo else rg for rg in org.routing_groups))

    router = Router(topo)
    assert router.route(without_tokyo([]), "SEA-S2", to_group="Tokyo").status is RouteStatus.UNREACHABLE
    later = without_tokyo(["LON-BH1"])
    assert router.route(later, "SEA-S2", to_group="Tokyo").status is RouteStatus.UNREACHABLE
    bare = Router()  # no directory: only the table knows Tokyo, as a tombstone
    sea = topo.server("SEA-S2").guid
    assert bare.route(without_tokyo([]), sea, to_group=tokyo).status is RouteStatus.UNREACHABLE
    assert bare.route(later, sea, to_group=tokyo).status is RouteStatus.UNREACHABLE
    direct = router.route(later, "SEA-S2", to_group="Brussels")
    assert (direct.cost, direct.path) == (40, ("Seattle", "Brussels"))


def test_between_equal_cost_paths_the_heap_keeps_the_first_found_as_the_bucket_queue_does() -> None:
    """A diamond: 0 -> 1 -> 3 and 0 -> 2 -> 3 cost the same; scaled above DIAL_MAX_COST (the heap) the path to 3 is
    the one the bucket queue finds."""
    edges = [(0, 1, 1, True), (0, 2, 1, True), (1, 3, 1, True), (2, 3, 1, True)]
    small = Router(compat_e2k=True).routes_from(scaled(4, edges, 1, set()), gid(0))
    big = Router(compat_e2k=True).routes_from(scaled(4, edges, SCALE, set()), gid(0))
    assert big.path_guids(gid(3)) == small.path_guids(gid(3)) and big.cost(gid(3)) == 2 * SCALE


def test_an_address_with_a_colon_is_matched_whole() -> None:
    topo = corp()
    r = Router(topo).route(build_orginfo(topo), "CORP-M", to="c=US;a=;p=Partner;o=Sales:East;s=Smith")
    assert r.status is RouteStatus.ROUTE and r.connector is not None and r.connector.name == "Partner-X400"


def test_a_patch_that_takes_the_last_usable_connector_down_routes_nowhere() -> None:
    router = Router(compat_e2k=True)
    up = org_from(2, [(0, 1, 5, True)], [])
    assert router.routes_from(up, gid(0)).cost(gid(1)) == 5
    down = org_from(2, [(0, 1, 5, False)], [])  # a state change only: the graph is patched, no usable edge left
    assert router.route(down, gid(0), to_group=gid(1)).status is RouteStatus.QUEUED


def test_a_patch_over_a_connector_without_address_spaces_changes_nothing_else() -> None:
    def org(up: bool) -> OrgInfo:
        base = org_from(2, [(0, 1, 5, up)], [])
        bare = replace(base.routing_groups[0].connectors[0], guid="e" * 32, address_spaces=(),
                       state=base.routing_groups[0].connectors[0].state)  # fmt: skip
        first = replace(base.routing_groups[0], connectors=(*base.routing_groups[0].connectors, bare))
        return OrgInfo((first, base.routing_groups[1]))

    router = Router(compat_e2k=True)
    assert router.route(org(True), gid(0), to_group=gid(1)).cost == 5
    assert router.route(org(False), gid(0), to_group=gid(1)).status is RouteStatus.QUEUED
