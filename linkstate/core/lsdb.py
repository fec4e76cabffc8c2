"""The link-state table: one section per routing group ever seen, merged by version (G31, G32).

Owns: `LinkStateDB` (the table a node holds), its merge rules, the limits a merge enforces (`TableLimits`), its
change log (a sequence number per store, so a master knows which sections changed since a member last held its
table), the cache of each section's canonical bytes, and `TableState` / `TableStates`: a table's content as an
immutable object (its sections in GUID order, their bytes, the digest; lazily the ORGINFO frame, the snapshot, the
delta exchange's summary and values derived from it), shared through a memo by every table that holds exactly those
sections — the nodes of a simulated network share one memo, so ten thousand servers holding one table hold one
digest, one frame and one summary between them.
Merge rules (G32): per section, the received copy replaces the local one iff its version is greater.
The master of X (`own_group=X`) never takes remote data about X, but `highest_own` reports the highest
version of X seen so it can publish above it. Sections are not deleted by merges; tombstones are ordinary
sections. Equal versions with different contents (split brain): the copy whose version GUID sorts higher
wins (then, for full determinism, the one whose canonical bytes sort higher), reported in `conflicts`.
Limits (issue 11, docs/SECURITY.md), checked at merge with the numbers the decoder uses, so what a node holds it
can always encode and every peer can decode:
  - a received major above the held one (0 when none) by more than `max_version_jump` is refused;
  - sections of groups the directory does not know are bounded (`max_unknown_sections`, `max_unknown_bytes`): the
    table keeps those whose GUIDs sort lowest, the longest such run within both bounds, and drops the rest. The
    rule depends only on the set seen, never on arrival order, so every node converges on the same subset;
  - a section of a known group is taken only while the known groups' sections stay within `max_table_bytes` less
    `max_unknown_bytes` and `TABLE_HEADROOM` (room for the node's own section, which the directory bounds and which
    merges never refuse). So the whole frame stays within `max_table_bytes`, every node's decode limit.
  Every refusal is counted in `refused` (reason -> count, first GUIDs) for the node to report as one event.
Invariants: stored sections are canonical; a section's version never goes backwards through `merge`;
merge is idempotent and order-independent within the limits; `digest`/`frame`/`snapshot`/`state` always describe
the current sections and are recomputed only after a change, re-encoding only the sections that changed (and not
even those when the table's decode cache, its owner's, holds their bytes); a memo hit is checked by the bytes of
every section (a tuple compare, by identity first), never by a hash alone; storing or merging the very object
stored is a no-op. The directory's initial table is built once per Topology object and kept with it
(`Topology.derived`).
May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from linkstate.core.directory import build_orginfo
from linkstate.core.topology import MAX_DECODE_FRAME, Problem, Settings, Topology
from proto.codec import DEFAULT_LIMITS, Limits
from proto.encode import digest_of_sections, encode_section, frame_from_sections
from proto.model import Guid, OrgInfo, RoutingGroup, Version, canonical_group
from proto.sectioncache import SectionCache
from proto.summary import Summary

CHANGE_LOG = 1024  # stores remembered by a table's change log (a member further behind gets the whole table)
MARKS = 16  # a table's last states whose digests it remembers with their change count (`seq_of`)
_T = TypeVar("_T")


class TableState:
    """A table's content, immutable (module docstring): `guids` in order, their `raws` (canonical section bytes) and
    `sections`, the `digest`; `frame()`, `snapshot()`, `summary()` and `derived(key, fn)` are built once, on first
    use, and shared by every table holding this state."""

    __slots__ = ("__weakref__", "_derived", "_frame", "_maps", "_memo", "_snapshot", "_summary", "digest", "guids",
                 "raws", "sections")  # fmt: skip

    def __init__(
        self, guids: tuple[Guid, ...], raws: tuple[bytes, ...], sections: tuple[RoutingGroup, ...], memo: TableStates
    ) -> None:
        self.guids = guids
        self.raws = raws
        self.sections = sections
        self.digest = digest_of_sections(raws)
        self._memo = memo
        self._frame: bytes | None = None
        self._snapshot: OrgInfo | None = None
        self._summary: Summary | None = None
        self._derived: dict[str, Any] = {}
        self._maps: tuple[dict[Guid, RoutingGroup], dict[Guid, bytes]] | None = None

    def maps(self) -> tuple[dict[Guid, RoutingGroup], dict[Guid, bytes]]:
        """The sections and their bytes by GUID: dictionaries every table holding this state shares, read only
        (a table copies them before it writes: LinkStateDB._own)."""
        if self._maps is None:
            guids = self.guids
            self._maps = dict(zip(guids, self.sections, strict=True)), dict(zip(guids, self.raws, strict=True))
        return self._maps

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = frame_from_sections(self.raws, self.digest)
        return self._frame

    def snapshot(self) -> OrgInfo:
        if self._snapshot is None:
            self._snapshot = OrgInfo(self.sections)
        return self._snapshot

    def summary(self) -> Summary:
        """What the delta exchange compares (proto.summary), section digests from the memo's shared cache."""
        if self._summary is None:
            versions = tuple(rg.version for rg in self.sections)
            self._summary = Summary(self.guids, versions, self.raws, self.digest, self._memo.section_digest)
        return self._summary

    def derived(self, key: str, build: Callable[[TableState], _T]) -> _T:
        """A value computed from this state once (e.g. the connectors with no alternate path)."""
        if key not in self._derived:
            self._derived[key] = build(self)
        value: _T = self._derived[key]
        return value


