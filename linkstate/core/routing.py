"""Route selection over the link-state table (requirements R29–R55, G22, G23, G42, G44, G46).

Owns: `Router` (lookups with a per-table graph cache, a result cache and sticky tie choices), `Route` and its
`RouteStatus`, `RouteTable`, `MessageClass`, address-space matching (`match_rank`) and the no-alternate-path rule
(`pinned_connectors`).

Algorithm for a lookup (G44):
  1. candidates: the connectors whose address space matches the destination (external), or the group graph
     (internal: a server or a routing group);
  2. drop connectors the sender may not use: scope (R13), delivery restrictions (R14/R34, only when
     `check_connector_restrictions` is on; a lookup without a sender skips them), content (size, priority,
     R16) and, for a public-folder referral, `no_pf_referrals` (G46);
  3. keep the most specific matching address space only (R30, R33, R35; G23 ranking) - never falling back
     to a less specific one: if none of its connectors is usable the result is `queued`;
  4. a connector is unusable when its STATE is DOWN, or it has named bridgeheads all CONN_NOT_AVAILABLE /
     CONN_NOT_STARTED (R46, R47) - except "any local server" RGCs (empty BH list), DNS-routed SMTP (type
     SMTP, no RG arrow, empty target address), EDK connectors and pinned group-to-group connectors (G42:
     no other directed path between its groups; with `leaf_rule="seed"` only for leaf-node groups, R28;
     never with `compat_e2k`), which are never down;
  5. lowest total cost: Dijkstra over the usable group-to-group connectors; total = path cost to the
     connector's home group + the address-space cost (G22);
  6. ties: equal-cost connectors -> hash(server GUID) mod n over the candidates sorted by connector GUID
     (R53), sticky per (server, destination) so there is no failback between equal costs (R55) but a
     cheaper connector wins again (R54); bridgeheads inside a connector -> a deterministic pseudo-random
     choice among the available ones (R52) from blake2b(seed, server, connector, destination, message key).
Status (RouteStatus): `route`; `queued` (a matching route exists but none of the most specific candidates is usable);
`unreachable` (nothing matches at all, or the destination group is tombstoned / not connected).
Invariants: a Router never mutates a table; graphs are rebuilt only for a new table (by digest for a
LinkStateDB, by identity for an OrgInfo); results depend only on (table, inputs, seed, sticky history), and the
answers it keeps per table are dropped whenever a sticky choice moves (a table asked again must not fail back).
May import: the standard library, proto, linkstate.core (no random, no time).
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from linkstate.core.lsdb import LinkStateDB
from linkstate.core.topology import LEAF_RULES, Topology
from proto.model import BridgeheadState, Connector, ConnectorState, Guid, OrgInfo, RoutingGroup


class RouteStatus(enum.StrEnum):
    """A lookup's outcome (module docstring, "Status")."""

    ROUTE = "route"
    QUEUED = "queued"
    UNREACHABLE = "unreachable"

_AVAIL = BridgeheadState.CONN_AVAIL
PRIORITY_BITS = {"high": 0x1, "normal": 0x2, "low": 0x4}
INF = 1 << 62  # "no path" distance (an int, so distances stay ints)
DIAL_MAX_COST = 1000  # bucket-queue Dijkstra when every usable cost is at most this


class RoutingError(ValueError):
    """A lookup that cannot be asked (unknown server or group, malformed destination, unknown priority) or a leaf
    rule that is not one of LEAF_RULES (Router, pinned_connectors, connector_pinned, PinnedIndex)."""


@dataclass(frozen=True, slots=True)
class MessageClass:
    """What about a message routing may look at (G44). `size` in bytes; `sender` a DN."""

    sender: str | None = None
    size: int | None = None
    priority: str = "normal"
    referral: bool = False


@dataclass(frozen=True, slots=True)
class ConnectorRef:
    guid: Guid
    name: str | None = None

    def label(self) -> str:
        return self.name or self.guid

    def to_json(self) -> dict[str, Any]:
        return {"guid": self.guid, "name": self.name}


@dataclass(frozen=True, slots=True)
class SpaceRef:
    """The address space a route matched, and the connector that owns it."""

    type: str
    address: str
    cost: int
    connector: ConnectorRef

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "address": self.address, "cost": self.cost, "connector": self.connector.to_json()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """A lookup's answer (module docstring). `connector` is the one leaving the sender's group; the routing groups
    the message crosses, from the sender's, are `path` (display names: the directory's, else the GUID) and
    `path_guids` (the same groups by GUID)."""

    status: RouteStatus
    connector: ConnectorRef | None = None
    next_hop: str | None = None
    cost: int | None = None
    path: tuple[str, ...] = ()
    path_guids: tuple[Guid, ...] = ()
    address_space: SpaceRef | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "connector": self.connector.to_json() if self.connector else None,
            "next_hop": self.next_hop,
            "cost": self.cost,
            "path": list(self.path),
            "address_space": self.address_space.to_json() if self.address_space else None,
        }


# ----------------------------------------------------------------------------------------- address spaces


def _smtp_rank(pattern: str, domain: str) -> tuple[int, int, int] | None:
    """G23 rank of an SMTP pattern for a domain (higher = more specific), None when it does not match."""
    if pattern == "*":
        return (0, 0, 0)
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return (1, suffix.count("."), len(suffix)) if domain.endswith(suffix) else None
    return (2, pattern.count(".") + 1, len(pattern)) if pattern == domain else None


