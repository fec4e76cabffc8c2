"""TCP 691 frames: every message round-trips, the framer takes bytes in any split, bad input is a DecodeError."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from proto import rg691
from proto.encode import encode
from proto.errors import DecodeError
from proto.model import OrgInfo, RoutingGroup

hex32 = st.text("0123456789abcdef", min_size=32, max_size=32)
num = st.integers(0, 2**40)
text = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=40)
state = st.sampled_from(["CONN_AVAIL", "CONN_NOT_AVAILABLE", "CONN_NOT_STARTED"])

messages = st.one_of(
    st.builds(rg691.AuthHello, st.sampled_from(["MEMBER", "CLIENT", "BRIDGEHEAD"]), hex32, hex32),
    st.builds(rg691.AuthChallenge, hex32, hex32, st.text("0123456789abcdef", min_size=64, max_size=64)),
    st.builds(rg691.AuthProof, st.text("0123456789abcdef", min_size=1, max_size=64)),
    st.builds(rg691.AuthResult, st.just(True)),
    st.builds(rg691.AuthResult, st.just(False), text),
    st.builds(rg691.Attach, hex32, hex32, hex32, hex32, num, num, num, hex32),
    st.builds(rg691.AttachAck, st.just(True), hex32, num, num, st.booleans()),
    st.builds(rg691.AttachAck, st.just(False), reason=text),
    st.builds(rg691.SimplePoll, hex32),
    st.builds(rg691.PollResponse, st.booleans(), hex32),
    st.builds(rg691.Reply, hex32, st.booleans()),
    st.builds(rg691.Ack, hex32),
    st.builds(rg691.StateReport, st.just("BH"), hex32, hex32, state),
    st.builds(rg691.StateReport, st.just("SERVICE"), hex32, st.just(""), text),
    st.builds(rg691.StateReport, st.just("FAULT"), hex32, st.just(""), st.one_of(state, st.just("CLEAR"))),
    st.builds(rg691.Detach, text),
    st.builds(rg691.Inject, hex32),
    st.just(rg691.Dump()),
    st.builds(
        rg691.Dump,
        st.just(True),
        hex32,
        hex32,
        st.sampled_from(["master", "member"]),
        hex32,
        st.booleans(),
        st.booleans(),
        num,
        num,
    ),
    st.builds(rg691.RouteQuery, hex32, st.sampled_from(rg691.ROUTE_KINDS), text, text, st.none() | num,
              st.sampled_from(rg691.ROUTE_PRIORITIES), st.booleans()),
    st.builds(rg691.RouteAnswer, st.sampled_from(rg691.ROUTE_STATUSES), st.just("") | hex32, st.none() | num, text,
              st.lists(hex32, max_size=4).map(tuple), text, text, st.none() | num, st.just("") | hex32),
)

TABLE = OrgInfo((RoutingGroup(guid="ab" * 16, master="cd" * 16),))


def _feed(framer: rg691.Framer, data: bytes, split: list[int]) -> list[rg691.Message]:
    out: list[rg691.Message] = []
    cuts = sorted({c % (len(data) + 1) for c in split} | {0, len(data)})
    for a, b in itertools.pairwise(cuts):
        framer.feed(data[a:b])
        out.extend(framer.messages())
    return out


@given(st.lists(messages, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=12))
@settings(max_examples=300, deadline=None)
def test_messages_round_trip_in_any_split(msgs: list[rg691.Message], split: list[int]) -> None:
    raw = rg691.banner("node.example.com", "1") + b"".join(rg691.encode_message(m) for m in msgs)
    table = encode(TABLE)
    framer = rg691.Framer(expect_banner=True)
    got = _feed(framer, raw + table, split)
    assert got[:-1] == msgs
    assert isinstance(got[-1], rg691.OrgInfoFrame) and got[-1].decoded.orginfo == TABLE
    assert framer.banner == b"691 Available node.example.com linkstate Routing Engine 1"


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=8))
@settings(max_examples=400, deadline=None)
def test_garbage_raises_only_decode_error(data: bytes, split: list[int]) -> None:
    for expect_banner in (False, True):
        try:
            _feed(rg691.Framer(expect_banner=expect_banner), data, split)
        except DecodeError:
            pass


@given(messages, st.integers(0, 200), st.binary(min_size=1, max_size=3))
@settings(max_examples=300, deadline=None)
def test_mutated_frames_raise_only_decode_error(msg: rg691.Message, at: int, junk: bytes) -> None:
    raw = bytearray(rg691.encode_message(msg))
    i = at % len(raw)
    raw[i : i + len(junk)] = junk
    try:
        _feed(rg691.Framer(), bytes(raw), [])
    except DecodeError:
        pass


def test_a_frame_over_the_limit_is_refused_before_its_body_arrives() -> None:
    framer = rg691.Framer()
    framer.feed(b"{ffffffff} ORGINFO ")
    try:
        framer.messages()
    except DecodeError as exc:
        assert exc.offset == 0 and "limit" in exc.reason
    else:
        raise AssertionError("a 4 GiB frame header was accepted")


def test_wire_spelling_of_simple_poll_and_case_insensitive_verbs() -> None:
    raw = rg691.encode_message(rg691.SimplePoll("ab" * 16))
    assert b" Simple_Poll " in raw
    framer = rg691.Framer()
    framer.feed(raw.replace(b"Simple_Poll", b"SIMPLE_POLL"))
    assert framer.messages() == [rg691.SimplePoll("ab" * 16)]


# --- hostile strings and banners (issue 11, items 7 and 8) ----------------------------------------------------


@given(st.sampled_from([b"\r", b"\n", b"\x00"]), st.integers(0, 4))
def test_strings_with_cr_lf_or_nul_are_refused_like_any_bad_frame(bad: bytes, at: int) -> None:
    value = (b"abcd"[:at] + bad + b"abcd"[at:])
    payload = b"SERVICE " + b"ab" * 16 + b" {%x}" % len(value) + value
    raw = rg691.frame("STATE", payload)
    framer = rg691.Framer()
    framer.feed(raw)
    try:
        framer.messages()
    except DecodeError as exc:
        assert "CR, LF or NUL" in exc.reason
        assert raw[exc.offset : exc.offset + 1] == bad  # the offset names the byte
    else:
        raise AssertionError(f"a string holding {bad!r} was accepted")


def test_every_decoded_message_encodes_again() -> None:
    """What the decoder accepts the encoder writes: the reason a peer's string can never break a later commit."""
    value = "0701000000000101"
    msg = rg691.StateReport("SERVICE", "ab" * 16, "", value)
    framer = rg691.Framer()
    framer.feed(rg691.encode_message(msg))
    (got,) = framer.messages()
    assert rg691.encode_message(got) == rg691.encode_message(msg)


