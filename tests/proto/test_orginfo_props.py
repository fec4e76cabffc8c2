"""Property tests of the OrgInfo codec: round trips, strict/tolerant/reference agreement, fuzzing, limits."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import orginfos, shuffled

from proto.codec import DEFAULT_LIMITS, Limits, decode_strict, decode_tolerant, digest, encode
from proto.decode import tolerant_parse
from proto.errors import DecodeError, EncodeError
from proto.model import Bridgehead, BridgeheadState, Connector, Member, OrgInfo, RoutingGroup
from proto.reference import reference_decode, reference_decode_frame

SAMPLE = (Path(__file__).resolve().parent.parent / "vectors" / "seed-sample-l8818.txt").read_bytes()
F2 = encode(decode_tolerant(SAMPLE).orginfo, digest="a9c421ebe14f06710f6ab596345ac615")
SEPARATORS = b" \t\r\n\x00."

FAST = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn: object, data: bytes) -> object:
    """The decoded table, or the marker 'rejected'; any exception but DecodeError fails the test."""
    try:
        result = fn(data)  # type: ignore[operator]
    except DecodeError:
        return "rejected"
    return result.orginfo if hasattr(result, "orginfo") else result


@FAST
@given(orginfos())
def test_strict_round_trip(org: OrgInfo) -> None:
    raw = encode(org)
    d = decode_strict(raw)
    assert d.orginfo == org
    assert d.digest == d.computed_digest == digest(org)
    assert d.length == len(raw) - 10
    assert d.warnings == ()
    assert encode(d.orginfo, digest=d.digest) == raw


@FAST
@given(orginfos(), st.binary(min_size=16, max_size=16).map(bytes.hex))
def test_carried_digest_is_kept_and_computed_digest_is_canonical(org: OrgInfo, carried: str) -> None:
    d = decode_strict(encode(org, digest=carried))
    assert d.digest == carried
    assert d.computed_digest == digest(org)


@FAST
@given(orginfos())
def test_tolerant_equals_strict_on_canonical_input(org: OrgInfo) -> None:
    raw = encode(org)
    strict = decode_strict(raw)
    assert decode_tolerant(raw) == strict
    assert tolerant_parse(raw) == strict  # the tolerant parser itself, not only the strict first attempt


@FAST
@given(orginfos(), st.data())
def test_digest_does_not_depend_on_input_order(org: OrgInfo, data: st.DataObject) -> None:
    mixed = data.draw(shuffled(org))
    assert digest(mixed) == digest(org)
    assert encode(mixed) == encode(org)


@FAST
@given(orginfos(), st.data())
def test_fast_strict_equals_construct_reference(org: OrgInfo, data: st.DataObject) -> None:
    raw = encode(org, digest=data.draw(st.binary(min_size=16, max_size=16).map(bytes.hex)))
    d = decode_strict(raw)
    assert reference_decode_frame(raw) == (d.orginfo, d.digest, d.length)
    assert reference_decode(raw) == org


def _mutate(raw: bytes, rnd: random.Random) -> bytes:
    b = bytearray(raw)
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(6)
        i = rnd.randrange(len(b) + 1)
        if op == 0 and i < len(b):
            b[i] = rnd.randrange(256)
        elif op == 1 and i < len(b):
            b[i] = rnd.choice(b" (){}0123456789abcdefABCDEF.\tYNOS")
        elif op == 2 and i < len(b):
            del b[i]
        elif op == 3:
            b.insert(i, rnd.choice(b" (){}0af."))
        elif op == 4 and i < len(b):
            b[i : i + rnd.randint(1, 8)] = b""
        else:
            j = rnd.randrange(len(b) + 1)
            b[i:i] = raw[j : j + rnd.randint(1, 12)]
    return bytes(b)


@FUZZ
@given(orginfos(max_groups=2), st.randoms(use_true_random=False))
def test_mutated_packets_strict_and_reference_agree(org: OrgInfo, rnd: random.Random) -> None:
    raw = _mutate(encode(org), rnd)
    strict = outcome(decode_strict, raw)
    assert strict == outcome(reference_decode, raw)
    tolerant = outcome(tolerant_parse, raw)
    if strict != "rejected":
        assert tolerant == strict  # the tolerant parser accepts everything strict does, the same way
    assert outcome(decode_tolerant, raw) in (tolerant, strict)


@FUZZ
@given(st.randoms(use_true_random=False))
def test_mutated_sample_never_crashes(rnd: random.Random) -> None:
    for base in (SAMPLE, F2):
        raw = _mutate(base, rnd)
        for fn in (decode_strict, decode_tolerant, tolerant_parse, reference_decode):
            outcome(fn, raw)
        assert outcome(decode_strict, raw) == outcome(reference_decode, raw)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_decode_error(raw: bytes) -> None:
    for fn in (decode_strict, decode_tolerant, tolerant_parse, reference_decode):
        outcome(fn, raw)
    outcome(decode_strict, b"{%08x} ORGINFO " % len(raw) + raw)
    outcome(decode_tolerant, b"{%08x}.." % len(raw) + raw)
    outcome(tolerant_parse, b"{%08x} ORGINFO " % len(raw) + raw)


@FAST
@given(orginfos(max_groups=2), st.data())
def test_tolerant_accepts_any_separator_bytes(org: OrgInfo, data: st.DataObject) -> None:
    """With strings free of spaces, every 0x20 is a separator: replace each by any tolerant separator."""
    from dataclasses import replace

    def nospace(s: str) -> str:
        return s.replace(" ", "_")

    org = OrgInfo(
        tuple(
            replace(
                rg,
                smtp_address=nospace(rg.smtp_address),
                x400_address=nospace(rg.x400_address),
                x500_address=nospace(rg.x500_address),
                members=tuple(replace(m, service_status=nospace(m.service_status)) for m in rg.members),
                connectors=tuple(
                    replace(
                        c,
                        type=nospace(c.type),
                        source_address=nospace(c.source_address),
                        target_address=nospace(c.target_address),
                        dn=nospace(c.dn),
                        accept=tuple(map(nospace, c.accept)),
                        reject=tuple(map(nospace, c.reject)),
                        reserved3=tuple(map(nospace, c.reserved3)),
                        reserved4=tuple(map(nospace, c.reserved4)),
                        address_spaces=tuple(
                            replace(a, type=nospace(a.type), address=nospace(a.address)) for a in c.address_spaces
                        ),
                        bridgeheads=tuple(replace(b, fqdn=nospace(b.fqdn)) for b in c.bridgeheads),
                        target_bridgeheads=tuple(map(nospace, c.target_bridgeheads)),
                    )
                    for c in rg.connectors
                ),
            )
            for rg in org.routing_groups
        )
    )
    raw = encode(org)
    seps = data.draw(st.lists(st.sampled_from(list(SEPARATORS)), min_size=raw.count(b" "), max_size=raw.count(b" ")))
    it = iter(seps)
    printed = bytes(next(it) if b == 0x20 else b for b in raw)
    if data.draw(st.booleans()):
        printed = printed.replace(b"ORGINFO", b"", 1)  # the printed form's missing tag
    d = decode_tolerant(printed)
    assert d == tolerant_parse(printed)
    assert d.orginfo == org
    assert d.computed_digest == digest(org)
    assert all("frame length" in w.reason for w in d.warnings)


def test_tolerant_keywords_and_hex_are_case_insensitive() -> None:
    raw = F2
    for kw in (b"ORGINFO", b"CONFIG", b"ARROWS", b"TARGBH", b"STATE", b" UP)", b"YES", b"CONN_AVAIL"):
        raw = raw.replace(kw, kw.lower())
    raw = raw.replace(b"CONN_avail", b"VS_CONN_avail").replace(b"{0000045", b"{0000045")
    raw = raw.replace(b"a2a0f896d197b84999557850ac796258", b"A2A0F896D197B84999557850AC796258")
    raw = raw.replace(b"ffffffff", b"FFFFFFFF").replace(b" 1aae ", b" 01AAE ")
    d = decode_tolerant(raw)
    assert d.orginfo == decode_strict(F2).orginfo
    with pytest.raises(DecodeError):
        decode_strict(raw)


def test_every_prefix_is_rejected_by_every_decoder() -> None:
    for n in range(len(F2)):
        for fn in (decode_strict, decode_tolerant, tolerant_parse):
            with pytest.raises(DecodeError):
                fn(F2[:n])
    for n in range(0, len(F2), 7):
        with pytest.raises(DecodeError):
            reference_decode(F2[:n])
    for n in range(len(SAMPLE)):
        with pytest.raises(DecodeError):
            decode_tolerant(SAMPLE[:n])


@pytest.mark.parametrize("tail", [b"x", b" ", b"(", b"\x00", b"{00000000}", b" ( "])
def test_trailing_bytes(tail: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_strict(F2 + tail)
    assert info.value.offset == len(F2)
    with pytest.raises(DecodeError):
        reference_decode(F2 + tail)
    if tail.strip(SEPARATORS):
        with pytest.raises(DecodeError) as info:
            decode_tolerant(F2 + tail)
        assert info.value.offset == len(F2)
    else:  # trailing separators (a printed line's end): ignored with a warning
        d = decode_tolerant(F2 + tail)
        assert d.orginfo == decode_strict(F2).orginfo
        assert [w.offset for w in d.warnings] == [len(F2)]


def test_strict_checks_the_outer_length() -> None:
    for wrong in (0x450, 0x452, 0):
        raw = b"{%08x}" % wrong + F2[10:]
        with pytest.raises(DecodeError):
            decode_strict(raw)
        d = decode_tolerant(raw)
        assert [w.offset for w in d.warnings] == [0]


def test_order_and_counts_strict_errors_tolerant_warnings() -> None:
    a, b = "2d07476703630a4d87a651498e2d73b9", "979733932e995742bc2d5ecf93198b4d"
    start = F2.index(b"( " + a.encode())  # the member list (the master GUID stays as it is)
    members = F2[start : F2.index(b")", start)]
    swapped_members = members.replace(a.encode(), b"X" * 32).replace(b.encode(), a.encode())
    swapped = F2.replace(members, swapped_members.replace(b"X" * 32, b.encode()))
    with pytest.raises(DecodeError) as info:
        decode_strict(swapped)
    assert "order" in info.value.reason
    d = decode_tolerant(swapped)
    assert [m.guid for m in d.orginfo.routing_groups[0].members] == [b, a]
    assert any("order" in w.reason for w in d.warnings)
    assert d.computed_digest == decode_strict(F2).computed_digest  # the digest is order-independent
    dup = F2.replace(b.encode(), a.encode())
    with pytest.raises(DecodeError, match="duplicate"):
        decode_strict(dup)
    with pytest.raises(DecodeError, match="duplicate"):  # no canonical form: the JSON form refuses it too
        decode_tolerant(dup)
    miscount = F2.replace(b" 6 ( ", b" 5 ( ")
    with pytest.raises(DecodeError, match="count") as info:
        decode_strict(miscount)
    assert info.value.offset == F2.index(b" 6 ( ") + 1
    d = decode_tolerant(miscount)
    assert len(d.orginfo.routing_groups[0].connectors[0].reject) == 6
    assert [w.offset for w in d.warnings if "count" in w.reason] == [F2.index(b" 6 ( ") + 1]


def test_duplicates_are_refused_on_every_path() -> None:
    """A duplicate GUID has no canonical form: tolerant decoding refuses it even where the list is out of order
    (the twin is not next to it), and the encoder refuses to write one (the JSON form refused it already)."""
    x, y, z = "1" * 32, "2" * 32, "3" * 32
    three = encode(OrgInfo((RoutingGroup(guid=x, master=y, members=(Member(x), Member(y), Member(z))),)))
    twin = three.replace(z.encode(), x.encode())  # members x, y, x: out of order, the twins apart
    with pytest.raises(DecodeError, match=f"duplicate member GUID {x}"):
        decode_tolerant(twin)
    twin_bh = Bridgehead(y, BridgeheadState.CONN_AVAIL, "a")
    for group in (
        RoutingGroup(guid=x, master=y, members=(Member(y), Member(y))),
        RoutingGroup(guid=x, master=y, connectors=(Connector(guid=z), Connector(guid=z))),
        RoutingGroup(guid=x, master=y, connectors=(Connector(guid=z, bridgeheads=(twin_bh, twin_bh)),)),
    ):
        with pytest.raises(EncodeError, match="share the GUID"):
            encode(OrgInfo((group,)))


def test_strict_rejects_non_canonical_forms() -> None:
    cases = [
        F2.replace(b" ORGINFO ", b" orginfo "),
        F2.replace(b" a 0 0 ", b" A 0 0 "),
        F2.replace(b" a 0 0 ", b" 0a 0 0 "),
        F2.replace(b" 1aae ", b" 1AAE "),
        F2.replace(b"{1}*", b"{01}*"),
        F2.replace(b" {} ", b" {0} "),
        F2.replace(b"CONN_AVAIL", b"VS_CONN_AVAIL"),
        F2.replace(b"STATE UP", b"STATE Up"),
        F2.replace(b"a9c421ebe14f06710f6ab596345ac615", b"A9C421EBE14F06710F6AB596345AC615"),
        F2.replace(b"{4}SMTP", b"{4}SM\rP"),
        F2.replace(b"{4}SMTP", b"{4}SM\x00P"),
    ]
    for raw in cases:
        with pytest.raises(DecodeError):
            decode_strict(raw)
        with pytest.raises(DecodeError):
            reference_decode(raw)


def test_hostile_lengths_and_nesting_fail_fast() -> None:
    huge = b"{ffffffff} ORGINFO " + b"0" * 32 + b"  "
    with pytest.raises(DecodeError) as info:
        decode_strict(huge)
    assert info.value.offset == 0 and "limit" in info.value.reason
    assert any("frame length" in w.reason for w in decode_tolerant(huge).warnings)
    big_string = F2.replace(b"{4}SMTP", b"{ffffffff}SMTP")
    for fn in (decode_strict, decode_tolerant, tolerant_parse):
        with pytest.raises(DecodeError, match="exceeds"):
            fn(big_string)
    nested = b"(" * 100_000
    for body in (nested, b" ORGINFO " + b"0" * 32 + b" " + nested):
        raw = b"{%08x}" % len(body) + body
        for fn in (decode_strict, decode_tolerant, tolerant_parse, reference_decode):
            with pytest.raises(DecodeError):
                fn(raw)
    many = b"{ffffffff}" * 20_000
    for fn in (decode_strict, decode_tolerant, tolerant_parse):
        with pytest.raises(DecodeError):
            fn(many)


def test_repair_search_is_bounded() -> None:
    """Every string's length is wrong and separators are everywhere: the search gives up, it does not hang."""
    body = b" ( " + b" ".join([b"{3f}" + b". . ." * 20] * 2000) + b" "
    raw = b"{%08x}.." % len(body) + b"0" * 32 + body
    with pytest.raises(DecodeError):
        decode_tolerant(raw)
    with pytest.raises(DecodeError):
        tolerant_parse(raw)
    conn = F2.replace(b"{4}SMTP", b"{9}SMTP", 1).replace(b"{23}_f", b"{2a}_f").replace(b"{50}/o", b"{52}/o")
    d = decode_tolerant(conn)
    assert d.orginfo == decode_strict(F2).orginfo
    assert len(d.warnings) == 3


def test_limits_are_configurable_down() -> None:
    for limits, what in [
        (Limits(max_frame=100), "exceeds"),
        (Limits(max_string=16), "exceeds"),
        (Limits(max_items=1), "more than 1"),
        (Limits(max_depth=3), "nesting"),
    ]:
        for fn in (decode_strict, decode_tolerant, tolerant_parse):
            with pytest.raises(DecodeError, match=what):
                fn(F2, limits)
    assert decode_strict(F2, Limits(max_depth=4, max_items=6, max_string=0x50)).orginfo == decode_strict(
        F2, DEFAULT_LIMITS
    ).orginfo


def test_non_bytes_input_is_a_decode_error() -> None:
    assert decode_strict(bytearray(F2)).orginfo == decode_strict(F2).orginfo
    with pytest.raises(DecodeError):
        decode_strict("text")  # type: ignore[arg-type]
