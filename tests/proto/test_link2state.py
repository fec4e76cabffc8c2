"""proto.link2state: line syntax, chunking, reassembly bounds (the MS05-021 shapes), round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proto import link2state as l2s
from proto.codec import DEFAULT_LIMITS, Limits
from proto.encode import encode, frame_from_sections
from proto.errors import EncodeError, ProtoError
from proto.link2state import Chunk, Chunker, ChunkKind, DoneResponse, Link2StateError, More, Reassembler
from proto.model import Member, OrgInfo, RoutingGroup

FIRST, NEXT, LAST = ChunkKind.FIRST, ChunkKind.NEXT, ChunkKind.LAST
DIGEST = "0123456789abcdef0123456789abcdef"


def org(n: int) -> OrgInfo:
    return OrgInfo(
        tuple(
            RoutingGroup(
                guid=f"{i:032x}",
                master=f"{i + 1:032x}",
                smtp_address=f"rg{i}.café.example",  # non-ASCII UTF-8 stays bytes
                members=tuple(Member(guid=f"{i * 100 + j:032x}") for j in range(3)),
            )
            for i in range(n)
        )
    )


FRAMES = {"digest-only": frame_from_sections([], DIGEST), "one": encode(org(1)), "ten": encode(org(10))}


def frames_strategy() -> st.SearchStrategy[bytes]:
    body = st.binary(max_size=3000).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00"))
    return body.map(lambda b: b"{%08x}" % len(b) + b)


# ------------------------------------------------------------------------------------------------ lines


@pytest.mark.parametrize(
    ("args", "item"),
    [
        (b"MORE", More()),
        (b"more", More()),
        (b"FIRST CHUNK={00000001} ", Chunk(FIRST, b"{00000001} ")),
        (b"first_chunk=abc", Chunk(FIRST, b"abc")),
        (b"NEXT CHUNK= x ", Chunk(NEXT, b" x ")),
        (b"next_chunk=a=b", Chunk(NEXT, b"a=b")),
        (b"CHUNK=zz", Chunk(NEXT, b"zz")),
        (b"chunk=", Chunk(NEXT, b"")),
        (b"LAST CHUNK=  ", Chunk(LAST, b"  ")),
        (b"Last_Chunk=\xc3\xa9", Chunk(LAST, b"\xc3\xa9")),
    ],
)
def test_parse_command_args(args: bytes, item: object) -> None:
    assert l2s.parse_command_args(args) == item


@pytest.mark.parametrize("args", [b"DONE_RESPONSE", b"LATER CHUNK=x", b"FIRST  CHUNK=x", b"MORE=x", b"", b"HELLO"])
def test_bad_command_args(args: bytes) -> None:
    with pytest.raises(Link2StateError) as info:
        l2s.parse_command_args(args)
    assert info.value.reply.startswith(b"501 5.5.4 ")


@pytest.mark.parametrize(
    ("text", "item"),
    [
        (b"X-LINK2STATE DONE_RESPONSE", DoneResponse()),
        (b"x-link2state done response", DoneResponse()),
        (b"DONE_RESPONSE", DoneResponse()),
        (b"X-LINK2STATE MORE", More()),
        (b"X-LINK2STATE FIRST CHUNK={0000", Chunk(FIRST, b"{0000")),
        (b"X-LINK2STATE CHUNK=x", Chunk(NEXT, b"x")),
        (b"X-LINK2STATE LAST_CHUNK=y ", Chunk(LAST, b"y ")),
    ],
)
def test_parse_reply_text(text: bytes, item: object) -> None:
    assert l2s.parse_reply_text(250, text) == item


def test_reply_with_other_code_is_refused() -> None:
    with pytest.raises(Link2StateError):
        l2s.parse_reply_text(251, b"X-LINK2STATE MORE")


def test_format_lines_byte_exact() -> None:
    assert l2s.format_command(More()) == b"X-LINK2STATE MORE\r\n"
    assert l2s.format_command(Chunk(FIRST, b"{0}")) == b"X-LINK2STATE FIRST CHUNK={0}\r\n"
    assert l2s.format_command(Chunk(NEXT, b" a")) == b"X-LINK2STATE NEXT CHUNK= a\r\n"
    assert l2s.format_reply(Chunk(LAST, b"b ")) == b"250 X-LINK2STATE LAST CHUNK=b \r\n"
    assert l2s.format_reply(More()) == b"250 X-LINK2STATE MORE\r\n"
    assert l2s.format_reply(DoneResponse()) == b"250 X-LINK2STATE DONE_RESPONSE\r\n"
    assert l2s.DONE_LINE == b"200 Done\r\n"
    opening = l2s.opening_command(DIGEST)
    assert opening == b"X-LINK2STATE LAST CHUNK={0000002b} ORGINFO " + DIGEST.encode() + b"  \r\n"


def test_lines_longer_than_1024_are_refused() -> None:
    with pytest.raises(EncodeError):
        l2s.format_reply(Chunk(NEXT, b"x" * 1000))


def test_frame_digest() -> None:
    assert l2s.frame_digest(FRAMES["digest-only"]) == DIGEST
    with pytest.raises(Link2StateError):
        l2s.frame_digest(b"{00000003} xy")


# ------------------------------------------------------------------------------------------------ chunker


def test_max_chunk_keeps_every_line_within_1024() -> None:
    assert l2s.MAX_CHUNK_RAW == 993
    frame = encode(org(30))
    chunks = list(Chunker(frame, l2s.MAX_CHUNK_RAW))
    for c in chunks:
        assert len(l2s.format_reply(c)) <= 1024 and len(l2s.format_command(c)) <= 1024
    assert max(len(l2s.format_reply(c)) for c in chunks) == 1024
    with pytest.raises(ValueError):
        Chunker(frame, l2s.MAX_CHUNK_RAW + 1)
    with pytest.raises(ValueError):
        Chunker(frame, 0)


@pytest.mark.parametrize(
    ("size", "kinds"),
    [(10_000, [LAST]), (40, [FIRST, LAST]), (20, [FIRST, NEXT, LAST])],
)
def test_chunk_kinds(size: int, kinds: list[ChunkKind]) -> None:
    frame = FRAMES["digest-only"]  # 53 bytes
    assert [c.kind for c in Chunker(frame, min(size, l2s.MAX_CHUNK_RAW))] == kinds


def test_default_chunk_size_and_first_chunk_header() -> None:
    frame = FRAMES["ten"]
    chunks = list(Chunker(frame))
    assert all(len(c.data) <= 700 for c in chunks)
    assert chunks[0].data.startswith(frame[:10]) and len(chunks) >= 3
    assert Chunker(frame)[-1] == chunks[-1]


def test_chunker_refuses_line_breaks() -> None:
    with pytest.raises(EncodeError):
        Chunker(b"{00000002} \n")
    with pytest.raises(EncodeError):
        Chunker(b"")


# ------------------------------------------------------------------------------------------------ reassembly


def reassemble(chunks: list[Chunk], limits: Limits = DEFAULT_LIMITS) -> bytes | None:
    r = Reassembler(limits)
    out = None
    for c in chunks:
        out = r.feed(c)
    return out


@given(frames_strategy(), st.integers(1, l2s.MAX_CHUNK_RAW))
def test_roundtrip_any_frame_any_chunk_size(frame: bytes, size: int) -> None:
    assert reassemble(list(Chunker(frame, size))) == frame


@pytest.mark.parametrize("name", sorted(FRAMES))
@pytest.mark.parametrize("n_chunks", [1, 2, 3, 7])
def test_roundtrip_1_2_3_chunks(name: str, n_chunks: int) -> None:
    frame = FRAMES[name]
    size = min(max(1, -(-len(frame) // n_chunks)), l2s.MAX_CHUNK_RAW)
    chunks = list(Chunker(frame, size))
    if size < l2s.MAX_CHUNK_RAW:
        assert len(chunks) == n_chunks
    kinds = [c.kind for c in chunks]
    assert kinds == [LAST] if len(chunks) == 1 else kinds == [FIRST] + [NEXT] * (len(chunks) - 2) + [LAST]
    assert reassemble(chunks) == frame


@given(frames_strategy(), st.integers(1, 200))
def test_roundtrip_through_lines(frame: bytes, size: int) -> None:
    r = Reassembler()
    out = None
    for c in Chunker(frame, size):
        item = l2s.parse_reply_text(250, l2s.format_reply(c)[4:-2])
        assert isinstance(item, Chunk)
        out = r.feed(item)
    assert out == frame


def refused(chunks: list[Chunk], limits: Limits = DEFAULT_LIMITS) -> Link2StateError:
    r = Reassembler(limits)
    with pytest.raises(Link2StateError) as info:
        for c in chunks:
            r.feed(c)
    assert not r.in_progress and r.received == 0  # nothing kept
    return info.value


def test_ms05_021_unmarked_chunk_without_first() -> None:
    err = refused([Chunk(NEXT, b"A" * 521)])
    assert err.reply.startswith(b"503 5.5.1 ")


@pytest.mark.parametrize("kind", [NEXT, LAST])
def test_next_or_last_continuing_nothing(kind: ChunkKind) -> None:
    assert refused([Chunk(kind, b"ORGINFO abc ")]).code == 503


def test_first_while_in_progress() -> None:
    frame = FRAMES["ten"]
    err = refused([Chunk(FIRST, frame[:100]), Chunk(FIRST, frame[:100])])
    assert err.code == 503


def test_chunk_passing_declared_length() -> None:
    err = refused([Chunk(FIRST, b"{00000005} abc"), Chunk(LAST, b"defgh")])
    assert err.code == 501 and "passes the declared length" in err.reason
    assert refused([Chunk(LAST, b"{00000002} abcdef")]).code == 501


def test_declared_length_over_limit() -> None:
    err = refused([Chunk(FIRST, b"{ffffffff} ORGINFO")])
    assert err.reply.startswith(b"501 5.5.4 declared length")
    small = Limits(max_frame=100)
    assert refused([Chunk(FIRST, b"{0000005b}")], small).code == 501  # 10 + 91 > 100
    assert reassemble([Chunk(LAST, b"{0000005a}" + b"x" * 90)], small) is not None  # exactly 100


@pytest.mark.parametrize(
    "data", [b"{0000000g} x", b"{000000001} x", b"{FFFFFFFF}", b"(00000001) x", b"{0000001}x", b"{ "]
)
def test_malformed_header(data: bytes) -> None:
    assert refused([Chunk(FIRST, data), Chunk(LAST, b"zzzzzzzzzzzz")]).code == 501


def test_header_split_across_chunks() -> None:
    frame = FRAMES["digest-only"]
    chunks = [Chunk(FIRST, frame[:3]), Chunk(NEXT, frame[3:9]), Chunk(LAST, frame[9:])]
    assert reassemble(chunks) == frame
    assert refused([Chunk(FIRST, b"{00"), Chunk(NEXT, b"0x")]).code == 501


def test_last_short_of_declared_length() -> None:
    err = refused([Chunk(FIRST, b"{00000010} abc"), Chunk(LAST, b"de")])
    assert err.code == 501 and "short" in err.reason
    assert refused([Chunk(LAST, b"{0000")]).code == 501


@pytest.mark.parametrize("data", [b"", b"a\rb", b"a\x00"])
def test_bad_chunk_data(data: bytes) -> None:
    assert refused([Chunk(FIRST, b"{00000010} "), Chunk(NEXT, data)]).code == 501


def test_500_first_chunks_in_a_row() -> None:
    r = Reassembler()
    errors = 0
    for _ in range(500):
        try:
            assert r.feed(Chunk(FIRST, b"{00001000} ORGINFO")) is None
        except Link2StateError as exc:
            assert exc.code == 503
            errors += 1
        assert r.received <= 18
    assert errors == 250  # every second one finds one in progress; the error drops it


def test_reassembler_usable_after_error() -> None:
    r = Reassembler()
    with pytest.raises(Link2StateError):
        r.feed(Chunk(NEXT, b"x"))
    frame = FRAMES["one"]
    assert reassemble(list(Chunker(frame, 100))) == frame
    for c in Chunker(frame, 100):
        out = r.feed(c)
    assert out == frame


@given(st.lists(st.tuples(st.sampled_from(ChunkKind), st.binary(max_size=40)), max_size=30))
def test_reassembler_raises_only_its_error_and_bounds_memory(items: list[tuple[ChunkKind, bytes]]) -> None:
    r = Reassembler(Limits(max_frame=64))
    for kind, data in items:
        try:
            out = r.feed(Chunk(kind, data))
        except Link2StateError as exc:
            assert exc.code in (501, 503) and isinstance(exc, ProtoError)
            continue
        assert r.received <= 64
        if out is not None:
            assert len(out) == 10 + int(out[1:9], 16) <= 64