def test_a_string_over_the_string_limit_is_refused() -> None:
    from proto.codec import Limits

    value = b"x" * 100
    raw = rg691.frame("DETACH", b"{%x}" % len(value) + value)
    rg691.decode_frame(raw)  # within the default limit
    try:
        rg691.decode_frame(raw, limits=Limits(max_string=99))
    except DecodeError as exc:
        assert "exceeds" in exc.reason
    else:
        raise AssertionError("a string over max_string was accepted")


@given(st.sampled_from([b"\r", b"\t", b"\x00", b"\x7f", b"\xff"]))
def test_words_with_control_or_non_ascii_bytes_are_refused(bad: bytes) -> None:
    raw = rg691.frame("STATE", b"FAULT " + b"ab" * 16 + b" CONN" + bad + b"AVAIL")
    try:
        rg691.decode_frame(raw)
    except DecodeError as exc:
        assert "printable ASCII" in exc.reason
    else:
        raise AssertionError(f"a word holding {bad!r} was accepted")


@given(st.integers(400, 700), st.lists(st.integers(1, 800), max_size=10))
@settings(max_examples=200, deadline=None)
def test_the_banner_verdict_is_the_same_for_every_split(length: int, split: list[int]) -> None:
    line = rg691.BANNER_PREFIX + b"x" * (length - len(rg691.BANNER_PREFIX) - 2) + b"\r\n"
    assert len(line) == length
    data = line + rg691.encode_message(rg691.AuthResult(True))

    def verdict(cuts: list[int]) -> bool:
        framer = rg691.Framer(expect_banner=True)
        try:
            _feed(framer, data, cuts)
        except DecodeError:
            return False
        return framer.banner is not None

    whole = verdict([])
    assert whole == (length <= rg691.MAX_BANNER)
    assert verdict(split) == whole
    assert verdict(list(range(0, len(data), 100))) == whole  # 100-byte reads (the case)
