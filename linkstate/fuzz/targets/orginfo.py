"""The `orginfo` target: every OrgInfo decoder against the others and against the encoder, on one input.

Invariants checked on every input (docs/FUZZING.md):
  - only `DecodeError` escapes `decode_strict`, `decode_tolerant`, `tolerant_parse`, `decode_strict_cached`
    and the construct reference;
  - strict success => `encode(decoded, digest=carried) == input` and the computed digest is the table's digest;
  - cached == strict (the same `Decoded`, or the same error offset and reason), with a small section cache so
    hits, misses and evictions all happen;
  - strict success => the tolerant parser alone gives the same `Decoded` (canonical input needs no repair);
  - tolerant success => `decode_strict(encode(result))` succeeds with the canonical table and the same computed
    digest (or `encode` refuses with `EncodeError`), and the JSON form round-trips the table;
  - the reference accepts exactly what strict accepts, with the same table, digest and declared length.
May import: the standard library, proto.*, linkstate.fuzz.base.
"""

from __future__ import annotations

from linkstate.fuzz.base import Err, Finding, expect, outcome
from proto import jsonform
from proto.decode import Decoded, decode_strict, decode_tolerant, tolerant_parse
from proto.encode import digest, encode
from proto.errors import DecodeError, EncodeError
from proto.model import canonical
from proto.reference import reference_decode_frame
from proto.sectioncache import SectionCache, decode_strict_cached

CACHE = SectionCache(size=32)  # small: evictions happen within a run


def check(data: bytes) -> None:
    strict = outcome(lambda: decode_strict(data), DecodeError)
    cached = outcome(lambda: decode_strict_cached(data, cache=CACHE), DecodeError)
    expect(cached == strict, f"cached decoder differs from strict: {_show(cached)} vs {_show(strict)}")
    reference = outcome(lambda: reference_decode_frame(data), DecodeError)
    if isinstance(strict, Decoded):
        _check_canonical(data, strict)
        expect(not isinstance(reference, Err), f"reference refuses what strict accepts: {_show(reference)}")
        org, carried, length = reference
        expect(org == strict.orginfo, "reference decodes another table than strict")
        expect((carried, length) == (strict.digest, strict.length), "reference reads another digest or length")
    else:
        expect(isinstance(reference, Err), f"reference accepts what strict refuses ({_show(strict)})")
    tolerant = outcome(lambda: decode_tolerant(data), DecodeError)
    if isinstance(tolerant, Decoded):
        _check_tolerant(tolerant)


def _check_canonical(data: bytes, strict: Decoded) -> None:
    again = outcome(lambda: encode(strict.orginfo, digest=strict.digest), EncodeError)
    expect(again == data, f"strict accepted bytes the encoder writes differently: {_show(again)}")
    expect(strict.computed_digest == digest(strict.orginfo), "strict computed digest is not the table's")
    alone = outcome(lambda: tolerant_parse(data), DecodeError)
    expect(alone == strict, f"tolerant parser differs from strict on canonical input: {_show(alone)}")


def _check_tolerant(tolerant: Decoded) -> None:
    written = outcome(lambda: encode(tolerant.orginfo), EncodeError)
    if isinstance(written, Err):
        return
    reread = outcome(lambda: decode_strict(written), DecodeError)
    expect(not isinstance(reread, Err), f"strict refuses the encoding of a tolerant result: {_show(reread)}")
    expect(reread.orginfo == canonical(tolerant.orginfo), "re-encoded tolerant table reads back differently")
    expect(reread.computed_digest == tolerant.computed_digest, "tolerant computed digest is not the table's")
    back = outcome(lambda: jsonform.from_json(jsonform.to_json(tolerant.orginfo)), jsonform.JsonFormError)
    expect(back == tolerant.orginfo, f"the JSON form does not round-trip a decoded table: {_show(back)}")


def _show(value: object) -> str:
    if isinstance(value, Err):
        return f"{value.kind}{value.detail}"
    if isinstance(value, Decoded):
        return f"Decoded(digest={value.digest}, length={value.length}, groups={len(value.orginfo.routing_groups)})"
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


__all__ = ["CACHE", "Finding", "check"]
