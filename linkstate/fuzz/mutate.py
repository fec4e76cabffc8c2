"""Structure-aware mutators: decode the input, change the model, re-encode, and sometimes break the lengths.

Owns: `orginfo_mutate` (an OrgInfo frame: versions, GUIDs, counts, states, numbers, strings with separators,
members/connectors/bridgeheads/address spaces/DNs added, removed or duplicated, sections reordered or repeated,
then now and then a broken `{len}`, `len8`, separator, keyword case or GUID), `rg691_mutate` (a 691 stream:
frames decoded to typed messages whose fields change, frames inserted from templates, dropped, repeated,
swapped, an ORGINFO frame through `orginfo_mutate`, lengths and verbs broken), and `byte_mutate` (plain byte
edits, what the hypothesis engine uses where libFuzzer would use its own). A structure-aware mutator returns
None when the input has no structure it can read; the engine then mutates bytes instead.
Invariants: every mutator is a pure function of (input, max size, the `random.Random` it is given), so a run
with a fixed seed is reproducible; outputs are at most `max_size` bytes.
May import: the standard library, proto.*, linkstate.fuzz.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from linkstate.fuzz.base import Mutator
from proto import rg691
from proto.decode import decode_tolerant
from proto.encode import encode_section, frame_from_sections
from proto.errors import DecodeError, EncodeError
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

NUMBERS = (0, 1, 2, 0xF, 0x10, 0x7F, 0xFF, 0x1AAE, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF, 1 << 63, (1 << 64) - 1)
STRINGS = (
    "", " ", "  ", "(", ")", "()", "( ", "{", "}", "{}", "{5}", "{5}abcde", " ) ", "ORGINFO", "CONFIG", "ARROWS",
    "BH", "TARGBH", "STATE UP", "CONN_AVAIL", "YES", "*", "*.example.com", "SMTP", "RG", "é", "\udcff", "\t", ".",
    "a b c", "0701000000000101", "x" * 200,
)  # fmt: skip
_BREAK_SEPS = (b"\t", b".", b"\r", b"\n", b"\x00", b"", b"  ")
_LEN = re.compile(rb"\{([0-9a-f]{0,8})\}")
_GUID = re.compile(rb"[0-9a-f]{32}")
_KEYWORD = re.compile(rb"[A-Z][A-Z_]+")

Op = Callable[[Any, random.Random], Any]
T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ values


def _num(rng: random.Random) -> int:
    return rng.choice(NUMBERS) if rng.random() < 0.7 else rng.getrandbits(rng.choice((4, 8, 16, 32, 64)))


def _str(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return rng.choice(STRINGS)
    return "".join(rng.choice("ab {}()\t.é0f") for _ in range(rng.randint(1, 12)))


def _guid(rng: random.Random, pool: tuple[str, ...] = ()) -> str:
    if pool and rng.random() < 0.4:  # an existing GUID: duplicates and order clashes
        return rng.choice(pool)
    return f"{rng.getrandbits(128):032x}"


def _edit_list(items: tuple[Any, ...], rng: random.Random, new: Callable[[], Any], edit: Op) -> tuple[Any, ...]:
    """Add (fresh or a copy), remove, duplicate, reorder, or edit one item of a tuple."""
    out = list(items)
    choice = rng.randrange(5) if out else 0
    if choice == 0:
        out.insert(rng.randint(0, len(out)), new() if not out or rng.random() < 0.5 else rng.choice(out))
    elif choice == 1:
        out.pop(rng.randrange(len(out)))
    elif choice == 2:
        out.append(rng.choice(out))
    elif choice == 3:
        rng.shuffle(out)
    else:
        i = rng.randrange(len(out))
        out[i] = edit(out[i], rng)
    return tuple(out)


def _edit_fields(obj: T, rng: random.Random, editors: dict[str, Op]) -> T:
    name = rng.choice(sorted(editors))
    return cast(T, dataclasses.replace(cast(Any, obj), **{name: editors[name](getattr(obj, name), rng)}))


def _strings(_: Any, rng: random.Random) -> tuple[str, ...]:
    return tuple(_str(rng) for _ in range(rng.choice((0, 1, 2, 3, 7))))


# ------------------------------------------------------------------------------------------------ OrgInfo model


def _member(m: Member, rng: random.Random) -> Member:
    return _edit_fields(m, rng, {
        "guid": lambda v, r: _guid(r, (v,)),
        "connected": lambda v, r: not v,
        "state_flags": lambda v, r: _num(r),
        "build": lambda v, r: _num(r),
        "service_status": lambda v, r: _str(r),
    })  # fmt: skip


def _bridgehead(b: Bridgehead, rng: random.Random) -> Bridgehead:
    return _edit_fields(b, rng, {
        "guid": lambda v, r: _guid(r, (v,)),
        "state": lambda v, r: r.choice(list(BridgeheadState)),
        "fqdn": lambda v, r: _str(r),
    })  # fmt: skip


def _arrow(a: AddressSpace, rng: random.Random) -> AddressSpace:
    return _edit_fields(a, rng, {
        "type": lambda v, r: _str(r), "address": lambda v, r: _str(r), "cost": lambda v, r: _num(r),
    })  # fmt: skip


def _limit(_: Any, rng: random.Random) -> int | None:
    return None if rng.random() < 0.3 else _num(rng)


def _connector(c: Connector, rng: random.Random) -> Connector:
    new_bh = lambda: Bridgehead(_guid(rng), rng.choice(list(BridgeheadState)), _str(rng))  # noqa: E731
    new_arrow = lambda: AddressSpace(rng.choice(("SMTP", "X400", "RG")), _str(rng), _num(rng))  # noqa: E731
    new_text = lambda: _str(rng)  # noqa: E731
    texts = lambda v, r: _edit_list(v, r, new_text, lambda s, r2: _str(r2))  # noqa: E731
    return _edit_fields(c, rng, {
        "guid": lambda v, r: _guid(r, (v,)),
        **{f: (lambda v, r: _str(r)) for f in ("type", "source_address", "target_address", "dn")},
        **{f: (lambda v, r: _num(r)) for f in ("schedule", "scope", "triggered", "priority", "no_pf_referrals",
                                               "accept_by_default")},
        "max_size": _limit,
        "large_threshold": _limit,
        **{f: texts for f in ("accept", "reject", "reserved3", "reserved4", "target_bridgeheads")},
        "address_spaces": lambda v, r: _edit_list(v, r, new_arrow, _arrow),
        "bridgeheads": lambda v, r: _edit_list(v, r, new_bh, _bridgehead),
        "state": lambda v, r: r.choice(list(ConnectorState)),
    })  # fmt: skip


def _new_connector(rng: random.Random) -> Connector:
    return Connector(guid=_guid(rng), address_spaces=(AddressSpace("SMTP", "*", 1),))


def _group(g: RoutingGroup, rng: random.Random) -> RoutingGroup:
    new_member = lambda: Member(_guid(rng))  # noqa: E731
    return _edit_fields(g, rng, {
        "guid": lambda v, r: _guid(r, (g.master,)),
        "master": lambda v, r: _guid(r, tuple(m.guid for m in g.members)),
        "version": lambda v, r: Version(_num(r), _num(r), _num(r)),
        "version_guid": lambda v, r: _guid(r),
        **{f: (lambda v, r: _str(r)) for f in ("smtp_address", "x400_address", "x500_address")},
        "members": lambda v, r: _edit_list(v, r, new_member, _member),
        "connectors": lambda v, r: _edit_list(v, r, lambda: _new_connector(r), _connector),
    })  # fmt: skip


def _org(org: OrgInfo, rng: random.Random) -> OrgInfo:
    new_group = lambda: RoutingGroup(guid=_guid(rng), master=_guid(rng), members=(Member(_guid(rng)),))  # noqa: E731
    return OrgInfo(_edit_list(org.routing_groups, rng, new_group, _group))


# ------------------------------------------------------------------------------------------------ OrgInfo bytes


def _sections(org: OrgInfo, rng: random.Random, digest: str | None) -> bytes:
    """The frame, usually canonical; now and then with sections reordered or repeated (what `encode` refuses)."""
    sections = [encode_section(g) for g in sorted(org.routing_groups, key=lambda g: g.guid)]
    if sections and rng.random() < 0.15:
        if rng.random() < 0.5:
            sections.insert(rng.randint(0, len(sections)), rng.choice(sections))
        else:
            rng.shuffle(sections)
    return frame_from_sections(sections, digest)


def _break_len(wire: bytes, rng: random.Random) -> bytes:
    found = list(_LEN.finditer(wire))
    if not found:
        return wire
    m = rng.choice(found)
    n = int(m.group(1) or b"0", 16) + rng.choice((-3, -2, -1, 1, 2, 3, 64, 1 << 20))
    digits = b"%x" % max(n, 0) if rng.random() < 0.8 else b"%08x" % max(n, 0)
    return wire[: m.start(1)] + digits + wire[m.end(1) :]


def _break_len8(wire: bytes, rng: random.Random) -> bytes:
    n = max(0, len(wire) - 10 + rng.choice((-2, -1, 1, 2, 1000, -len(wire))))
    return b"{%08x}" % n + wire[10:]


def _break_guid(wire: bytes, rng: random.Random) -> bytes:
    found = list(_GUID.finditer(wire))
    if len(found) < 2:
        return wire
    a, b = rng.sample(found, 2)
    return wire[: b.start()] + a.group() + wire[b.end() :]


def _break_sep(wire: bytes, rng: random.Random) -> bytes:
    spaces = [i for i, c in enumerate(wire) if c == 0x20]
    if not spaces:
        return wire
    i = rng.choice(spaces)
    return wire[:i] + rng.choice(_BREAK_SEPS) + wire[i + 1 :]


def _break_keyword(wire: bytes, rng: random.Random) -> bytes:
    found = list(_KEYWORD.finditer(wire))
    if not found:
        return wire
    m = rng.choice(found)
    word = m.group()
    new = word.lower() if rng.random() < 0.5 else b"VS_" + word if word.startswith(b"CONN") else word[:-1]
    return wire[: m.start()] + new + wire[m.end() :]


def _break_cut(wire: bytes, rng: random.Random) -> bytes:
    return wire[: rng.randrange(len(wire))] if wire else wire


_BREAKS: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    _break_len, _break_len, _break_len8, _break_guid, _break_sep, _break_keyword, _break_cut,
)  # fmt: skip


def orginfo_mutate(data: bytes, max_size: int, rng: random.Random) -> bytes | None:
    """An OrgInfo frame decoded (tolerantly), its table changed 1–3 times, re-encoded, sometimes broken."""
    try:
        decoded = decode_tolerant(data)
    except DecodeError:
        return None
    org = decoded.orginfo
    for _ in range(rng.randint(1, 3)):
        org = _org(org, rng)
    digest = decoded.digest if rng.random() < 0.5 else None
    try:
        wire = _sections(org, rng, digest)
    except EncodeError:
        return None
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
        wire = rng.choice(_BREAKS)(wire, rng)
    return wire if len(wire) <= max_size else None


# ------------------------------------------------------------------------------------------------ 691 streams

_G1, _G2, _G3 = "1f" * 16, "2e" * 16, "3d" * 16
TEMPLATES_691: tuple[rg691.Message, ...] = (
    rg691.AuthHello("MEMBER", _G2, _G3),
    rg691.AuthHello("CLIENT", _G2, _G3),
    rg691.AuthChallenge(_G1, _G3, "ab" * 32),
    rg691.AuthProof("cd" * 32),
    rg691.AuthResult(True),
    rg691.AuthResult(False, "no"),
    rg691.Attach(_G2, _G3, _G1, "0" * 32, 1, 2, 3, _G3),
    rg691.AttachAck(True, "0" * 32, 1, 2, True),
    rg691.AttachAck(False, reason="no quorum"),
    rg691.SimplePoll("0" * 32),
    rg691.PollResponse(False, "0" * 32),
    rg691.Reply("0" * 32, True),
    rg691.Ack("0" * 32),
    rg691.StateReport("BH", _G3, _G2, "CONN_NOT_AVAILABLE"),
    rg691.StateReport("SERVICE", _G2, "", "0701000000000101"),
    rg691.StateReport("FAULT", _G3, "", "CLEAR"),
    rg691.Detach("bye"),
    rg691.Inject(_G3),
    rg691.Dump(),
    rg691.Dump(True, _G1, _G3, "master", _G1, True, True, 1, 2),
)
_HEADER = re.compile(rb"\{([0-9a-f]{8})\}")


def split_691(stream: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(banner line or b"", whole frames, trailing bytes that are not a whole frame)."""
    banner = b""
    if stream.startswith(rg691.BANNER_PREFIX) and b"\n" in stream:
        banner = stream[: stream.index(b"\n") + 1]
    pos, frames = len(banner), []
    while (m := _HEADER.match(stream, pos)) is not None:
        end = pos + 10 + int(m.group(1), 16)
        if end > len(stream):
            break
        frames.append(stream[pos:end])
        pos = end
    return banner, frames, stream[pos:]


