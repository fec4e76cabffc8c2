"""The canonical OrgInfo encoder and the digest.

Owns: model -> canonical bytes (DECIDE §1: one space as separator, lowercase hex, `{len8}` frame header counting
every byte after the `}`, sections/members/connectors/bridgeheads sorted by GUID), and the MD5 digest over the
bytes that follow the digest's trailing separator. Refuses what it cannot write canonically (`EncodeError`):
malformed GUIDs, negative numbers, CR/LF/NUL inside strings.
Per-section bytes are exposed (`encode_section`, `frame_from_sections`) so the link-state table can cache them.
May import: the standard library and proto.model / proto.errors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

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


def _guid(value: str, what: str) -> str:
    if type(value) is not str or not _GUID.fullmatch(value):
        raise EncodeError(f"{what} is not 32 lowercase hex digits: {value!r}")
    return value


def _num(value: int, what: str) -> str:
    if type(value) is not int or value < 0:
        raise EncodeError(f"{what} must be a non-negative integer, got {value!r}")
    return f"{value:x}"


def _limit(value: int | None, what: str) -> str:
    if value is None:
        return "ffffffff"
    if type(value) is not int or not 0 <= value < UNLIMITED:
        raise EncodeError(f"{what} must be None (unlimited) or 0..0xfffffffe, got {value!r}")
    return f"{value:08x}"


def lstr(value: str) -> str:
    """`{hexlen}bytes`; the length counts UTF-8 bytes (surrogate escapes count as the byte they stand for)."""
    if type(value) is not str:
        raise EncodeError(f"string expected, got {value!r}")
    if value.isascii():
        n = len(value)
    else:
        n = len(value.encode("utf-8", "surrogateescape"))
    if _FORBIDDEN.search(value):
        raise EncodeError(f"string may not contain CR, LF or NUL: {value!r}")
    return f"{{{n:x}}}{value}" if n else "{}"


def _record_list(records: Iterable[str]) -> str:
    """Records each end with a separator and are joined by one more: `( r1  r2 )`, or `()`."""
    body = " ".join(records)
    return f"( {body})" if body else "()"


def _dn_block(dns: Sequence[str]) -> str:
    return f"{len(dns):x} " + _record_list(f"{lstr(d)} " for d in dns)


def _member(m: Member) -> str:
    yes = "YES" if m.connected else "NO"
    return (
        f"{_guid(m.guid, 'member GUID')} {yes} {_num(m.state_flags, 'state_flags')} "
        f"{_num(m.build, 'build')} {lstr(m.service_status)} "
    )


def _arrow(a: AddressSpace) -> str:
    return f"{lstr(a.type)} {lstr(a.address)} {_num(a.cost, 'cost')} "


def _bridgehead(b: Bridgehead) -> str:
    return f"{_guid(b.guid, 'bridgehead GUID')} {b.state.value} {lstr(b.fqdn)} "


def _connector(c: Connector) -> str:
    bhs = sorted(c.bridgeheads, key=lambda b: b.guid)
    return (
        f"{_guid(c.guid, 'connector GUID')} ( CONFIG {lstr(c.type)} {lstr(c.source_address)} "
        f"{lstr(c.target_address)} {lstr(c.dn)} {_num(c.schedule, 'schedule')} {_num(c.scope, 'scope')} "
        f"{_num(c.triggered, 'triggered')} {_num(c.priority, 'priority')} {_limit(c.max_size, 'max_size')} "
        f"{_limit(c.large_threshold, 'large_threshold')} {_num(c.no_pf_referrals, 'no_pf_referrals')} "
        f"{_num(c.accept_by_default, 'accept_by_default')} {_dn_block(c.accept)} {_dn_block(c.reject)} "
        f"{_dn_block(c.reserved3)} {_dn_block(c.reserved4)}  ARROWS "
        f"{_record_list(_arrow(a) for a in c.address_spaces)} BH {_record_list(_bridgehead(b) for b in bhs)} "
        f"TARGBH {_record_list(f'{lstr(t)} ' for t in c.target_bridgeheads)} STATE {c.state.value})"
    )


def _group_list(items: Iterable[str]) -> str:
    """Structural groups join items by one separator with none before `)`: `( a b)`, or `()`."""
    body = " ".join(items)
    return f"( {body})" if body else "()"


def encode_section(rg: RoutingGroup) -> bytes:
    """One routing-group section, canonical, without the separator that follows it in a frame."""
    v = rg.version
    members = sorted(rg.members, key=lambda m: m.guid)
    conns = sorted(rg.connectors, key=lambda c: c.guid)
    text = (
        f"( {_guid(rg.guid, 'routing group GUID')} {_guid(rg.master, 'master GUID')} "
        f"{_num(v.major, 'major')} {_num(v.minor, 'minor')} {_num(v.user, 'user')} "
        f"{_guid(rg.version_guid, 'version GUID')} {lstr(rg.smtp_address)} {lstr(rg.x400_address)} "
        f"{lstr(rg.x500_address)} {_record_list(_member(m) for m in members)} "
        f"{_group_list(_connector(c) for c in conns)})"
    )
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
