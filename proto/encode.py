"""The canonical OrgInfo encoder and the digest.

Owns: model -> canonical bytes (DECIDE §1: one space as separator, lowercase hex, `{len8}` frame header counting
every byte after the `}`, sections/members/connectors/bridgeheads sorted by GUID), and the MD5 digest over the
bytes that follow the digest's trailing separator. Refuses what it cannot write canonically (`EncodeError`):
malformed GUIDs, negative numbers, CR/LF/NUL inside strings, two records of one list sharing a GUID.
Per-section bytes are exposed (`encode_section`, `frame_from_sections`) so the link-state table can cache them.
May import: the standard library and proto.model / proto.errors.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence

from proto.errors import EncodeError
from proto.model import (
    UNLIMITED,
    AddressSpace,
    Bridgehead,
    Connector,
    Member,
    OrgInfo,
    RoutingGroup,
)

TAG = "ORGINFO"
_GUID = re.compile(r"[0-9a-f]{32}")
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_U64 = 1 << 64  # numbers have at most 16 hex digits on the wire (docs/PROTOCOL.md)


def _guid(value: str, what: str) -> str:
    if type(value) is not str or not _GUID.fullmatch(value):
        raise EncodeError(f"{what} is not 32 lowercase hex digits: {value!r}")
    return value


def _num(value: int, what: str) -> str:
    if type(value) is not int or not 0 <= value < _U64:
        raise EncodeError(f"{what} must be an integer in 0..2**64-1 (16 hex digits), got {value!r}")
    return f"{value:x}"


def _nums(owner: object, names: tuple[str, ...]) -> None:
    """Check several integer fields at once (one call instead of one per field)."""
    for name in names:
        value = getattr(owner, name)
        if type(value) is not int or not 0 <= value < _U64:
            _num(value, name)


def _limit(value: int | None, what: str) -> str:
    if value is None:
        return "ffffffff"
    if type(value) is not int or not 0 <= value < UNLIMITED:
        raise EncodeError(f"{what} must be None (unlimited) or 0..0xfffffffe, got {value!r}")
    return f"{value:08x}"


def _forbidden(value: str) -> None:
    if _FORBIDDEN.search(value):
        raise EncodeError(f"string may not contain CR, LF or NUL: {value!r}")


def _s(value: str) -> str:
    """`lstr` without the CR/LF/NUL check, which `encode_section` makes once over the whole section."""
    if type(value) is not str:
        raise EncodeError(f"string expected, got {value!r}")
    n = len(value) if value.isascii() else len(value.encode("utf-8", "surrogateescape"))
    return f"{{{n:x}}}{value}" if n else "{}"


def lstr(value: str) -> str:
    """`{hexlen}bytes`; the length counts UTF-8 bytes (surrogate escapes count as the byte they stand for)."""
    text = _s(value)
    _forbidden(value)
    return text


def _record_list(records: Iterable[str]) -> str:
    """Records each end with a separator and are joined by one more: `( r1  r2 )`, or `()`."""
    body = " ".join(records)
    return f"( {body})" if body else "()"


def _dn_block(dns: Sequence[str]) -> str:
    if not dns:
        return "0 ()"
    return f"{len(dns):x} ( " + " ".join([f"{_s(d)} " for d in dns]) + ")"


def _member(m: Member) -> str:
    if type(m.state_flags) is not int or type(m.build) is not int or m.state_flags < 0 or m.build < 0:
        _nums(m, ("state_flags", "build"))
    if m.state_flags >= _U64 or m.build >= _U64:
        _nums(m, ("state_flags", "build"))
    yes = "YES" if m.connected else "NO"
    return f"{_guid(m.guid, 'member GUID')} {yes} {m.state_flags:x} {m.build:x} {_s(m.service_status)} "


def _arrow(a: AddressSpace) -> str:
    return f"{_s(a.type)} {_s(a.address)} {_num(a.cost, 'cost')} "


def _bridgehead(b: Bridgehead) -> str:
    return f"{_guid(b.guid, 'bridgehead GUID')} {b.state.value} {_s(b.fqdn)} "


_CONNECTOR_NUMS = ("schedule", "scope", "triggered", "priority", "no_pf_referrals", "accept_by_default")


def _connector(c: Connector) -> str:
    _nums(c, _CONNECTOR_NUMS)
    bhs = c.bridgeheads
    if len(bhs) > 1:
        bhs = tuple(sorted(bhs, key=_by_guid))
        _unique(bhs, "bridgehead")
    arrows = f"( {' '.join([_arrow(a) for a in c.address_spaces])})" if c.address_spaces else "()"
    bh = f"( {' '.join([_bridgehead(b) for b in bhs])})" if bhs else "()"
    targ = f"( {' '.join([f'{_s(t)} ' for t in c.target_bridgeheads])})" if c.target_bridgeheads else "()"
    return (
        f"{_guid(c.guid, 'connector GUID')} ( CONFIG {_s(c.type)} {_s(c.source_address)} "
        f"{_s(c.target_address)} {_s(c.dn)} {c.schedule:x} {c.scope:x} "
        f"{c.triggered:x} {c.priority:x} {_limit(c.max_size, 'max_size')} "
        f"{_limit(c.large_threshold, 'large_threshold')} {c.no_pf_referrals:x} "
        f"{c.accept_by_default:x} {_dn_block(c.accept)} {_dn_block(c.reject)} "
        f"{_dn_block(c.reserved3)} {_dn_block(c.reserved4)}  ARROWS "
        f"{arrows} BH {bh} TARGBH {targ} STATE {c.state.value})"
    )


def _unique(items: Sequence[Member | Connector | Bridgehead], what: str) -> None:
    """Sorted records with distinct GUIDs: a duplicate has no canonical form (strict decoding refuses it)."""
    for a, b in itertools.pairwise(items):
        if a.guid == b.guid:
            raise EncodeError(f"two {what}s share the GUID {a.guid}")


def _group_list(items: Iterable[str]) -> str:
    """Structural groups join items by one separator with none before `)`: `( a b)`, or `()`."""
    body = " ".join(items)
    return f"( {body})" if body else "()"


def _by_guid(item: Member | Connector | Bridgehead) -> str:
    return item.guid


def _strings(rg: RoutingGroup) -> Iterator[str]:
    """Every string of a section (to name the culprit when the section holds a CR, LF or NUL)."""
    yield from (rg.smtp_address, rg.x400_address, rg.x500_address)
    yield from (m.service_status for m in rg.members)
    for c in rg.connectors:
        yield from (c.type, c.source_address, c.target_address, c.dn)
        yield from (*c.accept, *c.reject, *c.reserved3, *c.reserved4, *c.target_bridgeheads)
        for a in c.address_spaces:
            yield from (a.type, a.address)
        yield from (b.fqdn for b in c.bridgeheads)


def encode_section(rg: RoutingGroup) -> bytes:
    """One routing-group section, canonical, without the separator that follows it in a frame."""
    v = rg.version
    members = sorted(rg.members, key=_by_guid) if len(rg.members) > 1 else rg.members
    conns = sorted(rg.connectors, key=_by_guid) if len(rg.connectors) > 1 else rg.connectors
    if len(members) > 1:
        _unique(members, "member")
    if len(conns) > 1:
        _unique(conns, "connector")
    member_list = f"( {' '.join([_member(m) for m in members])})" if members else "()"
    conn_list = f"( {' '.join([_connector(c) for c in conns])})" if conns else "()"
    text = (
        f"( {_guid(rg.guid, 'routing group GUID')} {_guid(rg.master, 'master GUID')} "
        f"{_num(v.major, 'major')} {_num(v.minor, 'minor')} {_num(v.user, 'user')} "
        f"{_guid(rg.version_guid, 'version GUID')} {_s(rg.smtp_address)} {_s(rg.x400_address)} "
        f"{_s(rg.x500_address)} {member_list} {conn_list})"
    )
    if "\r" in text or "\n" in text or "\x00" in text:  # only strings can hold these: find which one
        for value in _strings(rg):
            _forbidden(value)
    return text.encode("utf-8", "surrogateescape")


def sections_body(sections: Sequence[bytes]) -> bytes:
    """The digested part of a frame: every section followed by a separator, then one more separator."""
    return b"".join(s + b" " for s in sections) + b" "


def digest_of_sections(sections: Sequence[bytes]) -> str:
    return hashlib.md5(sections_body(sections), usedforsecurity=False).hexdigest()


def frame_from_sections(sections: Sequence[bytes], digest: str | None = None) -> bytes:
    """A whole ORGINFO frame from already-encoded sections, which must be in GUID order.

    `digest` defaults to the digest of these sections; passing one lets a digest-only frame (no sections) carry
    a node's real digest, as the X-LINK2STATE opening line does.
    """
    body = sections_body(sections)
    if digest is None:
        digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
    _guid(digest, "digest")
    payload = b" " + TAG.encode() + b" " + digest.encode() + b" " + body
    return b"{%08x}" % len(payload) + payload


def encode(org: OrgInfo, digest: str | None = None) -> bytes:
    """Canonical bytes of a table (a whole frame, header included)."""
    groups = sorted(org.routing_groups, key=lambda g: g.guid)
    guids = [g.guid for g in groups]
    if len(set(guids)) != len(guids):
        raise EncodeError("two routing-group sections share a GUID")
    return frame_from_sections([encode_section(g) for g in groups], digest)


def digest(org: OrgInfo) -> str:
    """32-hex MD5 of the canonical form of a table."""
    groups = sorted(org.routing_groups, key=lambda g: g.guid)
    return digest_of_sections([encode_section(g) for g in groups])
