"""The OrgInfo wire grammar as a declarative `construct` description: the readable reference.

Owns: the canonical (strict) grammar of docs/PROTOCOL.md §1, written as construct structs: the frame header,
keyword constants, the routing-group section, members, the connector CONFIG block, the DN/address-space/
bridgehead lists, and the lexical atoms (`{hexlen}bytes` strings, hex numbers, GUIDs, parenthesised lists).
Nothing here but grammar: no ordering rules, no model building (proto.reference turns the containers this
parses into models), no tolerance (the tolerant mode exists only in the fast decoder, proto.decode).
Invariants: parses exactly the bytes proto.encode writes and proto.decode.decode_strict accepts (a property
test checks the three against each other); the custom atoms also build, so each struct round-trips.
May import: the standard library, construct, and proto.*.
"""

from __future__ import annotations

import re
from typing import Any

from construct import (
    Check,
    Const,
    Construct,
    ConstructError,
    FixedSized,
    Struct,
    Terminated,
    len_,
    this,
)
from construct.core import stream_read, stream_seek, stream_tell, stream_write

__all__ = [
    "ADDRESS_SPACE",
    "ARROWS",
    "BH",
    "BRIDGEHEAD",
    "BRIDGEHEAD_STATES",
    "CONFIG",
    "CONNECTOR",
    "CONNECTOR_CONFIG",
    "CONNECTOR_STATES",
    "DN_BLOCK",
    "DN_ITEM",
    "FRAME",
    "FRAME_BODY",
    "MAX_HEX_DIGITS",
    "MAX_STRING",
    "MEMBER",
    "ORGINFO",
    "RG_SECTION",
    "SEP",
    "STATE",
    "TARGBH",
    "TARGET_BRIDGEHEAD",
    "GrammarError",
    "Guid32",
    "Hex8",
    "HexNum",
    "Keyword",
    "LStr",
    "ParenList",
    "Sections",
]

MAX_HEX_DIGITS = 16  # a hex number has at most 16 digits (64 bits)
MAX_STRING = 64 * 1024  # the default string limit (DECISIONS §1)
MAX_LEN_DIGITS = 8  # a `{hexlen}` has at most 8 digits

_HEX = frozenset(b"0123456789abcdef")
_GUID_RX = re.compile(rb"[0-9a-f]{32}")
_BAD = re.compile(rb"[\r\n\x00]")