def _message_field(msg: rg691.Message, rng: random.Random) -> rg691.Message:
    fields = [f for f in dataclasses.fields(cast(Any, msg)) if f.name not in ("raw", "decoded")]
    if not fields:
        return msg
    f = rng.choice(fields)
    value = getattr(msg, f.name)
    if isinstance(value, bool):
        new: Any = not value
    elif isinstance(value, int):
        new = _num(rng)
    elif rng.random() < 0.5:
        new = _guid(rng, (_G1, _G2, _G3))
    else:
        new = rng.choice(("", " ", "MEMBER", "CLIENT", "BRIDGEHEAD", "BH", "SERVICE", "FAULT", "CONN_AVAIL",
                          "{3}", "a b", "é", "x" * 80, _str(rng)))  # fmt: skip
    return cast(rg691.Message, dataclasses.replace(cast(Any, msg), **{f.name: new}))


def _frame_op(frame: bytes, max_size: int, rng: random.Random) -> bytes:
    """One frame changed: an ORGINFO table through `orginfo_mutate`, any other message field by field."""
    try:
        msg = rg691.decode_frame(frame)
    except DecodeError:
        return _break_len8(frame, rng)
    if isinstance(msg, rg691.OrgInfoFrame):
        return orginfo_mutate(frame, max_size, rng) or frame
    try:
        return rg691.encode_message(_message_field(msg, rng))
    except (EncodeError, ValueError, TypeError):
        return frame