def _glob_rank(pattern: str, address: str) -> tuple[int, int, int] | None:
    """X.400 / X.500 patterns: `*` matches anything; more literal text is more specific."""
    if not fnmatch.fnmatchcase(address.lower(), pattern.lower()):
        return None
    literal = len(pattern.replace("*", ""))
    return (2 if "*" not in pattern else 1, literal, len(pattern))


def match_rank(space_type: str, pattern: str, address: str) -> tuple[int, int, int] | None:
    """How specifically `pattern` (of `space_type`) matches a destination address; None = no match."""
    if space_type == "SMTP":
        return _smtp_rank(pattern.lower(), address.lower())
    return _glob_rank(pattern, address)


def parse_destination(to: str) -> tuple[str, str]:
    """(address type, address) of an external destination: `user@domain` or a domain -> SMTP domain."""
    to = to.strip()
    if not to:
        raise RoutingError("empty destination")
    if to.startswith("/"):
        return "X500", to
    if "=" in to and ";" in to:
        return "X400", to
    domain = to.rsplit("@", 1)[-1].strip().rstrip(".").lower()
    if not domain or any(not label for label in domain.split(".")) or " " in domain:
        raise RoutingError(f"not an address or domain: {to!r}")
    return "SMTP", domain


# ----------------------------------------------------------------------------------------- the graph


@dataclass(slots=True)
class _Edge:
    """A group-to-group connector."""

    index: int
    src: int
    dst: int
    cost: int
    conn: Connector


@dataclass(slots=True)
class _Space:
    """One address-space arrow of an external connector."""

    type: str
    address: str
    cost: int
    home: int
    conn: Connector


@dataclass(slots=True)
class _Graph:
    """Everything a lookup needs from one table, built once per table."""

    groups: list[Guid] = field(default_factory=list)
    index: dict[Guid, int] = field(default_factory=dict)
    tombstoned: set[Guid] = field(default_factory=set)
    server_group: dict[Guid, int] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)
    structure: list[list[_Edge]] = field(default_factory=list)  # every edge, whatever its state
    adjacency: list[list[tuple[int, int, int]]] = field(default_factory=list)  # usable: (dst, cost, edge)
    reverse: list[list[tuple[int, int, int]]] = field(default_factory=list)  # usable: (src, cost, edge)
    inbound: list[list[_Edge]] = field(default_factory=list)  # every edge into a group
    external: list[bool] = field(default_factory=list)  # per group: it homes an address space (R28: no leaf)
    restricted: list[_Edge] = field(default_factory=list)
    spaces_smtp_exact: dict[str, list[_Space]] = field(default_factory=dict)
    spaces_smtp_wild: dict[str, list[_Space]] = field(default_factory=dict)
    spaces_star: list[_Space] = field(default_factory=list)
    spaces_other: list[_Space] = field(default_factory=list)
    max_cost: int = 0  # the highest usable group-connector cost
    usable: dict[Guid, bool] = field(default_factory=dict)
    edge_ok: list[bool] = field(default_factory=list)  # each edge usable (by index)
    spt: dict[tuple[int, frozenset[int]], _Tree] = field(default_factory=dict)


@dataclass(slots=True)
class _Tree:
    """A shortest-path tree from one group for one set of excluded (restricted) edges."""

    dist: list[int]
    pred: list[int]  # edge index into each group, -1 for the source and unreached groups
    excluded: frozenset[int]
    order: list[int]  # groups in the order they were settled (parents before children)


def _bh_down(c: Connector) -> bool:
    """R46/R47: named bridgeheads, none CONN_AVAIL."""
    if not c.bridgeheads:
        return False
    return all(b.state is not _AVAIL for b in c.bridgeheads)


def _never_down(c: Connector, is_rg: bool) -> bool:
    if c.type == "EDK":
        return True
    if c.type == "RGC" and not c.bridgeheads:
        return True
    return c.type == "SMTP" and not is_rg and not c.target_address


def _is_leaf(graph: _Graph, g: int) -> bool:
    """R28: at most one inbound and one outbound group connector, opposite ways, nothing else."""
    out, ins = graph.structure[g], graph.inbound[g]
    if graph.external[g] or len(out) > 1 or len(ins) > 1 or not (out or ins):
        return False
    return not (out and ins) or out[0].dst == ins[0].src


def _has_alternate(graph: _Graph, edge: _Edge) -> bool:
    """Whether edge.dst is reachable from edge.src without `edge` (early-exit BFS over the structure)."""
    seen = {edge.src}
    queue = deque([edge.src])
    while queue:
        node = queue.popleft()
        for e in graph.structure[node]:
            if e.index == edge.index or e.dst in seen:
                continue
            if e.dst == edge.dst:
                return True
            seen.add(e.dst)
            queue.append(e.dst)
    return False


def _check_leaf_rule(leaf_rule: str) -> str:
    """A leaf rule named anywhere is one of LEAF_RULES (a misspelt one would silently act as "general")."""
    if leaf_rule not in LEAF_RULES:
        raise RoutingError(f"unknown leaf rule {leaf_rule!r} (one of: {', '.join(LEAF_RULES)})")
    return leaf_rule


