"""The generated organizations: line, ring, hub, grid, random; G routing groups x S servers.

Owns: names and loopback addresses of groups and servers, the group adjacency of each shape (deterministic in the
seed), the TOML-ready topology data (each group's first server is its master and the source/remote bridgehead of
every connector; connectors both ways between adjacent groups, costs 1-100 from the seed), and group distances.
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any

from linkstate.cli.cluster import dumps_toml
from linkstate.core.topology import Topology, parse_topology

SHAPES = ("line", "ring", "hub", "grid", "random")
PORT_691 = 16910
PORT_SMTP = 12525
SECRET = "bench-convergence-secret"


def group_name(i: int) -> str:
    return f"G{i:03d}"


def server_name(i: int, j: int) -> str:
    return f"{group_name(i)}-S{j + 1}"


def address(i: int, j: int) -> str:
    """A distinct loopback address per server: 127.<1 + i // 250>.<1 + i % 250>.<1 + j>."""
    return f"127.{1 + i // 250}.{1 + i % 250}.{1 + j}"


def group_edges(shape: str, groups: int, seed: int) -> list[tuple[int, int]]:
    """Undirected group adjacency (each becomes two connectors), deterministic in `seed`."""
    n = groups
    if n < 2:
        return []
    if shape == "line":
        return [(i, i + 1) for i in range(n - 1)]
    if shape == "ring":
        return [(i, (i + 1) % n) for i in range(n)] if n > 2 else [(0, 1)]
    if shape == "hub":
        return [(0, i) for i in range(1, n)]
    if shape == "grid":
        side = math.ceil(math.sqrt(n))
        edges = []
        for i in range(n):
            r, c = divmod(i, side)
            if c + 1 < side and i + 1 < n:
                edges.append((i, i + 1))
            if (r + 1) * side + c < n:
                edges.append((i, i + side))
        return edges
    if shape == "random":  # a random spanning tree plus n/2 extra links: average degree about 3
        rng = random.Random(f"edges:{seed}:{n}")
        links: set[tuple[int, int]] = set()
        for i in range(1, n):
            j = rng.randrange(i)
            links.add((j, i))
        tries = 0
        while len(links) < (n - 1) + n // 2 and tries < 20 * n:
            tries += 1
            a, b = sorted(rng.sample(range(n), 2))
            links.add((a, b))
        return sorted(links)
    raise ValueError(f"unknown shape {shape!r} (one of {', '.join(SHAPES)})")


def org_data(shape: str, groups: int, servers: int, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """The topology as TOML-ready data (see the module docstring for the rules)."""
    rng = random.Random(f"costs:{seed}:{shape}:{groups}")
    data: dict[str, Any] = {
        "organization": {"name": "Bench", "domain": "bench.example", "secret": SECRET},
        "settings": dict(settings),
        "routing_groups": [{"name": group_name(i), "master": server_name(i, 0)} for i in range(groups)],
        "servers": [
            {
                "name": server_name(i, j),
                "routing_group": group_name(i),
                "address": address(i, j),
                "port_691": PORT_691,
                "port_smtp": PORT_SMTP,
            }
            for i in range(groups)
            for j in range(servers)
        ],
        "connectors": [],
    }
    for a, b in group_edges(shape, groups, seed):
        for src, dst in ((a, b), (b, a)):
            data["connectors"].append(connector_data(src, dst, rng.randint(1, 100)))
    return data


def connector_data(src: int, dst: int, cost: int, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or f"{group_name(src)}-{group_name(dst)}",
        "routing_group": group_name(src),
        "connected_routing_group": group_name(dst),
        "cost": cost,
        "source_bridgeheads": [server_name(src, 0)],
        "remote_bridgeheads": [server_name(dst, 0)],
    }


def topology_of(data: dict[str, Any]) -> Topology:
    return parse_topology(dumps_toml(data), "<bench>")


def distances(data: dict[str, Any], origin: str) -> dict[str, int]:
    """Group hops from `origin` along connectors (the direction a change travels: source to remote)."""
    adj: dict[str, list[str]] = {}
    for c in data["connectors"]:
        adj.setdefault(c["routing_group"], []).append(c["connected_routing_group"])
    dist = {origin: 0}
    queue = deque([origin])
    while queue:
        g = queue.popleft()
        for h in adj.get(g, ()):
            if h not in dist:
                dist[h] = dist[g] + 1
                queue.append(h)
    return dist
