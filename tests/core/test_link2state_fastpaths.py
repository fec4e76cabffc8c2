"""The per-chunk fast paths (one prefix check before the general parser) give what the general path gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from linkstate.core.link2state_client import ClientInput, SmtpClientSession, _Reply
from linkstate.core.link2state_server import ServerState, SmtpServerSession
from proto import link2state as l2s
from proto.smtp import Reply, ReplyError, ReplyParser

NONCE = "0" * 32
KEYWORDS = [
    b"FIRST CHUNK=",
    b"NEXT CHUNK=",
    b"LAST CHUNK=",
    b"CHUNK=",
    b"first_chunk=",
    b"Last Chunk=",
    b"MORE",
    b"more",
    b"MORE ",
    b"DONE_RESPONSE",
    b"DONE RESPONSE",
    b"done_response",
    b"NEXT CHUNK",
    b"",
    b"=",
    b"BOGUS=",
]
data = st.binary(max_size=40) | st.text(alphabet="{}0123456789abcdef ORGINFO=_\r\x00", max_size=40).map(str.encode)
item_text = st.builds(lambda k, d: k + d, st.sampled_from(KEYWORDS), data)


def _outcome(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # compared by type and text
        return ("error", type(exc), str(exc))


@given(item_text)
def test_parse_item_fast_equals_general(text: bytes) -> None:
    assert _outcome(l2s._parse_item, text) == _outcome(l2s._parse_item_general, text)


@given(
    st.lists(
        st.builds(
            lambda c, sep, t: c + sep + t,
            st.sampled_from([b"250", b"200", b"334", b"599", b"199", b"25", b"x50"]),
            st.sampled_from([b" ", b"-", b"", b"  "]),
            data,
        ),
        max_size=6,
    )
)
def test_reply_parser_fast_equals_general(lines: list[bytes]) -> None:
    fast, general = ReplyParser(), ReplyParser()
    for line in lines:
        a = _outcome(fast.feed_line, line)
        b = _outcome(general._feed_line_general, line)
        assert a == b
        if a[0] == "error":
            break


def _server(state: ServerState) -> SmtpServerSession:
    s = SmtpServerSession("a" * 32, b"k", "x.example", lambda: ("0" * 32, b""), NONCE)
    s.state = state
    return s


@given(
    st.sampled_from([b"X-LINK2STATE ", b"x-link2state ", b"X-LINK2STATE", b"X-LINK2STATE  ", b"NOOP ", b"EHLO "]),
    item_text,
    st.sampled_from([ServerState.IDLE, ServerState.L2S_SEND, ServerState.L2S_RECV, ServerState.READY]),
)
def test_server_classify_fast_equals_general(verb: bytes, text: bytes, state: ServerState) -> None:
    s = _server(state)
    line = verb + text
    assert s._classify(line) == s._classify_command(line)


def _client_classify_reference(reply: Reply) -> _Reply:
    """The classification before the fast path (the general path only)."""
    first = reply.lines[0]
    if reply.code == 250 and len(reply.lines) == 1 and first[:13].upper() == l2s.VERB + b" ":
        try:
            item = l2s.parse_reply_text(250, first)
        except l2s.Link2StateError as exc:
            return _Reply(ClientInput.MALFORMED, reply, why=exc.reason)
        return _Reply(
            {l2s.DoneResponse: ClientInput.L2S_DONE, l2s.Chunk: ClientInput.L2S_CHUNK, l2s.More: ClientInput.L2S_MORE}[
                type(item)
            ],
            reply,
            item,
        )
    if reply.code >= 400:
        return _Reply(ClientInput.ERROR, reply)
    codes = {220: "R220", 250: "R250", 334: "R334", 235: "R235", 200: "R200", 221: "R221"}
    return _Reply(ClientInput[codes.get(reply.code, "OTHER")], reply)


@given(
    st.sampled_from([250, 200, 221, 334, 451, 550]),
    st.lists(
        st.builds(lambda p, t: p + t, st.sampled_from([b"X-LINK2STATE ", b"x-Link2State ", b""]), item_text),
        min_size=1,
        max_size=2,
    ),
)
def test_client_classify_fast_equals_general(code: int, lines: list[bytes]) -> None:
    client = SmtpClientSession("a" * 32, b"k", "x.example", lambda: ("0" * 32, b""), NONCE)
    reply = Reply(code, tuple(lines))
    assert client._classify(reply) == _client_classify_reference(reply)


def test_reply_error_still_raised_on_fast_path_prefixes() -> None:
    p = ReplyParser()
    assert p.feed_line(b"250-a") is None
    try:
        p.feed_line(b"251 b")
    except ReplyError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a code change inside a multi-line reply must still be refused")
