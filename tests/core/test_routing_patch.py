"""Routes after a minor update: the router patches its last graph when only states changed (issue 13); the patched
graph is the one a full build makes, and every answer is the same."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.routing import Router, _build_graph, _finish_graph, _Graph
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

GROUPS = 40


def gid(i: int) -> str:
    return f"{i + 1:08x}" + "a" * 24


def sid(i: int) -> str:
    return f"{i + 1:08x}" + "b" * 24


def organization(seed: int) -> OrgInfo:
    """Groups in a random connected graph (two bridgeheads per connector, some pinned leaves), SMTP spaces."""
    rnd = random.Random(seed)
    conns: dict[int, list[Connector]] = {i: [] for i in range(GROUPS)}
    pairs = [(i, rnd.randrange(i)) for i in range(1, GROUPS)]
    pairs += [(a, b) for a, b in (rnd.sample(range(GROUPS), 2) for _ in range(30))]
    for k, (a, b) in enumerate(pairs):
        for src, dst in ((a, b), (b, a)):
            bhs = tuple(Bridgehead(f"{k:08x}{src:04x}{j}" + "c" * 19, BridgeheadState.CONN_AVAIL, f"bh{j}.x")
                        for j in (1, 2))  # fmt: skip
            arrow = AddressSpace("RG", gid(dst), rnd.randint(1, 100))
            guid = f"{k:08x}{src:04x}" + "d" * 20
            conns[src].append(Connector(guid=guid, type="RGC", bridgeheads=bhs, address_spaces=(arrow,)))
    for k in range(12):
        home = rnd.randrange(GROUPS)
        space = AddressSpace("SMTP", f"*.d{k % 4}.com", rnd.randint(1, 50))
        out = (Bridgehead("f" * 32, BridgeheadState.CONN_AVAIL, "out.x"),)
        conns[home].append(Connector(guid=f"{k:08x}" + "e" * 24, type="SMTP", target_address="relay.x",
                                     address_spaces=(space,), bridgeheads=out))  # fmt: skip
    return OrgInfo(tuple(RoutingGroup(guid=gid(i), master=sid(i), members=(Member(sid(i)),),
                                      connectors=tuple(sorted(conns[i], key=lambda c: c.guid)))
                         for i in range(GROUPS)))  # fmt: skip


def flipped(org: OrgInfo, picks: list[tuple[int, int, int]]) -> OrgInfo:
    """Connector and bridgehead states changed in a few sections (what a minor update changes)."""
    groups = list(org.routing_groups)
    for g, c, how in picks:
        rg = groups[g % GROUPS]
        if not rg.connectors:
            continue
        conns = list(rg.connectors)
        conn = conns[c % len(conns)]
        if how == 0:
            conn = replace(conn, state=ConnectorState.DOWN if conn.state is ConnectorState.UP else ConnectorState.UP)
        else:
            states = (BridgeheadState.CONN_NOT_AVAILABLE, BridgeheadState.CONN_NOT_STARTED, BridgeheadState.CONN_AVAIL)
            conn = replace(conn, bridgeheads=tuple(replace(b, state=states[(how + i) % 3])
                                                   for i, b in enumerate(conn.bridgeheads)))  # fmt: skip
        conns[c % len(conns)] = conn
        groups[g % GROUPS] = replace(rg, connectors=tuple(conns))
    return OrgInfo(tuple(groups))


def shape(g: _Graph) -> tuple[object, ...]:
    spaces = [(s.type, s.address, s.cost, s.home, s.conn) for s in g.spaces_star + g.spaces_other]
    spaces += [(k, [(s.address, s.home, s.conn) for s in v]) for d in (g.spaces_smtp_exact, g.spaces_smtp_wild)
               for k, v in d.items()]  # fmt: skip
    return (g.groups, [(e.index, e.src, e.dst, e.cost, e.conn) for e in g.edges], g.adjacency, g.reverse,
            g.usable, g.edge_ok, g.max_cost, [e.index for e in g.restricted], spaces,
            [[e.index for e in s] for s in g.structure], [[e.index for e in s] for s in g.inbound])  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5), st.lists(st.tuples(st.integers(0, 99), st.integers(0, 9), st.integers(0, 3)), min_size=1,
                                   max_size=6), st.sampled_from(["general", "seed"]))  # fmt: skip
def test_a_patched_graph_is_the_built_one_and_routes_the_same(seed: int, picks: list[tuple[int, int, int]],
                                                              leaf_rule: str) -> None:  # fmt: skip
    org = organization(seed)
    after = flipped(org, picks)
    router = Router(seed="s", leaf_rule=leaf_rule)
    router.graph_for(org)
    patched = router.graph_for(after)
    built = _build_graph(after)
    _finish_graph(built, leaf_rule, False)
    assert shape(patched) == shape(built)
    fresh = Router(seed="s", leaf_rule=leaf_rule)
    for src in range(0, GROUPS, 7):
        ours, theirs = router.routes_from(after, sid(src)), fresh.routes_from(after, sid(src))
        assert [ours.route(gid(i)) for i in range(GROUPS)] == [theirs.route(gid(i)) for i in range(GROUPS)]
        for k in range(4):
            assert router.route(after, sid(src), to=f"u@h.d{k}.com") == fresh.route(after, sid(src), to=f"u@h.d{k}.com")


def test_structural_changes_are_built_again() -> None:
    org = organization(1)
    router = Router(seed="s")
    first = router.graph_for(org)
    rg = org.routing_groups[3]
    grown = OrgInfo((*org.routing_groups[:3], replace(rg, connectors=rg.connectors[1:]), *org.routing_groups[4:]))
    again = router.graph_for(grown)
    assert len(again.edges) == len(first.edges) - 1  # a connector removed: the graph was built, not patched
    moved = replace(rg, members=(Member("9" * 32),))
    assert router.graph_for(OrgInfo((*org.routing_groups[:3], moved, *org.routing_groups[4:]))).server_group[
        "9" * 32] == 3  # fmt: skip


def triangle(down: set[tuple[int, int]], costly: int = 5000) -> OrgInfo:
    """Three groups, a connector each way between every two (each with one source bridgehead, so a DOWN one is
    unusable and nothing is pinned); 0 -> 1 costs `costly`, the others 10 + 10 * (from + to)."""
    bh = (Bridgehead("f" * 32, BridgeheadState.CONN_AVAIL, "bh.x"),)
    groups = []
    for i in range(3):
        cost = {j: costly if (i, j) == (0, 1) else 10 + 10 * (i + j) for j in range(3)}
        conns = [Connector(guid=f"{i}{j}" + "d" * 30, type="RGC", bridgeheads=bh,
                           address_spaces=(AddressSpace("RG", gid(j), cost[j]),),
                           state=ConnectorState.DOWN if (i, j) in down else ConnectorState.UP)
                 for j in range(3) if j != i]  # fmt: skip
        groups.append(RoutingGroup(guid=gid(i), master=sid(i), members=(Member(sid(i)),), connectors=tuple(conns)))
    return OrgInfo(tuple(groups))


EVERY = {(i, j) for i in range(3) for j in range(3) if i != j}


@pytest.mark.parametrize(("before", "after", "highest"), [
    (set(), {(0, 1)}, 40),  # the costliest usable connector goes down: the highest cost is looked for again
    ({(0, 1)}, set(), 5000),  # a connector costlier than every usable one comes up
    ({(0, 1)}, {(0, 1), (1, 0)}, 40),  # a costly connector that stays down in a patched section counts for nothing
    (EVERY - {(0, 1)}, EVERY, 0),  # the last usable connector goes down
    ({(0, 1), (1, 2), (2, 1)}, {(0, 1), (1, 2)}, 40),  # one comes up below the highest
])  # fmt: skip
def test_a_patched_graph_knows_its_highest_usable_cost(before: set[tuple[int, int]], after: set[tuple[int, int]],
                                                       highest: int) -> None:
    """The highest usable cost decides between the bucket queue and the heap: understated, the bucket queue walks
    every distance up to a cost it never expected (a cost of 2^25 took 1.4 s instead of a millisecond)."""
    router = Router(compat_e2k=True)
    old = router.graph_for(triangle(before))
    patched = router.graph_for(triangle(after))
    assert patched.groups is old.groups  # patched, not built again
    built = Router(compat_e2k=True).graph_for(triangle(after))
    assert patched.max_cost == built.max_cost == highest