def pinned_connectors(org: OrgInfo, leaf_rule: str = "general") -> frozenset[Guid]:
    """Group-to-group connectors with no alternate directed path between their groups (G42)."""
    _check_leaf_rule(leaf_rule)
    graph = _build_graph(org)
    return frozenset(e.conn.guid for e in graph.edges if _pinned(graph, e, leaf_rule))


def connector_pinned(org: OrgInfo, connector: Guid, leaf_rule: str = "general") -> bool:
    """`connector in pinned_connectors(org, leaf_rule)`, searching only from that connector's own edges."""
    return PinnedIndex(org).pinned(connector, leaf_rule)


class PinnedIndex:
    """`connector_pinned` for one table, asked many times: the group graph is built once, each answer kept (a
    table's state keeps one, shared by every node that holds the table: linkstate.core.lsdb.TableState.derived)."""

    def __init__(self, org: OrgInfo) -> None:
        self.org = org
        self._graph: _Graph | None = None
        self._known: dict[tuple[Guid, str], bool] = {}

    def pinned(self, connector: Guid, leaf_rule: str = "general") -> bool:
        key = (connector, leaf_rule)
        known = self._known.get(key)
        if known is None:
            _check_leaf_rule(leaf_rule)
            if self._graph is None:
                self._graph = _build_graph(self.org)
            graph = self._graph
            edges = (e for e in graph.edges if e.conn.guid == connector)
            known = self._known[key] = any(_pinned(graph, e, leaf_rule) for e in edges)
        return known


def _pinned(graph: _Graph, edge: _Edge, leaf_rule: str) -> bool:
    if leaf_rule == "seed" and not (_is_leaf(graph, edge.src) or _is_leaf(graph, edge.dst)):
        return False
    return not _has_alternate(graph, edge)


def _all_spaces(graph: _Graph) -> Iterator[_Space]:
    yield from graph.spaces_star
    yield from graph.spaces_other
    for d in (graph.spaces_smtp_exact, graph.spaces_smtp_wild):
        for items in d.values():
            yield from items


def _add_group_connectors(graph: _Graph, gi: int, conns: Iterable[Connector]) -> None:
    for c in conns:
        rg_arrows = [a for a in c.address_spaces if a.type == "RG"]
        for a in rg_arrows:
            if a.address in graph.index and a.address not in graph.tombstoned:
                edge = _Edge(len(graph.edges), gi, graph.index[a.address], a.cost, c)
                graph.edges.append(edge)
                graph.structure[gi].append(edge)
        if not rg_arrows:
            for a in c.address_spaces:
                _index_space(graph, _Space(a.type.upper(), a.address, a.cost, gi, c))


def _index_space(graph: _Graph, s: _Space) -> None:
    if s.type != "SMTP":
        graph.spaces_other.append(s)
        return
    pattern = s.address.lower()
    if pattern == "*":
        graph.spaces_star.append(s)
    elif pattern.startswith("*."):
        graph.spaces_smtp_wild.setdefault(pattern[2:], []).append(s)
    else:
        graph.spaces_smtp_exact.setdefault(pattern, []).append(s)


def _build_graph(org: OrgInfo) -> _Graph:
    graph = _Graph()
    for rg in sorted(org.routing_groups, key=lambda r: r.guid):
        if rg.is_tombstone:
            graph.tombstoned.add(rg.guid)
            continue
        graph.index[rg.guid] = len(graph.groups)
        graph.groups.append(rg.guid)
        graph.structure.append([])
    for rg in sorted(org.routing_groups, key=lambda r: r.guid):
        gi = graph.index.get(rg.guid)
        if gi is None:
            continue
        for m in rg.members:
            graph.server_group.setdefault(m.guid, gi)
        _add_group_connectors(graph, gi, sorted(rg.connectors, key=lambda c: c.guid))
    graph.inbound = [[] for _ in graph.groups]
    graph.external = [False] * len(graph.groups)
    for e in graph.edges:
        graph.inbound[e.dst].append(e)
    for s in _all_spaces(graph):
        graph.external[s.home] = True
    return graph


def _finish_graph(graph: _Graph, leaf_rule: str, compat_e2k: bool) -> None:
    """Decide usability (pinning only looked at for otherwise-down edges) and build the usable adjacency."""
    n = len(graph.groups)
    graph.adjacency, graph.reverse = [[] for _ in range(n)], [[] for _ in range(n)]
    graph.edge_ok = [False] * len(graph.edges)
    for s in _all_spaces(graph):
        graph.usable[s.conn.guid] = _usable(s.conn, False)
    for e in graph.edges:
        ok = _usable(e.conn, True) or (not compat_e2k and _pinned(graph, e, leaf_rule))
        graph.usable[e.conn.guid] = graph.usable.get(e.conn.guid, False) or ok
        graph.edge_ok[e.index] = ok
        if ok:
            graph.max_cost = max(graph.max_cost, e.cost)
            graph.adjacency[e.src].append((e.dst, e.cost, e.index))
            graph.reverse[e.dst].append((e.src, e.cost, e.index))
        if _has_restrictions(e.conn):
            graph.restricted.append(e)


def _stateless(c: Connector) -> Connector:
    """A connector as the group graph's structure sees it: its state and its bridgeheads' states set aside."""
    return replace(c, state=ConnectorState.UP, bridgeheads=tuple(replace(b, state=_AVAIL) for b in c.bridgeheads))


