"""The `smtp` target: SMTP lines, commands, replies, X-LINK2STATE items and reassembly, and both SMTP session
machines, on one input.

Input layout: byte 0 picks the session (low 2 bits: fresh server, authenticated server, fresh client,
authenticated client) and the split of the stream (the other 6 bits seed it); the rest is what the peer sends.
Invariants checked on every input (docs/FUZZING.md):
  - the line reader gives the same lines and errors in any split, and holds at most `max_line` bytes after
    draining;
  - `parse_command` raises only `SmtpError`, the reply parser only `ReplyError`, X-LINK2STATE parsing only
    `Link2StateError`; an X-LINK2STATE item formatted and parsed again is the same item; a parsed reply
    formatted and parsed again is the same reply;
  - the reassembler raises only `Link2StateError`, never holds more than the declared length, and a frame it
    completes comes back whole through `Chunker` and a fresh reassembler;
  - the session machines raise nothing; no table or mail is taken from an unauthenticated peer; a closed session
    stays closed and silent; everything a session sends is valid SMTP (a server's replies parse, every line at
    most 1,024 bytes); the reader and the reassembler stay bounded.
May import: the standard library, proto.*, linkstate.core.*, linkstate.fuzz.
"""

from __future__ import annotations

import functools

from linkstate.core import link2state_session as ls
from linkstate.core.link2state_client import SmtpClientSession
from linkstate.core.link2state_server import SmtpServerSession
from linkstate.fuzz.base import Err, expect, outcome, splits
from linkstate.fuzz.targets import fixture
from proto import link2state as l2s
from proto import smtp
from proto.decode import DEFAULT_LIMITS
from proto.encode import encode
from proto.errors import EncodeError
from proto.model import Member, OrgInfo, RoutingGroup

MODES = ("server", "authenticated-server", "client", "authenticated-client")
_TABLE = encode(OrgInfo((RoutingGroup(guid="3d" * 16, master="4c" * 16, members=(Member("4c" * 16),)),)))
_DIGEST = l2s.frame_digest(_TABLE)


def check(data: bytes) -> None:
    if not data:
        return
    mode, seed, stream = data[0] & 3, data[0] >> 2, data[1:]
    pieces = splits(stream, seed)
    lines = _check_lines(stream, pieces)
    _check_items(lines)
    _check_session(mode, pieces)


def _read_lines(pieces: list[bytes]) -> list[object]:
    reader = smtp.LineReader()
    out: list[object] = []
    for piece in pieces:
        reader.feed(piece)
        while True:
            got = outcome(reader.next_line, smtp.LineTooLong)
            if got is None:
                break
            out.append(got)
            if isinstance(got, Err) and reader.dead:
                return out
        expect(reader.pending <= reader.max_line, f"line reader holds {reader.pending} bytes after draining")
    return out


def _check_lines(stream: bytes, pieces: list[bytes]) -> list[bytes]:
    whole = _read_lines([stream])
    expect(_read_lines(pieces) == whole, "the line reader gives other lines when the input is split")
    return [line for line in whole if isinstance(line, bytes)]


def _check_items(lines: list[bytes]) -> None:
    replies = smtp.ReplyParser()
    reassembler = l2s.Reassembler(DEFAULT_LIMITS)
    for line in lines:
        command = outcome(lambda ln=line: smtp.parse_command(ln), smtp.SmtpError)  # type: ignore[misc]
        if isinstance(command, smtp.Command) and command.verb is smtp.Verb.X_LINK2STATE:
            item = outcome(lambda c=command: l2s.parse_command_args(c.args), l2s.Link2StateError)  # type: ignore[misc]
            if isinstance(item, l2s.Chunk | l2s.More):
                _check_item_round_trip(item)
            if isinstance(item, l2s.Chunk):
                _check_reassembly(reassembler, item)
        reply = outcome(functools.partial(replies.feed_line, line), smtp.ReplyError)
        if isinstance(reply, smtp.Reply):
            again = smtp.ReplyParser()
            wire = smtp.format_reply(reply.code, *reply.lines)
            parsed = [again.feed_line(ln) for ln in wire.split(b"\r\n")[:-1]]
            expect(parsed[-1] == reply, f"reply {reply.code} formatted and parsed again differs")
            outcome(lambda r=reply: l2s.parse_reply_text(r.code, r.lines[0]), l2s.Link2StateError)  # type: ignore[misc]
        elif isinstance(reply, Err):
            replies = smtp.ReplyParser()


def _check_item_round_trip(item: l2s.Chunk | l2s.More) -> None:
    line = outcome(lambda: l2s.format_command(item), EncodeError)
    if isinstance(line, Err):
        return
    expect(line.endswith(b"\r\n"), "a formatted X-LINK2STATE line does not end in CRLF")
    command = smtp.parse_command(line[:-2])
    expect(l2s.parse_command_args(command.args) == item, f"{item!r} formatted and parsed again differs")


