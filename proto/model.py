"""The typed OrgInfo model: the link-state table every server holds.

Owns: frozen, slotted dataclasses and enums for the organization table, routing groups, members, connectors
(with their configuration, restrictions, address spaces and bridgeheads) and versions. Values are plain Python
(GUIDs as 32 lowercase hex `str`, integers as `int`, strings as `str`); nothing here knows the wire syntax.
Invariants: instances are immutable and hashable; equality is structural. `canonical()` gives the order the
encoder writes (routing groups, members, connectors and bridgeheads by GUID; DN lists, address spaces and target
bridgeheads keep their configured order, which is the directory's and therefore the same on every node).
May import: the standard library only.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field, replace

Guid = str  # 32 lowercase hex digits, no hyphens, the byte order of the text form (requirements G6)

UNLIMITED = 0xFFFFFFFF  # wire value of "no limit" for max_size / large_threshold


class BridgeheadState(enum.Enum):
    CONN_AVAIL = "CONN_AVAIL"
    CONN_NOT_AVAILABLE = "CONN_NOT_AVAILABLE"
    CONN_NOT_STARTED = "CONN_NOT_STARTED"

    @property
    def available(self) -> bool:
        return self is BridgeheadState.CONN_AVAIL


class ConnectorState(enum.Enum):
    UP = "UP"
    DOWN = "DOWN"


VERSION_MAX = (1 << 64) - 1  # each version field is at most 16 hex digits on the wire (docs/PROTOCOL.md §1)


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """major.minor.user, compared lexicographically (requirements G31).

    Bumps never leave the wire's range: a full field carries into the next one up (a user bump at VERSION_MAX is a
    minor bump, a minor bump at VERSION_MAX a major bump), and a major bump at VERSION_MAX saturates — it returns the
    version unchanged (`saturated`), so no sequence of bumps can make a version unencodable (docs/PROTOCOL.md §2.4).
    """

    major: int = 0
    minor: int = 0
    user: int = 0

    @property
    def saturated(self) -> bool:
        """No bump can raise this version any more."""
        return self.major >= VERSION_MAX

    def bump_major(self) -> Version:
        if self.major >= VERSION_MAX:
            return self
        return Version(self.major + 1, 0, 0)

    def bump_minor(self) -> Version:
        if self.minor >= VERSION_MAX:
            return self.bump_major()
        return Version(self.major, self.minor + 1, 0)

    def bump_user(self) -> Version:
        if self.user >= VERSION_MAX:
            return self.bump_minor()
        return Version(self.major, self.minor, self.user + 1)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.user}"


@dataclass(frozen=True, slots=True)
class Member:
    """A server of a routing group as the master sees it (requirements §2.7, G12, G13)."""

    guid: Guid
    connected: bool = True
    state_flags: int = 1
    build: int = 0x1AAE
    service_status: str = "0701000000000101"


@dataclass(frozen=True, slots=True)
class AddressSpace:
    """One ARROWS entry: type (SMTP, X400, X500, RG), address, cost (requirements G20, G57)."""

    type: str
    address: str
    cost: int


@dataclass(frozen=True, slots=True)
class Bridgehead:
    """A source bridgehead: SMTP virtual server GUID, its state, its FQDN."""

    guid: Guid
    state: BridgeheadState
    fqdn: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Connector:
    """A one-way connector with its CONFIG block (requirements §2.6, G10–G20).

    `max_size` / `large_threshold` are None when unlimited (`ffffffff` on the wire). `reserved3` / `reserved4`
    are the two undocumented count+list blocks, kept opaque so they round-trip.
    """

    guid: Guid
    type: str = "SMTP"
    source_address: str = ""
    target_address: str = ""
    dn: str = ""
    schedule: int = 0
    scope: int = 0
    triggered: int = 0
    priority: int = 0
    max_size: int | None = None
    large_threshold: int | None = None
    no_pf_referrals: int = 0
    accept_by_default: int = 1
    accept: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    reserved3: tuple[str, ...] = ()
    reserved4: tuple[str, ...] = ()
    address_spaces: tuple[AddressSpace, ...] = ()
    bridgeheads: tuple[Bridgehead, ...] = ()
    target_bridgeheads: tuple[str, ...] = ()
    state: ConnectorState = ConnectorState.UP


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingGroup:
    """One routing-group section: identity, master, versions, addresses, members, connectors."""

    guid: Guid
    master: Guid
    version: Version = field(default_factory=Version)
    version_guid: Guid = "0" * 32
    smtp_address: str = ""
    x400_address: str = ""
    x500_address: str = ""
    members: tuple[Member, ...] = ()
    connectors: tuple[Connector, ...] = ()

    @property
    def is_tombstone(self) -> bool:
        """A Remonitor-style deleted section (requirements G53)."""
        return self.smtp_address.startswith("deleted") and not self.members and not self.connectors


@dataclass(frozen=True, slots=True)
class OrgInfo:
    """The whole link-state table: one section per routing group ever seen."""

    routing_groups: tuple[RoutingGroup, ...] = ()

    def group(self, guid: Guid) -> RoutingGroup | None:
        for rg in self.routing_groups:
            if rg.guid == guid:
                return rg
        return None


def _by_guid(items: tuple[object, ...]) -> bool:
    guids = [getattr(i, "guid") for i in items]  # noqa: B009 - duck-typed over three record kinds
    return all(a < b for a, b in itertools.pairwise(guids))


def canonical_connector(c: Connector) -> Connector:
    if _by_guid(c.bridgeheads):
        return c
    return replace(c, bridgeheads=tuple(sorted(c.bridgeheads, key=lambda b: b.guid)))


def canonical_group(rg: RoutingGroup) -> RoutingGroup:
    members = rg.members if _by_guid(rg.members) else tuple(sorted(rg.members, key=lambda m: m.guid))
    conns = tuple(canonical_connector(c) for c in sorted(rg.connectors, key=lambda c: c.guid))
    if members is rg.members and conns == rg.connectors:
        return rg
    return replace(rg, members=members, connectors=conns)


def canonical(org: OrgInfo) -> OrgInfo:
    """The same table in the order the encoder writes (see the module docstring)."""
    groups = tuple(canonical_group(rg) for rg in sorted(org.routing_groups, key=lambda g: g.guid))
    return OrgInfo(groups)