def _state_only(old: RoutingGroup, new: RoutingGroup) -> bool:
    """Whether a section changed only in what decides usability (states; members' flags, versions, addresses):
    its graph can be patched instead of built again."""
    if old.guid != new.guid or old.is_tombstone or new.is_tombstone or len(old.connectors) != len(new.connectors):
        return False
    if [m.guid for m in old.members] != [m.guid for m in new.members]:
        return False
    by_guid = {c.guid: c for c in old.connectors}
    return all(c.guid in by_guid and _stateless(by_guid[c.guid]) == _stateless(c) for c in new.connectors)


def _patch_graph(old: _Graph, changed: list[RoutingGroup], leaf_rule: str, compat_e2k: bool) -> _Graph:
    """The graph of a table that differs from `old`'s only by state-only changes to `changed` (`_state_only`):
    `old`'s structure shared, the changed groups' edges and spaces rebuilt with their new connectors, usability and
    adjacency recomputed for them alone. The same graph `_build_graph` + `_finish_graph` would make."""
    conns = {c.guid: c for rg in changed for c in rg.connectors}
    touched = {old.index[rg.guid] for rg in changed}
    g = _Graph(groups=old.groups, index=old.index, tombstoned=old.tombstoned, server_group=old.server_group,
               external=old.external)  # fmt: skip
    edges, structure, inbound = list(old.edges), list(old.structure), list(old.inbound)
    dsts: set[int] = set()
    for gi in touched:
        fresh = []
        for e in old.structure[gi]:
            edges[e.index] = ne = _Edge(e.index, e.src, e.dst, e.cost, conns[e.conn.guid])
            fresh.append(ne)
            dsts.add(e.dst)
        structure[gi] = fresh
    for d in dsts:
        inbound[d] = [edges[e.index] for e in old.inbound[d]]
    g.edges, g.structure, g.inbound = edges, structure, inbound

    def space(s: _Space) -> _Space:
        return _Space(s.type, s.address, s.cost, s.home, conns[s.conn.guid]) if s.home in touched else s

    g.spaces_star, g.spaces_other = [space(s) for s in old.spaces_star], [space(s) for s in old.spaces_other]
    g.spaces_smtp_exact = {k: [space(s) for s in v] for k, v in old.spaces_smtp_exact.items()}
    g.spaces_smtp_wild = {k: [space(s) for s in v] for k, v in old.spaces_smtp_wild.items()}
    g.restricted = [edges[e.index] for e in old.restricted]
    g.usable, g.edge_ok = dict(old.usable), list(old.edge_ok)
    for guid in conns:
        g.usable.pop(guid, None)
    for s in _all_spaces(g):
        if s.home in touched:
            g.usable[s.conn.guid] = _usable(s.conn, False)
    adjacency, reverse = list(old.adjacency), list(old.reverse)
    g.max_cost, lost_max = old.max_cost, False
    for gi in touched:
        for e in structure[gi]:
            ok = _usable(e.conn, True) or (not compat_e2k and _pinned(g, e, leaf_rule))
            g.usable[e.conn.guid] = g.usable.get(e.conn.guid, False) or ok
            lost_max = lost_max or (old.edge_ok[e.index] and not ok and e.cost == old.max_cost)
            g.max_cost = max(g.max_cost, e.cost) if ok else g.max_cost
            g.edge_ok[e.index] = ok
        adjacency[gi] = [(e.dst, e.cost, e.index) for e in structure[gi] if g.edge_ok[e.index]]
    for d in dsts:
        reverse[d] = [(e.src, e.cost, e.index) for e in inbound[d] if g.edge_ok[e.index]]
    g.adjacency, g.reverse = adjacency, reverse
    if lost_max:  # the most costly usable edge went down: look again
        g.max_cost = max((e.cost for e, ok in zip(edges, g.edge_ok, strict=True) if ok), default=0)
    return g


PATCH_MAX = 64  # changed sections a graph is patched for; more: built again


def _changed_sections(old: OrgInfo, new: OrgInfo) -> list[tuple[RoutingGroup, RoutingGroup]] | None:
    """(old, new) for each section of `new` that is not `old`'s very object, when both hold the same groups in the
    same order (None otherwise, or when there are more than PATCH_MAX)."""
    a, b = old.routing_groups, new.routing_groups
    if len(a) != len(b):
        return None
    changed: list[tuple[RoutingGroup, RoutingGroup]] = []
    for x, y in zip(a, b, strict=True):
        if x is not y:
            if x.guid != y.guid or len(changed) >= PATCH_MAX:
                return None
            changed.append((x, y))
    return changed


def _usable(c: Connector, is_rg: bool) -> bool:
    if _never_down(c, is_rg):
        return True
    return c.state is ConnectorState.UP and not _bh_down(c)


def _has_restrictions(c: Connector) -> bool:
    return bool(
        c.priority or c.max_size is not None or c.reject or c.accept or not c.accept_by_default or c.no_pf_referrals
    )


def _dijkstra(graph: _Graph, src: int, excluded: frozenset[int]) -> _Tree:
    """Shortest-path tree over the usable group connectors, minus `excluded` edges (restricted for a class)."""
    if graph.max_cost <= DIAL_MAX_COST:
        return _dial(graph, src, excluded)
    return _heap_dijkstra(graph, src, excluded)