class TableStates:
    """The memo of table states (module docstring), by their sections' bytes: every state some table still holds
    (weakly: a state no table holds goes), and the most recent `size` states besides; and the MD5 of recently seen
    section bytes. Owned by a node, or shared by the nodes of one simulated network."""

    def __init__(self, size: int = 8, digests: int = 65_536) -> None:
        self.size = size
        self.digests = digests
        self._held: weakref.WeakValueDictionary[tuple[bytes, ...], TableState] = weakref.WeakValueDictionary()
        self._recent: OrderedDict[tuple[bytes, ...], TableState] = OrderedDict()
        self._section_digests: dict[bytes, str] = {}
        self.hits = 0
        self.misses = 0

    def state(self, guids: tuple[Guid, ...], raws: tuple[bytes, ...], sections: Callable[[], tuple[RoutingGroup, ...]]
              ) -> TableState:  # fmt: skip
        found = self._held.get(raws)
        if found is not None and found.guids == guids:
            self.hits += 1
        else:
            self.misses += 1
            found = self._held[raws] = TableState(guids, raws, sections(), self)
        self._recent[raws] = found
        self._recent.move_to_end(raws)
        if len(self._recent) > self.size:
            self._recent.popitem(last=False)
        return found

    def section_digest(self, raw: bytes) -> str:
        digest = self._section_digests.get(raw)
        if digest is None:
            if len(self._section_digests) >= self.digests:
                self._section_digests.clear()
            digest = self._section_digests[raw] = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        return digest


TABLE_HEADROOM = 64 * 1024  # of max_table_bytes, kept for the node's own section to grow into
FRAME_OVERHEAD = 53  # `{len8} ORGINFO <digest> ` and the final separator; each section adds its bytes + 1
REFUSED_EXAMPLES = 3  # GUIDs kept per refusal reason, for the event


