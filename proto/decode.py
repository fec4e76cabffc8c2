"""The fast OrgInfo decoders: bytes -> `Decoded` (strict and tolerant), hand-written for the hot path.

Owns: `decode_strict`, `decode_tolerant` (strict first, then the tolerant parser), `tolerant_parse` (the
tolerant parser alone, for tests and benchmarks) and the result/limit types they share (`Limits`, `DEFAULT_LIMITS`,
`Warning_`, `Decoded`; `proto.codec` re-exports them). The grammar is docs/PROTOCOL.md §1 (its readable
reference is the construct grammar in `proto.orginfo`; a property test proves the two equivalent).

How it works: the grammar is cut into flat *records* (a routing-group header, a member, a connector header, a
DN, an address space, a bridgehead, ...). A record is a run of compiled regular expressions over the fixed
tokens, with length-prefixed strings between them, which are sliced by count, never scanned. The structural
glue (lists, sections) is a plain loop: nesting is fixed by the grammar, so nothing recurses on input depth.

Invariants:
  - strict accepts exactly what `proto.encode.encode` writes (so `encode(decode_strict(b).orginfo,
    digest=carried) == b`), and its computed digest is the MD5 of the input's own section bytes;
  - tolerant accepts a superset (separators ` \\t\\r\\n\\0.`, a missing `ORGINFO` tag, any hex case, leading
    zeros, `VS_` bridgehead states, wrong string lengths repaired within a bounded search, counts/order/outer
    length only warned about; duplicate GUIDs refused) and equals strict on canonical input, and what it
    accepts always encodes to bytes strict accepts;
  - every failure is `DecodeError(offset, reason)`; limits are checked before slicing; the repair search is
    bounded per string (`REPAIR_CANDIDATES`, `REPAIR_WINDOW`) and per frame (a budget linear in the input).
May import: the standard library and proto.* (never construct here: this is the fast path).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from proto.encode import digest as _canonical_digest
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

__all__ = [
    "DEFAULT_LIMITS",
    "REPAIR_CANDIDATES",
    "REPAIR_WINDOW",
    "Decoded",
    "Limits",
    "Warning_",
    "decode_strict",
    "decode_tolerant",
    "tolerant_parse",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds checked before allocating (DECISIONS §1); all may be lowered."""

    max_frame: int = 16 * 1024 * 1024
    max_string: int = 64 * 1024
    max_depth: int = 8
    max_items: int = 100_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Warning_:
    """A repair the tolerant decoder made: where, and what."""

    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded frame: the table plus what the frame said about itself."""

    orginfo: OrgInfo
    digest: str  # as carried in the frame
    computed_digest: str  # MD5 of the canonical form of `orginfo`
    length: int  # the frame's declared body length (the `{len8}` value)
    warnings: tuple[Warning_, ...] = ()

    @property
    def tampered(self) -> str:
        """Why the frame must not be accepted though it parses: the digest it carries is not the MD5 of its own
        bytes (seed L9083: "the characters before the first parenthesis … represent the MD5 hash"); "" when it is."""
        if self.digest == self.computed_digest:
            return ""
        return f"the digest it carries ({self.digest}) is not the MD5 of its bytes ({self.computed_digest})"


REPAIR_CANDIDATES = 6  # string ends tried per length prefix, the declared one included
REPAIR_WINDOW = 64  # how far (bytes) from the declared end a repaired end may lie
HEADER_LEN = 10  # `{` 8 hex digits `}`
_MAX_STRUCT_DEPTH = 4  # RG section 1, member/connector lists 2, CONFIG 3, DN/ARROWS/BH/TARGBH lists 4

# --------------------------------------------------------------------------------------------------------
# Tokens. A chunk spec is a space-separated list of token names; each mode maps a name to a regex fragment
# (capturing where a value is produced) and a description used in error messages.

_SEP_CLASS = "[ \\t\\r\\n\\x00.]"
_KEYWORDS = ("ORGINFO", "CONFIG", "ARROWS", "BH", "TARGBH", "STATE")

_STRICT_FRAGMENTS: dict[str, tuple[str, str]] = {
    "S": (" ", "a separator (0x20)"),
    "G": ("([0-9a-f]{32})", "a GUID (32 lowercase hex digits)"),
    "H": ("(0|[1-9a-f][0-9a-f]{0,15})", "a hex number (lowercase, no leading zero, at most 16 digits)"),
    "X8": ("([0-9a-f]{8})", "8 lowercase hex digits"),
    "L": ("\\{((?:[1-9a-f][0-9a-f]{0,7})?)\\}", "a string length '{hexlen}'"),
    "YN": ("(YES|NO)", "YES or NO"),
    "BHS": ("(CONN_AVAIL|CONN_NOT_AVAILABLE|CONN_NOT_STARTED)", "a bridgehead state"),
    "CS": ("(UP|DOWN)", "UP or DOWN"),
    "(": ("\\(", "'('"),
    ")": ("\\)", "')'"),
    "{": ("\\{", "'{'"),
    "}": ("\\}", "'}'"),
    "?G": ("(?=\\)| [0-9a-f])", "')' or a separator and the next item"),
    "?L": ("(?=\\)| \\{)", "')' or a separator and the next item"),
    **{k: (k, f"'{k}'") for k in _KEYWORDS},
}

_TOLERANT_FRAGMENTS: dict[str, tuple[str, str]] = {
    "S": (_SEP_CLASS, "a separator"),
    "G": ("([0-9a-fA-F]{32})", "a GUID (32 hex digits)"),
    "H": ("([0-9a-fA-F]{1,16})", "a hex number (at most 16 digits)"),
    "X8": ("([0-9a-fA-F]{8})", "8 hex digits"),
    "L": ("\\{([0-9a-fA-F]{0,8})\\}", "a string length '{hexlen}'"),
    "YN": ("((?i:YES|NO))", "YES or NO"),
    "BHS": ("(?i:VS_)?((?i:CONN_AVAIL|CONN_NOT_AVAILABLE|CONN_NOT_STARTED))", "a bridgehead state"),
    "CS": ("((?i:UP|DOWN))", "UP or DOWN"),
    "(": ("\\(", "'('"),
    ")": ("\\)", "')'"),
    "{": ("\\{", "'{'"),
    "}": ("\\}", "'}'"),
    "?G": (f"(?=\\)|{_SEP_CLASS}[0-9a-fA-F])", "')' or a separator and the next item"),
    "?L": (f"(?=\\)|{_SEP_CLASS}\\{{)", "')' or a separator and the next item"),
    "?T": ("(?:(?i:ORGINFO))?", "the ORGINFO tag"),
    **{k: (f"(?i:{k})", f"'{k}'") for k in _KEYWORDS},
}
_STRICT_FRAGMENTS["?T"] = ("ORGINFO", "'ORGINFO'")


class _Chunk:
    """One compiled run of fixed tokens, plus the per-token regexes used to locate an error."""

    __slots__ = ("rx", "tokens")

    def __init__(self, spec: str, fragments: dict[str, tuple[str, str]]) -> None:
        parts = [fragments[name] for name in spec.split()]
        self.rx = re.compile("".join(p[0] for p in parts))
        self.tokens = tuple((re.compile(p[0]), p[1]) for p in parts)


class _Grammar:
    """The record chunks of one mode. A record with strings is a tuple of chunks: every chunk but the last
    ends with a length prefix `L`, and the string it announces sits between that chunk and the next."""

    def __init__(self, fragments: dict[str, tuple[str, str]]) -> None:
        def c(spec: str) -> _Chunk:
            return _Chunk(spec, fragments)

        self.header = c("{ X8 } S ?T S G S")
        self.rg = (c("( S G S G S H S H S H S G S L"), c("S L"), c("S L"), c("S ( ?G"))
        self.member = (c("G S YN S H S H S L"), c("S ?G"))
        self.conn_open = c("S ( ?G")
        self.conn = (
            c("G S ( S CONFIG S L"),
            c("S L"),
            c("S L"),
            c("S L"),
            c("S H S H S H S H S X8 S X8 S H S H S H S ( ?L"),
        )
        self.dn = (c("L"), c("S ?L"))
        self.block = c("S H S ( ?L")
        self.arrows_open = c("S S ARROWS S ( ?L")
        self.arrow = (c("L"), c("S L"), c("S H S ?L"))
        self.bh_open = c("S BH S ( ?G")
        self.bh = (c("G S BHS S L"), c("S ?G"))
        self.targbh_open = c("S TARGBH S ( ?L")
        self.targbh = (c("L"), c("S ?L"))
        self.state = c("S STATE S CS ) ?G")
        self.rg_close = c(")")
        self.sep = c("S")


_STRICT = _Grammar(_STRICT_FRAGMENTS)
_TOLERANT = _Grammar(_TOLERANT_FRAGMENTS)
_LEN8 = re.compile("\\{([0-9a-f]{8})\\}")

_BAD = re.compile("[\r\n\x00]")  # never inside a string
_SEP_RX = re.compile(_SEP_CLASS)
_TOLERANT_SEPS = " \t\r\n\x00."
_STRICT_HEX = "0123456789abcdef"
_TOLERANT_HEX = "0123456789abcdefABCDEF"
_NO_BAD = 1 << 62  # "no CR/LF/NUL ahead"

Values = list[str]
_BH_STATES = {s.value: s for s in BridgeheadState}
_EMPTY_RESERVED = " 0 () 0 ()"  # strict: reserved blocks 3 and 4, nearly always empty
_CONN_STATES = {s.value: s for s in ConnectorState}


class _Parser:
    """One decode run. `text` is the input decoded as latin-1, so string offsets equal byte offsets."""

    def __init__(self, data: bytes, limits: Limits, strict: bool) -> None:
        self.data = data
        self.text = data.decode("latin-1")
        self.limits = limits
        self.strict = strict
        self.g = _STRICT if strict else _TOLERANT
        self.end = len(data)
        self.warnings: list[Warning_] = []
        self.budget = 8 * len(data) + 8192
        self.record = self._record_strict if strict else self._record_tolerant
        self.seps = " " if strict else _TOLERANT_SEPS
        self.hex = _STRICT_HEX if strict else _TOLERANT_HEX
        self.ascii = data.isascii()
        self.bad_from = 0  # no CR/LF/NUL in [bad_from, bad_at)
        self.bad_at = -1
        self.shallow = limits.max_depth < _MAX_STRUCT_DEPTH  # depth checks needed at all?
        # Strict: no strict token matches CR/LF/NUL, so the first one in the frame is either inside the string
        # being read or where the parse will fail; one memchr-speed scan replaces a search per string.
        self.first_bad = -1
        if strict:
            found = [i for i in (data.find(b"\r"), data.find(b"\n"), data.find(b"\x00")) if i >= 0]
            self.first_bad = min(found) if found else _NO_BAD

    # ---- errors ------------------------------------------------------------------------------------------

    def _fail(self, chunk: _Chunk, pos: int) -> DecodeError:
        """The error for a chunk that does not match at `pos`: find the first token that fails."""
        text, end = self.text, self.end
        p = pos
        for rx, desc in chunk.tokens:
            m = rx.match(text, p, end)
            if m is None:
                if p >= end:
                    return DecodeError(p, f"unexpected end of frame, expected {desc}")
                return DecodeError(p, f"expected {desc}, found {self.data[p : p + 1]!r}")
            p = m.end()
        return DecodeError(pos, "malformed record")  # pragma: no cover - the tokens mirror the chunk

    def _warn(self, offset: int, reason: str) -> None:
        self.warnings.append(Warning_(offset, reason))

    def _string(self, s: int, e: int) -> str:
        if self.ascii:
            return self.text[s:e]
        return self.data[s:e].decode("utf-8", "surrogateescape")

    def _next_bad(self, s: int) -> int:
        """Offset of the first CR/LF/NUL at or after `s` (cached: amortised linear over a decode)."""
        if self.bad_from <= s <= self.bad_at:
            return self.bad_at
        if s < self.bad_from:  # backwards (a repair search): scan only the gap
            m = _BAD.search(self.text, s, self.bad_from)
            self.budget -= self.bad_from - s
            self.bad_from = s
            if m is not None:
                self.bad_at = m.start()
            return self.bad_at
        m = _BAD.search(self.text, s)
        self.bad_from = s
        self.bad_at = m.start() if m is not None else _NO_BAD
        return self.bad_at

    # ---- records -----------------------------------------------------------------------------------------

    def _record_strict(self, chunks: tuple[_Chunk, ...], pos: int) -> tuple[Values, int]:
        text, end, max_string, bad, ascii_ = self.text, self.end, self.limits.max_string, self.first_bad, self.ascii
        m = chunks[0].rx.match(text, pos, end)
        if m is None:
            raise self._fail(chunks[0], pos)
        vals: Values = []
        for chunk in chunks[1:]:
            groups = m.groups()
            hexlen = groups[-1]
            vals.extend(groups[:-1])
            s = m.end()
            n = int(hexlen, 16) if hexlen else 0
            lbrace = s - len(hexlen) - 2
            if n > max_string:
                raise DecodeError(lbrace, f"string length {{{hexlen}}} ({n} bytes) exceeds {max_string}")
            e = s + n
            if e >= end:
                raise DecodeError(lbrace, f"string length {{{hexlen}}} ({n} bytes) runs past the frame")
            if e > bad:
                raise DecodeError(bad, "CR, LF or NUL inside a string")
            vals.append(text[s:e] if ascii_ else self._string(s, e))
            m = chunk.rx.match(text, e, end)
            if m is None:
                if text[e] != " ":
                    raise DecodeError(
                        lbrace, f"string length {{{hexlen}}} ({n} bytes) does not end at a separator"
                    )
                raise self._fail(chunk, e)
        vals.extend(m.groups())
        return vals, m.end()

    def _record_tolerant(self, chunks: tuple[_Chunk, ...], pos: int) -> tuple[Values, int]:
        m = chunks[0].rx.match(self.text, pos, self.end)
        if m is None:
            raise self._fail(chunks[0], pos)
        if len(chunks) == 1:
            return list(m.groups()), m.end()
        solved = self._solve(chunks, 1, m)
        if solved is None:
            raise self._diagnose(chunks, pos)
        vals, endpos, repairs = solved
        for offset, reason in repairs:
            self._warn(offset, reason)
        return vals, endpos

    def _solve(
        self, chunks: tuple[_Chunk, ...], i: int, m: re.Match[str]
    ) -> tuple[Values, int, list[tuple[int, str]]] | None:
        """Read the string announced by `m` and the rest of the record; on a dead end try other string ends.

        Depth is the number of strings in one record (at most 4), never the input's.
        """
        groups = m.groups()
        hexlen = groups[-1]
        s = m.end()
        n = int(hexlen, 16) if hexlen else 0
        lbrace = s - len(hexlen) - 2
        if n > self.limits.max_string:
            raise DecodeError(
                lbrace, f"string length {{{hexlen}}} ({n} bytes) exceeds the limit {self.limits.max_string}"
            )
        chunk = chunks[i]
        last = i + 1 == len(chunks)
        text, end = self.text, self.end
        for e in self._candidates(s, n, lbrace):
            m2 = chunk.rx.match(text, e, end)
            if m2 is None:
                continue
            if last:
                tail: tuple[Values, int, list[tuple[int, str]]] | None = (list(m2.groups()), m2.end(), [])
            else:
                tail = self._solve(chunks, i + 1, m2)
            if tail is None:
                continue
            vals: Values = list(groups[:-1])
            vals.append(self._string(s, e))
            vals.extend(tail[0])
            repairs = tail[2]
            if e != s + n:
                got = e - s
                repairs.insert(
                    0,
                    (lbrace, f"string length {{{hexlen}}} ({n} bytes) repaired to {{{got:x}}} ({got} bytes)"),
                )
            return vals, tail[1], repairs
        return None

    def _spend(self, cost: int, offset: int) -> None:
        self.budget -= cost
        if self.budget < 0:
            raise DecodeError(offset, "string-length repair search exceeded its budget")

    def _candidates(self, s: int, n: int, lbrace: int) -> Iterator[int]:
        """String ends to try: the declared one, then the separators nearest to it (bounded)."""
        text, end = self.text, self.end
        target = s + n
        hi = min(end, target + REPAIR_WINDOW + 1)
        self._spend(1, lbrace)
        limit = min(hi, self._next_bad(s))  # a string cannot reach past a CR/LF/NUL
        if target < end and target <= limit:
            yield target
        lo = max(s, target - REPAIR_WINDOW)
        top = min(hi, limit + 1)
        if lo >= top:
            return
        found = [mm.start() for mm in _SEP_RX.finditer(text, lo, top)]
        found.sort(key=lambda p: (abs(p - target), p))
        tried = 1
        for p in found:
            if p == target:
                continue
            if tried >= REPAIR_CANDIDATES:
                return
            tried += 1
            self._spend(16, lbrace)
            yield p

    def _diagnose(self, chunks: tuple[_Chunk, ...], pos: int) -> DecodeError:
        """The error for a record no repair could save: follow the declared lengths to the first failure."""
        text, end = self.text, self.end
        m = chunks[0].rx.match(text, pos, end)
        assert m is not None
        for chunk in chunks[1:]:
            hexlen = m.groups()[-1]
            s = m.end()
            n = int(hexlen, 16) if hexlen else 0
            lbrace = s - len(hexlen) - 2
            e = s + n
            reason = f"string length {{{hexlen}}} ({n} bytes) does not end where the record can go on"
            if e >= end or text[e] not in _TOLERANT_SEPS or self._next_bad(s) < e:
                return DecodeError(lbrace, reason + ", and no nearby separator does")
            m2 = chunk.rx.match(text, e, end)
            if m2 is None:
                err = self._fail(chunk, e)
                return DecodeError(err.offset, f"{err.reason} (no repair of {{{hexlen}}} at {lbrace} helps)")
            m = m2
        return DecodeError(pos, "malformed record")  # pragma: no cover

    def _open(self, chunk: _Chunk, literal: str, pos: int, follow: str) -> int:
        """Match a list-opening chunk (`... (` + lookahead); strict mode compares the literal directly."""
        if self.strict:
            text, end = self.text, self.end
            q = pos + len(literal)
            if text.startswith(literal, pos, end) and q + 1 < end:
                c = text[q]
                if c == ")" or (c == " " and text[q + 1] in follow):
                    return q
        return self._chunk(chunk, pos).end()

    def _chunk(self, chunk: _Chunk, pos: int) -> re.Match[str]:
        m = chunk.rx.match(self.text, pos, self.end)
        if m is None:
            raise self._fail(chunk, pos)
        return m

    # ---- structure ---------------------------------------------------------------------------------------

    def _items(
        self, chunks: tuple[_Chunk, ...], pos: int, follow: str = ""
    ) -> tuple[list[tuple[int, Values]], int]:
        """The records of a list whose `(` ends just before `pos` (its lookahead guarantees `)` or SEP).

        For one-string records (`follow` = the characters that may start the next item) the common case is
        inlined: declared length, then SEP and `)` or SEP + next item, exactly what the record's last chunk
        (`S ?G` / `S ?L`) checks; anything else takes the general path (`self.record`), which reports the
        error (strict) or runs the repair search (tolerant), so both paths give the same result.
        """
        text, end = self.text, self.end
        items: list[tuple[int, Values]] = []
        if text[pos] == ")":
            return items, pos + 1
        pos += 1
        max_items = self.limits.max_items
        max_string = self.limits.max_string
        record = self.record
        seps, strict_bad, ascii_ = self.seps, self.first_bad, self.ascii
        head = chunks[0].rx.match if follow and len(chunks) == 2 else None
        while True:
            if len(items) >= max_items:
                raise DecodeError(pos, f"list has more than {max_items} items")
            if head is not None:
                m = head(text, pos, end)
                if m is not None:
                    groups = m.groups()
                    hexlen = groups[-1]
                    s = m.end()
                    n = int(hexlen, 16) if hexlen else 0
                    e = s + n
                    if n <= max_string and e + 2 < end and text[e] in seps:
                        c = text[e + 1]
                        if (c == ")" or (c in seps and text[e + 2] in follow)) and (
                            e <= strict_bad or (strict_bad < 0 and self._next_bad(s) >= e)
                        ):
                            vals = list(groups[:-1])
                            vals.append(text[s:e] if ascii_ else self._string(s, e))
                            items.append((pos, vals))
                            if c == ")":
                                return items, e + 2
                            pos = e + 2
                            continue
            vals, nxt = record(chunks, pos)
            items.append((pos, vals))
            if text[nxt] == ")":
                return items, nxt + 1
            pos = nxt + 1

    def _order(self, guids: list[tuple[int, str]], what: str) -> None:
        """GUIDs strictly ascending. Tolerant mode warns about the order but, like the JSON form, refuses a
        duplicate: no canonical table holds one, so the encoder could only write what strict refuses."""
        unordered = False
        for (_, a), (off, b) in itertools.pairwise(guids):
            if a < b:
                continue
            if a == b or self.strict:
                reason = f"duplicate {what} GUID {b}" if a == b else f"{what} GUIDs out of order ({b} after {a})"
                raise DecodeError(off, reason)
            self._warn(off, f"{what} GUIDs out of order ({b} after {a})")
            unordered = True
        if unordered:  # a duplicate need not be next to its twin in an unordered list
            seen: set[str] = set()
            for off, guid in guids:
                if guid in seen:
                    raise DecodeError(off, f"duplicate {what} GUID {guid}")
                seen.add(guid)

    def _count(self, declared: str, offset: int, actual: int) -> None:
        n = int(declared, 16)
        if n == actual:
            return
        reason = f"count {declared} ({n}) does not match the {actual} items of its list"
        if self.strict:
            raise DecodeError(offset, reason)
        self._warn(offset, reason)

    def _depth(self, depth: int, offset: int) -> None:
        if depth > self.limits.max_depth:
            raise DecodeError(offset, f"nesting deeper than {self.limits.max_depth}")

    def _dn_list(self, pos: int) -> tuple[tuple[str, ...], int]:
        items, pos = self._items(self.g.dn, pos, "{")
        return tuple(v[0] for _, v in items), pos

    def connector(self, pos: int) -> tuple[Connector, int]:
        g, strict, text, end = self.g, self.strict, self.text, self.end
        if self.shallow:
            self._depth(3, pos + 33)
        v, pos = self.record(g.conn, pos)
        guid, ctype, src, dst, dn, sched, scope, trig, prio, mx, thr, nopf, dflt, count = v
        if self.shallow:
            self._depth(_MAX_STRUCT_DEPTH, pos - 1)
        count_at = pos - 2 - len(count)
        dn_chunks, block_rx = g.dn, g.block.rx
        blocks: list[tuple[str, ...]] = []
        while True:
            if text[pos] == ")":  # the usual empty list
                dns: tuple[str, ...] = ()
                pos += 1
            else:
                items, pos = self._items(dn_chunks, pos, "{")
                dns = tuple([v[0] for _, v in items])
            if int(count, 16) != len(dns):
                self._count(count, count_at, len(dns))
            blocks.append(dns)
            if len(blocks) == 4:
                break
            if strict and len(blocks) == 2 and text.startswith(_EMPTY_RESERVED, pos):  # the usual case
                blocks += [(), ()]
                pos += len(_EMPTY_RESERVED)
                break
            m = block_rx.match(text, pos, end)
            if m is None:
                raise self._fail(g.block, pos)
            count, count_at, pos = m.group(1), m.start(1), m.end()
        pos = self._open(g.arrows_open, "  ARROWS (", pos, "{")
        items, pos = self._items(g.arrow, pos)
        arrows = tuple([AddressSpace(t, a, int(c, 16)) for _, (t, a, c) in items])
        pos = self._open(g.bh_open, " BH (", pos, _STRICT_HEX)
        items, pos = self._items(g.bh, pos, self.hex)
        if strict:
            bhs = tuple([Bridgehead(b, _BH_STATES[st], f) for _, (b, st, f) in items])
        else:
            bhs = tuple([Bridgehead(b.lower(), _BH_STATES[st.upper()], f) for _, (b, st, f) in items])
        if len(bhs) > 1:
            self._order([(off, b.guid) for (off, _), b in zip(items, bhs, strict=True)], "bridgehead")
        pos = self._open(g.targbh_open, " TARGBH (", pos, "{")
        if text[pos] == ")":
            targ: tuple[str, ...] = ()
            pos += 1
        else:
            items, pos = self._items(g.targbh, pos, "{")
            targ = tuple([v[0] for _, v in items])
        m = self._chunk(g.state, pos)
        state = m.group(1)
        if not strict:
            guid, state, mx, thr = guid.lower(), state.upper(), mx.lower(), thr.lower()
        conn = Connector(
            guid=guid,
            type=ctype,
            source_address=src,
            target_address=dst,
            dn=dn,
            schedule=int(sched, 16),
            scope=int(scope, 16),
            triggered=int(trig, 16),
            priority=int(prio, 16),
            max_size=None if mx == "ffffffff" else int(mx, 16),
            large_threshold=None if thr == "ffffffff" else int(thr, 16),
            no_pf_referrals=int(nopf, 16),
            accept_by_default=int(dflt, 16),
            accept=blocks[0],
            reject=blocks[1],
            reserved3=blocks[2],
            reserved4=blocks[3],
            address_spaces=arrows,
            bridgeheads=bhs,
            target_bridgeheads=targ,
            state=_CONN_STATES[state],
        )
        return conn, m.end()

    def section(self, pos: int) -> tuple[RoutingGroup, int]:
        g, text, strict = self.g, self.text, self.strict
        if self.shallow:
            self._depth(1, pos)
        v, pos = self.record(g.rg, pos)
        guid, master, major, minor, user, vguid, smtp, x400, x500 = v
        if self.shallow:
            self._depth(2, pos - 1)
        items, pos = self._items(g.member, pos, self.hex)
        if strict:
            members = tuple(
                Member(mg, yn == "YES", int(fl, 16), int(bd, 16), st) for _, (mg, yn, fl, bd, st) in items
            )
        else:
            members = tuple(
                Member(mg.lower(), yn.upper() == "YES", int(fl, 16), int(bd, 16), st)
                for _, (mg, yn, fl, bd, st) in items
            )
        if len(members) > 1:
            self._order([(off, mb.guid) for (off, _), mb in zip(items, members, strict=True)], "member")
        pos = self._chunk(g.conn_open, pos).end()
        conns: list[Connector] = []
        offsets: list[int] = []
        if text[pos] == ")":
            pos += 1
        else:
            pos += 1
            max_items = self.limits.max_items
            while True:
                if len(conns) >= max_items:
                    raise DecodeError(pos, f"list has more than {max_items} items")
                offsets.append(pos)
                conn, pos = self.connector(pos)
                conns.append(conn)
                if text[pos] == ")":
                    pos += 1
                    break
                pos += 1
        if len(conns) > 1:
            self._order([(off, c.guid) for off, c in zip(offsets, conns, strict=True)], "connector")
        pos = self._chunk(g.rg_close, pos).end()
        if not strict:
            guid, master, vguid = guid.lower(), master.lower(), vguid.lower()
        rg = RoutingGroup(
            guid=guid,
            master=master,
            version=Version(int(major, 16), int(minor, 16), int(user, 16)),
            version_guid=vguid,
            smtp_address=smtp,
            x400_address=x400,
            x500_address=x500,
            members=members,
            connectors=tuple(conns),
        )
        return rg, pos

    def frame(self) -> Decoded:
        data, text, limits, strict = self.data, self.text, self.limits, self.strict
        if len(data) - HEADER_LEN > limits.max_frame:
            raise DecodeError(HEADER_LEN + limits.max_frame, f"frame exceeds {limits.max_frame} bytes")
        g = self.g
        declared_end = len(data)
        if strict:
            # Bound the parse by the declared length first, so a bad len8 is reported before anything else.
            m = _LEN8.match(text, 0, min(len(text), HEADER_LEN))
            if m is None:
                raise self._fail(g.header, 0)
            length = int(m.group(1), 16)
            if length > limits.max_frame:
                raise DecodeError(0, f"frame length {length} exceeds the limit of {limits.max_frame} bytes")
            declared_end = HEADER_LEN + length
            self.end = min(declared_end, len(data))
        m = self._chunk(g.header, 0)
        length = int(m.group(1), 16)
        carried = m.group(2) if strict else m.group(2).lower()
        body_start = pos = m.end()
        groups: list[RoutingGroup] = []
        offsets: list[int] = []
        max_items = limits.max_items
        while True:
            if pos < self.end and text[pos] == "(":
                if len(groups) >= max_items:
                    raise DecodeError(pos, f"more than {max_items} routing-group sections")
                offsets.append(pos + 2)
                rg, pos = self.section(pos)
                groups.append(rg)
                pos = self._chunk(g.sep, pos).end()
            else:
                pos = self._chunk(g.sep, pos).end()
                break
        if len(groups) > 1:
            self._order([(off, rg.guid) for off, rg in zip(offsets, groups, strict=True)], "routing group")
        org = OrgInfo(tuple(groups))
        if strict:
            if pos < declared_end:  # (the parse is bounded by declared_end, so never past it)
                raise DecodeError(
                    pos, f"frame body ends after {pos - HEADER_LEN} bytes but its header declares {length}"
                )
            if len(data) > declared_end:
                raise DecodeError(declared_end, "trailing bytes after the frame")
            computed = hashlib.md5(data[body_start:pos], usedforsecurity=False).hexdigest()
            return Decoded(org, carried, computed, length)
        if pos < len(data):
            rest = text[pos:]
            if rest.strip(" \t\r\n\x00."):
                raise DecodeError(pos, "trailing bytes after the frame")
            self._warn(pos, f"{len(rest)} trailing separator byte(s) after the frame ignored")
        actual = pos - HEADER_LEN
        if length != actual:
            self._warn(
                0,
                f"frame length {{{m.group(1)}}} ({length} bytes) does not match the body "
                f"{{{actual:08x}}} ({actual} bytes)",
            )
        try:
            computed = _canonical_digest(org)
        except EncodeError as exc:  # pragma: no cover - everything decoded is encodable
            raise DecodeError(0, f"decoded table cannot be encoded canonically: {exc}") from None
        return Decoded(org, carried, computed, length, tuple(self.warnings))


def _run(data: bytes, limits: Limits, strict: bool) -> Decoded:
    if not isinstance(data, bytes):
        try:
            data = bytes(data)
        except (TypeError, ValueError):
            raise DecodeError(0, f"expected bytes, got {type(data).__name__}") from None
    parser = _Parser(data, limits, strict)
    try:
        return parser.frame()
    except DecodeError:
        raise
    except (IndexError, ValueError, KeyError, UnicodeError, OverflowError, RecursionError, MemoryError) as e:
        # A last guard: the grammar code above is written so that this cannot happen.
        raise DecodeError(0, f"malformed frame ({type(e).__name__})") from None


def decode_strict(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Canonical bytes only (exactly what `proto.encode.encode` writes); any deviation is a `DecodeError` at
    the first bad element."""
    return _run(data, limits, strict=True)


def decode_tolerant(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Canonical bytes and the printed/sanitized form; every repair is reported in `Decoded.warnings`.

    Canonical input is decoded by the strict parser (same result, proven by a property test against
    `tolerant_parse`, and its digest needs no re-encoding); anything else by the tolerant parser.
    """
    try:
        return _run(data, limits, strict=True)
    except DecodeError:
        return _run(data, limits, strict=False)


def tolerant_parse(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """The tolerant parser alone, without the strict first attempt (for tests and benchmarks)."""
    return _run(data, limits, strict=False)
