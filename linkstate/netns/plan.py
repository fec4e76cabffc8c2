"""The network of a netns run as data: computed from a topology, written to and read from the run directory.

Owns: `plan_network(topo, prefix)` -> `NetPlan`, its JSON form, and the naming and addressing rules:
  * a namespace per server, `<prefix><server>`, holding `lo` and `lan` (a veth whose other end is a port of its
    group's bridge) and one `wan<n>` per link;
  * a namespace per routing group, `<prefix>rg-<group>`, holding the bridge `br0` and one port `p<n>` per server;
  * a link (a veth pair) between the bridgeheads of every connected pair of groups: for each connector to a
    routing group, every (source bridgehead, remote bridgehead) pair, the group's master standing in for an empty
    list as the core does; a pair gets one link whichever connectors use it (a link carries all of them);
  * addresses: a server keeps the address the topology gives it unless that is loopback or absent (127/8 cannot
    cross interfaces); otherwise it gets one from 198.18.<g>.0/24 (g = the group's index in the file; RFC 2544's
    benchmarking range), on a /24 LAN; a group where any address was given uses /32 addresses plus on-link routes
    to its peers instead; link ends get a /31 each from 198.19.0.0/16, and each end a host route to the other
    bridgehead's server address through the link (source: its own server address).
Invariants: pure (no system calls, no clock); names fit the kernel's limits (interfaces <= 15 bytes, namespace
names are file names); every namespace name starts with the prefix; no two servers share an address;
`NetPlan.from_json(p.to_json()) == p`.
May import: the standard library, linkstate.core.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from linkstate.core.topology import Topology

LAN_IF = "lan"
BRIDGE = "br0"
BENCH_RANGE = ipaddress.IPv4Network("198.18.0.0/15")  # RFC 2544: both pools below come from it
LAN_POOL = ipaddress.IPv4Network("198.18.0.0/16")
LINK_POOL = ipaddress.IPv4Network("198.19.0.0/16")
LAN_PREFIXLEN = 24
HOST_PREFIXLEN = 32
LINK_PREFIXLEN = 31
MAX_GROUPS = 256
MAX_NAME = 40
PREFIX_RE = re.compile(r"ls-[0-9a-f]{6}-")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class NetPlanError(Exception):
    """The topology cannot be laid out as a network (one line for the user)."""


@dataclass(frozen=True, slots=True)
class Host:
    """One server's namespace."""

    server: str
    group: str
    netns: str
    address: str
    prefixlen: int
    switch_port: str  # the veth end on the group's bridge
    onlink: tuple[str, ...] = ()  # group peers reached on the LAN by a host route (given addresses only)


@dataclass(frozen=True, slots=True)
class Switch:
    """One routing group's bridge, in a namespace of its own."""

    group: str
    netns: str


@dataclass(frozen=True, slots=True)
class End:
    """One end of a link: the bridgehead's namespace, the interface and its /31 address."""

    server: str
    netns: str
    ifname: str
    address: str


@dataclass(frozen=True, slots=True)
class Link:
    """A veth pair between two bridgeheads of different groups, and the connectors it carries."""

    name: str
    a: End
    b: End
    connectors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Route:
    """A host route: `dst`/32 out of `ifname` (through `gateway` when set), sourced from `prefsrc`."""

    netns: str
    ifname: str
    dst: str
    gateway: str | None
    prefsrc: str


@dataclass(frozen=True)
class NetPlan:
    prefix: str
    hosts: tuple[Host, ...]
    switches: tuple[Switch, ...]
    links: tuple[Link, ...]

    # --- lookups ---------------------------------------------------------------------------------------------

    def namespaces(self) -> list[str]:
        return [h.netns for h in self.hosts] + [s.netns for s in self.switches]

    def host(self, server: str) -> Host:
        for h in self.hosts:
            if h.server == server:
                return h
        raise KeyError(f"no server {server!r} in this network")

    def switch(self, group: str) -> Switch:
        for s in self.switches:
            if s.group == group:
                return s
        raise KeyError(f"no routing group {group!r} in this network")

    def links_of_connector(self, connector: str) -> list[Link]:
        return [link for link in self.links if connector in link.connectors]

    def links_of_group(self, group: str) -> list[Link]:
        """Every link with an end in `group`: cutting them all isolates the group's bridge."""
        self.switch(group)
        servers = {h.server for h in self.hosts if h.group == group}
        return [link for link in self.links if link.a.server in servers or link.b.server in servers]

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(f"no link {name!r} in this network")

    def link_routes(self, link: Link) -> tuple[Route, Route]:
        """Each end's host route to the other bridgehead's server address, through the link."""
        ha, hb = self.host(link.a.server), self.host(link.b.server)
        return (
            Route(link.a.netns, link.a.ifname, hb.address, link.b.address, ha.address),
            Route(link.b.netns, link.b.ifname, ha.address, link.a.address, hb.address),
        )

    def lan_routes(self, host: Host) -> list[Route]:
        return [Route(host.netns, LAN_IF, peer, None, host.address) for peer in host.onlink]

    def addresses(self) -> dict[str, str]:
        return {h.server: h.address for h in self.hosts}

    # --- JSON ------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetPlan:
        try:
            hosts = tuple(Host(**{**h, "onlink": tuple(h.get("onlink", ()))}) for h in data["hosts"])
            switches = tuple(Switch(**s) for s in data["switches"])
            links = tuple(Link(k["name"], End(**k["a"]), End(**k["b"]), tuple(k["connectors"])) for k in data["links"])
            return cls(str(data["prefix"]), hosts, switches, links)
        except (KeyError, TypeError) as exc:
            raise NetPlanError(f"not a network plan: {exc}") from None