def _template(rng: random.Random) -> bytes:
    return rg691.encode_message(rng.choice(TEMPLATES_691))


def rg691_mutate(data: bytes, max_size: int, rng: random.Random) -> bytes | None:
    """A 691 stream (mode byte + frames) with a frame changed, added, dropped, repeated, swapped or broken."""
    if not data:
        return None
    mode, stream = data[:1], data[1:]
    banner, frames, tail = split_691(stream)
    op = rng.randrange(8)
    if op == 0 or not frames:
        frames.insert(rng.randint(0, len(frames)), _template(rng))
    elif op == 1:
        mode = bytes([rng.getrandbits(8)])
    elif op == 2:
        frames.pop(rng.randrange(len(frames)))
    elif op == 3:
        frames.insert(rng.randint(0, len(frames)), rng.choice(frames))
    elif op == 4 and len(frames) > 1:
        i, j = rng.sample(range(len(frames)), 2)
        frames[i], frames[j] = frames[j], frames[i]
    elif op == 5:
        i = rng.randrange(len(frames))
        frames[i] = rng.choice(_BREAKS)(frames[i], rng)
    else:
        i = rng.randrange(len(frames))
        frames[i] = _frame_op(frames[i], max_size, rng)
    out = mode + banner + b"".join(frames) + tail
    return out if len(out) <= max_size else None


# ------------------------------------------------------------------------------------------------ bytes


def byte_mutate(data: bytes, max_size: int, rng: random.Random, tokens: tuple[bytes, ...] = ()) -> bytes:
    """Plain byte edits: flip, insert, delete, repeat a slice, or insert a dictionary token."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6 if tokens else 5)
        i = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(i, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i:i] = bytes([rng.getrandbits(8)])
        elif op == 2 and buf:
            del buf[i : i + rng.randint(1, 8)]
        elif op == 3 and buf:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j : j + rng.randint(1, 32)]
        elif op == 4 and buf:
            buf[min(i, len(buf) - 1)] = rng.choice(b" {}()\r\n\x00.0f")
        elif tokens:
            buf[i:i] = rng.choice(tokens)
    return bytes(buf[:max_size])


MUTATORS: dict[str, Mutator] = {"orginfo": orginfo_mutate, "rg691": rg691_mutate}
