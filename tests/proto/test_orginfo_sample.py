"""The seed's printed OrgInfo packet (fixture F1) and its repaired canonical form (F2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proto.codec import decode_strict, decode_tolerant, digest, encode
from proto.errors import DecodeError
from proto.model import BridgeheadState, ConnectorState, Version
from proto.reference import reference_decode_frame

SAMPLE = (Path(__file__).resolve().parent.parent / "vectors" / "seed-sample-l8818.txt").read_bytes()

REJECTED = ["tester07", "tester04", "tester03", "tester02", "tester01"]


def test_sample_is_the_verbatim_1108_bytes() -> None:
    assert len(SAMPLE) == 1108
    assert SAMPLE.startswith(b"{00000457}..a9c421eb")
    assert SAMPLE.endswith(b"STATE.UP)))..")


def test_tolerant_decodes_every_value() -> None:
    d = decode_tolerant(SAMPLE)
    assert d.digest == "a9c421ebe14f06710f6ab596345ac615"
    assert d.length == 0x457
    assert d.computed_digest == digest(d.orginfo)
    (rg,) = d.orginfo.routing_groups
    assert rg.guid == "a2a0f896d197b84999557850ac796258"
    assert rg.master == "2d07476703630a4d87a651498e2d73b9"
    assert rg.version == Version(10, 0, 0)
    assert rg.version_guid == "f0dcd868912f54479b26d729863bb825"
    assert rg.smtp_address == "*.A2A0F896-D197-B849-9955-7850AC796258"
    assert rg.x400_address == "c=US;a=.;p=Example;o=Exchange;cn=A2A0F896-D197-B849-9955-7850AC796258;*"
    assert rg.x500_address == "/o=Example/ou=First.Administrative.Group/*/A2A0F896-D197-B849-99557850AC796258"
    assert [m.guid for m in rg.members] == [
        "2d07476703630a4d87a651498e2d73b9",
        "979733932e995742bc2d5ecf93198b4d",
    ]
    for m in rg.members:
        assert (m.connected, m.state_flags, m.build, m.service_status) == (True, 1, 0x1AAE, "0701000000000101")
    (c,) = rg.connectors
    assert c.guid == "f76005bd57ad93428518268f28f4f7e6"
    assert c.type == "SMTP"
    assert c.source_address == "_f76005bd57ad93428518268f28f4f7e6_S"
    assert c.target_address == ""
    assert c.dn.endswith("cn=JUNK")
    assert c.dn == "/o=Example/ou=First.Administrative.Group/cn=Configuration/cn=Connections/cn=JUNK"
    assert (c.schedule, c.scope, c.triggered, c.priority) == (0, 0, 0, 0)
    assert c.max_size is None and c.large_threshold is None
    assert (c.no_pf_referrals, c.accept_by_default) == (0, 1)
    assert c.accept == ()
    assert c.reject == (
        *(f"CN={u},CN=Users,DC=domain,DC=com" for u in REJECTED),
        "CN=Administrator,CN=Users,DC=domain,DC=com",
    )
    assert c.reserved3 == () and c.reserved4 == ()
    assert [(a.type, a.address, a.cost) for a in c.address_spaces] == [("SMTP", "*", 1)]
    assert [(b.guid, b.state, b.fqdn) for b in c.bridgeheads] == [
        ("2fdb30b62e4ea949a71f91f319535143", BridgeheadState.CONN_AVAIL, "RGR-65-02.domain.com")
    ]
    assert c.target_bridgeheads == ()
    assert c.state is ConnectorState.UP


def test_tolerant_warns_for_each_sanitized_length_and_the_outer_length() -> None:
    d = decode_tolerant(SAMPLE)
    repaired = []
    for w in d.warnings:
        assert SAMPLE[w.offset : w.offset + 1] == b"{", w
        m = re.fullmatch(r"string length \{(\w+)\} \((\d+) bytes\) repaired to \{(\w+)\} \((\d+) bytes\)", w.reason)
        if m is None:
            continue
        declared = SAMPLE[w.offset + 1 : SAMPLE.index(b"}", w.offset)].decode()
        assert m.group(1) == declared and int(m.group(2)) == int(declared, 16)
        repaired.append((m.group(1), m.group(3)))
    assert repaired == [
        ("4b", "47"),
        ("53", "4e"),
        ("54", "50"),
        *[("24", "25")] * 5,
        ("29", "2a"),
        ("13", "14"),
    ]
    outer = [w for w in d.warnings if "frame length" in w.reason]
    assert len(outer) == 1 and outer[0].offset == 0
    assert "00000457" in outer[0].reason and "0000044a" in outer[0].reason
    assert len(d.warnings) == 11


def test_strict_rejects_the_sample_at_its_first_bad_separator() -> None:
    with pytest.raises(DecodeError) as info:
        decode_strict(SAMPLE)
    assert info.value.offset == 10  # the first `.` where a 0x20 separator must be
    assert "separator" in info.value.reason


def f2() -> bytes:
    d = decode_tolerant(SAMPLE)
    return encode(d.orginfo, digest=d.digest)


def test_f2_is_the_sample_repaired() -> None:
    fixed = f2()
    assert fixed.startswith(b"{00000451} ORGINFO a9c421ebe14f06710f6ab596345ac615 ( a2a0f896")
    assert len(fixed) == 10 + 0x451
    # Undo the repair by hand: separators -> 0x20 (the dots inside strings stay), tag in its slot,
    # lengths recomputed.
    expected = SAMPLE
    for old, new in [(b"{4b}", b"{47}"), (b"{53}", b"{4e}"), (b"{54}", b"{50}"), (b"{24}", b"{25}"),
                     (b"{29}", b"{2a}"), (b"{13}", b"{14}"), (b"{00000457}", b"{00000451}")]:  # fmt: skip
        expected = expected.replace(old, new)
    in_strings = {b"a=.", b"First.Administrative.Group", b"RGR-65-02.domain.com", b"*.A2A0"}
    keep = set()
    for s in in_strings:
        for m in re.finditer(re.escape(s), expected):
            keep.update(m.start() + i for i, ch in enumerate(s) if ch == ord("."))
    expected = bytes(b if b != ord(".") or i in keep else 0x20 for i, b in enumerate(expected))
    expected = expected.replace(b"}  a9c4", b"} ORGINFO a9c4", 1)
    assert fixed == expected
    for prefix in (b"{47}", b"{4e}", b"{50}", b"{25}", b"{2a}", b"{14}"):
        assert prefix in fixed


def test_f2_strict_decodes_and_reencodes_byte_for_byte() -> None:
    fixed = f2()
    d = decode_strict(fixed)
    assert d.warnings == ()
    assert d.length == 0x451
    assert d.orginfo == decode_tolerant(SAMPLE).orginfo
    assert encode(d.orginfo, digest=d.digest) == fixed
    assert d.computed_digest == digest(d.orginfo)
    assert reference_decode_frame(fixed) == (d.orginfo, d.digest, 0x451)
    assert decode_tolerant(fixed) == d


def test_strict_reports_a_wrong_length_at_its_prefix() -> None:
    """F1's rule: with canonical separators, strict fails at the first mismatching `{len}` (here `{4b}`)."""
    bad = f2().replace(b"{47}", b"{4b}", 1)
    with pytest.raises(DecodeError) as info:
        decode_strict(bad)
    assert info.value.offset == bad.index(b"{4b}")
    assert "{4b}" in info.value.reason
    # and tolerant repairs it, naming both lengths
    d = decode_tolerant(bad)
    assert [w.offset for w in d.warnings] == [bad.index(b"{4b}")]
    assert "{4b}" in d.warnings[0].reason and "{47}" in d.warnings[0].reason
    assert d.orginfo == decode_strict(f2()).orginfo
