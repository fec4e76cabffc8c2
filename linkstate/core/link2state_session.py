"""Sans-I/O SMTP sessions between bridgeheads: the X-EXPS auth and the X-LINK2STATE dialogue (DECISIONS §3).

Owns: `SmtpServerSession` (the remote bridgehead, which answers) and `SmtpClientSession` (the local bridgehead,
which initiates), h11 style: `receive_data(bytes) -> list[event]` (b"" means the peer closed), then
`data_to_send() -> bytes`; `closed` tells the shell to flush what is left and close the connection.
Each is an explicit table (state, input) -> (action, next state), like h2's `stream.py`. The tables cover every
pair (missing pairs are a bug, checked by the tests); an action may return a different next state when its own
outcome decides (a failed proof, the last chunk), and that is the only way a state changes.

Server dialogue (client lines C:, server replies S:):
  S: 220 <fqdn> linkstate ESMTP ready
  C: EHLO <fqdn>       S: 250-<fqdn> Hello <peer> / SIZE 5242880 / PIPELINING / 8BITMIME /
                          X-EXPS LINKSTATE-HMAC-SHA256 / X-LINK2STATE / 250 OK
  C: X-EXPS LINKSTATE-HMAC-SHA256 <guid> <nonce>        S: 334 <guid> <nonce> <proof>
  C: <proof>           S: 235 2.7.0 Authentication successful  |  535 5.7.8 Authentication failed (closes)
  C: X-LINK2STATE LAST CHUNK=<digest-only frame>
  S: 250 X-LINK2STATE DONE_RESPONSE  |  250 X-LINK2STATE FIRST CHUNK=... (C: X-LINK2STATE MORE ...) LAST CHUNK=
  C: X-LINK2STATE FIRST CHUNK=... S: 250 X-LINK2STATE MORE ... C: ... LAST CHUNK=...  S: 200 Done
  C: QUIT              S: 221 2.0.0 closing
Decisions (docs/PROTOCOL.md §3):
  - One auth attempt per connection: the server's nonce is single-use, so a failed or cancelled proof closes
    the connection (as on port 691). Anything but X-EXPS, EHLO/HELO, NOOP, RSET and QUIT before auth: 530.
  - The opening must be one LAST chunk holding a complete frame; only its digest is used.
  - A protocol error in the X-LINK2STATE dialogue is answered (503 5.5.1 / 501 5.5.4 / 500 5.5.2), the partial
    buffer is dropped, nothing is merged, `SessionFailed(fatal=False)` is emitted and the session returns to the
    authenticated idle state, serving the next command. After `max_errors` (10) error replies in one connection
    the server answers `421 4.7.0 ... too many errors` and closes. 60,000 bytes without a LF: 500 and close.
  - `OrgInfoReceived` is emitted only for a complete frame whose last chunk was accepted; decoding it (and
    merging) is the caller's job. The client is strict: any unexpected reply ends its session (QUIT, close).
Invariants: no I/O, no clock, no randomness (nonces are passed in); every peer input is handled by the table and
only the session's own events come out (no exception escapes `receive_data`).
May import: the standard library, proto.* and linkstate.core.*.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from linkstate.core import auth
from proto import link2state as l2s
from proto.codec import DEFAULT_LIMITS, Limits
from proto.smtp import (
    Command,
    DataReader,
    LineReader,
    LineTooLong,
    Reply,
    ReplyError,
    ReplyParser,
    SmtpError,
    Verb,
    format_command,
    format_reply,
    parse_command,
)

MAX_MESSAGE_SIZE = 5_242_880
MAX_RECIPIENTS = 100
MAX_ERRORS = 10
_GUID = re.compile(r"[0-9a-f]{32}")
_PROOF = re.compile(r"[0-9a-f]{64}")

FrameSource = Callable[[], tuple[str, bytes]]  # -> (digest, full frame), a consistent snapshot


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class OrgInfoReceived:
    """The peer's complete frame (raw, not yet decoded or merged)."""

    frame: bytes
    peer_guid: str


@dataclass(frozen=True, slots=True)
class Done:
    """The X-LINK2STATE dialogue ended well: `exchanged` is False when the digests were equal."""

    exchanged: bool


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """The dialogue failed: nothing from it may be merged. `fatal`: the connection is closing too."""

    reason: str
    fatal: bool = True


@dataclass(frozen=True, slots=True)
class AuthSucceeded:
    """Mutual auth passed (event 995 on the server side, 996 on the client side)."""

    peer_guid: str
    event_id: int


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """Mutual auth failed (event 961 on the server side, 962 on the client side); the connection closes."""

    peer_guid: str
    reason: str
    event_id: int


