"""proto.summary: section entries, buckets, what each side lacks, and the TREE/LIST/GET items (docs/PROTOCOL.md
§3.11)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proto import summary as sm
from proto.codec import decode_strict
from proto.encode import encode_section
from proto.model import Member, RoutingGroup, Version

ZERO = Version()

guids = st.text("0123456789abcdef", min_size=32, max_size=32)
versions = st.builds(Version, st.integers(0, 2**20), st.integers(0, 2**20), st.integers(0, 2**20))
entries = st.builds(sm.Entry, guids, versions, st.text("0123456789abcdef", min_size=32, max_size=32))


def section(guid: str, version: Version = ZERO, tag: str = "") -> RoutingGroup:
    return RoutingGroup(guid=guid, master="1" * 32, version=version, smtp_address=f"x{tag}.example",
                        members=(Member("2" * 32),))  # fmt: skip


def summary_of(groups: list[RoutingGroup]) -> sm.Summary:
    groups = sorted(groups, key=lambda g: g.guid)
    raws = [encode_section(g) for g in groups]
    return sm.Summary([g.guid for g in groups], [g.version for g in groups], raws, "0" * 32)


def test_entries_digests_and_buckets() -> None:
    s = summary_of([section("a" + "0" * 31), section("a" + "1" * 31, Version(1, 2, 3)), section("b" * 32)])
    raw = encode_section(section("b" * 32))
    assert s.entries[2] == sm.Entry("b" * 32, Version(), hashlib.md5(raw).hexdigest())
    buckets = s.buckets(1)
    assert set(buckets) == {"a", "b"} and buckets["a"][0] == 2
    expected = hashlib.md5((s.entries[0].digest + s.entries[1].digest).encode()).hexdigest()
    assert buckets["a"] == (2, expected)
    assert [e.guid for e in s.bucket("a")] == ["a" + "0" * 31, "a" + "1" * 31]
    assert s.bucket("c") == () and s.has("b" * 32) and not s.has("c" * 32)


def test_tree_lines_at_both_depths_parse_back() -> None:
    groups = [section(f"{i:02x}" + "0" * 30) for i in range(0, 256, 7)]
    s = summary_of(groups)
    (line,) = s.tree_lines(1)
    assert line.startswith("TREE=* ") and len(line) + len("250 X-LINK2STATE \r\n") <= 1024
    assert sm.parse_tree(line[5:]) == s.buckets(1)
    lines = s.tree_lines(2)
    assert [ln.split(" ")[0] for ln in lines] == [f"TREE={d}" for d in "0123456789abcdef"]
    parsed: dict[str, sm.Bucket] = {}
    for ln in lines:
        parsed.update(sm.parse_tree(ln[5:]))
    assert parsed == s.buckets(2)


def test_depth_keeps_the_tree_reply_short() -> None:
    assert sm.depth_for(10) == sm.depth_for(1024) == 1
    assert sm.depth_for(1025) == sm.depth_for(100_000) == sm.MAX_DEPTH == 2


@settings(max_examples=150, deadline=None)
@given(st.lists(entries, max_size=40, unique_by=lambda e: e.guid))
def test_list_items_round_trip_and_fit_a_line(items: list[sm.Entry]) -> None:
    items = sorted(items, key=lambda e: e.guid)
    prefix = "7"
    items = [sm.Entry(prefix + e.guid[1:], e.version, e.digest) for e in items]
    lines = sm.list_items(prefix, items)
    back: list[sm.Entry] = []
    for line in lines:
        assert len(b"250-X-LINK2STATE " + line.encode() + b"\r\n") <= 1024
        got_prefix, got = sm.parse_list(line[5:])
        assert got_prefix == prefix
        back += got
    assert back == items


@settings(max_examples=150, deadline=None)
@given(st.lists(guids, min_size=1, max_size=70, unique=True))
def test_get_items_round_trip_and_fit_a_line(wanted: list[str]) -> None:
    lines = sm.get_items(wanted)
    back = []
    for line in lines:
        assert line.startswith("GET=") and len(b"X-LINK2STATE " + line.encode() + b"\r\n") <= 1024
        back += sm.parse_get(line[4:])
    assert back == wanted


@pytest.mark.parametrize(
    "value",
    [
        "* 1:" + "0" * 32,  # too few buckets
        "* " + " ".join(["0:-"] * 17),  # too many
        "g " + " ".join(["0:-"] * 16),  # not a prefix
        "12 " + " ".join(["0:-"] * 16),  # a parent deeper than a summary goes
        "* " + " ".join(["1:-"] + ["0:-"] * 15),  # a count with no digest
        "* " + " ".join(["0:" + "0" * 32] + ["0:-"] * 15),  # an empty bucket with a digest
        "* " + " ".join(["x:" + "0" * 32] + ["0:-"] * 15),
    ],
)
def test_bad_tree_items_are_refused(value: str) -> None:
    with pytest.raises(sm.SummaryError):
        sm.parse_tree(value)


@pytest.mark.parametrize(
    "value",
    [
        "",  # no prefix
        "abc",  # too long a prefix
        "a " + "b" * 32 + "/0.0.0/" + "0" * 32,  # an entry outside its bucket
        "a " + "a" * 32 + "/0.0/" + "0" * 32,
        "a " + "a" * 32 + "/0.0.0/" + "0" * 31,
        "a " + " ".join(["a" * 32 + "/0.0.0/" + "0" * 32] * 13),  # more than a line holds
    ],
)
def test_bad_list_items_are_refused(value: str) -> None:
    with pytest.raises(sm.SummaryError):
        sm.parse_list(value)


@pytest.mark.parametrize("value", ["", "x", "a" * 31, " ".join(["a" * 32] * 29), "A" * 32])
def test_bad_get_items_are_refused(value: str) -> None:
    with pytest.raises(sm.SummaryError):
        sm.parse_get(value)


def test_compare_sends_what_the_other_side_lacks_holds_older_or_holds_otherwise() -> None:
    a, b, c, d = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)
    mine = [sm.Entry(a, Version(2), "1" * 32), sm.Entry(b, Version(1), "2" * 32), sm.Entry(c, Version(1), "3" * 32)]
    theirs = [sm.Entry(a, Version(1), "9" * 32), sm.Entry(b, Version(3), "8" * 32), sm.Entry(c, Version(1), "7" * 32),
              sm.Entry(d, Version(), "6" * 32)]  # fmt: skip
    give, want = sm.compare(mine, theirs)
    assert [e.guid for e in give] == [a, c]  # newer, and the same version with other bytes
    assert [e.guid for e in want] == [b, c, d]  # older here, the split brain both ways, and one we lack
    assert sm.compare(mine, mine) == ([], [])


def test_differing_buckets() -> None:
    ours = {"a": (1, "1" * 32), "b": (2, "2" * 32)}
    theirs = {"b": (2, "3" * 32), "c": (1, "4" * 32), "a": (1, "1" * 32)}
    assert sm.differing(theirs, ours) == ["b", "c"]


def test_frame_of_holds_the_chosen_sections_and_its_own_digest() -> None:
    groups = [section(f"{i:x}" * 32, tag=str(i)) for i in range(5)]
    s = summary_of(groups)
    frame = s.frame_of([groups[3].guid, groups[1].guid, "f" * 32, groups[1].guid])
    decoded = decode_strict(frame)
    assert [g.guid for g in decoded.orginfo.routing_groups] == [groups[1].guid, groups[3].guid]
    assert not decoded.tampered
    assert decode_strict(s.frame_of([])).orginfo.routing_groups == ()
