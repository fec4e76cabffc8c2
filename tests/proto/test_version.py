"""Version bumps never leave the wire's range (issue 11, item 2): carry into the next field, saturate at the top."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proto.encode import encode_section
from proto.model import VERSION_MAX, RoutingGroup, Version

field = st.one_of(st.integers(0, 5), st.integers(VERSION_MAX - 2, VERSION_MAX))
versions = st.builds(Version, field, field, field)
BUMPS = (Version.bump_major, Version.bump_minor, Version.bump_user)


@given(versions, st.lists(st.sampled_from(BUMPS), max_size=8))
def test_bumps_stay_encodable_and_never_go_backwards(v: Version, bumps: list[object]) -> None:
    for bump in bumps:
        nxt = bump(v)  # type: ignore[operator]
        assert nxt >= v
        assert nxt > v or v.saturated  # only a saturated version stops growing
        encode_section(RoutingGroup(guid="ab" * 16, master="cd" * 16, version=nxt))  # never an EncodeError
        v = nxt


def test_full_fields_carry_and_the_top_saturates() -> None:
    assert Version(3, 4, VERSION_MAX).bump_user() == Version(3, 5, 0)
    assert Version(3, VERSION_MAX, 9).bump_minor() == Version(4, 0, 0)
    assert Version(3, VERSION_MAX, VERSION_MAX).bump_user() == Version(4, 0, 0)
    top = Version(VERSION_MAX, VERSION_MAX, VERSION_MAX)
    assert top.saturated and top.bump_user() == top and top.bump_major() == top
    assert Version(VERSION_MAX).bump_minor() == Version(VERSION_MAX, 1, 0)
