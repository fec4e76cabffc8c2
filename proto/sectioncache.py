"""Strict ORGINFO decoding that re-decodes only the sections it has not seen: `decode_strict_cached`.

Owns: `SectionCache`, a bounded cache of decoded routing-group sections keyed by the limits and their canonical
bytes, owned by whoever decodes through it (a node, the nodes of one simulated network: never the process), and
the fast path that splits a canonical frame into its sections, takes every section it has
seen before from the cache, and decodes only the others (each as a one-section frame through `decode_strict`).
A node receives the same table again and again with one section changed (a push, a bridgehead exchange): only
that section is decoded. A section whose GUID was seen is first matched against the bytes last seen for that GUID
(one `startswith`), so an unchanged section costs no scan at all.
Invariants: the result is exactly `decode_strict(data, limits)`'s: the fast path accepts only the byte form the
encoder writes (header, one separator after each section, one more at the end, GUIDs strictly ascending), every
section it returns was itself decoded strictly under the same limits, and on anything else — including every
error — it defers to `decode_strict`, which raises (or returns) what it always did. Cached sections are frozen
models, shared freely; `raw_of(section)` gives back the bytes of a section object the cache holds (checked once
against `encode_section`), so a table storing that object need not encode it again.
May import: the standard library and proto.*.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

from proto.decode import DEFAULT_LIMITS, HEADER_LEN, Decoded, Limits, decode_strict
from proto.encode import encode_section, frame_from_sections
from proto.errors import DecodeError
from proto.model import OrgInfo, RoutingGroup

CACHE_SECTIONS = 16_384

_HEAD = re.compile(rb"\{([0-9a-f]{8})\} ORGINFO ([0-9a-f]{32}) ")
_TOKEN = re.compile(rb"[(){]")
_HEX = re.compile(rb"[0-9a-f]{0,16}")
_OPEN, _CLOSE, _BRACE, _SPACE = 0x28, 0x29, 0x7B, 0x20


class SectionCache:
    """Decoded sections by (limits, canonical bytes): a section is only ever reused under the limits it was
    decoded under (LRU, at most `size` entries)."""

    def __init__(self, size: int = CACHE_SECTIONS) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Limits, bytes], RoutingGroup] = OrderedDict()
        self._raw: dict[int, bytes] = {}  # id(section) -> its canonical bytes, for the sections held here
        self._latest: dict[tuple[Limits, bytes], bytes] = {}  # (limits, GUID) -> the bytes last seen for it
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, limits: Limits, raw: bytes) -> RoutingGroup | None:
        key = (limits, raw)
        rg = self._items.get(key)
        if rg is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return rg

    def latest(self, limits: Limits, guid: bytes) -> bytes | None:
        """The bytes of the section last decoded or reused for this GUID (a guess where the next one ends)."""
        return self._latest.get((limits, guid))

    def seen(self, limits: Limits, raw: bytes) -> None:
        self._latest[(limits, raw[2:34])] = raw

    def put(self, limits: Limits, raw: bytes, rg: RoutingGroup) -> None:
        self.misses += 1
        self._items[(limits, raw)] = rg
        if encode_section(rg) == raw:  # what the encoder would write: the table may reuse these bytes
            self._raw[id(rg)] = raw
        self.seen(limits, raw)
        if len(self._items) > self.size:
            (old_limits, old_raw), old = self._items.popitem(last=False)
            self._raw.pop(id(old), None)
            if self._latest.get((old_limits, old_raw[2:34])) is old_raw:
                del self._latest[(old_limits, old_raw[2:34])]

    def raw_of(self, rg: RoutingGroup) -> bytes | None:
        """`encode_section(rg)` when `rg` is a section held here (an object alive in the cache), else None."""
        return self._raw.get(id(rg))

    def clear(self) -> None:
        self._items.clear()
        self._raw.clear()
        self._latest.clear()


def decode_strict_cached(data: bytes, limits: Limits = DEFAULT_LIMITS, cache: SectionCache | None = None) -> Decoded:
    """`decode_strict(data, limits)`, re-decoding only sections not in `cache` (module docstring); without a cache
    it is `decode_strict`."""
    fast = _fast(data, limits, cache) if cache is not None and type(data) is bytes else None
    return fast if fast is not None else decode_strict(data, limits)


def _fast(data: bytes, limits: Limits, cache: SectionCache) -> Decoded | None:
    m = _HEAD.match(data)
    if m is None:
        return None
    length = int(m.group(1), 16)
    end = len(data)
    if length != end - HEADER_LEN or length > limits.max_frame:
        return None
    body_start = pos = m.end()
    groups: list[RoutingGroup] = []
    previous = ""
    while pos < end and data[pos] == _OPEN:
        if len(groups) >= limits.max_items:
            return None
        rg = None
        guess = cache.latest(limits, data[pos + 2 : pos + 34])
        if guess is not None and data.startswith(guess, pos):
            # the same bytes as a section decoded before: the strict parser reads them the same way here
            stop = pos + len(guess)
            rg = cache.get(limits, guess)
            raw = guess
        if rg is None:
            stop_ = _section_end(data, pos, end)
            if stop_ is None:
                return None
            stop = stop_
            raw = data[pos:stop]
            rg = cache.get(limits, raw)
            if rg is None:
                rg = _decode_one(raw, limits)
                if rg is None:
                    return None
                cache.put(limits, raw, rg)
            else:
                cache.seen(limits, raw)
        if stop >= end or data[stop] != _SPACE:
            return None
        if rg.guid <= previous:
            return None
        previous = rg.guid
        groups.append(rg)
        pos = stop + 1
    if pos != end - 1 or data[pos] != _SPACE:
        return None
    computed = hashlib.md5(data[body_start:], usedforsecurity=False).hexdigest()
    return Decoded(OrgInfo(tuple(groups)), m.group(2).decode("ascii"), computed, length)


def _section_end(data: bytes, pos: int, end: int) -> int | None:
    """Where the parenthesised section starting at `pos` closes (strings skipped by their length prefix)."""
    depth = 0
    i = pos
    search = _TOKEN.search
    while True:
        m = search(data, i, end)
        if m is None:
            return None
        j = m.start()
        c = data[j]
        if c == _BRACE:
            k = data.find(b"}", j + 1, min(end, j + 18))
            if k < 0:
                return None
            digits = data[j + 1 : k]
            if not _HEX.fullmatch(digits):
                return None
            i = k + 1 + (int(digits, 16) if digits else 0)
            if i > end:
                return None
        elif c == _OPEN:
            depth += 1
            i = j + 1
        else:
            depth -= 1
            i = j + 1
            if depth == 0:
                return i
            if depth < 0:
                return None


def _decode_one(raw: bytes, limits: Limits) -> RoutingGroup | None:
    """One section, strictly, as a one-section frame; None when it is not exactly one valid section."""
    try:
        decoded = decode_strict(frame_from_sections([raw]), limits)
    except (DecodeError, ValueError):
        return None
    groups = decoded.orginfo.routing_groups
    return groups[0] if len(groups) == 1 else None
