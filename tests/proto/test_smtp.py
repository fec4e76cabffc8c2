"""proto.smtp: line reader bounds, command parsing, replies, dot-stuffing; every parser whole, byte by byte, and
with trailing bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proto.errors import ProtoError
from proto.smtp import (
    MAX_LINE,
    MAX_UNTERMINATED,
    DataReader,
    LineReader,
    LineTooLong,
    Reply,
    ReplyError,
    ReplyParser,
    SmtpError,
    Verb,
    dot_stuff,
    format_command,
    format_reply,
    parse_command,
)

# ------------------------------------------------------------------------------------------------ helpers


def read_all(reader: LineReader, data: bytes, step: int | None = None) -> list[bytes | str]:
    """Feed `data` (whole, or `step` bytes at a time); lines as bytes, errors as 'long'/'fatal'."""
    out: list[bytes | str] = []
    parts = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for part in parts:
        reader.feed(part)
        while True:
            try:
                line = reader.next_line()
            except LineTooLong as exc:
                out.append("fatal" if exc.fatal else "long")
                if exc.fatal:
                    return out
                continue
            if line is None:
                break
            out.append(line)
    return out


SPLITS = [None, 1, 2, 7, 1000]


# ------------------------------------------------------------------------------------------------ lines


@pytest.mark.parametrize("step", SPLITS)
def test_lines_any_split(step: int | None) -> None:
    data = b"EHLO a\r\nNOOP\r\n  spaced  \r\nbare\n\r\n" + "é".encode() + b"\r\npartial"
    reader = LineReader()
    assert read_all(reader, data, step) == [b"EHLO a", b"NOOP", b"  spaced  ", b"bare", b"", "é".encode()]
    assert reader.pending == len(b"partial")  # trailing bytes are held, not lost, not returned


@pytest.mark.parametrize("step", SPLITS)
def test_line_bound_is_1024_including_crlf(step: int | None) -> None:
    ok = b"x" * (MAX_LINE - 2) + b"\r\n"
    too_long = b"y" * (MAX_LINE - 1) + b"\r\n"
    reader = LineReader()
    got = read_all(reader, ok + too_long + b"NOOP\r\n", step)
    assert got == [b"x" * (MAX_LINE - 2), "long", b"NOOP"]  # resynchronised at the next line
    assert reader.pending == 0


def test_bare_lf_counts_as_two_bytes() -> None:
    assert read_all(LineReader(), b"x" * (MAX_LINE - 2) + b"\n") == [b"x" * (MAX_LINE - 2)]
    assert read_all(LineReader(), b"x" * (MAX_LINE - 1) + b"\n") == ["long"]


@pytest.mark.parametrize("step", [None, 4096, 999])
def test_60000_bytes_without_lf_is_fatal(step: int | None) -> None:
    reader = LineReader()
    got = read_all(reader, b"z" * MAX_UNTERMINATED + b"\r\nNOOP\r\n", step)
    assert got == ["fatal"]
    assert reader.dead
    with pytest.raises(LineTooLong) as info:
        reader.next_line()
    assert info.value.fatal
    assert info.value.reply == b"500 5.5.2 line too long (no LF in 60000 bytes)\r\n"


def test_long_line_just_under_fatal_bound_recovers() -> None:
    got = read_all(LineReader(), b"z" * (MAX_UNTERMINATED - 1) + b"\nNOOP\r\n", 5000)
    assert got == ["long", b"NOOP"]


def test_reader_memory_stays_bounded() -> None:
    reader = LineReader()
    for _ in range(50):
        reader.feed(b"q" * 1000)
        assert reader.next_line() is None
        assert reader.pending <= MAX_LINE


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20), st.data())
def test_lines_roundtrip_any_split(lines: list[bytes], data: st.DataObject) -> None:
    lines = [ln.rstrip(b"\r") for ln in lines]
    wire = b"".join(ln + b"\r\n" for ln in lines)
    step = data.draw(st.integers(1, max(1, len(wire))))
    assert read_all(LineReader(), wire, step) == lines


@given(st.binary(max_size=3000), st.integers(1, 600))
def test_reader_only_raises_its_own_error(data: bytes, step: int) -> None:
    reader = LineReader(max_line=64, max_unterminated=1000)
    for item in read_all(reader, data, step):
        assert isinstance(item, str) or len(item) <= 62


# ------------------------------------------------------------------------------------------------ commands


@pytest.mark.parametrize(
    ("line", "verb", "args"),
    [
        (b"EHLO client.example", Verb.EHLO, b"client.example"),
        (b"ehlo client.example", Verb.EHLO, b"client.example"),
        (b"HeLo x", Verb.HELO, b"x"),
        (b"X-EXPS LINKSTATE-HMAC-SHA256 a b", Verb.X_EXPS, b"LINKSTATE-HMAC-SHA256 a b"),
        (b"x-link2state LAST CHUNK={0} x  ", Verb.X_LINK2STATE, b"LAST CHUNK={0} x  "),
        (b"DATA", Verb.DATA, b""),
        (b"NOOP", Verb.NOOP, b""),
        (b"noop anything", Verb.NOOP, b"anything"),
        (b"RSET", Verb.RSET, b""),
        (b"quit", Verb.QUIT, b""),
    ],
)
def test_parse_command(line: bytes, verb: Verb, args: bytes) -> None:
    cmd = parse_command(line)
    assert (cmd.verb, cmd.args) == (verb, args)


def test_parse_mail_and_rcpt() -> None:
    mail = parse_command(b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME")
    assert (mail.verb, mail.address, mail.params) == (Verb.MAIL, "a@b.example", ("SIZE=100", "BODY=8BITMIME"))
    assert parse_command(b"mail from: <>").address == ""
    rcpt = parse_command(b"rcpt to:<postmaster@rg2.example>")
    assert (rcpt.verb, rcpt.address) == (Verb.RCPT, "postmaster@rg2.example")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"HELP", 500),
        (b"", 500),
        (b"X-EXPS=LOGIN", 500),
        (b"EHLO", 501),
        (b"EHLO   ", 501),
        (b"DATA now", 501),
        (b"QUIT please", 501),
        (b"MAIL a@b", 501),
        (b"MAIL FROM:a@b", 501),
        (b"RCPT TO:<>", 501),
        (b"RCPT TO:<a@b", 501),
        (b"X-LINK2STATE", 501),
        (b"MAIL FROM:<\xff>", 501),
    ],
)
def test_bad_commands(line: bytes, code: int) -> None:
    with pytest.raises(SmtpError) as info:
        parse_command(line)
    assert info.value.code == code
    assert info.value.reply.startswith(b"%d 5.5." % code)
    assert info.value.reply.endswith(b"\r\n")


@given(st.binary(max_size=200))
def test_parse_command_raises_only_smtp_error(line: bytes) -> None:
    try:
        parse_command(line)
    except SmtpError:
        pass


def test_format_command() -> None:
    assert format_command(Verb.EHLO, "a.example") == b"EHLO a.example\r\n"
    assert format_command(Verb.QUIT) == b"QUIT\r\n"


# ------------------------------------------------------------------------------------------------ replies


def test_format_reply() -> None:
    assert format_reply(250, "OK") == b"250 OK\r\n"
    assert format_reply(250, "a", "b", "OK") == b"250-a\r\n250-b\r\n250 OK\r\n"
    assert format_reply(354) == b"354\r\n"
    with pytest.raises(ValueError):
        format_reply(99, "x")


def parse_replies(data: bytes, step: int | None) -> list[Reply]:
    reader, parser, out = LineReader(), ReplyParser(), []
    for item in read_all(reader, data, step):
        assert isinstance(item, bytes)
        reply = parser.feed_line(item)
        if reply is not None:
            out.append(reply)
    return out


@pytest.mark.parametrize("step", SPLITS)
def test_multiline_reply(step: int | None) -> None:
    wire = format_reply(250, "srv Hello", "SIZE 5242880", "X-LINK2STATE", "OK") + b"221 2.0.0 bye\r\n354\r\n25"
    replies = parse_replies(wire, step)
    assert replies == [
        Reply(250, (b"srv Hello", b"SIZE 5242880", b"X-LINK2STATE", b"OK")),
        Reply(221, (b"2.0.0 bye",)),
        Reply(354, (b"",)),
    ]
    assert replies[1].text == "2.0.0 bye" and replies[1].positive


@given(st.integers(200, 599), st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), min_size=1))
def test_reply_roundtrip(code: int, lines: list[bytes]) -> None:
    lines = [ln.rstrip(b"\r") for ln in lines]
    if len(lines) > 99:
        lines = lines[:99]
    wire = format_reply(code, *lines)
    (reply,) = parse_replies(wire, 3)
    expected = tuple(lines) if lines != [b""] else (b"",)
    assert reply == Reply(code, expected)


@pytest.mark.parametrize("bad", [[b"25 OK"], [b"250OK"], [b"abc"], [b"250-a", b"251 b"], [b"600 x"]])
def test_malformed_replies(bad: list[bytes]) -> None:
    parser = ReplyParser()
    with pytest.raises(ReplyError):
        for line in bad:
            parser.feed_line(line)


def test_reply_line_count_is_bounded() -> None:
    parser = ReplyParser(max_lines=5)
    with pytest.raises(ReplyError):
        for _ in range(6):
            parser.feed_line(b"250-x")


# ------------------------------------------------------------------------------------------------ DATA


def unstuff(wire: bytes, step: int | None = None) -> bytes:
    reader, data = LineReader(), DataReader(10_000)
    for item in read_all(reader, wire, step):
        assert isinstance(item, bytes)
        if data.feed_line(item):
            return data.body
    raise AssertionError("no end of data")


@pytest.mark.parametrize("step", SPLITS)
def test_dot_stuffing(step: int | None) -> None:
    body = b"Subject: x\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n"
    wire = dot_stuff(body)
    assert wire == b"Subject: x\r\n\r\n..hidden\r\n...two\r\n..\r\nend\r\n.\r\n"
    assert unstuff(wire + b"QUIT\r\n", step) == body


def test_dot_stuff_normalises_endings() -> None:
    assert dot_stuff(b"a\nb") == b"a\r\nb\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"


@given(st.lists(st.binary(max_size=50).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r")), max_size=10))
def test_dot_stuff_roundtrip(lines: list[bytes]) -> None:
    body = b"".join(ln + b"\r\n" for ln in lines)
    assert unstuff(dot_stuff(body)) == body


def test_data_size_bound() -> None:
    data = DataReader(10)
    assert not data.feed_line(b"12345678")
    assert not data.feed_line(b"x")
    assert data.oversize and data.body == b""
    assert data.feed_line(b".")


def test_errors_are_proto_errors() -> None:
    assert issubclass(LineTooLong, ProtoError) and issubclass(ReplyError, ProtoError)
