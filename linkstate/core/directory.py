"""What a routing group's master publishes from the directory: topology -> OrgInfo sections.

Owns: `build_section` (one routing group's section), `build_orginfo` (the whole table as the directory alone
describes it, versions 0.0.0 = "never participated", R113/G31/G63) and `tombstone` (G53).
Encoding choices (requirements G16–G20, G53, G56, G57):
  - RG addresses: SMTP `*.<GUID>`, X.400 `c=US;a= ;p=<org>;o=Exchange;cn=<GUID>;*`,
    X.500 `/o=<org>/ou=<admin group>/*/<GUID>`, <GUID> being the hyphenated upper-case form.
  - connector type `RGC` / `SMTP` / `X400`, or `EDK` for a legacy connector (flagged, or a legacy server among
    its source or remote bridgeheads: never marked down, R50);
    source address `_<guid>_S`; target address `_<guid>_D` when remote bridgeheads are named, the smart
    host for a smart-host SMTP connector, empty otherwise (G19); DN
    `/o=<org>/ou=<ag>/cn=Configuration/cn=Routing Groups/cn=<rg>/cn=Connections/cn=<connector>`.
  - scope 0 = organization, 1 = routing group; priority = bitmask of **disallowed** classes (0x1 high,
    0x2 normal, 0x4 low); no_pf_referrals 1 = referrals disallowed; accept_by_default 1/0 with the
    accept and reject DN lists (group names resolved to their DNs).
  - max_size is carried in **kilobytes** (the unit of the directory and of the admin UI, R16 "Only
    messages less than (KB)"); None = unlimited (`ffffffff`). large_threshold is not configured (None).
  - ARROWS: the connector's address spaces, plus one `RG` arrow (target group's compact GUID, connector
    cost) for a connector to a routing group (G20).
  - BH: (virtual-server GUID, state, FQDN) of each named source bridgehead; empty for "any local server".
    TARGBH: FQDNs of the remote bridgeheads.
  - `down` (server or connector names) marks those servers' bridgehead entries CONN_NOT_AVAILABLE and
    those connectors DOWN. A connector whose named bridgeheads are all unavailable, or all of whose
    remote bridgeheads are down (its source bridgeheads cannot reach them, G40), is DOWN too, unless it
    is of a kind never marked down ("any local server" RGC, DNS-routed SMTP, EDK; R48, R50).
  - Members: every server of the group, connected YES.
Invariants: pure functions of their arguments; output sections are canonical (members/connectors by GUID).
May import: the standard library, proto.model, linkstate.core.topology.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from linkstate.core.topology import ConnectorSpec, Guid, Topology, hyphenated
from proto.model import (
    AddressSpace,
    Bridgehead,
    BridgeheadState,
    Connector,
    ConnectorState,
    Member,
    OrgInfo,
    RoutingGroup,
    Version,
    canonical_group,
)

TYPE_CODES = {"routing_group": "RGC", "smtp": "SMTP", "x400": "X400"}
SCOPE_CODES = {"organization": 0, "routing_group": 1}
PRIORITY_BITS = {"high": 0x1, "normal": 0x2, "low": 0x4}
TOMBSTONE_PREFIX = "deleted"


def rg_addresses(topo: Topology, rg_guid: Guid) -> tuple[str, str, str]:
    """The SMTP, X.400 and X.500 addresses of a routing group (G56)."""
    g = hyphenated(rg_guid)
    org = topo.organization
    return (
        f"*.{g}",
        f"c=US;a= ;p={org};o=Exchange;cn={g};*",
        f"/o={org}/ou={topo.admin_group}/*/{g}",
    )


def connector_dn(topo: Topology, c: ConnectorSpec) -> str:
    return (
        f"/o={topo.organization}/ou={topo.admin_group}/cn=Configuration/cn=Routing Groups"
        f"/cn={c.routing_group}/cn=Connections/cn={c.name}"
    )


def is_legacy(topo: Topology, c: ConnectorSpec) -> bool:
    """EDK: flagged legacy, or a legacy (5.5) server among its bridgeheads, source or remote (R50: "routing group
    connectors where one bridgehead server is an Exchange 5.5 server"; G63)."""
    if c.legacy:
        return True
    names = c.source_bridgeheads or tuple(s.name for s in topo.servers_in(c.routing_group))
    return any(topo.server(n).legacy for n in (*names, *c.remote_bridgeheads))


def never_down(topo: Topology, c: ConnectorSpec) -> bool:
    """Kinds of connector whose state is never DOWN in what a master publishes (R48, R50)."""
    return (c.type == "routing_group" and c.any_local_server) or c.dns_routed or is_legacy(topo, c)


def _target_address(c: ConnectorSpec) -> str:
    if c.remote_bridgeheads:
        return f"_{c.guid}_D"
    return c.smart_host or ""


def _arrows(topo: Topology, c: ConnectorSpec) -> tuple[AddressSpace, ...]:
    spaces = tuple(AddressSpace(a.type, a.address, a.cost) for a in c.address_spaces)
    if c.connected_routing_group is None:
        return spaces
    target = topo.routing_group(c.connected_routing_group).guid
    return (*spaces, AddressSpace("RG", target, c.cost))


def _priority_mask(allowed: tuple[str, ...]) -> int:
    return sum(bit for name, bit in PRIORITY_BITS.items() if name not in allowed)


def _bridgeheads(topo: Topology, c: ConnectorSpec, down: Collection[str]) -> tuple[Bridgehead, ...]:
    remote_down = bool(c.remote_bridgeheads) and all(n in down for n in c.remote_bridgeheads)
    out = []
    for name in c.source_bridgeheads:
        s = topo.server(name)
        ok = name not in down and not remote_down
        state = BridgeheadState.CONN_AVAIL if ok else BridgeheadState.CONN_NOT_AVAILABLE
        out.append(Bridgehead(s.vs_guid, state, s.fqdn))
    return tuple(sorted(out, key=lambda b: b.guid))


def _state(topo: Topology, c: ConnectorSpec, bhs: tuple[Bridgehead, ...], down: Collection[str]) -> ConnectorState:
    if c.name in down:
        return ConnectorState.DOWN
    if never_down(topo, c):
        return ConnectorState.UP
    if bhs and not any(b.state.available for b in bhs):
        return ConnectorState.DOWN
    return ConnectorState.UP


def build_connector(topo: Topology, c: ConnectorSpec, down: Collection[str] = ()) -> Connector:
    """One connector's published record (module docstring)."""
    r = c.restrictions
    bhs = _bridgeheads(topo, c, down)
    return Connector(
        guid=c.guid,
        type="EDK" if is_legacy(topo, c) else TYPE_CODES[c.type],
        source_address=f"_{c.guid}_S",
        target_address=_target_address(c),
        dn=connector_dn(topo, c),
        scope=SCOPE_CODES[c.scope],
        priority=_priority_mask(r.allowed_priorities),
        max_size=r.max_size_kb,
        no_pf_referrals=int(c.no_pf_referrals),
        accept_by_default=int(r.accept_by_default),
        accept=tuple(topo.resolve_dn(a) for a in r.accept),
        reject=tuple(topo.resolve_dn(a) for a in r.reject),
        address_spaces=_arrows(topo, c),
        bridgeheads=bhs,
        target_bridgeheads=tuple(topo.server(n).fqdn for n in c.remote_bridgeheads),
        state=_state(topo, c, bhs, down),
    )


def build_section(
    topology: Topology,
    rg_name: str,
    *,
    version: Version | None = None,
    version_guid: Guid | None = None,
    member_states: Mapping[Guid, Member] | None = None,
    connector_states: Mapping[Guid, Connector] | None = None,
    down: Collection[str] = (),
) -> RoutingGroup:
    """The section the master of `rg_name` publishes.

    `member_states` / `connector_states` (by GUID) replace the directory-derived records of members and
    connectors the node has live knowledge of; `version_guid` defaults to the group's epoch-0 version GUID.
    """
    rg = topology.routing_group(rg_name)
    smtp, x400, x500 = rg_addresses(topology, rg.guid)
    members = tuple(Member(s.guid) for s in topology.servers_in(rg_name))
    conns = tuple(build_connector(topology, c, down) for c in topology.connectors_from(rg_name))
    if member_states:
        members = tuple(member_states.get(m.guid, m) for m in members)
    if connector_states:
        conns = tuple(connector_states.get(c.guid, c) for c in conns)
    section = RoutingGroup(
        guid=rg.guid,
        master=topology.server(rg.master).guid,
        version=version or Version(),
        version_guid=version_guid or topology.version_guid(rg_name),
        smtp_address=smtp,
        x400_address=x400,
        x500_address=x500,
        members=members,
        connectors=conns,
    )
    return canonical_group(section)


def build_orginfo(topology: Topology, down: Collection[str] = ()) -> OrgInfo:
    """Every group's section straight from the directory, version 0.0.0 (never participated)."""
    sections = (build_section(topology, rg.name, down=down) for rg in topology.routing_groups)
    return OrgInfo(tuple(sorted(sections, key=lambda s: s.guid)))


def tombstone(rg: RoutingGroup) -> RoutingGroup:
    """A Remonitor-style deleted section (G53): `deleted` addresses, no members/connectors, major+1."""

    def prefixed(a: str) -> str:
        return a if a.startswith(TOMBSTONE_PREFIX) else TOMBSTONE_PREFIX + a

    return replace(
        rg,
        version=rg.version.bump_major(),
        smtp_address=prefixed(rg.smtp_address),
        x400_address=prefixed(rg.x400_address),
        x500_address=prefixed(rg.x500_address),
        members=(),
        connectors=(),
    )