class GrammarError(ConstructError):  # type: ignore[misc]
    """A byte sequence the grammar does not allow; `offset` is where (in the stream being parsed)."""

    def __init__(self, message: str, offset: int, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.offset = offset


def _peek(stream: Any, path: str) -> bytes:
    pos = stream_tell(stream, path)
    b: bytes = stream.read(1)
    stream_seek(stream, pos, 0, path)
    return b


def _hex_run(stream: Any, path: str, limit: int) -> tuple[bytes, int]:
    """The run of lowercase hex digits at the stream position (at most `limit + 1` read)."""
    start = stream_tell(stream, path)
    digits = bytearray()
    while len(digits) <= limit:
        b = stream.read(1)
        if not b or b[0] not in _HEX:
            break
        digits += b
    stream_seek(stream, start + len(digits), 0, path)
    return bytes(digits), start


class HexNum(Construct):  # type: ignore[misc]
    """`hexnum`: lowercase hex, no leading zero (`0` itself excepted), 1 to 16 digits -> int."""

    def _parse(self, stream: Any, context: Any, path: str) -> int:
        digits, start = _hex_run(stream, path, MAX_HEX_DIGITS)
        if not digits:
            raise GrammarError("hex number expected", start, path)
        if len(digits) > MAX_HEX_DIGITS:
            raise GrammarError("hex number longer than 16 digits", start, path)
        if len(digits) > 1 and digits[0:1] == b"0":
            raise GrammarError("hex number with a leading zero", start, path)
        return int(digits, 16)

    def _build(self, obj: int, stream: Any, context: Any, path: str) -> int:
        stream_write(stream, b"%x" % obj, len(b"%x" % obj), path)
        return obj


class Hex8(Construct):  # type: ignore[misc]
    """Exactly 8 lowercase hex digits -> int (the frame length, max-size, large-message threshold)."""

    def _parse(self, stream: Any, context: Any, path: str) -> int:
        start = stream_tell(stream, path)
        raw = stream_read(stream, 8, path)
        if any(b not in _HEX for b in raw):
            raise GrammarError("8 lowercase hex digits expected", start, path)
        return int(raw, 16)

    def _build(self, obj: int, stream: Any, context: Any, path: str) -> int:
        stream_write(stream, b"%08x" % obj, 8, path)
        return obj


class Guid32(Construct):  # type: ignore[misc]
    """A GUID: 32 lowercase hex digits -> str (byte order of the text form, requirements G6)."""

    def _parse(self, stream: Any, context: Any, path: str) -> str:
        start = stream_tell(stream, path)
        raw: bytes = stream_read(stream, 32, path)
        if not _GUID_RX.fullmatch(raw):
            raise GrammarError("GUID (32 lowercase hex digits) expected", start, path)
        return raw.decode("ascii")

    def _build(self, obj: str, stream: Any, context: Any, path: str) -> str:
        stream_write(stream, obj.encode("ascii"), 32, path)
        return obj


class LStr(Construct):  # type: ignore[misc]
    """`lstr = "{" [hexlen] "}" *OCTET`: exactly hexlen bytes, UTF-8 (surrogateescape), no CR/LF/NUL -> str.

    `{}` is the empty string; hexlen has no leading zero and at most 8 digits; longer than `max_len` fails.
    """

    def __init__(self, max_len: int = MAX_STRING) -> None:
        super().__init__()
        self.max_len = max_len

    def _parse(self, stream: Any, context: Any, path: str) -> str:
        start = stream_tell(stream, path)
        if stream_read(stream, 1, path) != b"{":
            raise GrammarError("'{' expected", start, path)
        digits, _ = _hex_run(stream, path, MAX_LEN_DIGITS)
        if len(digits) > MAX_LEN_DIGITS or digits[0:1] == b"0":
            raise GrammarError("bad string length", start, path)
        if stream_read(stream, 1, path) != b"}":
            raise GrammarError("'}' expected", start, path)
        n = int(digits, 16) if digits else 0
        if n > self.max_len:
            raise GrammarError("string longer than the limit", start, path)
        raw: bytes = stream_read(stream, n, path)
        if _BAD.search(raw):
            raise GrammarError("CR, LF or NUL inside a string", start, path)
        return raw.decode("utf-8", "surrogateescape")

    def _build(self, obj: str, stream: Any, context: Any, path: str) -> str:
        raw = obj.encode("utf-8", "surrogateescape")
        head = b"{%x}" % len(raw) if raw else b"{}"
        stream_write(stream, head + raw, len(head) + len(raw), path)
        return obj


class Keyword(Construct):  # type: ignore[misc]
    """One of a fixed set of upper-case keywords -> str (the keyword itself)."""

    def __init__(self, *words: str) -> None:
        super().__init__()
        self.words = tuple(w.encode("ascii") for w in words)

    def _parse(self, stream: Any, context: Any, path: str) -> str:
        start = stream_tell(stream, path)
        for word in self.words:
            if stream.read(len(word)) == word:
                return word.decode("ascii")
            stream_seek(stream, start, 0, path)
        raise GrammarError(f"one of {[w.decode() for w in self.words]} expected", start, path)

    def _build(self, obj: str, stream: Any, context: Any, path: str) -> str:
        stream_write(stream, obj.encode("ascii"), len(obj), path)
        return obj


class ParenList(Construct):  # type: ignore[misc]
    """`"()" / "(" SEP item *(SEP item) ")"` -> list. Record items carry their own trailing SEP, so a record
    list reads `( r1  r2 )` and a structural list `( a b)`: one rule covers both (requirements §2.6)."""

    def __init__(self, subcon: Construct, max_items: int = 100_000) -> None:
        super().__init__()
        self.subcon = subcon
        self.max_items = max_items

    def _parse(self, stream: Any, context: Any, path: str) -> list[Any]:
        start = stream_tell(stream, path)
        if stream_read(stream, 1, path) != b"(":
            raise GrammarError("'(' expected", start, path)
        items: list[Any] = []
        if _peek(stream, path) == b")":
            stream_read(stream, 1, path)
            return items
        while True:
            sep_at = stream_tell(stream, path)
            if stream_read(stream, 1, path) != b" ":
                raise GrammarError("separator expected", sep_at, path)
            if len(items) >= self.max_items:
                raise GrammarError("too many list items", sep_at, path)
            items.append(self.subcon._parsereport(stream, context, path))
            if _peek(stream, path) == b")":
                stream_read(stream, 1, path)
                return items

    def _build(self, obj: list[Any], stream: Any, context: Any, path: str) -> list[Any]:
        stream_write(stream, b"(", 1, path)
        for item in obj:
            stream_write(stream, b" ", 1, path)
            self.subcon._build(item, stream, context, path)
        stream_write(stream, b")", 1, path)
        return obj


class Sections(Construct):  # type: ignore[misc]
    """`*(rg-section SEP)`: sections for as long as the next byte opens one -> list."""

    def __init__(self, subcon: Construct) -> None:
        super().__init__()
        self.subcon = subcon

    def _parse(self, stream: Any, context: Any, path: str) -> list[Any]:
        items: list[Any] = []
        while _peek(stream, path) == b"(":
            items.append(self.subcon._parsereport(stream, context, path))
            sep_at = stream_tell(stream, path)
            if stream_read(stream, 1, path) != b" ":
                raise GrammarError("separator expected", sep_at, path)
        return items

    def _build(self, obj: list[Any], stream: Any, context: Any, path: str) -> list[Any]:
        for item in obj:
            self.subcon._build(item, stream, context, path)
            stream_write(stream, b" ", 1, path)
        return obj


# ---- keywords and separators ---------------------------------------------------------------------------

SEP = Const(b" ")  # the canonical separator (DECISIONS §1)
ORGINFO = Const(b"ORGINFO")
CONFIG = Const(b"CONFIG")
ARROWS = Const(b"ARROWS")
BH = Const(b"BH")
TARGBH = Const(b"TARGBH")
STATE = Const(b"STATE")
BRIDGEHEAD_STATES = ("CONN_AVAIL", "CONN_NOT_AVAILABLE", "CONN_NOT_STARTED")
CONNECTOR_STATES = ("UP", "DOWN")

# ---- records -------------------------------------------------------------------------------------------

MEMBER = Struct(
    "guid" / Guid32(), SEP,
    "connected" / Keyword("YES", "NO"), SEP,
    "state_flags" / HexNum(), SEP,
    "build" / HexNum(), SEP,
    "service_status" / LStr(), SEP,
)  # fmt: skip

DN_ITEM = Struct("dn" / LStr(), SEP)

DN_BLOCK = Struct(
    "count" / HexNum(), SEP,
    "dns" / ParenList(DN_ITEM),
    Check(this.count == len_(this.dns)),
)  # fmt: skip

ADDRESS_SPACE = Struct("type" / LStr(), SEP, "address" / LStr(), SEP, "cost" / HexNum(), SEP)

BRIDGEHEAD = Struct("guid" / Guid32(), SEP, "state" / Keyword(*BRIDGEHEAD_STATES), SEP, "fqdn" / LStr(), SEP)

TARGET_BRIDGEHEAD = Struct("fqdn" / LStr(), SEP)

CONNECTOR_CONFIG = Struct(
    Const(b"("), SEP, CONFIG, SEP,
    "type" / LStr(), SEP,
    "source_address" / LStr(), SEP,
    "target_address" / LStr(), SEP,
    "dn" / LStr(), SEP,
    "schedule" / HexNum(), SEP,
    "scope" / HexNum(), SEP,
    "triggered" / HexNum(), SEP,
    "priority" / HexNum(), SEP,
    "max_size" / Hex8(), SEP,
    "large_threshold" / Hex8(), SEP,
    "no_pf_referrals" / HexNum(), SEP,
    "accept_by_default" / HexNum(), SEP,
    "accept" / DN_BLOCK, SEP,
    "reject" / DN_BLOCK, SEP,
    "reserved3" / DN_BLOCK, SEP,
    "reserved4" / DN_BLOCK, SEP,
    SEP,  # the empty field before ARROWS (requirements G11)
    ARROWS, SEP, "address_spaces" / ParenList(ADDRESS_SPACE), SEP,
    BH, SEP, "bridgeheads" / ParenList(BRIDGEHEAD), SEP,
    TARGBH, SEP, "target_bridgeheads" / ParenList(TARGET_BRIDGEHEAD), SEP,
    STATE, SEP, "state" / Keyword(*CONNECTOR_STATES),
    Const(b")"),
)  # fmt: skip

CONNECTOR = Struct("guid" / Guid32(), SEP, "config" / CONNECTOR_CONFIG)

RG_SECTION = Struct(
    Const(b"("), SEP,
    "guid" / Guid32(), SEP,
    "master" / Guid32(), SEP,
    "major" / HexNum(), SEP,
    "minor" / HexNum(), SEP,
    "user" / HexNum(), SEP,
    "version_guid" / Guid32(), SEP,
    "smtp_address" / LStr(), SEP,
    "x400_address" / LStr(), SEP,
    "x500_address" / LStr(), SEP,
    "members" / ParenList(MEMBER), SEP,
    "connectors" / ParenList(CONNECTOR),
    Const(b")"),
)  # fmt: skip

# ---- the frame -----------------------------------------------------------------------------------------

FRAME_BODY = Struct(
    SEP, ORGINFO, SEP,
    "digest" / Guid32(), SEP,
    "sections" / Sections(RG_SECTION),  # the digest covers the bytes from here to the end
    SEP,
    Terminated,
)  # fmt: skip

FRAME = Struct(
    Const(b"{"), "length" / Hex8(), Const(b"}"),
    "body" / FixedSized(this.length, FRAME_BODY),
    Terminated,
)  # fmt: skip
