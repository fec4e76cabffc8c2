"""proto.sectioncache: `decode_strict_cached` is `decode_strict`, on valid frames, mutated ones and the sample."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proto.codec import decode_strict, encode
from proto.decode import Limits
from proto.errors import DecodeError
from proto.model import OrgInfo
from proto.sectioncache import SectionCache, decode_strict_cached
from tests.strategies import orginfos

DEFAULT = Limits()


def _same(data: bytes, limits: Limits = DEFAULT, cache: SectionCache | None = None) -> None:
    cache = cache if cache is not None else SectionCache()
    try:
        expected = decode_strict(data, limits)
    except DecodeError as exc:
        with pytest.raises(DecodeError) as got:
            decode_strict_cached(data, limits, cache)
        assert (got.value.offset, got.value.reason) == (exc.offset, exc.reason)
        return
    assert decode_strict_cached(data, limits, cache) == expected


@given(orginfos(max_groups=4))
@settings(max_examples=150, deadline=None)
def test_valid_frames_decode_the_same_cold_and_warm(org: OrgInfo) -> None:
    data = encode(org)
    cache = SectionCache()
    _same(data, cache=cache)
    _same(data, cache=cache)  # every section from the cache now
    assert cache.hits >= len(org.routing_groups)


@given(orginfos(max_groups=3), st.data())
@settings(max_examples=300, deadline=None)
def test_mutated_frames_fail_or_decode_the_same(org: OrgInfo, data: st.DataObject) -> None:
    frame = bytearray(encode(org))
    cache = SectionCache()
    decode_strict_cached(bytes(frame), cache=cache)  # warm: the sections are cached
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.sampled_from(b"(){} 0a9fzORG\r"))
    _same(bytes(frame), cache=cache)


@given(orginfos(max_groups=3))
@settings(max_examples=100, deadline=None)
def test_limits_apply_to_cached_sections_too(org: OrgInfo) -> None:
    data = encode(org)
    cache = SectionCache()
    decode_strict_cached(data, cache=cache)
    for limits in (Limits(max_items=1), Limits(max_string=4), Limits(max_frame=len(data) - 11), Limits(max_depth=2)):
        _same(data, limits, SectionCache())
        _same(data, limits, cache)


def test_a_truncated_or_padded_frame_is_refused_as_before() -> None:
    from tests.strategies import orginfos as _  # noqa: F401  (the strategies module loads the sample models)

    org = decode_strict(encode(OrgInfo(()))).orginfo
    data = encode(org)
    for bad in (data[:-1], data + b" ", data.replace(b"ORGINFO", b"ORGINFX"), b"{00000002}  "):
        _same(bad)
