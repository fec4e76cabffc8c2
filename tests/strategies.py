"""Hypothesis strategies for the OrgInfo model, shared by every test package.

Owns: generators of *canonical* tables (what `proto.encode.encode` writes and `decode_strict` gives back):
routing groups, members, connectors and bridgeheads with sorted, unique GUIDs; strings that may hold
anything but CR/LF/NUL (spaces, dots, parentheses, braces, non-ASCII); numbers in their wire ranges.
Invariant: for every `t` drawn from `orginfos()`, `decode_strict(encode(t)).orginfo == t`.
Import it as `from strategies import ...` (tests/proto/conftest.py puts tests/ on sys.path).
May import: hypothesis, the standard library, proto.
"""

from __future__ import annotations

from hypothesis import strategies as st

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
)

U64 = 2**64 - 1  # a hex number on the wire has at most 16 digits

guids = st.binary(min_size=16, max_size=16).map(bytes.hex)

_TRICKY = [
    "",
    " ",
    "a b",
    "First Administrative Group",
    "RGR-65-02.domain.com",
    "( ) {} {4} ()",
    ")",
    "{",
    "}",
    "  ",
    "é",
    "日本語",
    "*",
    "c=US;a= ;p=Example;o=Exchange;cn=A2A0F896-D197-B849-9955-7850AC796258;*",
]

wire_text = st.one_of(
    st.sampled_from(_TRICKY),
    st.text(
        alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
        max_size=24,
    ),
    st.text(alphabet=" .(){}abcXYZ019_-*;=/,", max_size=24),
)
"""Any string the wire can carry (no CR, LF, NUL; no lone surrogates)."""

hexnums = st.one_of(st.integers(0, 20), st.integers(0, U64))
limits = st.one_of(st.none(), st.integers(0, 0xFFFFFFFE))


def sorted_guids(min_size: int = 0, max_size: int = 3) -> st.SearchStrategy[list[str]]:
    return st.lists(guids, min_size=min_size, max_size=max_size, unique=True).map(sorted)


@st.composite
def members(draw: st.DrawFn, guid: str) -> Member:
    return Member(guid, draw(st.booleans()), draw(hexnums), draw(hexnums), draw(wire_text))


@st.composite
def bridgeheads(draw: st.DrawFn, guid: str) -> Bridgehead:
    return Bridgehead(guid, draw(st.sampled_from(list(BridgeheadState))), draw(wire_text))


address_spaces = st.builds(AddressSpace, wire_text, wire_text, hexnums)
dn_lists = st.lists(wire_text, max_size=3).map(tuple)


@st.composite
def connectors(draw: st.DrawFn, guid: str) -> Connector:
    bh_guids = draw(sorted_guids(0, 2))
    return Connector(
        guid=guid,
        type=draw(st.one_of(st.sampled_from(["SMTP", "RGC", "X400", "EDK"]), wire_text)),
        source_address=draw(wire_text),
        target_address=draw(wire_text),
        dn=draw(wire_text),
        schedule=draw(hexnums),
        scope=draw(hexnums),
        triggered=draw(hexnums),
        priority=draw(hexnums),
        max_size=draw(limits),
        large_threshold=draw(limits),
        no_pf_referrals=draw(hexnums),
        accept_by_default=draw(hexnums),
        accept=draw(dn_lists),
        reject=draw(dn_lists),
        reserved3=draw(st.one_of(st.just(()), dn_lists)),
        reserved4=draw(st.one_of(st.just(()), dn_lists)),
        address_spaces=draw(st.lists(address_spaces, max_size=2).map(tuple)),
        bridgeheads=tuple(draw(bridgeheads(g)) for g in bh_guids),
        target_bridgeheads=draw(dn_lists),
        state=draw(st.sampled_from(list(ConnectorState))),
    )


@st.composite
def routing_groups(draw: st.DrawFn, guid: str, max_members: int = 3, max_connectors: int = 2) -> RoutingGroup:
    return RoutingGroup(
        guid=guid,
        master=draw(guids),
        version=Version(draw(hexnums), draw(hexnums), draw(hexnums)),
        version_guid=draw(guids),
        smtp_address=draw(wire_text),
        x400_address=draw(wire_text),
        x500_address=draw(wire_text),
        members=tuple(draw(members(g)) for g in draw(sorted_guids(0, max_members))),
        connectors=tuple(draw(connectors(g)) for g in draw(sorted_guids(0, max_connectors))),
    )


@st.composite
def orginfos(draw: st.DrawFn, max_groups: int = 3) -> OrgInfo:
    """A canonical table: everything in the order the encoder writes it."""
    return OrgInfo(tuple(draw(routing_groups(g)) for g in draw(sorted_guids(0, max_groups))))


@st.composite
def shuffled(draw: st.DrawFn, org: OrgInfo) -> OrgInfo:
    """The same table with routing groups, members, connectors and bridgeheads in a drawn order."""
    from dataclasses import replace

    def perm(items: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(draw(st.permutations(items))) if len(items) > 1 else items

    groups = []
    for rg in org.routing_groups:
        conns = tuple(replace(c, bridgeheads=perm(c.bridgeheads)) for c in rg.connectors)  # type: ignore[arg-type]
        groups.append(replace(rg, members=perm(rg.members), connectors=perm(conns)))  # type: ignore[arg-type]
    return OrgInfo(perm(tuple(groups)))  # type: ignore[arg-type]
