"""The link-state table: G32 merge rules, caches agree with the encoder, merge properties (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.directory import build_orginfo, tombstone
from linkstate.core.lsdb import CHANGE_LOG, MARKS, LinkStateDB, MergeResult, TableStates
from proto.codec import DEFAULT_LIMITS
from proto.encode import digest, encode
from proto.model import Member, OrgInfo, RoutingGroup, Version
from proto.sectioncache import SectionCache, decode_strict_cached
from tests.core.topology_helpers import example

G = [f"{i:02x}" * 16 for i in range(1, 5)]


def section(guid: str, version: Version, vguid: str = "0" * 32, note: str = "") -> RoutingGroup:
    return RoutingGroup(
        guid=guid, master=guid, version=version, version_guid=vguid, smtp_address=f"*.{note}", members=(Member(guid),)
    )


def test_from_topology_matches_encoder() -> None:
    topo = example("seattle.toml")
    db = LinkStateDB.from_topology(topo)
    org = build_orginfo(topo)
    assert len(db) == 4
    assert db.snapshot() == org
    assert db.digest == digest(org)
    assert db.frame() == encode(org)
    assert db.snapshot() is db.snapshot()


def test_put_and_caches_follow_changes() -> None:
    db = LinkStateDB([section(G[0], Version(1))])
    d0 = db.digest
    assert not db.put(section(G[0], Version(1)))
    assert db.digest == d0
    assert db.put(section(G[0], Version(1, 1)))
    assert db.digest != d0 and db.digest == digest(db.snapshot())
    assert db.frame() == encode(db.snapshot())


def test_merge_takes_greater_versions_only() -> None:
    db = LinkStateDB([section(G[0], Version(2)), section(G[1], Version(1))])
    r = db.merge(OrgInfo((section(G[0], Version(1, 9), note="old"), section(G[1], Version(1, 0, 1), note="new"),
                          section(G[2], Version(0), note="fresh"))))  # fmt: skip
    assert r == MergeResult(changed=(G[1], G[2]), ignored_own=False, conflicts=(), highest_own=None)
    assert db.version_of(G[0]) == Version(2) and db.version_of(G[1]) == Version(1, 0, 1)


def test_master_ignores_its_own_group_and_reports_highest() -> None:
    db = LinkStateDB([section(G[0], Version(2), note="mine")])
    r = db.merge(OrgInfo((section(G[0], Version(7), note="theirs"),)), own_group=G[0])
    assert r.ignored_own and r.changed == () and r.highest_own == Version(7)
    sec = db.section(G[0])
    assert sec is not None and sec.smtp_address == "*.mine"
    r = db.merge(OrgInfo((section(G[0], Version(1)),)), own_group=G[0])
    assert r.highest_own == Version(2)


def test_equal_versions_conflict_resolved_by_version_guid() -> None:
    db = LinkStateDB([section(G[0], Version(3), vguid="1" * 32, note="a")])
    r = db.merge(OrgInfo((section(G[0], Version(3), vguid="2" * 32, note="b"),)))
    assert r.changed == (G[0],) and r.conflicts == (G[0],)
    r = db.merge(OrgInfo((section(G[0], Version(3), vguid="0" * 32, note="c"),)))
    assert r.changed == () and r.conflicts == (G[0],)
    sec = db.section(G[0])
    assert sec is not None and sec.smtp_address == "*.b"


def test_tombstones_are_ordinary_sections_and_nothing_is_deleted() -> None:
    db = LinkStateDB([section(G[0], Version(1)), section(G[1], Version(1))])
    t = tombstone(section(G[0], Version(1)))
    assert db.merge(OrgInfo((t,))).changed == (G[0],)
    assert db.merge(OrgInfo(())).changed == ()
    assert len(db) == 2
    sec = db.section(G[0])
    assert sec is not None and sec.is_tombstone


versions = st.builds(Version, st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))
sections = st.builds(
    section, st.sampled_from(G), versions, st.sampled_from(["1" * 32, "2" * 32]), st.sampled_from(["x", "y"])
)
tables = st.lists(sections, max_size=6).map(lambda s: OrgInfo(tuple(s)))


def _state(db: LinkStateDB) -> tuple[str, OrgInfo]:
    return db.digest, db.snapshot()


@settings(max_examples=300, deadline=None)
@given(st.lists(tables, min_size=1, max_size=5), st.sampled_from([None, G[0]]))
def test_versions_never_go_backwards_and_own_group_is_kept(merges: list[OrgInfo], own: str | None) -> None:
    mine = section(G[0], Version(1, 1, 1), note="mine")
    db = LinkStateDB([mine])
    for org in merges:
        before = {g: db.version_of(g) for g in db.guids()}
        r = db.merge(org, own_group=own)
        for g, v in before.items():
            now = db.version_of(g)
            assert v is not None and now is not None and now >= v
        if own is not None:
            assert db.section(G[0]) == mine
            seen = [s.version for s in org.routing_groups if s.guid == own]
            assert r.highest_own == max([mine.version, *seen])
        assert db.digest == digest(db.snapshot())


@settings(max_examples=300, deadline=None)
@given(tables, tables)
def test_merge_is_idempotent_and_order_independent(a: OrgInfo, b: OrgInfo) -> None:
    ab, ba = LinkStateDB(), LinkStateDB()
    ab.merge(a)
    ab.merge(b)
    ba.merge(b)
    ba.merge(a)
    assert _state(ab) == _state(ba)
    again = ab.merge(a)
    assert again.changed == ()
    assert ab.merge(b).changed == ()
    single = LinkStateDB()
    single.merge(OrgInfo(a.routing_groups + b.routing_groups))
    assert _state(single) == _state(ab)


@given(tables)
def test_frame_is_the_encoding_of_the_snapshot(org: OrgInfo) -> None:
    db = LinkStateDB()
    db.merge(org)
    assert db.frame() == encode(db.snapshot())
    assert replace(db.snapshot()) == db.snapshot()


def test_a_new_section_joins_the_order_of_a_table_already_read() -> None:
    db = LinkStateDB([section(G[1], Version(1))])
    assert db.guids() == (G[1],) and len(db.frame()) > 0  # order, digest and frame computed
    assert db.merge(OrgInfo((section(G[0], Version(1)),))).changed == (G[0],)
    assert db.guids() == (G[0], G[1]) and G[0] in db
    assert db.snapshot().routing_groups == (section(G[0], Version(1)), section(G[1], Version(1)))
    assert db.digest == digest(db.snapshot()) and db.frame() == encode(db.snapshot())


def test_bumps_count_stores_that_add_a_section_or_move_its_major_or_minor_version() -> None:
    db = LinkStateDB([section(G[0], Version(1))])
    assert db.bumps == 1  # added
    db.put(section(G[0], Version(1, 0, 1)))  # a user update: no bump
    assert db.bumps == 1
    db.put(section(G[0], Version(1, 1)))
    db.merge(OrgInfo((section(G[0], Version(2)), section(G[1], Version(0)))))
    assert db.bumps == 4
    db.merge(OrgInfo((section(G[0], Version(2), vguid="9" * 32),)))  # same version, another epoch: no bump
    assert db.bumps == 4


def test_sections_decoded_through_the_tables_cache_are_stored_without_encoding_again() -> None:
    """A section the node's decode cache holds keeps the very bytes it arrived as (the cache's), for `put` and
    `merge`, from a table built from the directory too."""
    topo = example("seattle.toml")
    newer = OrgInfo(tuple(replace(rg, version=Version(5)) for rg in build_orginfo(topo).routing_groups))
    cache = SectionCache()
    decoded = decode_strict_cached(encode(newer), DEFAULT_LIMITS, cache).orginfo
    db = LinkStateDB.from_topology(topo, cache=cache)
    first, *rest = decoded.routing_groups
    assert db.put(first) and db.merge(OrgInfo(tuple(rest))).changed == tuple(rg.guid for rg in rest)
    for rg in decoded.routing_groups:
        held = db.section_bytes(rg.guid)
        assert held is cache.raw_of(rg) and held is not None
    assert db.frame() == encode(newer)
    plain = LinkStateDB()  # no cache: encoded here, the same bytes
    plain.merge(decoded)
    assert all(plain.section_bytes(rg.guid) == db.section_bytes(rg.guid) for rg in decoded.routing_groups)


def test_storing_the_very_section_stored_changes_nothing() -> None:
    db = LinkStateDB([section(G[0], Version(1))])
    held = db.section(G[0])
    assert held is not None and not db.put(held) and db.merge(OrgInfo((held,))).changed == ()
    assert db.version_of(G[1]) is None and G[1] not in db and db.section_bytes(G[1]) is None


def test_the_change_log_says_what_changed_since_a_mark_while_it_reaches_back() -> None:
    db = LinkStateDB()
    assert db.changed_since(0) == ()
    db.put(section(G[0], Version(1)))
    assert db.seq == 1 and db.changed_since(0) == (G[0],)  # the log holds exactly the one store asked about
    first = db.digest
    assert db.seq_of(first) == 1
    db.put(section(G[1], Version(1)))
    db.put(section(G[0], Version(2)))
    assert db.changed_since(1) == (G[0], G[1]) and db.changed_since(3) == () and db.changed_since(9) == ()
    assert db.seq_of(first) == 1 and db.seq_of(db.digest) == 3 and db.seq_of("f" * 32) is None
    for n in range(CHANGE_LOG):
        db.put(section(G[2], Version(n + 1)))
    assert db.changed_since(3) == (G[2],)  # the last CHANGE_LOG stores, exactly
    assert db.changed_since(2) is None  # no longer reaches back: the whole table


def test_tables_built_from_one_directory_share_the_memo_they_are_given() -> None:
    topo, states = example("seattle.toml"), TableStates()
    a, b, c = (LinkStateDB.from_topology(topo, states=states) for _ in range(3))
    assert a.state() is b.state() is c.state() and (states.misses, states.hits) == (1, 2)
    first = a.section(a.guids()[0])
    assert first is not None and a.put(replace(first, version=Version(1)))
    assert a.state() is not b.state() and (states.misses, states.hits) == (2, 2)


def looked_up(states: TableStates, major: int) -> str:
    """A table at this version of one section, read once and let go (nothing else holds it: no garbage collection
    needed); whether the memo had its state."""
    hits = states.hits
    LinkStateDB([section(G[0], Version(major))], states=states).state()
    return "hit" if states.hits > hits else "miss"


def test_the_memo_keeps_the_most_recent_states_no_table_holds_any_more() -> None:
    states = TableStates(size=2)
    assert [looked_up(states, n) for n in (1, 2, 3)] == ["miss"] * 3
    assert [looked_up(states, n) for n in (3, 2, 1)] == ["hit", "hit", "miss"]  # the first went when the third came
    eight = TableStates()  # by default, the last eight
    assert [looked_up(eight, n) for n in range(1, 10)] == ["miss"] * 9
    assert [looked_up(eight, n) for n in range(9, 0, -1)] == ["hit"] * 8 + ["miss"]


def test_a_table_remembers_the_digests_of_its_last_states() -> None:
    db, digests = LinkStateDB(), []
    for n in range(MARKS + 1):
        db.put(section(G[0], Version(n + 1)))
        digests.append(db.digest)
    assert db.seq_of(digests[0]) is None  # the oldest of MARKS + 1 is forgotten
    assert [db.seq_of(d) for d in digests[1:]] == list(range(2, MARKS + 2))