@dataclass(frozen=True, slots=True)
class TableLimits:
    """The bounds of module docstring, from the directory's settings (defaults: `Settings`)."""

    max_table_bytes: int = 4 * 1024 * 1024
    max_unknown_sections: int = 256
    max_unknown_bytes: int = 1024 * 1024
    max_version_jump: int = 1 << 32

    @classmethod
    def from_settings(cls, s: Settings) -> TableLimits:
        return cls(s.max_table_bytes, s.max_unknown_sections, s.max_unknown_bytes, s.max_version_jump)

    @property
    def decode(self) -> Limits:
        """What this node's decoders accept: frames no larger than the table it may hold."""
        return replace(DEFAULT_LIMITS, max_frame=min(DEFAULT_LIMITS.max_frame, self.max_table_bytes))

    @property
    def known_budget(self) -> int:
        """Bytes the known groups' sections (and their separators) may take: the table limit less the unknown
        groups' budget and the headroom for the node's own section."""
        return self.max_table_bytes - self.max_unknown_bytes - TABLE_HEADROOM - FRAME_OVERHEAD

    def plausible(self, version: Version, held: Version | None) -> bool:
        """A received version may move the major at most `max_version_jump` above the one held (issue 11)."""
        return version.major - (held.major if held is not None else 0) <= self.max_version_jump


@dataclass
class Refusals:
    """Sections a merge refused or dropped since the node last reported: reason -> count and first GUIDs."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Guid]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def add(self, reason: str, guid: Guid) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        first = self.examples.setdefault(reason, [])
        if len(first) < REFUSED_EXAMPLES:
            first.append(guid)


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What a merge did: sections taken, own-group data ignored?, split-brain GUIDs, own version (the highest
    plausible one: a refused version does not count)."""

    changed: tuple[Guid, ...] = ()
    ignored_own: bool = False
    conflicts: tuple[Guid, ...] = ()
    highest_own: Version | None = None

    @property
    def any_change(self) -> bool:
        return bool(self.changed)


