"""Section summaries for the delta exchange (docs/PROTOCOL.md §3.11): what two tables compare instead of their bytes.

Owns: `Entry` (one section as the other side sees it: GUID, version, the MD5 of its canonical bytes), `Summary` (a
table's sections in GUID order with their bytes, lazily: their entries, the buckets of a depth — the sections whose
GUID starts with one prefix of that many hex digits, each with its count and digest — the entries of one bucket, and
a frame holding chosen sections), `depth_for(n)`, `compare` (what each side lacks or holds older, from two entry
lists), and the text of the X-LINK2STATE extension's summary items: a `TREE=` line (the 16 buckets under one prefix,
`count:digest`, `0:-` for an empty one), a `LIST=` line (a bucket's entries, `guid/major.minor.user/digest`, at most
`LIST_PER_LINE` per line) and a `GET=` line (at most `GET_PER_LINE` GUIDs).
Invariants: a bucket's digest is the MD5 of its entries' digests (32 hex digits each) in GUID order, so two tables
holding the same sections in a bucket give it the same digest; summaries are immutable once built (a session keeps
the one it started with: its snapshot); parsing never trusts a count: every item is checked and every error is a
`SummaryError` (a one-line reason).
May import: the standard library and proto.*.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from proto.encode import frame_from_sections
from proto.errors import ProtoError
from proto.model import Version

FANOUT = 16  # hex digits: the buckets under one prefix
MAX_DEPTH = 2  # 16 TREE lines at most in one reply (a reply is at most 100 lines, proto.smtp)
LIST_PER_LINE = 12  # entries on one LIST= line: 12 x 76 bytes keeps every line under 1,024
GET_PER_LINE = 28  # GUIDs on one GET= line
EMPTY = "-"
ROOT = "*"  # the prefix of the whole table on a TREE= line
_HEX_DIGITS = "0123456789abcdef"
_GUID = re.compile(r"[0-9a-f]{32}")
_PREFIX = re.compile(r"[0-9a-f]{1,2}")
_ENTRY = re.compile(r"([0-9a-f]{32})/([0-9a-f]{1,16})\.([0-9a-f]{1,16})\.([0-9a-f]{1,16})/([0-9a-f]{32})")
_CHILD = re.compile(r"([0-9a-f]{1,16}):([0-9a-f]{32}|-)")


class SummaryError(ProtoError):
    """A summary item that does not parse (the reason names it)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One section: its GUID, version and the MD5 of its canonical bytes."""

    guid: str
    version: Version
    digest: str

    def text(self) -> str:
        v = self.version
        return f"{self.guid}/{v.major:x}.{v.minor:x}.{v.user:x}/{self.digest}"


Bucket = tuple[int, str]  # (count, digest or EMPTY)
_EMPTY_BUCKET: Bucket = (0, EMPTY)


def depth_for(sections: int) -> int:
    """The depth of the buckets a summary is compared at: about 16 sections a bucket up to 1,024 sections, then 256
    buckets (the TREE reply stays 16 lines; a LIST reply grows instead)."""
    return 1 if sections <= 1024 else MAX_DEPTH


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class Summary:
    """A table as the delta exchange sees it (module docstring). `digest` is the table's own (the MD5 of its frame
    body); `section_digest` may be a shared cache of the MD5 of section bytes."""

    def __init__(
        self,
        guids: Sequence[str],
        versions: Sequence[Version],
        raws: Sequence[bytes],
        digest: str,
        section_digest: Callable[[bytes], str] = _md5,
    ) -> None:
        self.guids = tuple(guids)
        self.versions = tuple(versions)
        self.raws = tuple(raws)
        self.digest = digest
        self._section_digest = section_digest
        self._entries: tuple[Entry, ...] | None = None
        self._position: dict[str, int] | None = None
        self._buckets: dict[int, dict[str, Bucket]] = {}
        self._members: dict[int, dict[str, tuple[Entry, ...]]] = {}

    def __len__(self) -> int:
        return len(self.guids)

    @property
    def entries(self) -> tuple[Entry, ...]:
        if self._entries is None:
            sd = self._section_digest
            self._entries = tuple(map(Entry, self.guids, self.versions, map(sd, self.raws)))
        return self._entries

    def bucket_entries(self, depth: int) -> dict[str, tuple[Entry, ...]]:
        """Every non-empty bucket at `depth`, with its entries in GUID order."""
        known = self._members.get(depth)
        if known is None:
            grouped: dict[str, list[Entry]] = {}
            for e in self.entries:
                grouped.setdefault(e.guid[:depth], []).append(e)
            known = self._members[depth] = {p: tuple(v) for p, v in grouped.items()}
        return known

    def buckets(self, depth: int) -> dict[str, Bucket]:
        """Every non-empty bucket at `depth`: (count, digest)."""
        known = self._buckets.get(depth)
        if known is None:
            grouped = self.bucket_entries(depth)
            known = self._buckets[depth] = {p: (len(es), _md5("".join(e.digest for e in es).encode()))
                                            for p, es in grouped.items()}  # fmt: skip
        return known

    def bucket(self, prefix: str) -> tuple[Entry, ...]:
        return self.bucket_entries(len(prefix)).get(prefix, ())

    def tree_lines(self, depth: int) -> list[str]:
        """The `TREE=` items of every parent prefix at `depth` - 1 (one line each: its 16 children's buckets)."""
        buckets = self.buckets(depth)
        parents = [""] if depth == 1 else [a for a in _HEX_DIGITS]
        return [tree_item(p, [buckets.get(p + d, _EMPTY_BUCKET) for d in _HEX_DIGITS]) for p in parents]

    def _positions(self) -> dict[str, int]:
        if self._position is None:
            self._position = {g: i for i, g in enumerate(self.guids)}
        return self._position

    def has(self, guid: str) -> bool:
        return guid in self._positions()

    def frame_of(self, guids: Iterable[str]) -> bytes:
        """A frame holding these sections (unknown GUIDs skipped), in GUID order; its digest is its own MD5."""
        position = self._positions()
        chosen = sorted(position[g] for g in set(guids) if g in position)
        return frame_from_sections([self.raws[i] for i in chosen])


# ------------------------------------------------------------------------------------------------ comparing


def differing(theirs: Mapping[str, Bucket], ours: Mapping[str, Bucket]) -> list[str]:
    """The buckets (prefixes) whose count or digest differ, in order."""
    return sorted(p for p in set(theirs) | set(ours) if theirs.get(p, _EMPTY_BUCKET) != ours.get(p, _EMPTY_BUCKET))


def newer(mine: Entry, theirs: Entry | None) -> bool:
    """Whether the other side needs my copy: it lacks the section, holds it older, or holds other bytes at the same
    version (both copies then travel, and each side's merge keeps the same one)."""
    if theirs is None or mine.version > theirs.version:
        return True
    return mine.version == theirs.version and mine.digest != theirs.digest


def compare(mine: Iterable[Entry], theirs: Iterable[Entry]) -> tuple[list[Entry], list[Entry]]:
    """(what they need from me, what I need from them), from the entries of the same buckets on both sides."""
    m = {e.guid: e for e in mine}
    t = {e.guid: e for e in theirs}
    give = [e for g, e in sorted(m.items()) if newer(e, t.get(g))]
    want = [e for g, e in sorted(t.items()) if newer(e, m.get(g))]
    return give, want


# ------------------------------------------------------------------------------------------------ items


def tree_item(parent: str, children: Sequence[Bucket]) -> str:
    """`TREE=<parent or *> <count>:<digest> x16`."""
    cells = " ".join(f"{n:x}:{d}" for n, d in children)
    return f"TREE={parent or ROOT} {cells}"


def parse_tree(value: str) -> dict[str, Bucket]:
    """The buckets of one `TREE=` value (after `TREE=`): {child prefix: (count, digest)}, non-empty ones."""
    parts = value.split(" ")
    parent = parts[0]
    if parent != ROOT and not (_PREFIX.fullmatch(parent) and len(parent) < MAX_DEPTH):
        raise SummaryError(f"bad TREE prefix {parent[:40]!r}")
    if len(parts) != FANOUT + 1:
        raise SummaryError(f"a TREE line holds {FANOUT} buckets, got {len(parts) - 1}")
    base = "" if parent == ROOT else parent
    out: dict[str, Bucket] = {}
    for digit, cell in zip(_HEX_DIGITS, parts[1:], strict=True):
        m = _CHILD.fullmatch(cell)
        if m is None:
            raise SummaryError(f"bad TREE bucket {cell[:40]!r}")
        count, digest = int(m.group(1), 16), m.group(2)
        if (count == 0) != (digest == EMPTY):
            raise SummaryError(f"bad TREE bucket {cell[:40]!r}: an empty bucket is 0:-")
        if count:
            out[base + digit] = (count, digest)
    return out


def list_items(prefix: str, entries: Sequence[Entry]) -> list[str]:
    """`LIST=<prefix> <entries>` lines, at most LIST_PER_LINE entries each (one line for an empty bucket)."""
    chunks = [entries[i : i + LIST_PER_LINE] for i in range(0, len(entries), LIST_PER_LINE)] or [()]
    return [" ".join((f"LIST={prefix}", *(e.text() for e in chunk))) for chunk in chunks]


def parse_list(value: str) -> tuple[str, list[Entry]]:
    """(prefix, entries) of one `LIST=` value (after `LIST=`)."""
    parts = value.split(" ")
    prefix = check_prefix(parts[0])
    if len(parts) - 1 > LIST_PER_LINE:
        raise SummaryError(f"a LIST line holds at most {LIST_PER_LINE} entries, got {len(parts) - 1}")
    entries = []
    for token in parts[1:]:
        m = _ENTRY.fullmatch(token)
        if m is None or not m.group(1).startswith(prefix):
            raise SummaryError(f"bad LIST entry {token[:80]!r}")
        version = Version(int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16))
        entries.append(Entry(m.group(1), version, m.group(5)))
    return prefix, entries


def check_prefix(prefix: str) -> str:
    """A bucket prefix: one or two lowercase hex digits (the depths a summary is compared at)."""
    if not _PREFIX.fullmatch(prefix):
        raise SummaryError(f"bad bucket prefix {prefix[:40]!r}")
    return prefix


def get_items(guids: Sequence[str]) -> list[str]:
    """`GET=<guid> ...` lines, at most GET_PER_LINE GUIDs each."""
    return ["GET=" + " ".join(guids[i : i + GET_PER_LINE]) for i in range(0, len(guids), GET_PER_LINE)]


def parse_get(value: str) -> list[str]:
    """The GUIDs of one `GET=` value (after `GET=`)."""
    guids = value.split(" ")
    if not 1 <= len(guids) <= GET_PER_LINE or not all(_GUID.fullmatch(g) for g in guids):
        raise SummaryError(f"GET takes 1 to {GET_PER_LINE} GUIDs of 32 lowercase hex digits")
    return guids
