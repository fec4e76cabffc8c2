"""Routing benchmark: a generated organization of 1,000 routing groups, ~4,000 group connectors, 200 SMTP ones.

Measures, in one run and on the same graph:
  - networkx `single_source_dijkstra` (distances and paths to every group) - the reference;
  - `Router.routes_from` (all routes from one server: shortest-path tree + a Route with its path per group),
    with the per-table graph already built (warm), including building it from the OrgInfo (cold), and after a minor
    update (one section's connector state changed: the router patches its last graph, issue 13);
  - one uncached lookup of an external address (shortest-path tree reused, address-space match and choice);
  - one cached lookup (the same question again on the same table).
Prints a table and one JSON line. Targets: routes_from (warm) <= 0.5x networkx; cached lookup < 50 us; routes_from
after a one-section change <= 1x networkx.
Deterministic: the organization comes from a fixed seed (random.Random(7)); timings are best-of-N.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import networkx as nx

from linkstate.core.routing import Router
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

GROUPS = 1000
PAIRS = 2000  # each pair = two one-way connectors -> ~4,000 group connectors
SPACES = 200
TLDS = ["com", "net", "org", "edu", "de", "fr", "jp", "uk"]


def gid(i: int) -> str:
    return f"{i + 1:08x}" + "a" * 24


def sid(i: int) -> str:
    return f"{i + 1:08x}" + "b" * 24


def generate(seed: int = 7) -> tuple[OrgInfo, list[tuple[int, int, int]]]:
    rnd = random.Random(seed)
    edges: list[tuple[int, int, int]] = []
    for i in range(1, GROUPS):  # a random spanning tree keeps it connected
        j = rnd.randrange(i)
        c = rnd.randint(1, 100)
        edges += [(i, j, c), (j, i, c)]
    while len(edges) < 2 * PAIRS:
        a, b = rnd.randrange(GROUPS), rnd.randrange(GROUPS)
        if a != b:
            c = rnd.randint(1, 100)
            edges += [(a, b, c), (b, a, c)]
    conns: dict[int, list[Connector]] = {i: [] for i in range(GROUPS)}
    bh = (Bridgehead("c" * 32, BridgeheadState.CONN_AVAIL, "bh.example.com"),)
    for k, (a, b, c) in enumerate(edges):
        conns[a].append(Connector(guid=f"{k:08x}" + "d" * 24, type="RGC",
                                  address_spaces=(AddressSpace("RG", gid(b), c),), bridgeheads=bh,
                                  target_bridgeheads=("remote.example.com",)))  # fmt: skip
    for k in range(SPACES):
        home = rnd.randrange(GROUPS)
        pattern = "*" if k < 4 else f"*.d{k}.{rnd.choice(TLDS)}" if k % 3 else f"*.{rnd.choice(TLDS)}"
        conns[home].append(Connector(guid=f"{k:08x}" + "e" * 24, type="SMTP", target_address="relay.example.com",
                                     address_spaces=(AddressSpace("SMTP", pattern, rnd.randint(1, 50)),),
                                     bridgeheads=bh))  # fmt: skip
    groups = tuple(
        RoutingGroup(guid=gid(i), master=sid(i), members=(Member(sid(i)),), connectors=tuple(conns[i]))
        for i in range(GROUPS)
    )
    return OrgInfo(groups), edges


def one_state_changed(org: OrgInfo) -> OrgInfo:
    """A minor update: the first connector of group 0 goes DOWN (a new section object, as a merge stores it)."""
    rg = org.routing_groups[0]
    conns = (replace(rg.connectors[0], state=ConnectorState.DOWN), *rg.connectors[1:])
    return OrgInfo((replace(rg, connectors=conns), *org.routing_groups[1:]))


def best_of(fn: Callable[[], object], repeat: int, number: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def main() -> None:
    org, edges = generate()
    g = nx.DiGraph()
    for a, b, c in edges:
        if not g.has_edge(a, b) or g[a][b]["weight"] > c:
            g.add_edge(a, b, weight=c)
    src = 0
    t_nx = best_of(lambda: nx.single_source_dijkstra(g, src), repeat=30)

    router = Router(seed="bench")
    graph = router.graph_for(org)

    def warm() -> object:
        graph.spt.clear()
        return router.routes_from(org, sid(src))

    def cold() -> object:
        return Router().routes_from(org, sid(src))

    t_warm = best_of(warm, repeat=30)
    t_cold = best_of(cold, repeat=5)
    changed = one_state_changed(org)

    def after_change() -> object:
        patching = Router()
        patching.graph_for(org)  # the table before the change: its graph is the router's last
        t0 = time.perf_counter()
        patching.routes_from(changed, sid(src))
        return time.perf_counter() - t0

    t_change = min(after_change() for _ in range(15))  # type: ignore[type-var]
    fresh_costs = Router().routes_from(changed, sid(src))
    patched = Router()
    patched.graph_for(org)
    patched_costs = patched.routes_from(changed, sid(src))
    assert all(fresh_costs.route(gid(i)) == patched_costs.route(gid(i)) for i in range(GROUPS)), "patch differs"
    routes = router.routes_from(org, sid(src))
    dist = nx.single_source_dijkstra_path_length(g, src)
    assert all(routes.cost(gid(i)) == dist[i] for i in range(GROUPS)), "route costs differ from networkx"

    address = "user@host.d5.net"

    def uncached() -> object:
        router._results.clear()
        return router.route(org, sid(src), to=address)

    t_lookup = best_of(uncached, repeat=20, number=200)
    router.route(org, sid(src), to=address)
    t_cached = best_of(lambda: router.route(org, sid(src), to=address), repeat=20, number=2000)

    rows = [
        ("networkx single_source_dijkstra", t_nx, 1.0),
        ("routes_from, graph built (warm)", t_warm, t_warm / t_nx),
        ("routes_from incl. graph build (cold)", t_cold, t_cold / t_nx),
        ("routes_from after a one-section change", t_change, t_change / t_nx),
        ("one lookup, uncached", t_lookup, t_lookup / t_nx),
        ("one lookup, cached", t_cached, t_cached / t_nx),
    ]
    n_conn = sum(len(rg.connectors) for rg in org.routing_groups)
    print(f"organization: {GROUPS} routing groups, {len(edges)} group connectors, {SPACES} SMTP connectors "
          f"({n_conn} in all)")  # fmt: skip
    print(f"{'measure':<40} {'time':>12} {'x networkx':>11}")
    for name, t, ratio in rows:
        print(f"{name:<40} {t * 1e6:>9.1f} us {ratio:>10.3f}x")
    targets = {"warm_ratio_max": 0.5, "cached_lookup_us_max": 50.0, "change_ratio_max": 1.0}
    ok = (t_warm / t_nx <= targets["warm_ratio_max"] and t_cached * 1e6 < targets["cached_lookup_us_max"]
          and t_change / t_nx <= targets["change_ratio_max"])  # fmt: skip
    print(json.dumps({
        "benchmark": "routing", "groups": GROUPS, "group_connectors": len(edges), "smtp_connectors": SPACES,
        "networkx_us": round(t_nx * 1e6, 1), "routes_from_warm_us": round(t_warm * 1e6, 1),
        "routes_from_cold_us": round(t_cold * 1e6, 1), "lookup_uncached_us": round(t_lookup * 1e6, 2),
        "lookup_cached_us": round(t_cached * 1e6, 2), "warm_ratio": round(t_warm / t_nx, 3),
        "cold_ratio": round(t_cold / t_nx, 3), "routes_from_after_change_us": round(t_change * 1e6, 1),
        "change_ratio": round(t_change / t_nx, 3), "targets": targets, "targets_met": ok,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