class LinkStateDB:
    """A node's link-state table (module docstring). Not thread-safe; owned by one pump. `cache` is the decode
    cache of the sessions that feed it (the canonical bytes of a section decoded there are not encoded again)."""

    def __init__(
        self,
        sections: Iterable[RoutingGroup] = (),
        limits: TableLimits | None = None,
        *,
        cache: SectionCache | None = None,
        states: TableStates | None = None,
    ) -> None:
        self._cache = cache
        self._states = states if states is not None else TableStates()
        self._sections: dict[Guid, RoutingGroup] = {}
        self._bytes: dict[Guid, bytes] = {}
        self._order: tuple[Guid, ...] | None = None
        self._shared = False  # the dictionaries are a state's (or the directory's) and others read them: copy first
        self.bumps = 0  # stores that changed a section's major or minor version (or added a section): G33
        self.seq = 0  # stores (and drops) so far: the change log's clock
        self._log: deque[Guid] = deque(maxlen=CHANGE_LOG)  # the GUID of store number seq - len + 1 ... seq
        self._marks: OrderedDict[str, int] = OrderedDict()  # digest -> seq: the table's last MARKS states
        self._state: TableState | None = None
        self.limits = limits or TableLimits()
        self._known: frozenset[Guid] | None = None  # the directory's groups; None: every group counts as known
        self._size = FRAME_OVERHEAD  # the frame's length, kept as sections change
        self._unknown_bytes = 0  # encoded bytes (+1 separator each) of the sections of unknown groups
        self._unknown = 0
        self.refused = Refusals()
        for rg in sections:
            self.put(rg)

    @classmethod
    def from_topology(
        cls, topo: Topology, *, cache: SectionCache | None = None, states: TableStates | None = None
    ) -> LinkStateDB:
        """Every group of the directory at version 0.0.0 (never participated), under the directory's limits.

        The table is a pure function of the directory: it is built once per Topology object and kept with it, so
        the servers of one simulated organization share one build instead of building it each.
        """
        sections, encoded, size = topo.derived("lsdb.initial", _initial_table)
        db = cls(cache=cache, states=states)
        db._sections, db._bytes, db._size, db._shared = sections, encoded, size, True
        db.configure(topo)
        return db

    def configure(self, topo: Topology) -> None:
        """Take the directory's limits and its set of groups (at start and on every reload); a group that left the
        directory now counts against the unknown-group bounds."""
        self.limits = TableLimits.from_settings(topo.settings)
        self._known = topo.derived("lsdb.known", _known_groups)  # one set per directory, shared by its nodes
        unknown = self._bytes.keys() - self._known
        self._unknown = len(unknown)
        self._unknown_bytes = sum(len(self._bytes[g]) + 1 for g in unknown)
        self._trim_unknown()

    # ------------------------------------------------------------------------------------------- reading

    def __len__(self) -> int:
        return len(self._sections)

    def __contains__(self, guid: object) -> bool:
        return guid in self._sections

    def guids(self) -> tuple[Guid, ...]:
        if self._order is None:
            self._order = tuple(sorted(self._sections))
        return self._order

    def section(self, guid: Guid) -> RoutingGroup | None:
        return self._sections.get(guid)

    def section_bytes(self, guid: Guid) -> bytes | None:
        return self._bytes.get(guid)

    def version_of(self, guid: Guid) -> Version | None:
        rg = self._sections.get(guid)
        return rg.version if rg else None

    def plausible(self, guid: Guid, version: Version) -> bool:
        """May `version` of group `guid` be believed (TableLimits.plausible against the version held)?"""
        return self.limits.plausible(version, self.version_of(guid))

    @property
    def frame_size(self) -> int:
        """len(self.frame()), without building it."""
        return self._size

    def is_known(self, guid: Guid) -> bool:
        return self._known is None or guid in self._known

    def take_refusals(self) -> Refusals:
        out, self.refused = self.refused, Refusals()
        return out

    def state(self) -> TableState:
        """The table's content as an immutable, shared object (module docstring); the same until the table changes."""
        state = self._state
        if state is None:
            guids = self.guids()
            raws = tuple(map(self._bytes.__getitem__, guids))
            sections = self._sections
            state = self._state = self._states.state(guids, raws, lambda: tuple(map(sections.__getitem__, guids)))
            self._marks[state.digest] = self.seq
            self._marks.move_to_end(state.digest)
            if len(self._marks) > MARKS:
                self._marks.popitem(last=False)
            # from now on this table reads the state's dictionaries (the same content, shared with every table that
            # holds this state) and drops its own copies: ten thousand servers, a handful of tables in memory
            self._sections, self._bytes = state.maps()
            self._order, self._shared = state.guids, True
        return state

    def snapshot(self) -> OrgInfo:
        """The table in canonical order; the same object until the table changes."""
        return self.state().snapshot()

    @property
    def digest(self) -> str:
        return self.state().digest

    def frame(self) -> bytes:
        """The whole ORGINFO frame (header, digest, sections)."""
        return self.state().frame()

    def changed_since(self, seq: int) -> tuple[Guid, ...] | None:
        """The sections stored after store number `seq` (GUID order), or None when the log no longer reaches back."""
        log = self._log
        if seq >= self.seq:
            return ()
        behind = self.seq - seq  # the last `behind` stores
        if behind > len(log):
            return None
        return tuple(sorted(set(itertools.islice(log, len(log) - behind, None))))

    def seq_of(self, digest: str) -> int | None:
        """The change count at which this table last had `digest` (one of its last MARKS states), or None: what a
        peer that reports that digest lacks is `changed_since` it."""
        return self._marks.get(digest)

    def sections_frame(self, guids: Iterable[Guid]) -> bytes:
        """A frame holding only these sections (GUID order, unknown ones skipped); its digest is its own MD5."""
        return frame_from_sections([self._bytes[g] for g in sorted(set(guids)) if g in self._bytes])


    # ------------------------------------------------------------------------------------------- writing

    def put(self, rg: RoutingGroup) -> bool:
        """Authoritative local write (a master for its own group), stored as given. True if changed."""
        if self._sections.get(rg.guid) is rg:  # the very object stored: nothing can change
            return False
        rg, data = self._canonical(rg)
        if self._bytes.get(rg.guid) == data:
            return False
        self._store(rg, data)
        return True

    def merge(self, org: OrgInfo, *, own_group: Guid | None = None) -> MergeResult:
        """Merge a received table under G32 and the limits (module docstring)."""
        changed: list[Guid] = []
        conflicts: list[Guid] = []
        ignored_own = False
        highest_own: Version | None = self.version_of(own_group) if own_group else None
        for rg in org.routing_groups:
            if rg.guid == own_group:
                ignored_own = True
                if not self.plausible(rg.guid, rg.version):
                    self.refused.add(_JUMP, rg.guid)
                    continue
                if highest_own is None or rg.version > highest_own:
                    highest_own = rg.version
                continue
            verdict = self._consider(rg)
            if verdict is _Verdict.TAKE or verdict is _Verdict.CONFLICT_TAKE:
                changed.append(rg.guid)
            if verdict is _Verdict.CONFLICT_TAKE or verdict is _Verdict.CONFLICT_KEEP:
                conflicts.append(rg.guid)
        dropped = self._trim_unknown()
        if dropped:
            changed = [g for g in changed if g not in dropped]
        return MergeResult(_dedup(changed), ignored_own, _dedup(conflicts), highest_own)

    def adopt(self, org: OrgInfo) -> tuple[Guid, ...]:
        """Take every received section whose version is at least ours (a member trusting its master), within the
        unknown-group bounds (the master applies the same ones, so both keep the same subset)."""
        changed = []
        for rg in org.routing_groups:
            local = self._sections.get(rg.guid)
            if (local is None or rg.version >= local.version) and self.put(rg):
                changed.append(rg.guid)
        dropped = self._trim_unknown()
        return tuple(g for g in changed if g not in dropped) if dropped else tuple(changed)

    def _consider(self, rg: RoutingGroup) -> _Verdict:
        local = self._sections.get(rg.guid)
        if local is rg or (local is not None and rg.version < local.version):  # the same object: the same bytes
            return _Verdict.KEEP
        if not self.limits.plausible(rg.version, local.version if local is not None else None):
            self.refused.add(_JUMP, rg.guid)
            return _Verdict.KEEP
        rg, data = self._canonical(rg)
        if local is None or rg.version > local.version:
            return self._take(rg, data, _Verdict.TAKE)
        mine = self._bytes[rg.guid]
        if data == mine:
            return _Verdict.KEEP
        if (rg.version_guid, data) > (local.version_guid, mine):
            return self._take(rg, data, _Verdict.CONFLICT_TAKE)
        return _Verdict.CONFLICT_KEEP

    def _take(self, rg: RoutingGroup, data: bytes, verdict: _Verdict) -> _Verdict:
        """Store a received section unless its part of the table would outgrow its limit (module docstring)."""
        lim = self.limits
        if not self.is_known(rg.guid):
            if len(data) + 1 > lim.max_unknown_bytes:  # could never be kept
                self.refused.add(_UNKNOWN, rg.guid)
                return _Verdict.KEEP
        else:
            old = self._bytes.get(rg.guid)
            known = self._size - FRAME_OVERHEAD - self._unknown_bytes
            if known + len(data) - (len(old) if old is not None else -1) > lim.known_budget:
                self.refused.add(_FULL, rg.guid)
                return _Verdict.KEEP
        self._store(rg, data)
        return verdict

    def _own(self) -> None:
        """Copy the shared dictionaries before the first write (copy on write)."""
        if self._shared:
            self._sections, self._bytes, self._shared = dict(self._sections), dict(self._bytes), False

    def _store(self, rg: RoutingGroup, data: bytes) -> None:
        self._own()
        old = self._sections.get(rg.guid)
        old_len = len(self._bytes[rg.guid]) + 1 if old is not None else 0
        if old is None:
            self._order = None
        if old is None or (old.version.major, old.version.minor) != (rg.version.major, rg.version.minor):
            self.bumps += 1
        self._sections[rg.guid] = rg
        self._bytes[rg.guid] = data
        self._logged(rg.guid)
        self._size += len(data) + 1 - old_len
        if self._known is not None and rg.guid not in self._known:
            self._unknown += old is None
            self._unknown_bytes += len(data) + 1 - old_len
        self._invalidate(keep_order=True)

    def _trim_unknown(self) -> frozenset[Guid]:
        """Keep the unknown groups' sections whose GUIDs sort lowest, within both bounds; drop the others."""
        lim = self.limits
        if self._unknown <= lim.max_unknown_sections and self._unknown_bytes <= lim.max_unknown_bytes:
            return frozenset()
        assert self._known is not None
        unknown = sorted(g for g in self._sections if g not in self._known)
        kept = total = 0
        for guid in unknown:
            size = len(self._bytes[guid]) + 1
            if kept == lim.max_unknown_sections or total + size > lim.max_unknown_bytes:
                break
            kept += 1
            total += size
        dropped = frozenset(unknown[kept:])
        self._own()
        for guid in dropped:
            self._size -= len(self._bytes.pop(guid)) + 1
            del self._sections[guid]
            self._logged(guid)
            self.refused.add(_UNKNOWN, guid)
        self._unknown, self._unknown_bytes = kept, total
        self._invalidate()
        return dropped

    def _canonical(self, rg: RoutingGroup) -> tuple[RoutingGroup, bytes]:
        """The section in canonical form and its bytes: a section the decode cache decoded from canonical bytes
        (checked once against `encode_section`, proto.sectioncache) is canonical already and its bytes are known."""
        raw = self._cache.raw_of(rg) if self._cache is not None else None
        if raw is not None:
            return rg, raw
        rg = canonical_group(rg)
        return rg, encode_section(rg)

    def _logged(self, guid: Guid) -> None:
        self.seq += 1
        self._log.append(guid)

    def _invalidate(self, keep_order: bool = False) -> None:
        if not keep_order:
            self._order = None
        self._state = None