def _dial(graph: _Graph, src: int, excluded: frozenset[int]) -> _Tree:
    """Dijkstra with a bucket queue (Dial): integer costs bounded by DIAL_MAX_COST, so buckets beat a heap."""
    n = len(graph.groups)
    dist, pred, order = [INF] * n, [-1] * n, []
    dist[src] = 0
    adjacency = graph.adjacency
    buckets: dict[int, list[int]] = {0: [src]}
    cur, pending = 0, 1
    while pending:
        bucket = buckets.pop(cur, None)
        if bucket is None:
            cur += 1
            continue
        for u in bucket:
            pending -= 1
            if dist[u] != cur:
                continue  # a stale entry: u was settled in an earlier bucket
            order.append(u)
            for v, w, ei in adjacency[u]:
                nd = cur + w
                if nd < dist[v] and (not excluded or ei not in excluded):
                    dist[v] = nd
                    pred[v] = ei
                    buckets.setdefault(nd, []).append(v)
                    pending += 1
    return _Tree(dist, pred, excluded, order)


def _heap_dijkstra(graph: _Graph, src: int, excluded: frozenset[int]) -> _Tree:
    """Dijkstra with a binary heap, for costs above DIAL_MAX_COST. Groups at one distance are settled in the order
    they were last improved to it (the push count breaks ties), as the bucket queue settles them, so a group's parent
    is the first settled group that reaches it at its distance in both: the same tree, equal-cost paths included,
    whichever runs."""
    n = len(graph.groups)
    dist, pred, order, done = [INF] * n, [-1] * n, [], [False] * n
    dist[src] = 0
    pushed = itertools.count()
    heap: list[tuple[int, int, int]] = [(0, next(pushed), src)]
    adjacency = graph.adjacency
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        d, _, u = pop(heap)
        if done[u]:
            continue
        done[u] = True
        order.append(u)
        for v, w, ei in adjacency[u]:
            nd = d + w
            if nd < dist[v] and (not excluded or ei not in excluded):
                dist[v] = nd
                pred[v] = ei
                push(heap, (nd, next(pushed), v))
    return _Tree(dist, pred, excluded, order)


def _reachable(graph: _Graph, src: int) -> set[int]:
    seen = {src}
    queue = deque([src])
    while queue:
        for e in graph.structure[queue.popleft()]:
            if e.dst not in seen:
                seen.add(e.dst)
                queue.append(e.dst)
    return seen


# ----------------------------------------------------------------------------------------- choices


def _hash_int(*parts: str) -> int:
    h = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def _check_priority(msg: MessageClass) -> None:
    if msg.priority not in PRIORITY_BITS:
        raise RoutingError(f"priority must be high, normal or low, not {msg.priority!r}")


def _tie_break(server_guid: Guid, candidates: list[Guid]) -> Guid:
    """R53: hash(server GUID) mod n over the candidates sorted by connector GUID."""
    ordered = sorted(candidates)
    return ordered[_hash_int(server_guid) % len(ordered)]


# ----------------------------------------------------------------------------------------- the router


@dataclass(frozen=True, slots=True)
class _Ask:
    """A normalized lookup: source server/group, destination kind and key, message class."""

    server: Guid
    group: int
    kind: str  # "address" | "group"
    dest: str  # the address, or the destination group's GUID
    dest_server: str | None
    msg: MessageClass
    message_key: str


@dataclass(slots=True)
class _Cand:
    guid: Guid
    total: int
    home: int
    space: _Space | None  # None for an internal destination
    last_edge: int  # for an internal destination: the edge into the target group


class RouteTable:
    """All routes from one group, computed eagerly (costs, first connectors, paths as group indexes);
    `route(guid)` wraps one as a `Route` (its path by name and by GUID). Paths are built along the settle order,
    each from its parent's: the shortest-path tree itself. The choice a message gets between equal-cost connectors
    into its destination group (R53's hash, sticky by R55) is `Router.route`'s, so at equal cost the two may name
    different connectors; costs and statuses are the same. `conn_ref` and `group_name` are the Router's labels."""

    def __init__(self, graph: _Graph, src: int, tree: _Tree, paths: list[tuple[int, ...] | None],
                 first: list[int], conn_ref: Callable[[Connector], ConnectorRef],
                 group_name: Callable[[Guid], str]) -> None:  # fmt: skip
        self._graph, self._src, self._tree = graph, src, tree
        self._paths, self._first, self._conn_ref, self._group_name = paths, first, conn_ref, group_name

    @classmethod
    def build(cls, graph: _Graph, src: int, tree: _Tree, conn_ref: Callable[[Connector], ConnectorRef],
              group_name: Callable[[Guid], str]) -> RouteTable:  # fmt: skip
        n = len(graph.groups)
        paths: list[tuple[int, ...] | None] = [None] * n
        first = [-1] * n
        paths[src] = (src,)
        edges, pred = graph.edges, tree.pred
        for v in tree.order[1:]:
            ei = pred[v]
            parent = edges[ei].src
            paths[v] = paths[parent] + (v,)  # type: ignore[operator]
            first[v] = ei if parent == src else first[parent]
        return cls(graph, src, tree, paths, first, conn_ref, group_name)

    def __len__(self) -> int:
        return len(self._graph.groups)

    def cost(self, guid: Guid) -> int | None:
        d = self._tree.dist[self._graph.index[guid]]
        return None if d >= INF else d

    def path_guids(self, guid: Guid) -> tuple[Guid, ...]:
        """The routing groups from this table's group to `guid`, by GUID (empty when unreachable)."""
        p = self._paths[self._graph.index[guid]]
        return tuple(self._graph.groups[g] for g in p) if p else ()

    def route(self, guid: Guid) -> Route:
        i = self._graph.index.get(guid)
        if i is None:
            return Route(status=RouteStatus.UNREACHABLE)
        if self._tree.dist[i] >= INF:
            reachable = i in _reachable(self._graph, self._src)
            return Route(status=RouteStatus.QUEUED if reachable else RouteStatus.UNREACHABLE)
        ei = self._first[i]
        ref = self._conn_ref(self._graph.edges[ei].conn) if ei >= 0 else None
        guids = self.path_guids(guid)
        names = tuple(self._group_name(g) for g in guids)
        return Route(status=RouteStatus.ROUTE, connector=ref, cost=self._tree.dist[i], path=names, path_guids=guids)