def _check_reassembly(reassembler: l2s.Reassembler, chunk: l2s.Chunk) -> None:
    frame = outcome(lambda: reassembler.feed(chunk), l2s.Link2StateError)
    expect(reassembler.received <= DEFAULT_LIMITS.max_frame, "the reassembler holds more than a frame")
    if not isinstance(frame, bytes):
        return
    declared = int(frame[1:9], 16)
    expect(len(frame) == l2s.HEADER_LEN + declared, "a reassembled frame is not its declared length")
    fresh = l2s.Reassembler(DEFAULT_LIMITS)
    chunks = list(l2s.Chunker(frame, 7))
    got = [fresh.feed(c) for c in chunks]
    expect(got[-1] == frame and not any(got[:-1]), "a reassembled frame does not survive Chunker + Reassembler")


def _frame() -> tuple[str, bytes]:
    return _DIGEST, _TABLE


def new_session(mode: int) -> SmtpServerSession | SmtpClientSession:
    """A session in `mode` (see MODES); modes 1 and 3 are authenticated first by a scripted peer."""
    if mode in (0, 1):
        session: SmtpServerSession | SmtpClientSession = SmtpServerSession(
            fixture.LOCAL_GUID, fixture.SECRET, fixture.FQDN, _frame, fixture.nonce(1)
        )
        peer: SmtpServerSession | SmtpClientSession = SmtpClientSession(
            fixture.PEER_GUID, fixture.SECRET, "peer.example", _frame, fixture.nonce(2)
        )
    else:
        session = SmtpClientSession(fixture.LOCAL_GUID, fixture.SECRET, fixture.FQDN, _frame, fixture.nonce(1))
        peer = SmtpServerSession(fixture.PEER_GUID, fixture.SECRET, "peer.example", _frame, fixture.nonce(2))
    if mode in (1, 3):
        _authenticate(session, peer)
    return session


def _authenticate(session: SmtpServerSession | SmtpClientSession, peer: object) -> None:
    """Pump bytes both ways until `session` reports AuthSucceeded; drop what each side sends after that."""
    assert isinstance(peer, SmtpServerSession | SmtpClientSession)
    if isinstance(peer, SmtpServerSession):
        session.receive_data(peer.data_to_send())
    for _ in range(8):
        for line in _lines(session.data_to_send()):
            if any(isinstance(e, ls.AuthSucceeded) for e in peer.receive_data(line)):
                break
        for line in _lines(peer.data_to_send()):
            if any(isinstance(e, ls.AuthSucceeded) for e in session.receive_data(line)):
                session.data_to_send()
                return
    expect(False, "the scripted SMTP handshake did not authenticate")


def _lines(data: bytes) -> list[bytes]:
    return [line + b"\n" for line in data.split(b"\n")[:-1]]


def _check_session(mode: int, pieces: list[bytes]) -> None:
    session = new_session(mode)
    server = isinstance(session, SmtpServerSession)
    authed = mode in (1, 3)
    replies = smtp.ReplyParser()
    for piece in [*pieces, b""]:
        was_closed = session.closed
        events = session.receive_data(piece)
        sent = session.data_to_send()
        expect(not (was_closed and (events or sent)), "a closed SMTP session still acts")
        for e in events:
            authed = authed or isinstance(e, ls.AuthSucceeded)
            taken = isinstance(e, ls.OrgInfoReceived | ls.MailReceived)
            expect(authed or not taken, f"{type(e).__name__} from an unauthenticated peer")
        for line in sent.split(b"\r\n")[:-1]:
            expect(len(line) + 2 <= smtp.MAX_LINE, f"the session sent a line of {len(line) + 2} bytes")
            if server:
                got = outcome(lambda ln=line: replies.feed_line(ln), smtp.ReplyError)  # type: ignore[misc]
                expect(not isinstance(got, Err), f"the server sent a malformed reply line {line[:40]!r}")
        expect(sent == b"" or sent.endswith(b"\r\n"), "the session sent a partial line")
        if not session.closed:  # a closed session reads no more: what it held is dropped with it
            _check_bounds(session)


def _check_bounds(session: SmtpServerSession | SmtpClientSession) -> None:
    """The session's own buffers (read through their private names: the sessions expose no size)."""
    reader = getattr(session, "_reader", None)
    reassembler = getattr(session, "_reassembler", None)
    if isinstance(reader, smtp.LineReader):
        expect(reader.pending <= reader.max_line, f"the session's line reader holds {reader.pending} bytes")
    if isinstance(reassembler, l2s.Reassembler):
        expect(reassembler.received <= DEFAULT_LIMITS.max_frame, "the session's reassembler holds over a frame")