@dataclass(frozen=True, slots=True)
class MailReceived:
    """A (simulated) message accepted for queuing; `data` has CRLF line endings, dot-stuffing undone."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


Event = OrgInfoReceived | Done | SessionFailed | AuthSucceeded | AuthFailed | MailReceived


class _Session:
    """What both sides share: the line reader, the output buffer, the event list and the byte counters."""

    def __init__(
        self, local_guid: str, secret: bytes, fqdn: str, get_frame: FrameSource, nonce: str, chunk_raw_bytes: int,
        limits: Limits,
    ) -> None:  # fmt: skip
        if not auth.valid_nonce(nonce):
            raise ValueError("nonce must be 32 lowercase hex digits")
        self.local_guid = local_guid
        self.secret = secret
        self.fqdn = fqdn
        self.get_frame = get_frame
        self.nonce = nonce
        self.chunk_raw_bytes = chunk_raw_bytes
        self.peer_guid: str | None = None
        self._reassembler = l2s.Reassembler(limits)
        self._chunks: l2s.Chunker | None = None
        self._reader = LineReader()
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self.closed = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.chunks_in = 0
        self.chunks_out = 0

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer (b"" = the peer closed); returns the events they caused."""
        self.bytes_in += len(data)
        if self.closed:
            return self._take_events()
        if not data:
            self._on_eof()
            return self._take_events()
        self._reader.feed(data)
        while not self.closed and self._next_input():
            pass
        return self._take_events()

    def _on_eof(self) -> None:
        raise NotImplementedError

    def _next_input(self) -> bool:
        """Take one line off the reader and act on it; False when no whole line is buffered."""
        raise NotImplementedError

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _send(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self._out.append(data)

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events


# ================================================================================================ server


class ServerState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    CONNECTED = "CONNECTED"  # greeting sent, no EHLO yet
    READY = "READY"  # EHLO done, not authenticated
    AUTH_PROOF = "AUTH_PROOF"  # 334 sent, the next line is the client's proof
    IDLE = "IDLE"  # authenticated, nothing in progress
    L2S_SEND = "L2S_SEND"  # streaming our chunks, waiting for MORE
    L2S_RECV = "L2S_RECV"  # taking the client's chunks
    MAIL = "MAIL"  # after MAIL FROM
    RCPT = "RCPT"  # after at least one RCPT TO
    DATA = "DATA"  # taking message lines
    CLOSED = "CLOSED"


class ServerInput(enum.Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    EHLO = "EHLO"
    HELO = "HELO"
    X_EXPS = "X_EXPS"
    L2S_CHUNK = "L2S_CHUNK"
    L2S_MORE = "L2S_MORE"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    NOOP = "NOOP"
    RSET = "RSET"
    QUIT = "QUIT"
    BAD_COMMAND = "BAD_COMMAND"  # unknown verb or bad arguments; the reply travels with it
    LINE_TOO_LONG = "LINE_TOO_LONG"  # recoverable
    LINE_FATAL = "LINE_FATAL"  # 60,000 bytes without a LF
    LINE = "LINE"  # a raw line where no command is expected (the auth proof, message text)
    DATA_END = "DATA_END"  # the lone "." ending DATA
    EOF = "EOF"


@dataclass(slots=True)  # not frozen: built once per line, never changed (a frozen __init__ costs 3x)
class _In:
    kind: ServerInput
    line: bytes = b""
    command: Command | None = None
    item: l2s.Chunk | l2s.More | None = None
    reply: bytes = b""


_COMMAND_INPUTS = {
    Verb.EHLO: ServerInput.EHLO,
    Verb.HELO: ServerInput.HELO,
    Verb.X_EXPS: ServerInput.X_EXPS,
    Verb.MAIL: ServerInput.MAIL,
    Verb.RCPT: ServerInput.RCPT,
    Verb.DATA: ServerInput.DATA,
    Verb.NOOP: ServerInput.NOOP,
    Verb.RSET: ServerInput.RSET,
    Verb.QUIT: ServerInput.QUIT,
}

_AUTHENTICATED = frozenset(
    {ServerState.IDLE, ServerState.L2S_SEND, ServerState.L2S_RECV, ServerState.MAIL, ServerState.RCPT, ServerState.DATA}
)
ServerAction = Callable[["SmtpServerSession", _In], "ServerState | None"]
_L2S_COMMAND_PREFIX = l2s.VERB + b" "  # what `parse_command` reads as the X-LINK2STATE verb and its space
_L2S_COMMAND_PREFIX_LEN = len(_L2S_COMMAND_PREFIX)
_MORE_REPLY = l2s.format_reply(l2s.More())  # the same line every time: formatted once
_MORE_COMMAND = l2s.format_command(l2s.More())


class SmtpServerSession(_Session):
    """The answering bridgehead's side of one SMTP connection."""

    def __init__(
        self,
        local_guid: str,
        secret: bytes,
        fqdn: str,
        get_frame: FrameSource,
        nonce: str,
        *,
        chunk_raw_bytes: int = l2s.DEFAULT_CHUNK_RAW,
        limits: Limits = DEFAULT_LIMITS,
        max_errors: int = MAX_ERRORS,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        super().__init__(local_guid, secret, fqdn, get_frame, nonce, chunk_raw_bytes, limits)
        self.max_errors = max_errors
        self.max_message_size = max_message_size
        self.state = ServerState.CONNECTED
        self.errors = 0
        self._peer_nonce = ""
        self._next_chunk = 0
        self._sender = ""
        self._recipients: list[str] = []
        self._data: DataReader | None = None
        self._send(format_reply(220, f"{fqdn} linkstate ESMTP ready"))

    @property
    def authenticated(self) -> bool:
        """X-EXPS succeeded on this connection (the shell stops its authentication clock)."""
        return self.state in _AUTHENTICATED

    # -------------------------------------------------------------------------------------------- input

    def _on_eof(self) -> None:
        self._dispatch(_In(ServerInput.EOF))

    def _next_input(self) -> bool:
        try:
            line = self._reader.next_line()
        except LineTooLong as exc:
            self._dispatch(_In(ServerInput.LINE_FATAL if exc.fatal else ServerInput.LINE_TOO_LONG, reply=exc.reply))
            return True
        if line is None:
            return False
        self._dispatch(self._classify(line))
        return True

    def _classify(self, line: bytes) -> _In:
        if self.state is ServerState.AUTH_PROOF:
            return _In(ServerInput.LINE, line)
        if self.state is ServerState.DATA:
            return _In(ServerInput.DATA_END if line == b"." else ServerInput.LINE, line)
        if line.startswith(_L2S_COMMAND_PREFIX):  # one prefix check before the general parser, same outcome
            args = line[_L2S_COMMAND_PREFIX_LEN:]
            if args:
                try:
                    item = l2s.parse_command_args(args)
                except l2s.Link2StateError as exc:
                    return _In(ServerInput.BAD_COMMAND, line, Command(Verb.X_LINK2STATE, args), reply=exc.reply)
                kind = ServerInput.L2S_MORE if type(item) is l2s.More else ServerInput.L2S_CHUNK
                return _In(kind, line, Command(Verb.X_LINK2STATE, args), item)
        return self._classify_command(line)

    def _classify_command(self, line: bytes) -> _In:
        try:
            command = parse_command(line)
        except SmtpError as exc:
            return _In(ServerInput.BAD_COMMAND, line, reply=exc.reply)
        if command.verb is not Verb.X_LINK2STATE:
            return _In(_COMMAND_INPUTS[command.verb], line, command)
        try:
            item = l2s.parse_command_args(command.args)
        except l2s.Link2StateError as exc:
            return _In(ServerInput.BAD_COMMAND, line, command, reply=exc.reply)
        kind = ServerInput.L2S_MORE if isinstance(item, l2s.More) else ServerInput.L2S_CHUNK
        return _In(kind, line, command, item)

    def _dispatch(self, inp: _In) -> None:
        action, next_state = SERVER_TABLE[(self.state, inp.kind)]
        override = action(self, inp)
        self.state = override if override is not None else next_state
        if self.state is not ServerState.CLOSED and self.errors >= self.max_errors:
            self._send(format_reply(421, f"4.7.0 {self.fqdn} too many errors, closing"))
            self._emit(SessionFailed(f"too many errors ({self.errors})"))
            self.state = ServerState.CLOSED
        self.closed = self.state is ServerState.CLOSED

    def _error(self, reply: bytes) -> None:
        self.errors += 1
        self._send(reply)

    def _reply(self, code: int, *lines: str | bytes) -> None:
        self._send(format_reply(code, *lines))

    # -------------------------------------------------------------------------------------------- actions

    def _ehlo(self, inp: _In) -> ServerState | None:
        raw = inp.command.args[:255] if inp.command else b""
        peer = bytes(c if 0x21 <= c < 0x7F else 0x3F for c in raw).decode("ascii")  # echo stays short, ASCII
        self._abort_dialogue("EHLO during the X-LINK2STATE dialogue")
        self._reset_mail()
        self._reply(
            250,
            f"{self.fqdn} Hello {peer}",
            f"SIZE {self.max_message_size}",
            "PIPELINING",
            "8BITMIME",
            f"X-EXPS {auth.SCHEME}",
            "X-LINK2STATE",
            "OK",
        )
        return None

    def _helo(self, inp: _In) -> ServerState | None:
        self._reset_mail()
        self._reply(250, f"{self.fqdn} Hello")
        return None

    def _need_ehlo(self, inp: _In) -> ServerState | None:
        self._error(format_reply(503, "5.5.1 Send EHLO first"))
        return None

    def _auth_required(self, inp: _In) -> ServerState | None:
        self._error(format_reply(530, "5.7.0 Authentication required"))
        return None

    def _already_authed(self, inp: _In) -> ServerState | None:
        self._error(format_reply(503, "5.5.1 Already authenticated"))
        return None

    def _auth_start(self, inp: _In) -> ServerState | None:
        assert inp.command is not None
        words = inp.command.args.decode("ascii", "replace").split(" ")
        if words[0].upper() != auth.SCHEME:
            self._error(format_reply(504, f"5.5.4 Unrecognized authentication type; use {auth.SCHEME}"))
            return ServerState.READY
        if len(words) != 3 or not _GUID.fullmatch(words[1]) or not auth.valid_nonce(words[2]):
            self._error(format_reply(501, f"5.5.4 Syntax: X-EXPS {auth.SCHEME} <guid> <nonce>"))
            return ServerState.READY
        self.peer_guid, self._peer_nonce = words[1], words[2]
        mine = auth.proof(self.secret, auth.RESPONDER, self._peer_nonce, self.nonce, self.peer_guid, self.local_guid)
        self._reply(334, f"{self.local_guid} {self.nonce} {mine}")
        return None

    def _auth_proof(self, inp: _In) -> ServerState | None:
        assert self.peer_guid is not None
        claimed = inp.line.decode("ascii", "replace")
        if claimed.strip() == "*":
            return self._auth_fail("authentication cancelled by the client", 501, "5.7.0 Authentication cancelled")
        ok = _PROOF.fullmatch(claimed) is not None and auth.check(
            self.secret, auth.INITIATOR, claimed, self._peer_nonce, self.nonce, self.peer_guid, self.local_guid
        )
        if not ok:
            return self._auth_fail("client proof does not match the organization secret")
        self._reply(235, "2.7.0 Authentication successful")
        self._emit(AuthSucceeded(self.peer_guid, 995))
        return None

    def _auth_fail(self, reason: str, code: int = 535, text: str = "5.7.8 Authentication failed") -> ServerState | None:
        self._reply(code, text)
        self._emit(AuthFailed(self.peer_guid or "", reason, 961))
        self._emit(SessionFailed(reason))
        return ServerState.CLOSED

    def _auth_broken(self, inp: _In) -> ServerState | None:
        if inp.kind is ServerInput.EOF:
            return self._eof(inp)
        return self._auth_fail("malformed authentication response", 501, "5.5.2 Malformed proof line")

    def _l2s_open(self, inp: _In) -> ServerState | None:
        assert isinstance(inp.item, l2s.Chunk)
        if inp.item.kind is not l2s.ChunkKind.LAST:
            return self._l2s_fail(
                l2s.Link2StateError.sequence("X-LINK2STATE must open with LAST CHUNK=<digest-only frame>")
            )
        try:
            frame = l2s.Reassembler(self._reassembler.limits).feed(inp.item)
            assert frame is not None
            peer_digest = l2s.frame_digest(frame)
        except l2s.Link2StateError as exc:
            return self._l2s_fail(exc)
        self.chunks_in += 1
        digest, own = self.get_frame()
        if peer_digest == digest:
            self._send(l2s.format_reply(l2s.DoneResponse()))
            self._emit(Done(exchanged=False))
            return None
        self._chunks, self._next_chunk = l2s.Chunker(own, self.chunk_raw_bytes), 0
        return self._send_chunk()

    def _send_chunk(self) -> ServerState:
        assert self._chunks is not None
        chunk = self._chunks[self._next_chunk]
        self._next_chunk += 1
        self.chunks_out += 1
        self._send(l2s.format_reply(chunk))
        if chunk.kind is l2s.ChunkKind.LAST:
            self._chunks = None
            self._reassembler.reset()
            return ServerState.L2S_RECV
        return ServerState.L2S_SEND

    def _l2s_more(self, inp: _In) -> ServerState | None:
        return self._send_chunk()

    def _l2s_recv(self, inp: _In) -> ServerState | None:
        assert isinstance(inp.item, l2s.Chunk)
        try:
            frame = self._reassembler.feed(inp.item)
        except l2s.Link2StateError as exc:
            return self._l2s_fail(exc)
        self.chunks_in += 1
        if frame is None:
            self._send(_MORE_REPLY)
            return None
        self._send(l2s.DONE_LINE)
        self._emit(OrgInfoReceived(frame, self.peer_guid or ""))
        self._emit(Done(exchanged=True))
        return ServerState.IDLE

    def _l2s_fail(self, exc: l2s.Link2StateError) -> ServerState:
        self._error(exc.reply)
        self._drop_dialogue()
        self._emit(SessionFailed(f"X-LINK2STATE: {exc.reason}", fatal=False))
        return ServerState.IDLE

    def _l2s_interrupted(self, inp: _In) -> ServerState | None:
        return self._l2s_fail(l2s.Link2StateError.sequence("X-LINK2STATE dialogue interrupted"))

    def _abort_dialogue(self, reason: str, *, fatal: bool = False) -> None:
        if self.state in (ServerState.L2S_SEND, ServerState.L2S_RECV):
            self._drop_dialogue()
            self._emit(SessionFailed(f"X-LINK2STATE: {reason}", fatal=fatal))

    def _drop_dialogue(self) -> None:
        self._reassembler.reset()
        self._chunks = None

    def _bad_sequence(self, inp: _In) -> ServerState | None:
        what = {
            ServerInput.L2S_CHUNK: "X-LINK2STATE inside a mail transaction",
            ServerInput.L2S_MORE: "X-LINK2STATE MORE with no chunk being sent",
            ServerInput.MAIL: "Nested MAIL command",
            ServerInput.RCPT: "Need MAIL before RCPT",
            ServerInput.DATA: "Need MAIL and RCPT before DATA",
        }.get(inp.kind, "Bad sequence of commands")
        self._error(format_reply(503, f"5.5.1 {what}"))
        return None

    def _mail(self, inp: _In) -> ServerState | None:
        assert inp.command is not None
        for param in inp.command.params:
            key, _, value = param.partition("=")
            if key.upper() == "SIZE" and value.isdigit() and int(value) > self.max_message_size:
                self._reply(552, "5.3.4 Message size exceeds fixed maximum message size")
                return ServerState.IDLE
        self._reset_mail()
        self._sender = inp.command.address
        self._reply(250, "2.1.0 Sender OK")
        return None

    def _rcpt(self, inp: _In) -> ServerState | None:
        assert inp.command is not None
        if len(self._recipients) >= MAX_RECIPIENTS:
            self._reply(452, "4.5.3 Too many recipients")
            return ServerState.RCPT if self._recipients else ServerState.MAIL
        self._recipients.append(inp.command.address)
        self._reply(250, "2.1.5 Recipient OK")
        return None

    def _data_start(self, inp: _In) -> ServerState | None:
        self._data = DataReader(self.max_message_size)
        self._reply(354, "Start mail input; end with <CRLF>.<CRLF>")
        return None

    def _data_line(self, inp: _In) -> ServerState | None:
        assert self._data is not None
        self._data.feed_line(inp.line)
        return None

    def _data_too_long(self, inp: _In) -> ServerState | None:
        assert self._data is not None
        self._data.feed_too_long()  # the message is refused at its end
        return None

    def _data_end(self, inp: _In) -> ServerState | None:
        data = self._data
        assert data is not None
        if data.line_too_long:
            self._error(format_reply(500, "5.5.2 Line too long in message; message refused"))
        elif data.oversize:
            self._reply(552, "5.3.4 Message size exceeds fixed maximum message size")
        else:
            self._emit(MailReceived(self._sender, tuple(self._recipients), data.body))
            self._reply(250, "2.0.0 OK queued")
        self._reset_mail()
        return None

    def _reset_mail(self) -> None:
        self._sender, self._recipients, self._data = "", [], None

    def _noop(self, inp: _In) -> ServerState | None:
        self._reply(250, "2.0.0 OK")
        return None

    def _rset(self, inp: _In) -> ServerState | None:
        self._abort_dialogue("RSET during the X-LINK2STATE dialogue")
        self._reset_mail()
        self._reply(250, "2.0.0 OK")
        return None

    def _quit(self, inp: _In) -> ServerState | None:
        self._abort_dialogue("QUIT during the X-LINK2STATE dialogue", fatal=True)
        self._reply(221, "2.0.0 closing")
        return None

    def _reject(self, inp: _In) -> ServerState | None:
        self._abort_dialogue("bad command during the X-LINK2STATE dialogue")
        self._error(inp.reply or format_reply(500, "5.5.1 Command unrecognized"))
        return None

    def _fatal_line(self, inp: _In) -> ServerState | None:
        self._drop_dialogue()
        self._send(inp.reply)
        self._emit(SessionFailed("line too long: no LF within the bound"))
        return None

    def _eof(self, inp: _In) -> ServerState | None:
        if self.state in (ServerState.AUTH_PROOF, ServerState.L2S_SEND, ServerState.L2S_RECV, ServerState.DATA):
            self._drop_dialogue()
            self._emit(SessionFailed(f"peer closed the connection in state {self.state.value}"))
        return None

    def _ignore(self, inp: _In) -> ServerState | None:
        return None


def _server_table() -> dict[tuple[ServerState, ServerInput], tuple[ServerAction, ServerState]]:
    """(state, input) -> (action, next state); built row by row below, every pair covered."""
    S, X, A = ServerState, ServerInput, SmtpServerSession  # table shorthand
    t: dict[tuple[ServerState, ServerInput], tuple[ServerAction, ServerState]] = {}
    command_states = (S.CONNECTED, S.READY, S.IDLE, S.L2S_SEND, S.L2S_RECV, S.MAIL, S.RCPT)
    dialogue = (S.L2S_SEND, S.L2S_RECV)

    # commands that behave the same wherever commands are read
    for s in command_states:
        after_reset = {S.CONNECTED: S.CONNECTED, S.READY: S.READY}.get(s, S.IDLE)
        t[(s, X.NOOP)] = (A._noop, s)
        t[(s, X.RSET)] = (A._rset, after_reset)
        t[(s, X.QUIT)] = (A._quit, S.CLOSED)
        t[(s, X.BAD_COMMAND)] = (A._reject, S.IDLE if s in dialogue else s)
        t[(s, X.LINE_TOO_LONG)] = (A._reject, S.IDLE if s in dialogue else s)
        t[(s, X.LINE_FATAL)] = (A._fatal_line, S.CLOSED)
        t[(s, X.EOF)] = (A._eof, S.CLOSED)
        t[(s, X.LINE)] = (A._reject, s)  # never produced outside AUTH_PROOF / DATA
        t[(s, X.DATA_END)] = (A._reject, s)  # idem

    # before authentication
    for s in (S.CONNECTED, S.READY):
        t[(s, X.EHLO)] = (A._ehlo, S.READY)
        t[(s, X.HELO)] = (A._helo, S.READY)
        for i in (X.L2S_CHUNK, X.L2S_MORE, X.MAIL, X.RCPT, X.DATA):
            t[(s, i)] = (A._auth_required, s)
    t[(S.CONNECTED, X.X_EXPS)] = (A._need_ehlo, S.CONNECTED)
    t[(S.READY, X.X_EXPS)] = (A._auth_start, S.AUTH_PROOF)

    # the proof line: anything but a proof ends the connection (the nonce is single-use)
    for i in X:
        t[(S.AUTH_PROOF, i)] = (A._auth_broken, S.CLOSED)
    t[(S.AUTH_PROOF, X.LINE)] = (A._auth_proof, S.IDLE)
    t[(S.AUTH_PROOF, X.LINE_FATAL)] = (A._fatal_line, S.CLOSED)

    # authenticated, and the mail transaction
    for s in (S.IDLE, S.MAIL, S.RCPT):
        t[(s, X.EHLO)] = (A._ehlo, S.IDLE)
        t[(s, X.HELO)] = (A._helo, S.IDLE)
        t[(s, X.X_EXPS)] = (A._already_authed, s)
        t[(s, X.L2S_CHUNK)] = (A._bad_sequence, s)
        t[(s, X.L2S_MORE)] = (A._bad_sequence, s)
        t[(s, X.MAIL)] = (A._bad_sequence, s)
        t[(s, X.RCPT)] = (A._rcpt, S.RCPT)
        t[(s, X.DATA)] = (A._bad_sequence, s)
    t[(S.IDLE, X.L2S_CHUNK)] = (A._l2s_open, S.IDLE)
    t[(S.IDLE, X.MAIL)] = (A._mail, S.MAIL)
    t[(S.IDLE, X.RCPT)] = (A._bad_sequence, S.IDLE)
    t[(S.RCPT, X.DATA)] = (A._data_start, S.DATA)

    # the X-LINK2STATE dialogue: only MORE (while we send) or a chunk (while we take) moves it on
    for s in dialogue:
        for i in (X.EHLO, X.HELO, X.X_EXPS, X.L2S_CHUNK, X.L2S_MORE, X.MAIL, X.RCPT, X.DATA):
            t[(s, i)] = (A._l2s_interrupted, S.IDLE)
    t[(S.L2S_SEND, X.L2S_MORE)] = (A._l2s_more, S.L2S_SEND)
    t[(S.L2S_RECV, X.L2S_CHUNK)] = (A._l2s_recv, S.L2S_RECV)

    # message text
    for i in X:
        t[(S.DATA, i)] = (A._data_line, S.DATA)  # only LINE / DATA_END / LINE_* / EOF are produced here
    t[(S.DATA, X.DATA_END)] = (A._data_end, S.IDLE)
    t[(S.DATA, X.LINE_TOO_LONG)] = (A._data_too_long, S.DATA)
    t[(S.DATA, X.LINE_FATAL)] = (A._fatal_line, S.CLOSED)
    t[(S.DATA, X.EOF)] = (A._eof, S.CLOSED)

    for i in X:
        t[(S.CLOSED, i)] = (A._ignore, S.CLOSED)
    return t


SERVER_TABLE = _server_table()


# ================================================================================================ client


class ClientState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    GREETING = "GREETING"  # waiting for 220
    EHLO = "EHLO"  # EHLO sent
    AUTH_CHALLENGE = "AUTH_CHALLENGE"  # X-EXPS sent, waiting for 334
    AUTH_RESULT = "AUTH_RESULT"  # proof sent, waiting for 235
    DIGEST = "DIGEST"  # opening LAST CHUNK sent, waiting for DONE_RESPONSE or the server's first chunk
    RECEIVING = "RECEIVING"  # taking the server's chunks (MORE sent)
    SENDING = "SENDING"  # streaming our chunks, waiting for 250 MORE / 200 Done
    QUITTING = "QUITTING"  # QUIT sent
    CLOSED = "CLOSED"


class ClientInput(enum.Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    R220 = "R220"
    R250 = "R250"
    R334 = "R334"
    R235 = "R235"
    R200 = "R200"
    R221 = "R221"
    L2S_DONE = "L2S_DONE"  # 250 X-LINK2STATE DONE_RESPONSE
    L2S_CHUNK = "L2S_CHUNK"  # 250 X-LINK2STATE FIRST/NEXT/LAST CHUNK=
    L2S_MORE = "L2S_MORE"  # 250 X-LINK2STATE MORE
    OTHER = "OTHER"  # any other positive reply
    ERROR = "ERROR"  # 4xx / 5xx
    MALFORMED = "MALFORMED"  # not a reply, or a line over the bound
    EOF = "EOF"


@dataclass(slots=True)  # not frozen: built once per line, never changed (a frozen __init__ costs 3x)
class _Reply:
    kind: ClientInput
    reply: Reply | None = None
    item: l2s.Item | None = None
    why: str = ""


_REPLY_INPUTS = {
    220: ClientInput.R220,
    250: ClientInput.R250,
    334: ClientInput.R334,
    235: ClientInput.R235,
    200: ClientInput.R200,
    221: ClientInput.R221,
}
_L2S_INPUTS = {l2s.DoneResponse: ClientInput.L2S_DONE, l2s.Chunk: ClientInput.L2S_CHUNK, l2s.More: ClientInput.L2S_MORE}

ClientAction = Callable[["SmtpClientSession", _Reply], "ClientState | None"]
_L2S_REPLY_PREFIX = l2s.VERB + b" "
_L2S_PREFIX_LEN = len(_L2S_REPLY_PREFIX)


class SmtpClientSession(_Session):
    """The initiating bridgehead's side: greeting, EHLO, X-EXPS, the digest, both packets, QUIT."""

    def __init__(
        self,
        local_guid: str,
        secret: bytes,
        fqdn: str,
        get_frame: FrameSource,
        nonce: str,
        *,
        expected_peer: str | None = None,
        chunk_raw_bytes: int = l2s.DEFAULT_CHUNK_RAW,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(local_guid, secret, fqdn, get_frame, nonce, chunk_raw_bytes, limits)
        self.expected_peer = expected_peer
        self.state = ClientState.GREETING
        self._replies = ReplyParser()
        self._frame = b""
        self._next_chunk = 0

    def _on_eof(self) -> None:
        self._dispatch(_Reply(ClientInput.EOF))

    def _next_input(self) -> bool:
        try:
            line = self._reader.next_line()
            reply = None if line is None else self._replies.feed_line(line)
        except (LineTooLong, ReplyError) as exc:
            self._dispatch(_Reply(ClientInput.MALFORMED, why=exc.reason))
            return True
        if line is None:
            return False
        if reply is not None:  # a multi-line reply is complete only at its last line
            self._dispatch(self._classify(reply))
        return True

    def _classify(self, reply: Reply) -> _Reply:
        first = reply.lines[0]
        if reply.code == 250 and len(reply.lines) == 1 and first.startswith(_L2S_REPLY_PREFIX):
            try:  # the canonical spelling: `parse_reply_text` would strip the same prefix
                item = l2s.parse_reply_item(first[_L2S_PREFIX_LEN:])
            except l2s.Link2StateError as exc:
                return _Reply(ClientInput.MALFORMED, reply, why=exc.reason)
            return _Reply(_L2S_INPUTS[type(item)], reply, item)
        if reply.code == 250 and len(reply.lines) == 1 and first[:13].upper() == l2s.VERB + b" ":
            try:
                item = l2s.parse_reply_text(250, first)
            except l2s.Link2StateError as exc:
                return _Reply(ClientInput.MALFORMED, reply, why=exc.reason)
            return _Reply(_L2S_INPUTS[type(item)], reply, item)
        if reply.code >= 400:
            return _Reply(ClientInput.ERROR, reply)
        return _Reply(_REPLY_INPUTS.get(reply.code, ClientInput.OTHER), reply)

    def _dispatch(self, inp: _Reply) -> None:
        action, next_state = CLIENT_TABLE[(self.state, inp.kind)]
        override = action(self, inp)
        self.state = override if override is not None else next_state
        self.closed = self.state is ClientState.CLOSED

    # -------------------------------------------------------------------------------------------- actions

    def _ehlo(self, inp: _Reply) -> ClientState | None:
        self._send(format_command(Verb.EHLO, self.fqdn))
        return None

    def _start_auth(self, inp: _Reply) -> ClientState | None:
        assert inp.reply is not None
        features = {words[0]: words[1:] for words in (ln.upper().split() for ln in inp.reply.lines[1:]) if words}
        if l2s.VERB not in features:
            return self._fail("the server does not advertise X-LINK2STATE")
        if auth.SCHEME.encode() not in features.get(b"X-EXPS", []):
            return self._fail(f"the server does not offer X-EXPS {auth.SCHEME}")
        self._send(format_command(Verb.X_EXPS, f"{auth.SCHEME} {self.local_guid} {self.nonce}"))
        return None

    def _answer_challenge(self, inp: _Reply) -> ClientState | None:
        assert inp.reply is not None
        words = inp.reply.lines[0].decode("ascii", "replace").split(" ")
        if len(words) != 3 or not _GUID.fullmatch(words[0]) or not auth.valid_nonce(words[1]):
            return self._auth_fail("", "malformed 334 challenge")
        peer, peer_nonce, claimed = words
        if self.expected_peer is not None and peer != self.expected_peer:
            return self._auth_fail(peer, f"server is {peer}, expected {self.expected_peer}")
        if not auth.check(self.secret, auth.RESPONDER, claimed, self.nonce, peer_nonce, self.local_guid, peer):
            return self._auth_fail(peer, "server proof does not match the organization secret")
        self.peer_guid = peer
        self._send(auth.proof(self.secret, auth.INITIATOR, self.nonce, peer_nonce, self.local_guid, peer).encode())
        self._send(b"\r\n")
        return None

    def _auth_refused(self, inp: _Reply) -> ClientState | None:
        text = inp.reply.text if inp.reply else ""
        return self._auth_fail(self.peer_guid or "", f"server refused authentication: {text}", cancel=False)

    def _auth_fail(self, peer: str, reason: str, *, cancel: bool = True) -> ClientState:
        """Our side refuses the server: cancel the exchange with `*` (RFC 4954 style), then close."""
        self._emit(AuthFailed(peer, reason, 962))
        if cancel:
            self._send(b"*\r\n")
        return self._fail(reason, send_quit=not cancel)

    def _open_link2state(self, inp: _Reply) -> ClientState | None:
        assert self.peer_guid is not None
        self._emit(AuthSucceeded(self.peer_guid, 996))
        digest, self._frame = self.get_frame()
        self.chunks_out += 1
        self._send(l2s.opening_command(digest))
        return None

    def _digests_equal(self, inp: _Reply) -> ClientState | None:
        self._emit(Done(exchanged=False))
        return self._quit()

    def _receive_chunk(self, inp: _Reply) -> ClientState | None:
        assert isinstance(inp.item, l2s.Chunk)
        try:
            frame = self._reassembler.feed(inp.item)
        except l2s.Link2StateError as exc:
            return self._fail(f"X-LINK2STATE from the server: {exc.reason}")
        self.chunks_in += 1
        if frame is None:
            self._send(_MORE_COMMAND)
            return None
        self._emit(OrgInfoReceived(frame, self.peer_guid or ""))
        self._chunks, self._next_chunk = l2s.Chunker(self._frame, self.chunk_raw_bytes), 0
        return self._send_chunk()

    def _send_chunk(self) -> ClientState:
        assert self._chunks is not None
        if self._next_chunk >= len(self._chunks):
            return self._fail("server asked for MORE after our LAST CHUNK")
        chunk = self._chunks[self._next_chunk]
        self._next_chunk += 1
        self.chunks_out += 1
        self._send(l2s.format_command(chunk))
        return ClientState.SENDING

    def _more(self, inp: _Reply) -> ClientState | None:
        return self._send_chunk()

    def _server_done(self, inp: _Reply) -> ClientState | None:
        assert self._chunks is not None
        if self._next_chunk < len(self._chunks):
            return self._fail("server said 200 Done before our LAST CHUNK")
        self._emit(Done(exchanged=True))
        return self._quit()

    def _quit(self) -> ClientState:
        self._send(format_command(Verb.QUIT))
        return ClientState.QUITTING

    def _fail(self, reason: str, *, send_quit: bool = True) -> ClientState:
        self._reassembler.reset()
        self._emit(SessionFailed(reason))
        if send_quit and self.state is not ClientState.QUITTING:
            self._send(format_command(Verb.QUIT))
        return ClientState.CLOSED

    def _unexpected(self, inp: _Reply) -> ClientState | None:
        if inp.kind is ClientInput.EOF:
            return self._fail(f"server closed the connection in state {self.state.value}")
        shown = inp.why or (inp.reply.text[:80] if inp.reply else inp.kind.value)
        return self._fail(f"unexpected reply in state {self.state.value}: {shown}")

    def _finished(self, inp: _Reply) -> ClientState | None:
        return None


def _client_table() -> dict[tuple[ClientState, ClientInput], tuple[ClientAction, ClientState]]:
    """(state, input) -> (action, next state); everything not listed is an unexpected reply (fail, QUIT)."""
    S, X, A = ClientState, ClientInput, SmtpClientSession  # table shorthand
    t: dict[tuple[ClientState, ClientInput], tuple[ClientAction, ClientState]] = {
        (s, i): (A._unexpected, S.CLOSED) for s in S for i in X
    }
    t[(S.GREETING, X.R220)] = (A._ehlo, S.EHLO)
    t[(S.EHLO, X.R250)] = (A._start_auth, S.AUTH_CHALLENGE)
    t[(S.AUTH_CHALLENGE, X.R334)] = (A._answer_challenge, S.AUTH_RESULT)
    t[(S.AUTH_CHALLENGE, X.ERROR)] = (A._auth_refused, S.CLOSED)
    t[(S.AUTH_RESULT, X.R235)] = (A._open_link2state, S.DIGEST)
    t[(S.AUTH_RESULT, X.ERROR)] = (A._auth_refused, S.CLOSED)
    t[(S.DIGEST, X.L2S_DONE)] = (A._digests_equal, S.QUITTING)
    t[(S.DIGEST, X.L2S_CHUNK)] = (A._receive_chunk, S.RECEIVING)
    t[(S.RECEIVING, X.L2S_CHUNK)] = (A._receive_chunk, S.RECEIVING)
    t[(S.SENDING, X.L2S_MORE)] = (A._more, S.SENDING)
    t[(S.SENDING, X.R200)] = (A._server_done, S.QUITTING)
    for i in X:  # after QUIT, whatever comes (221, an error, the close) ends the session quietly
        t[(S.QUITTING, i)] = (A._finished, S.CLOSED)
        t[(S.CLOSED, i)] = (A._finished, S.CLOSED)
    return t


CLIENT_TABLE = _client_table()