class Router:
    """Route lookups against link-state tables (module docstring)."""

    def __init__(
        self,
        topology: Topology | None = None,
        *,
        seed: str = "",
        check_restrictions: bool | None = None,
        leaf_rule: str | None = None,
        compat_e2k: bool | None = None,
    ) -> None:
        s = topology.settings if topology else None
        self.topology = topology
        self.seed = seed
        self.check_restrictions = (
            check_restrictions if check_restrictions is not None else bool(s and s.check_connector_restrictions)
        )
        self.leaf_rule = _check_leaf_rule(leaf_rule if leaf_rule is not None else (s.leaf_rule if s else "general"))
        self.compat_e2k = compat_e2k if compat_e2k is not None else bool(s and s.compat_e2k)
        self._graphs: dict[Any, tuple[OrgInfo, _Graph]] = {}  # ("digest", d) or ("table", n) -> (table, graph)
        self._last: tuple[OrgInfo, _Graph] | None = None  # the graph built last: the next table's may patch it
        self._serial = itertools.count()
        self._results: dict[tuple[Any, _Ask], Route] = {}
        self._sticky: dict[tuple[Guid, str, str], Guid] = {}
        self._memberships: dict[str, frozenset[str]] = {}

    # --------------------------------------------------------------------------------------- public

    def with_topology(self, topology: Topology) -> Router:
        """A router for a reloaded directory (its names and settings) that keeps this one's sticky choices (R55)."""
        fresh = Router(topology, seed=self.seed)
        fresh._sticky = self._sticky
        return fresh

    def route(
        self,
        table: OrgInfo | LinkStateDB,
        from_server: str,
        *,
        to: str | None = None,
        to_server: str | None = None,
        to_group: str | None = None,
        msg: MessageClass = MessageClass(),
        message_key: str = "",
    ) -> Route:
        """The route for one message class from `from_server` (name or GUID) to exactly one destination."""
        key, graph = self._graph(table)
        ask = self._ask(graph, from_server, to, to_server, to_group, msg, message_key)
        cached = self._results.get((key, ask))
        if cached is not None:
            return cached
        result = self._lookup(graph, ask)
        if len(self._results) > 100_000:
            self._results.clear()
        self._results[(key, ask)] = result
        return result

    def routes_from(
        self, table: OrgInfo | LinkStateDB, from_server: str, msg: MessageClass = MessageClass()
    ) -> RouteTable:
        """Every group's route from one server (what a server computes after a reset-routes, G45)."""
        _check_priority(msg)
        graph = self._graph(table)[1]
        server = self._server_guid(graph, from_server)
        src = graph.server_group.get(server)
        if src is None:
            raise RoutingError(f"server {from_server!r} is not a member of any routing group in the table")
        return RouteTable.build(graph, src, self._spt(graph, src, msg), self._conn_ref, self._group_name)

    def graph_for(self, table: OrgInfo | LinkStateDB) -> _Graph:
        """The cached graph of a table (for diagnostics and benchmarks)."""
        return self._graph(table)[1]

    # --------------------------------------------------------------------------------------- caches

    def _graph(self, table: OrgInfo | LinkStateDB) -> tuple[Any, _Graph]:
        """The table's graph, built once: a LinkStateDB's by its digest, an OrgInfo's by the object itself (the
        cache holds the object, so a kept entry is always that object's)."""
        key: Any
        if isinstance(table, LinkStateDB):
            key, org = ("digest", table.digest), table.snapshot()
            hit = self._graphs.get(key)
            if hit is not None:
                return key, hit[1]
        else:
            org = table
            for key, (held, graph) in self._graphs.items():
                if held is org:
                    return key, graph
            key = ("table", next(self._serial))
        graph = self._patched(org) or self._built(org)
        self._last = (org, graph)
        if len(self._graphs) >= 8:
            self._graphs.clear()
            self._results.clear()
        self._graphs[key] = (org, graph)
        return key, graph

    def _built(self, org: OrgInfo) -> _Graph:
        graph = _build_graph(org)
        _finish_graph(graph, self.leaf_rule, self.compat_e2k)
        return graph

    def _patched(self, org: OrgInfo) -> _Graph | None:
        """The last graph patched for `org`, when `org` differs from its table only by state-only changes to a few
        sections (a minor update: connector and bridgehead states): routes after a change without a full build."""
        if self._last is None:
            return None
        old_org, old = self._last
        changed = _changed_sections(old_org, org)
        if changed is None or not all(y.guid in old.index and _state_only(x, y) for x, y in changed):
            return None
        return _patch_graph(old, [y for _, y in changed], self.leaf_rule, self.compat_e2k)

    def _spt(self, graph: _Graph, src: int, msg: MessageClass) -> _Tree:
        excluded = frozenset(e.index for e in graph.restricted if not self._allowed(e.conn, msg, e.src, src))
        k = (src, excluded)
        hit = graph.spt.get(k)
        if hit is None:
            hit = graph.spt[k] = _dijkstra(graph, src, excluded)
        return hit

    # --------------------------------------------------------------------------------------- lookups

    def _ask(
        self,
        graph: _Graph,
        from_server: str,
        to: str | None,
        to_server: str | None,
        to_group: str | None,
        msg: MessageClass,
        message_key: str,
    ) -> _Ask:
        if sum(x is not None for x in (to, to_server, to_group)) != 1:
            raise RoutingError("give exactly one destination: an address, a server or a routing group")
        _check_priority(msg)
        server = self._server_guid(graph, from_server)
        src = graph.server_group.get(server)
        if src is None:
            raise RoutingError(f"server {from_server!r} is not a member of any routing group in the table")
        if to is not None:
            kind, address = parse_destination(to)
            return _Ask(server, src, "address", f"{kind}:{address}", None, msg, message_key)
        if to_server is not None:
            target = self._server_guid(graph, to_server)
            group = graph.server_group.get(target)
            dest = graph.groups[group] if group is not None else ""
            return _Ask(server, src, "group", dest, to_server, msg, message_key)
        return _Ask(server, src, "group", self._group_guid(graph, str(to_group)), None, msg, message_key)

    def _server_guid(self, graph: _Graph, name: str) -> Guid:
        if name in graph.server_group:
            return name
        if self.topology is not None:
            try:
                return self.topology.server(name).guid
            except KeyError:
                pass
        raise RoutingError(f"unknown server {name!r}")

    def _group_guid(self, graph: _Graph, name: str) -> Guid:
        if name in graph.index or name in graph.tombstoned:
            return name
        if self.topology is not None:
            try:
                return self.topology.routing_group(name).guid
            except KeyError:
                pass
        raise RoutingError(f"unknown routing group {name!r}")

    def _lookup(self, graph: _Graph, ask: _Ask) -> Route:
        if ask.kind == "group":
            return self._internal(graph, ask)
        return self._external(graph, ask)

    def _internal(self, graph: _Graph, ask: _Ask) -> Route:
        target = graph.index.get(ask.dest)
        if target is None:
            return Route(status=RouteStatus.UNREACHABLE)
        if target == ask.group:
            hop = self._server_label(ask.dest_server) if ask.dest_server else None
            return Route(
                status=RouteStatus.ROUTE,
                next_hop=hop,
                cost=0,
                path=(self._group_label(graph, target),),
                path_guids=(graph.groups[target],),
            )
        tree = self._spt(graph, ask.group, ask.msg)
        best = tree.dist[target]
        if best == INF:
            reachable = target in _reachable(graph, ask.group)
            return Route(status=RouteStatus.QUEUED if reachable else RouteStatus.UNREACHABLE)
        cands = [
            _Cand(graph.edges[ei].conn.guid, int(best), target, None, ei)
            for u, w, ei in graph.reverse[target]
            if tree.dist[u] + w == best and ei not in tree.excluded
        ]
        return self._finish(graph, ask, self._choose(ask, cands), tree)

    def _external(self, graph: _Graph, ask: _Ask) -> Route:
        kind, address = ask.dest.split(":", 1)
        level = self._most_specific(graph, kind, address, ask)
        if level is None:
            return Route(status=RouteStatus.UNREACHABLE)
        tree = self._spt(graph, ask.group, ask.msg)
        dist = tree.dist
        cands = [
            _Cand(s.conn.guid, int(dist[s.home] + s.cost), s.home, s, -1)
            for s in level
            if graph.usable.get(s.conn.guid) and dist[s.home] < INF
        ]
        if not cands:
            best = min(level, key=lambda s: (s.cost, s.conn.guid))
            return Route(status=RouteStatus.QUEUED, address_space=self._space_ref(best))
        return self._finish(graph, ask, self._choose(ask, cands), tree)

    def _most_specific(self, graph: _Graph, kind: str, address: str, ask: _Ask) -> list[_Space] | None:
        for level in _levels(graph, kind, address):
            eligible = [s for s in level if self._allowed(s.conn, ask.msg, s.home, ask.group)]
            if eligible:
                return eligible
        return None

    # --------------------------------------------------------------------------------------- choice, result

    def _choose(self, ask: _Ask, cands: list[_Cand]) -> _Cand:
        best = min(c.total for c in cands)
        ties = {c.guid: c for c in cands if c.total == best}
        key = (ask.server, ask.dest, ask.msg.sender or "")
        previous = self._sticky.get(key)
        guid = previous if previous in ties else _tie_break(ask.server, list(ties))
        if previous is not None and guid != previous:
            self._results.clear()  # answers kept for other tables chose `previous`: asked again, they would fail back
        self._sticky[key] = guid
        return ties[guid]

    def _finish(self, graph: _Graph, ask: _Ask, cand: _Cand, tree: _Tree) -> Route:
        if cand.space is None:
            edges = [*_path_edges(graph, tree.pred, graph.edges[cand.last_edge].src, ask.group), cand.last_edge]
        else:
            edges = _path_edges(graph, tree.pred, cand.home, ask.group)
        groups = [ask.group, *(graph.edges[e].dst for e in edges)]
        first = graph.edges[edges[0]].conn if edges else cand.space.conn if cand.space else None
        hop = self._next_hop(ask, first, bool(edges)) if first else None
        return Route(
            status=RouteStatus.ROUTE,
            connector=self._conn_ref(first) if first else None,
            next_hop=hop,
            cost=cand.total,
            path=tuple(self._group_label(graph, g) for g in groups),
            path_guids=tuple(graph.groups[g] for g in groups),
            address_space=self._space_ref(cand.space) if cand.space else None,
        )

    def _next_hop(self, ask: _Ask, conn: Connector, is_group_hop: bool) -> str:
        """The sender itself sends when it is an available source bridgehead (or any server may send);
        otherwise a pseudo-random available source bridgehead of the connector (R52)."""
        mine = self.topology.server_by_guid(ask.server) if self.topology else None
        vs = mine.vs_guid if mine else None
        live = [b for b in conn.bridgeheads if b.state.available] or list(conn.bridgeheads)
        if not conn.bridgeheads or any(b.guid == vs for b in live):
            return self._remote_hop(ask, conn, is_group_hop)
        pick = live[_hash_int(self.seed, ask.server, conn.guid, ask.dest, ask.message_key) % len(live)]
        return self._server_label(pick.guid, pick.fqdn)

    def _remote_hop(self, ask: _Ask, conn: Connector, is_group_hop: bool) -> str:
        if conn.target_bridgeheads:
            fqdns = conn.target_bridgeheads
            pick = fqdns[_hash_int(self.seed, ask.server, conn.guid, ask.dest, ask.message_key, "remote") % len(fqdns)]
            return self._fqdn_label(pick)
        if is_group_hop:
            rg = next((a.address for a in conn.address_spaces if a.type == "RG"), "")
            return f"any server in {self._group_name(rg)}"
        if conn.target_address and not conn.target_address.startswith("_"):
            return conn.target_address
        return "DNS"

    # --------------------------------------------------------------------------------------- restrictions

    def _allowed(self, c: Connector, msg: MessageClass, home: int, sender_group: int) -> bool:
        if c.scope == 1 and home != sender_group and not any(a.type == "RG" for a in c.address_spaces):
            return False
        if c.priority & PRIORITY_BITS.get(msg.priority, 0):
            return False
        if msg.size is not None and c.max_size is not None and msg.size > c.max_size * 1024:
            return False
        if msg.referral and c.no_pf_referrals:
            return False
        if not self.check_restrictions or msg.sender is None:
            return True
        return self._sender_allowed(c, msg.sender)

    def _sender_allowed(self, c: Connector, sender: str) -> bool:
        ids = self._memberships.get(sender)
        if ids is None:
            ids = self.topology.memberships(sender) if self.topology else frozenset({sender.lower()})
            self._memberships[sender] = ids
        if c.accept_by_default:
            return not any(d.lower() in ids for d in c.reject)
        return any(d.lower() in ids for d in c.accept)

    # --------------------------------------------------------------------------------------- names

    def _conn_ref(self, c: Connector) -> ConnectorRef:
        spec = self.topology.connector_by_guid(c.guid) if self.topology else None
        return ConnectorRef(c.guid, spec.name if spec else None)

    def _space_ref(self, s: _Space) -> SpaceRef:
        return SpaceRef(s.type, s.address, s.cost, self._conn_ref(s.conn))

    def _group_label(self, graph: _Graph, i: int) -> str:
        return self._group_name(graph.groups[i])

    def _group_name(self, guid: Guid) -> str:
        spec = self.topology.routing_group_by_guid(guid) if self.topology else None
        return spec.name if spec else guid

    def _server_label(self, guid: str | None, fqdn: str | None = None) -> str:
        if guid is None:
            return fqdn or ""
        spec = self.topology.server_by_guid(guid) if self.topology else None
        if spec is None and self.topology is not None:
            try:
                spec = self.topology.server(guid)
            except KeyError:
                spec = None
        return spec.name if spec else (fqdn or guid)

    def _fqdn_label(self, fqdn: str) -> str:
        if self.topology is not None:
            for s in self.topology.servers:
                if s.fqdn.lower() == fqdn.lower():
                    return s.name
        return fqdn


def _levels(graph: _Graph, kind: str, address: str) -> Iterator[list[_Space]]:
    """Matching address spaces grouped by specificity, most specific first (G23)."""
    if kind != "SMTP":
        ranked: dict[tuple[int, int, int], list[_Space]] = {}
        for s in graph.spaces_other:
            if s.type == kind and (r := match_rank(kind, s.address, address)) is not None:
                ranked.setdefault(r, []).append(s)
        yield from (ranked[r] for r in sorted(ranked, reverse=True))
        return
    if address in graph.spaces_smtp_exact:
        yield graph.spaces_smtp_exact[address]
    labels = address.split(".")
    for i in range(1, len(labels)):
        hit = graph.spaces_smtp_wild.get(".".join(labels[i:]))
        if hit:
            yield hit
    if graph.spaces_star:
        yield graph.spaces_star


def _path_edges(graph: _Graph, pred: list[int], target: int, src: int) -> list[int]:
    edges: list[int] = []
    node = target
    while node != src:
        ei = pred[node]
        if ei < 0:
            break
        edges.append(ei)
        node = graph.edges[ei].src
    edges.reverse()
    return edges