_JUMP = "version jump above max_version_jump"
_FULL = "table would exceed max_table_bytes"
_UNKNOWN = "unknown routing group over max_unknown_sections/max_unknown_bytes"


class _Verdict(enum.Enum):
    """Outcome of considering one received section."""

    TAKE = "take"
    KEEP = "keep"
    CONFLICT_TAKE = "conflict-take"
    CONFLICT_KEEP = "conflict-keep"


def _initial_table(topo: Topology) -> tuple[dict[Guid, RoutingGroup], dict[Guid, bytes], int]:
    """The sections of the directory's table, their canonical bytes and the frame's size (`from_topology`)."""
    built = LinkStateDB(build_orginfo(topo).routing_groups)
    return built._sections, built._bytes, built._size


def _known_groups(topo: Topology) -> frozenset[Guid]:
    return frozenset(rg.guid for rg in topo.routing_groups)


def _dedup(guids: list[Guid]) -> tuple[Guid, ...]:
    return tuple(dict.fromkeys(guids))


def size_problem(topo: Topology) -> Problem | None:
    """The directory's own table (every group at 0.0.0) against `max_table_bytes`: a table that leaves less than a
    tenth of the bound for versions and states to grow is one no node could hold once the organization runs (every
    merge refused at the bound, the organization never converges), so the directory is refused up front."""
    size = len(LinkStateDB.from_topology(topo).frame())
    s = topo.settings
    if size * 10 <= s.max_table_bytes * 9:
        return None
    most = f" (at most {MAX_DECODE_FRAME})" if s.max_table_bytes < MAX_DECODE_FRAME else ""
    return Problem("settings.max_table_bytes",
                   f"this directory's table is {size} bytes, over 90 % of max_table_bytes ({s.max_table_bytes}): "
                   f"no node could hold it once versions grow; raise max_table_bytes{most}, and max_output_bytes to "
                   f"at least twice it")  # fmt: skip