def in_bench_range(host: str) -> bool:
    """Is `host` an address of 198.18.0.0/15, the range netns runs take their addresses from?"""
    try:
        return ipaddress.ip_address(host) in BENCH_RANGE
    except ValueError:
        return False


def new_prefix() -> str:
    """A fresh run prefix, `ls-<6 hex digits>-`."""
    return f"ls-{secrets.token_hex(3)}-"


# --------------------------------------------------------------------------------------------- planning


def plan_network(topo: Topology, prefix: str) -> NetPlan:
    """The network for every server of `topo` (module docstring); NetPlanError when it cannot be laid out."""
    if not PREFIX_RE.fullmatch(prefix):
        raise NetPlanError(f"bad namespace prefix {prefix!r} (expected ls-<6 hex>-)")
    if len(topo.routing_groups) > MAX_GROUPS:
        raise NetPlanError(f"netns mode lays out at most {MAX_GROUPS} routing groups ({len(topo.routing_groups)})")
    names = _Names(prefix)
    addresses = _addresses(topo)
    hosts = _hosts(topo, names, addresses)
    switches = tuple(Switch(rg.name, names.take(f"rg-{rg.name}")) for rg in topo.routing_groups)
    return NetPlan(prefix, hosts, switches, _links(topo, {h.server: h for h in hosts}))


class _Names:
    """Unique namespace names: `<prefix><sanitised name>`, with `~<n>` appended on a clash."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        base = self.prefix + _UNSAFE.sub("_", name)[:MAX_NAME]
        candidate, n = base, 1
        while candidate in self.used:
            n += 1
            candidate = f"{base}~{n}"
        self.used.add(candidate)
        return candidate


def _given(address: str | None) -> str | None:
    """The address a server keeps in netns mode (None: it gets a generated one)."""
    if address is None or ipaddress.ip_address(address).is_loopback:
        return None
    return address


def _addresses(topo: Topology) -> dict[str, tuple[str, int]]:
    """server -> (address, prefix length on the LAN)."""
    given = {s.name: a for s in topo.servers if (a := _given(s.address)) is not None}
    owners: dict[str, str] = {}
    for name, addr in given.items():
        if addr in owners:
            raise NetPlanError(
                f"servers {owners[addr]} and {name} share the address {addr}: in netns mode every server has its "
                "own; give distinct addresses (or none, or loopback ones, to have them generated)"
            )
        owners[addr] = name
    out: dict[str, tuple[str, int]] = {}
    for g, rg in enumerate(topo.routing_groups):
        members = [s.name for s in topo.servers if s.routing_group == rg.name]
        mixed = any(m in given for m in members)
        free = _free_hosts(g, set(owners))
        for name in members:
            if name in given:
                out[name] = (given[name], HOST_PREFIXLEN)
                continue
            try:
                out[name] = (next(free), HOST_PREFIXLEN if mixed else LAN_PREFIXLEN)
            except StopIteration:
                raise NetPlanError(f"routing group {rg.name} has more servers than its /24 holds") from None
    return out


def _free_hosts(group_index: int, taken: set[str]) -> Iterator[str]:
    subnet = list(LAN_POOL.subnets(new_prefix=LAN_PREFIXLEN))[group_index]
    return (str(a) for a in subnet.hosts() if str(a) not in taken)


def _hosts(topo: Topology, names: _Names, addresses: dict[str, tuple[str, int]]) -> tuple[Host, ...]:
    hosts = []
    ports: dict[str, int] = {}
    for s in topo.servers:
        address, prefixlen = addresses[s.name]
        port = ports.get(s.routing_group, 0)
        ports[s.routing_group] = port + 1
        peers: tuple[str, ...] = ()
        if prefixlen == HOST_PREFIXLEN:
            group = [o.name for o in topo.servers if o.routing_group == s.routing_group and o.name != s.name]
            peers = tuple(addresses[o][0] for o in group)
        hosts.append(Host(s.name, s.routing_group, names.take(s.name), address, prefixlen, f"p{port}", peers))
    return tuple(hosts)


def _bridgehead_pairs(topo: Topology) -> Iterator[tuple[str, str, str]]:
    """(connector, source bridgehead, remote bridgehead) for every connector to a routing group."""
    for c in topo.connectors:
        if not c.connected_routing_group:
            continue
        sources = c.source_bridgeheads or (topo.routing_group(c.routing_group).master,)
        remotes = c.remote_bridgeheads or (topo.routing_group(c.connected_routing_group).master,)
        for s in sources:
            for r in remotes:
                if topo.server(s).routing_group != topo.server(r).routing_group:
                    yield c.name, s, r


def _links(topo: Topology, hosts: dict[str, Host]) -> tuple[Link, ...]:
    carried: dict[frozenset[str], list[str]] = {}
    order: list[tuple[str, str]] = []
    for connector, s, r in _bridgehead_pairs(topo):
        key = frozenset((s, r))
        if key not in carried:
            carried[key] = []
            order.append((s, r))
        if connector not in carried[key]:
            carried[key].append(connector)
    if 2 * len(order) > LINK_POOL.num_addresses:
        raise NetPlanError(f"too many links for {LINK_POOL} ({len(order)})")
    wans: dict[str, int] = {}
    base = int(LINK_POOL.network_address)
    links = []
    for k, (s, r) in enumerate(order):
        ends = []
        for server, offset in ((s, 0), (r, 1)):
            n = wans.get(server, 0)
            wans[server] = n + 1
            address = str(ipaddress.IPv4Address(base + 2 * k + offset))
            ends.append(End(server, hosts[server].netns, f"wan{n}", address))
        links.append(Link(f"{s}~{r}", ends[0], ends[1], tuple(carried[frozenset((s, r))])))
    return tuple(links)
