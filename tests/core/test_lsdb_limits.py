"""The table's limits, checked at merge (issue 11, items 2 and 3): what a node holds it can encode and every peer can
decode; forged versions and unknown groups are refused or bounded, the same subset on every node."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.lsdb import FRAME_OVERHEAD, TABLE_HEADROOM, LinkStateDB, TableLimits, size_problem
from linkstate.core.topology import MAX_DECODE_FRAME, Problem, Topology
from proto.codec import decode_strict
from proto.encode import encode
from proto.model import VERSION_MAX, Member, OrgInfo, RoutingGroup, Version
from tests.core.topology_helpers import example

ONE = Version(1)


def section(guid: str, version: Version = ONE, note: str = "", pad: int = 0) -> RoutingGroup:
    address = f"*.{note}" + "x" * pad
    return RoutingGroup(guid=guid, master=guid, version=version, smtp_address=address, members=(Member(guid),))


def fake(i: int, version: Version = ONE, pad: int = 0) -> RoutingGroup:
    """A section of a group no directory knows (GUIDs sort by i)."""
    return section(f"{i:032x}", version, pad=pad)


def bounded(topo: Topology, **bounds: int) -> Topology:
    return replace(topo, settings=replace(topo.settings, **bounds))


def test_a_forged_version_jump_is_refused_for_any_group_and_reported() -> None:
    topo = example("seattle.toml")
    db = LinkStateDB.from_topology(topo)
    london = topo.routing_group("London").guid
    seattle = topo.routing_group("Seattle").guid
    held = db.digest
    forged = replace(db.section(london), version=Version(VERSION_MAX), smtp_address="*.forged")  # type: ignore[arg-type]
    r = db.merge(OrgInfo((forged,)))
    assert r.changed == () and db.digest == held
    own = replace(db.section(seattle), version=Version(VERSION_MAX))  # type: ignore[arg-type]
    r = db.merge(OrgInfo((own,)), own_group=seattle)
    assert r.ignored_own and r.highest_own == Version()  # the master does not move above it
    assert db.refused  # something to report
    refused = db.take_refusals()
    assert refused.counts == {"version jump above max_version_jump": 2}
    assert set(refused.examples["version jump above max_version_jump"]) == {london, seattle}
    assert not db.refused  # taken once
    ok = replace(db.section(london), version=Version(1 << 32))  # type: ignore[arg-type]
    assert db.merge(OrgInfo((ok,))).changed == (london,)  # within the jump


def test_unknown_groups_are_bounded_in_count_and_the_lowest_guids_stay() -> None:
    db = LinkStateDB.from_topology(bounded(example("seattle.toml"), max_unknown_sections=3))
    known = len(db)
    r = db.merge(OrgInfo(tuple(fake(i) for i in range(10, 20))))
    assert r.changed == tuple(f"{i:032x}" for i in (10, 11, 12))
    assert len(db) == known + 3
    refused, why = db.take_refusals(), "unknown routing group over max_unknown_sections/max_unknown_bytes"
    assert refused.counts[why] == 7
    assert len(refused.examples[why]) == 3 and set(refused.examples[why]) < {f"{i:032x}" for i in range(13, 20)}
    mark = db.seq
    r = db.merge(OrgInfo((fake(5),)))  # a lower GUID pushes the highest kept one out
    assert r.changed == (f"{5:032x}",)
    assert db.changed_since(mark) == (f"{5:032x}", f"{12:032x}")  # a drop is a change a delta must carry
    assert f"{12:032x}" not in db and len(db) == known + 3
    assert db.merge(OrgInfo((fake(30),))).changed == ()  # sorts after the kept ones: dropped at once


def test_unknown_groups_are_bounded_in_bytes() -> None:
    one = len(encode(OrgInfo((fake(1, pad=400),)))) - 53  # the section's bytes + separator, roughly 500
    db = LinkStateDB.from_topology(bounded(example("seattle.toml"), max_unknown_bytes=3 * one))
    db.merge(OrgInfo(tuple(fake(i, pad=400) for i in range(1, 9))))
    unknown = [g for g in db.guids() if not db.is_known(g)]
    assert unknown == [f"{i:032x}" for i in (1, 2, 3)]
    huge = fake(0, pad=4 * one)  # alone larger than the whole bound: refused, nothing else moves
    assert db.merge(OrgInfo((huge,))).changed == ()
    assert [g for g in db.guids() if not db.is_known(g)] == unknown


def test_the_table_never_outgrows_what_every_peer_decodes() -> None:
    limit, unknown = 160 * 1024, 32 * 1024  # the known groups get 160 - 32 - 64 (headroom) KiB
    topo = bounded(example("seattle.toml"), max_table_bytes=limit, max_unknown_bytes=unknown)
    db = LinkStateDB.from_topology(topo)
    london = topo.routing_group("London").guid
    big = replace(db.section(london), version=Version(2), x500_address="y" * 50_000)  # type: ignore[arg-type]
    assert db.merge(OrgInfo((big,))).changed == (london,)
    bigger = replace(big, version=Version(3), x400_address="z" * 10_000)
    assert db.merge(OrgInfo((bigger,))).changed == ()  # the known groups' budget would be passed
    refused = db.take_refusals()
    assert refused.counts == {"table would exceed max_table_bytes": 1}
    assert refused.examples == {"table would exceed max_table_bytes": [london]}
    db.merge(OrgInfo(tuple(fake(i, pad=400) for i in range(200))))  # and the unknown groups fill theirs
    frame = db.frame()
    assert len(frame) == db.frame_size <= limit - TABLE_HEADROOM
    decode_strict(frame, db.limits.decode)  # what it holds, a peer with the same settings decodes


def test_a_member_adopting_its_master_keeps_the_same_unknown_subset() -> None:
    topo = bounded(example("seattle.toml"), max_unknown_sections=2)
    master, member = LinkStateDB.from_topology(topo), LinkStateDB.from_topology(topo)
    master.merge(OrgInfo(tuple(fake(i) for i in (7, 3, 9))))
    member.merge(OrgInfo((fake(8),)))
    member.adopt(master.snapshot())
    assert member.digest == master.digest
    assert [g for g in member.guids() if not member.is_known(g)] == [f"{3:032x}", f"{7:032x}"]


def test_a_group_leaving_the_directory_counts_as_unknown_on_reload() -> None:
    topo = bounded(example("seattle.toml"), max_unknown_sections=0)
    db = LinkStateDB.from_topology(topo)
    tokyo = topo.routing_group("Tokyo").guid
    fewer = replace(topo, routing_groups=tuple(rg for rg in topo.routing_groups if rg.name != "Tokyo"))
    assert tokyo in db.guids()  # the table has been read in order before
    db.configure(fewer)
    assert tokyo not in db and len(db) == 3 and tokyo not in db.guids()
    assert db.frame_size == len(db.frame())


def test_groups_leaving_the_directory_count_their_bytes_against_the_unknown_bound() -> None:
    topo = example("seattle.toml")
    gone = [rg.guid for rg in topo.routing_groups if rg.name in ("Tokyo", "London")]
    size = sum(len(LinkStateDB.from_topology(topo).section_bytes(g) or b"") + 1 for g in gone)  # bytes + separators
    for bound, kept in ((size, 2), (size - 1, 1)):
        before = bounded(topo, max_unknown_bytes=bound)
        db = LinkStateDB.from_topology(before)
        db.configure(replace(before, routing_groups=tuple(rg for rg in before.routing_groups if rg.guid not in gone)))
        assert sum(g in db for g in gone) == kept


G = [f"{i:032x}" for i in range(1, 9)]
fakes = st.builds(
    lambda i, v, pad: fake(i, Version(v), pad), st.integers(1, 8), st.integers(1, 3), st.integers(0, 300)
)
batches = st.lists(fakes, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(batches, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_every_arrival_order_converges_on_the_same_subset(batches: list[list[RoutingGroup]], rnd: object) -> None:
    """Two nodes that saw the same sections hold the same table, whatever the order, within both bounds."""
    topo = bounded(example("seattle.toml"), max_unknown_sections=3, max_unknown_bytes=900)
    a, b = LinkStateDB.from_topology(topo), LinkStateDB.from_topology(topo)
    for batch in batches:
        a.merge(OrgInfo(tuple(batch)))
    shuffled = [s for batch in batches for s in batch]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for s in shuffled:
        b.merge(OrgInfo((s,)))
    a.merge(b.snapshot())  # one exchange each way, as bridgeheads do
    b.merge(a.snapshot())
    assert a.digest == b.digest
    unknown = [g for g in a.guids() if not a.is_known(g)]
    assert len(unknown) <= 3
    assert sum(len(a.section_bytes(g) or b"") + 1 for g in unknown) <= 900
    assert a.frame_size == len(a.frame())


def test_decode_limits_follow_the_table_limit() -> None:
    assert TableLimits(max_table_bytes=1 << 20).decode.max_frame == 1 << 20
    assert TableLimits(max_table_bytes=1 << 30).decode.max_frame == 16 * 1024 * 1024  # never above the protocol's


def test_adopting_a_push_says_only_what_it_kept() -> None:
    db = LinkStateDB.from_topology(bounded(example("seattle.toml"), max_unknown_sections=3))
    assert db.adopt(OrgInfo(tuple(fake(i) for i in range(10, 20)))) == tuple(f"{i:032x}" for i in (10, 11, 12))
    assert db.adopt(OrgInfo((fake(5), fake(11, Version(2))))) == (f"{5:032x}", f"{11:032x}")  # 12 dropped, unsaid
    assert f"{12:032x}" not in db


def test_an_unknown_section_alone_over_the_byte_bound_is_refused_without_a_store() -> None:
    probe = LinkStateDB([fake(1)])
    one = len(probe.section_bytes(fake(1).guid) or b"") + 1  # its bytes and separator
    fits = LinkStateDB.from_topology(bounded(example("seattle.toml"), max_unknown_bytes=one))
    assert fits.merge(OrgInfo((fake(1),))).changed == (fake(1).guid,)
    over = LinkStateDB.from_topology(bounded(example("seattle.toml"), max_unknown_bytes=one - 1))
    seq = over.seq
    assert over.merge(OrgInfo((fake(1),))).changed == () and over.seq == seq  # never stored, never logged
    refused = over.take_refusals()
    assert refused.counts == {"unknown routing group over max_unknown_sections/max_unknown_bytes": 1}
    assert refused.examples == {"unknown routing group over max_unknown_sections/max_unknown_bytes": [fake(1).guid]}


def sized(rg: RoutingGroup, n: int) -> RoutingGroup:
    """`rg` at version 2 with an X.500 address padded so that its canonical bytes are exactly `n` long."""
    pad = n
    for _ in range(8):
        candidate = replace(rg, version=Version(2), x500_address="y" * pad)
        length = len(LinkStateDB([candidate]).section_bytes(rg.guid) or b"")
        if length == n:
            return candidate
        pad += n - length
    raise AssertionError(f"no padding makes {n} bytes")


def test_a_known_section_is_taken_exactly_up_to_the_known_groups_budget() -> None:
    topo = bounded(example("seattle.toml"), max_table_bytes=160 * 1024, max_unknown_bytes=32 * 1024)
    london = topo.routing_group("London").guid
    for extra, taken in ((0, True), (1, False)):
        db = LinkStateDB.from_topology(topo)
        db.merge(OrgInfo((fake(1), fake(2))))  # the unknown groups hold bytes of their own budget
        unknown = sum(len(db.section_bytes(g) or b"") + 1 for g in db.guids() if not db.is_known(g))
        known = db.frame_size - FRAME_OVERHEAD - unknown
        old = len(db.section_bytes(london) or b"")
        bigger = sized(db.section(london), db.limits.known_budget - known + old + extra)  # type: ignore[arg-type]
        assert (db.merge(OrgInfo((bigger,))).changed == (london,)) is taken


def test_a_new_known_section_counts_its_separator_against_the_budget() -> None:
    topo = bounded(example("seattle.toml"), max_table_bytes=160 * 1024, max_unknown_bytes=32 * 1024)
    london = topo.routing_group("London")
    full = LinkStateDB.from_topology(topo)
    section = full.section(london.guid)
    for extra, taken in ((0, True), (1, False)):
        db = LinkStateDB(full.section(g) for g in full.guids() if g != london.guid)  # type: ignore[misc]
        db.configure(topo)  # London is in the directory, and no section of it held yet
        known = db.frame_size - FRAME_OVERHEAD
        bigger = sized(section, db.limits.known_budget - known - 1 + extra)  # type: ignore[arg-type]
        assert (db.merge(OrgInfo((bigger,))).changed == (london.guid,)) is taken


def test_a_version_jump_is_measured_from_the_version_held() -> None:
    db = LinkStateDB.from_topology(bounded(example("seattle.toml"), max_version_jump=10))
    london = db.section(db.guids()[0])
    assert london is not None
    for major in (8, 16, 24):  # 8 above 0, then 8 above each version held: never more than 10
        assert db.merge(OrgInfo((replace(london, version=Version(major)),))).changed == (london.guid,)
    assert db.merge(OrgInfo((replace(london, version=Version(35)),))).changed == ()  # 11 above 24


def test_a_version_jump_of_a_group_not_held_is_measured_from_zero() -> None:
    db = LinkStateDB.from_topology(bounded(example("seattle.toml"), max_version_jump=10, max_unknown_sections=4))
    assert db.merge(OrgInfo((fake(1, Version(11)), fake(2, Version(10))))).changed == (fake(2).guid,)


def test_a_master_measures_a_jump_of_its_own_group_from_its_version_and_reads_on() -> None:
    db = LinkStateDB.from_topology(bounded(example("seattle.toml"), max_version_jump=10))
    own, other = (db.section(g) for g in db.guids()[:2])
    assert own is not None and other is not None
    db.put(replace(own, version=Version(8)))
    r = db.merge(OrgInfo((replace(own, version=Version(16)),)), own_group=own.guid)
    assert r.ignored_own and r.highest_own == Version(16)  # 8 above the version it holds
    forged, newer = replace(own, version=Version(99)), replace(other, version=Version(3))
    r = db.merge(OrgInfo((forged, newer)), own_group=own.guid)  # a forged own section first: the rest still counts
    assert r.highest_own == Version(8) and r.changed == (other.guid,)


def test_an_unknown_section_replaced_in_the_same_packet_leaves_the_known_budget_exact() -> None:
    topo = bounded(example("seattle.toml"), max_table_bytes=160 * 1024, max_unknown_bytes=32 * 1024)
    london = topo.routing_group("London").guid
    db = LinkStateDB.from_topology(topo)
    db.merge(OrgInfo((fake(1),)))
    unknown = len(db.section_bytes(fake(1).guid) or b"") + 1
    known = db.frame_size - FRAME_OVERHEAD - unknown
    over = sized(db.section(london), db.limits.known_budget - known + len(db.section_bytes(london) or b"") + 1)  # type: ignore[arg-type]
    assert db.merge(OrgInfo((fake(1, Version(2)), over))).changed == (fake(1).guid,)  # London one byte over


def test_without_a_directory_every_group_is_known_so_zero_unknown_bounds_refuse_nothing() -> None:
    """A table built without a directory (a decoded packet, a tool) counts no group as unknown: even with both
    unknown-group bounds at zero it merges and adopts every section, and drops none of them."""
    zero = TableLimits(max_unknown_sections=0, max_unknown_bytes=0)
    db = LinkStateDB(limits=zero)
    r = db.merge(OrgInfo((fake(1), fake(2))))
    assert r.changed == (fake(1).guid, fake(2).guid) and len(db) == 2
    assert db.adopt(OrgInfo((fake(3),))) == (fake(3).guid,) and len(db) == 3
    assert not db.refused


# ------------------------------------------------------------------------------------------ the directory's own size


def test_a_directory_whose_own_table_is_over_nine_tenths_of_the_bound_is_refused_in_one_line() -> None:
    topo = example("seattle.toml")
    size = len(LinkStateDB.from_topology(topo).frame())
    assert size_problem(topo) is None
    assert size_problem(bounded(topo, max_table_bytes=size)) == Problem(
        "settings.max_table_bytes",
        f"this directory's table is {size} bytes, over 90 % of max_table_bytes ({size}): no node could hold it once "
        f"versions grow; raise max_table_bytes (at most {MAX_DECODE_FRAME}), and max_output_bytes to at least twice it",
    )
    least = -(-size * 10 // 9)  # the smallest bound the table is at most 90 % of
    assert size_problem(bounded(topo, max_table_bytes=least)) is None
    assert size_problem(bounded(topo, max_table_bytes=least - 1)) is not None


class _Sized:
    def __init__(self, size: int) -> None:
        self.size = size

    def frame(self) -> bytes:
        return b"\0" * self.size


@pytest.mark.parametrize(("size", "bound", "refused"),
                         [(900, 1000, False), (900, 999, True), (901, 1000, True), (9, 10, False), (10, 10, True)])
def test_exactly_nine_tenths_is_still_taken(monkeypatch: pytest.MonkeyPatch, size: int, bound: int,
                                            refused: bool) -> None:  # fmt: skip
    monkeypatch.setattr(LinkStateDB, "from_topology", classmethod(lambda cls, topo: _Sized(size)))
    assert (size_problem(bounded(example("seattle.toml"), max_table_bytes=bound)) is not None) is refused


def test_at_the_decoders_own_limit_raising_the_bound_is_not_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LinkStateDB, "from_topology", classmethod(lambda cls, topo: _Sized(MAX_DECODE_FRAME)))
    problem = size_problem(bounded(example("seattle.toml"), max_table_bytes=MAX_DECODE_FRAME))
    assert problem is not None and problem.message == (
        f"this directory's table is {MAX_DECODE_FRAME} bytes, over 90 % of max_table_bytes ({MAX_DECODE_FRAME}): no "
        "node could hold it once versions grow; raise max_table_bytes, and max_output_bytes to at least twice it"
    )
