"""The answering bridgehead's SMTP session: greeting, EHLO, X-EXPS, the X-LINK2STATE dialogue and simulated mail.

Owns: `ServerState`, `ServerInput` (each received line classified: a command, a proof line, message text, a line
too long, the end of the stream), `SmtpServerSession` and `SERVER_TABLE`, (state, input) -> (action, {outcome:
next state}) for every pair. The dialogue and its decisions are in linkstate.core.link2state_session's docstring.
With a summary source (`get_summary`) it offers the negotiated extensions (docs/PROTOCOL.md §3.11): two more EHLO
keywords, `WINDOW=` (it then streams its chunks `window` at a time, each `MORE` acknowledging one), and the delta
round: `DELTA=<md5>` answered with its buckets (TREE lines) from a snapshot of its table, `LIST=` and `GET=` from
that snapshot, the client's sections frame taken like any packet, then its own sections frame; without one, every
extension item is an unknown keyword, as it always was.
Invariants: the state changes only through the table; an error reply is `Outcome.ERROR` and the one that spends
the error budget is `Outcome.TOO_MANY_ERRORS` (421, close); no exception escapes `receive_data`; no I/O, no clock,
no randomness (the nonce is passed in); a delta round keeps at most its snapshot and the GUIDs asked for, which
are GUIDs of that snapshot.
May import: the standard library, proto.* and linkstate.core (auth, machine, link2state_session).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from linkstate.core import auth
from linkstate.core.link2state_session import (
    GUID_PATTERN,
    MAX_ERRORS,
    MAX_MESSAGE_SIZE,
    MAX_RECIPIENTS,
    PROOF_PATTERN,
    AuthFailed,
    AuthSucceeded,
    Done,
    FrameSource,
    MailReceived,
    OrgInfoReceived,
    SessionFailed,
    SmtpSession,
    SummarySource,
)
from linkstate.core.machine import Outcome, Table
from proto import link2state as l2s
from proto import summary as sm
from proto.codec import DEFAULT_LIMITS, Limits
from proto.smtp import (
    Command,
    DataReader,
    LineTooLong,
    SmtpError,
    Verb,
    format_reply,
    parse_command,
)


class ServerState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    CONNECTED = "CONNECTED"  # greeting sent, no EHLO yet
    READY = "READY"  # EHLO done, not authenticated
    AUTH_PROOF = "AUTH_PROOF"  # 334 sent, the next line is the client's proof
    IDLE = "IDLE"  # authenticated, nothing in progress
    L2S_SEND = "L2S_SEND"  # streaming our chunks, waiting for MORE
    L2S_RECV = "L2S_RECV"  # taking the client's chunks
    DELTA = "DELTA"  # a delta round: our buckets sent, answering LIST / GET, or the client's sections begin
    DELTA_RECV = "DELTA_RECV"  # taking the client's sections frame
    DELTA_SEND = "DELTA_SEND"  # streaming our sections frame, waiting for MORE
    PUSH_RECV = "PUSH_RECV"  # taking the sections the client pushes (PUSH=)
    MAIL = "MAIL"  # after MAIL FROM
    RCPT = "RCPT"  # after at least one RCPT TO
    DATA = "DATA"  # taking message lines
    CLOSED = "CLOSED"


_AUTHENTICATED = frozenset(
    {ServerState.IDLE, ServerState.L2S_SEND, ServerState.L2S_RECV, ServerState.MAIL, ServerState.RCPT, ServerState.DATA}
)


class ServerInput(enum.Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    EHLO = "EHLO"
    HELO = "HELO"
    X_EXPS = "X_EXPS"
    L2S_CHUNK = "L2S_CHUNK"
    L2S_MORE = "L2S_MORE"
    L2S_WINDOW = "L2S_WINDOW"  # extension: WINDOW=<n>
    L2S_DELTA = "L2S_DELTA"  # extension: DELTA=<md5>
    L2S_LIST = "L2S_LIST"  # extension: LIST=<prefix>
    L2S_GET = "L2S_GET"  # extension: GET=<guids>
    L2S_PUSH = "L2S_PUSH"  # extension: PUSH=<md5>
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
    item: l2s.Chunk | l2s.More | l2s.Ext | None = None
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

_EXT_INPUTS = {
    l2s.ExtKeyword.WINDOW: ServerInput.L2S_WINDOW,
    l2s.ExtKeyword.DELTA: ServerInput.L2S_DELTA,
    l2s.ExtKeyword.LIST: ServerInput.L2S_LIST,
    l2s.ExtKeyword.GET: ServerInput.L2S_GET,
    l2s.ExtKeyword.PUSH: ServerInput.L2S_PUSH,
}


def _item_input(item: l2s.Chunk | l2s.More | l2s.Ext) -> ServerInput | None:
    """The input an X-LINK2STATE command item is (None: an extension item no client sends, TREE)."""
    if type(item) is l2s.Chunk:
        return ServerInput.L2S_CHUNK
    if type(item) is l2s.More:
        return ServerInput.L2S_MORE
    assert isinstance(item, l2s.Ext)
    return _EXT_INPUTS.get(item.keyword)


ServerAction = Callable[["SmtpServerSession", _In], Outcome]
_L2S_COMMAND_PREFIX = l2s.VERB + b" "  # what `parse_command` reads as the X-LINK2STATE verb and its space
_L2S_COMMAND_PREFIX_LEN = len(_L2S_COMMAND_PREFIX)
_MORE_REPLY = l2s.format_reply(l2s.More())  # the same line every time: formatted once


class SmtpServerSession(SmtpSession):
    """The answering bridgehead's side of one SMTP connection (module docstring: the dialogue and its decisions).

    Every line is classified into a `ServerInput` and handled by `SERVER_TABLE`; after `max_errors` (at least 1)
    error replies the session answers 421 and closes."""

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
        get_summary: SummarySource | None = None,
    ) -> None:
        super().__init__(local_guid, secret, fqdn, get_frame, nonce, chunk_raw_bytes, limits, get_summary)
        if max_errors < 1:
            raise ValueError("max_errors must be at least 1")
        self.max_errors = max_errors
        self.max_message_size = max_message_size
        self.state = ServerState.CONNECTED
        self.errors = 0
        self._peer_nonce = ""
        self._gets: set[str] = set()  # a delta round: the sections the client asked for (GUIDs of the snapshot)
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
                return self._classify_item(line, Command(Verb.X_LINK2STATE, args))
        return self._classify_command(line)

    def _classify_command(self, line: bytes) -> _In:
        try:
            command = parse_command(line)
        except SmtpError as exc:
            return _In(ServerInput.BAD_COMMAND, line, reply=exc.reply)
        if command.verb is not Verb.X_LINK2STATE:
            return _In(_COMMAND_INPUTS[command.verb], line, command)
        return self._classify_item(line, command)

    def _classify_item(self, line: bytes, command: Command) -> _In:
        try:
            item = l2s.parse_command_args(command.args, self.extensions)
        except l2s.Link2StateError as exc:
            return _In(ServerInput.BAD_COMMAND, line, command, reply=exc.reply)
        kind = _item_input(item)
        if kind is None:
            reply = l2s.Link2StateError.payload(f"{item.keyword.value} is a reply, not a command").reply  # type: ignore[union-attr]
            return _In(ServerInput.BAD_COMMAND, line, command, reply=reply)
        return _In(kind, line, command, item)

    def _dispatch(self, inp: _In) -> None:
        action, outcomes = SERVER_TABLE[(self.state, inp.kind)]
        outcome = action(self, inp)
        if outcome is Outcome.ERROR and self.errors >= self.max_errors:
            outcome = self._too_many_errors()
        self.state = outcomes[outcome]
        self.closed = self.state is ServerState.CLOSED

    def _error(self, reply: bytes) -> Outcome:
        """An error reply, counted against `max_errors` (the dispatcher closes once they are spent)."""
        self.errors += 1
        self._send(reply)
        return Outcome.ERROR

    def _too_many_errors(self) -> Outcome:
        self._send(format_reply(421, f"4.7.0 {self.fqdn} too many errors, closing"))
        self._emit(SessionFailed(f"too many errors ({self.errors})"))
        return Outcome.TOO_MANY_ERRORS

    def _reply(self, code: int, *lines: str | bytes) -> None:
        self._send(format_reply(code, *lines))

    # -------------------------------------------------------------------------------------------- actions

    def _ehlo(self, inp: _In) -> Outcome:
        raw = inp.command.args[:255] if inp.command else b""
        peer = bytes(c if 0x21 <= c < 0x7F else 0x3F for c in raw).decode("ascii")  # echo stays short, ASCII
        self._abort_dialogue("EHLO during the X-LINK2STATE dialogue")
        self._reset_mail()
        offered = (f"{l2s.EHLO_PIPELINING} {l2s.MAX_WINDOW}", l2s.EHLO_DELTA) if self.extensions else ()
        self._reply(
            250,
            f"{self.fqdn} Hello {peer}",
            f"SIZE {self.max_message_size}",
            "PIPELINING",
            "8BITMIME",
            f"X-EXPS {auth.SCHEME}",
            "X-LINK2STATE",
            *offered,
            "OK",
        )
        return Outcome.OK

    def _helo(self, inp: _In) -> Outcome:
        self._reset_mail()
        self._reply(250, f"{self.fqdn} Hello")
        return Outcome.OK

    def _need_ehlo(self, inp: _In) -> Outcome:
        return self._error(format_reply(503, "5.5.1 Send EHLO first"))

    def _auth_required(self, inp: _In) -> Outcome:
        return self._error(format_reply(530, "5.7.0 Authentication required"))

    def _already_authed(self, inp: _In) -> Outcome:
        return self._error(format_reply(503, "5.5.1 Already authenticated"))

    def _auth_start(self, inp: _In) -> Outcome:
        assert inp.command is not None
        words = inp.command.args.decode("ascii", "replace").split(" ")
        if words[0].upper() != auth.SCHEME:
            return self._error(format_reply(504, f"5.5.4 Unrecognized authentication type; use {auth.SCHEME}"))
        if len(words) != 3 or not GUID_PATTERN.fullmatch(words[1]) or not auth.valid_nonce(words[2]):
            return self._error(format_reply(501, f"5.5.4 Syntax: X-EXPS {auth.SCHEME} <guid> <nonce>"))
        self.peer_guid, self._peer_nonce = words[1], words[2]
        mine = auth.proof(self.secret, auth.RESPONDER, self._peer_nonce, self.nonce, self.peer_guid, self.local_guid)
        self._reply(334, f"{self.local_guid} {self.nonce} {mine}")
        return Outcome.OK

    def _auth_proof(self, inp: _In) -> Outcome:
        assert self.peer_guid is not None
        claimed = inp.line.decode("ascii", "replace")
        if claimed.strip() == "*":
            return self._auth_fail("authentication cancelled by the client", 501, "5.7.0 Authentication cancelled")
        ok = PROOF_PATTERN.fullmatch(claimed) is not None and auth.check(
            self.secret, auth.INITIATOR, claimed, self._peer_nonce, self.nonce, self.peer_guid, self.local_guid
        )
        if not ok:
            return self._auth_fail("client proof does not match the organization secret")
        self._reply(235, "2.7.0 Authentication successful")
        self._emit(AuthSucceeded(self.peer_guid, 995))
        return Outcome.OK

    def _auth_fail(self, reason: str, code: int = 535, text: str = "5.7.8 Authentication failed") -> Outcome:
        self._reply(code, text)
        self._emit(AuthFailed(self.peer_guid or "", reason, 961))
        self._emit(SessionFailed(reason))
        return Outcome.REFUSED

    def _auth_broken(self, inp: _In) -> Outcome:
        if inp.kind is ServerInput.EOF:
            return self._eof(inp)
        return self._auth_fail("malformed authentication response", 501, "5.5.2 Malformed proof line")

    def _l2s_open(self, inp: _In) -> Outcome:
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
            return Outcome.DONE
        return self._sent_packet() if self._stream(own) else Outcome.SENDING

    def _format_chunk(self, chunk: l2s.Chunk) -> bytes:
        return l2s.format_reply(chunk)

    def _sent_packet(self) -> Outcome:
        """Our packet is sent and taken: the client's chunks come next (RECEIVING)."""
        self._chunks = None
        self._reassembler.reset()
        return Outcome.RECEIVING

    def _l2s_more(self, inp: _In) -> Outcome:
        """The client took one more of our chunks: the next goes out (the window allowing); after the last is taken
        we take the client's (full dialogue) or the round is over (delta)."""
        taken = self._ack()
        assert taken  # in L2S_SEND / DELTA_SEND a chunk is always waiting for its MORE
        if not self._streamed():
            return Outcome.SENDING
        return self._sent_packet() if self.state is ServerState.L2S_SEND else self._sent_sections()

    # --- the extensions (docs/PROTOCOL.md §3.11) -------------------------------------------------------------

    def _window(self, inp: _In) -> Outcome:
        assert isinstance(inp.item, l2s.Ext)
        value = inp.item.value
        if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
            return self._error(l2s.Link2StateError.payload("WINDOW takes a number of chunks, 1 or more").reply)
        self.window = min(int(value), l2s.MAX_WINDOW)
        self._send(l2s.format_reply(l2s.Ext(l2s.ExtKeyword.WINDOW, str(self.window))))
        return Outcome.OK

    def _delta_open(self, inp: _In) -> Outcome:
        """A delta round: equal digests end it at once; else our buckets (from a snapshot of our table) go out."""
        assert isinstance(inp.item, l2s.Ext) and self.get_summary is not None
        peer_digest = inp.item.value
        if not GUID_PATTERN.fullmatch(peer_digest):
            return self._error(l2s.Link2StateError.payload("DELTA takes a digest of 32 lowercase hex digits").reply)
        snapshot = self.get_summary()
        if peer_digest == snapshot.digest:
            self._send(l2s.format_reply(l2s.DoneResponse()))
            self._emit(Done(exchanged=False))
            return Outcome.DONE
        self._snapshot, self._gets = snapshot, set()
        self._reassembler.reset()
        lines = snapshot.tree_lines(sm.depth_for(len(snapshot)))
        self._send(l2s.format_replies([l2s.Ext(l2s.ExtKeyword.TREE, line[5:]) for line in lines]))
        return Outcome.OK

    def _delta_list(self, inp: _In) -> Outcome:
        assert isinstance(inp.item, l2s.Ext) and self._snapshot is not None
        try:
            prefix = sm.check_prefix(inp.item.value)
        except sm.SummaryError as exc:
            return self._l2s_fail(l2s.Link2StateError.payload(str(exc)))
        lines = sm.list_items(prefix, self._snapshot.bucket(prefix))
        self._send(l2s.format_replies([l2s.Ext(l2s.ExtKeyword.LIST, line[5:]) for line in lines]))
        return Outcome.OK

    def _delta_get(self, inp: _In) -> Outcome:
        assert isinstance(inp.item, l2s.Ext) and self._snapshot is not None
        try:
            guids = sm.parse_get(inp.item.value)
        except sm.SummaryError as exc:
            return self._l2s_fail(l2s.Link2StateError.payload(str(exc)))
        self._gets.update(g for g in guids if self._snapshot.has(g))
        self._send(_MORE_REPLY)
        return Outcome.OK

    def _delta_recv(self, inp: _In) -> Outcome:
        """The client's sections frame; once whole it is handed over and our own sections frame goes out."""
        assert isinstance(inp.item, l2s.Chunk) and self._snapshot is not None
        frame = self._feed(inp.item)
        if not isinstance(frame, bytes):
            return frame
        self._emit(OrgInfoReceived(frame, self.peer_guid or ""))
        return self._sent_sections() if self._stream(self._snapshot.frame_of(self._gets)) else Outcome.SENDING

    def _push_open(self, inp: _In) -> Outcome:
        """The client pushes the sections it changed since we last agreed: take them like any packet."""
        assert isinstance(inp.item, l2s.Ext)
        if not GUID_PATTERN.fullmatch(inp.item.value):
            return self._error(l2s.Link2StateError.payload("PUSH takes a digest of 32 lowercase hex digits").reply)
        self._reassembler.reset()
        self._send(_MORE_REPLY)
        return Outcome.OK

    def _sent_sections(self) -> Outcome:
        """The round is over: both sections frames went across."""
        self._drop_dialogue()
        self._emit(Done(exchanged=True))
        return Outcome.DONE

    _MORE = _MORE_REPLY

    def _refuse_chunk(self, exc: l2s.Link2StateError) -> Outcome:
        return self._l2s_fail(exc)

    def _l2s_recv(self, inp: _In) -> Outcome:
        assert isinstance(inp.item, l2s.Chunk)
        frame = self._feed(inp.item)
        if not isinstance(frame, bytes):
            return frame
        self._send(l2s.DONE_LINE)
        self._emit(OrgInfoReceived(frame, self.peer_guid or ""))
        self._emit(Done(exchanged=True))
        return Outcome.DONE

    def _l2s_fail(self, exc: l2s.Link2StateError) -> Outcome:
        outcome = self._error(exc.reply)
        self._drop_dialogue()
        self._emit(SessionFailed(f"X-LINK2STATE: {exc.reason}", fatal=False))
        return outcome

    def _l2s_interrupted(self, inp: _In) -> Outcome:
        return self._l2s_fail(l2s.Link2StateError.sequence("X-LINK2STATE dialogue interrupted"))

    def _abort_dialogue(self, reason: str, *, fatal: bool = False) -> None:
        if self.state in _DIALOGUE:
            self._drop_dialogue()
            self._emit(SessionFailed(f"X-LINK2STATE: {reason}", fatal=fatal))

    def _drop_dialogue(self) -> None:
        self._reassembler.reset()
        self._chunks = None
        self._snapshot, self._gets = None, set()

    def _bad_sequence(self, inp: _In) -> Outcome:
        what = {
            ServerInput.L2S_CHUNK: "X-LINK2STATE inside a mail transaction",
            ServerInput.L2S_MORE: "X-LINK2STATE MORE with no chunk being sent",
            ServerInput.L2S_WINDOW: "X-LINK2STATE inside a mail transaction",
            ServerInput.L2S_DELTA: "X-LINK2STATE inside a mail transaction",
            ServerInput.L2S_LIST: "X-LINK2STATE LIST outside a delta round",
            ServerInput.L2S_GET: "X-LINK2STATE GET outside a delta round",
            ServerInput.L2S_PUSH: "X-LINK2STATE inside a mail transaction",
            ServerInput.MAIL: "Nested MAIL command",
            ServerInput.RCPT: "Need MAIL before RCPT",
            ServerInput.DATA: "Need MAIL and RCPT before DATA",
        }.get(inp.kind, "Bad sequence of commands")
        return self._error(format_reply(503, f"5.5.1 {what}"))

    def _mail(self, inp: _In) -> Outcome:
        assert inp.command is not None
        for param in inp.command.params:
            key, _, value = param.partition("=")
            if key.upper() == "SIZE" and value.isdigit() and int(value) > self.max_message_size:
                self._reply(552, "5.3.4 Message size exceeds fixed maximum message size")
                return Outcome.REFUSED
        self._reset_mail()
        self._sender = inp.command.address
        self._reply(250, "2.1.0 Sender OK")
        return Outcome.OK

    def _rcpt(self, inp: _In) -> Outcome:
        assert inp.command is not None
        if len(self._recipients) >= MAX_RECIPIENTS:
            self._reply(452, "4.5.3 Too many recipients")
            return Outcome.REFUSED
        self._recipients.append(inp.command.address)
        self._reply(250, "2.1.5 Recipient OK")
        return Outcome.OK

    def _data_start(self, inp: _In) -> Outcome:
        self._data = DataReader(self.max_message_size)
        self._reply(354, "Start mail input; end with <CRLF>.<CRLF>")
        return Outcome.OK

    def _data_line(self, inp: _In) -> Outcome:
        assert self._data is not None
        self._data.feed_line(inp.line)
        return Outcome.OK

    def _data_too_long(self, inp: _In) -> Outcome:
        assert self._data is not None
        self._data.feed_too_long()  # the message is refused at its end
        return Outcome.OK

    def _data_end(self, inp: _In) -> Outcome:
        data = self._data
        assert data is not None
        outcome = Outcome.OK
        if data.line_too_long:
            outcome = self._error(format_reply(500, "5.5.2 Line too long in message; message refused"))
        elif data.oversize:
            self._reply(552, "5.3.4 Message size exceeds fixed maximum message size")
            outcome = Outcome.REFUSED
        else:
            self._emit(MailReceived(self._sender, tuple(self._recipients), data.body))
            self._reply(250, "2.0.0 OK queued")
        self._reset_mail()
        return outcome

    def _reset_mail(self) -> None:
        self._sender, self._recipients, self._data = "", [], None

    def _noop(self, inp: _In) -> Outcome:
        self._reply(250, "2.0.0 OK")
        return Outcome.OK

    def _rset(self, inp: _In) -> Outcome:
        self._abort_dialogue("RSET during the X-LINK2STATE dialogue")
        self._reset_mail()
        self._reply(250, "2.0.0 OK")
        return Outcome.OK

    def _quit(self, inp: _In) -> Outcome:
        self._abort_dialogue("QUIT during the X-LINK2STATE dialogue", fatal=True)
        self._reply(221, "2.0.0 closing")
        return Outcome.OK

    def _reject(self, inp: _In) -> Outcome:
        self._abort_dialogue("bad command during the X-LINK2STATE dialogue")
        return self._error(inp.reply or format_reply(500, "5.5.1 Command unrecognized"))

    def _fatal_line(self, inp: _In) -> Outcome:
        self._drop_dialogue()
        self._send(inp.reply)
        self._emit(SessionFailed("line too long: no LF within the bound"))
        return Outcome.OK

    def _eof(self, inp: _In) -> Outcome:
        if self.state in _DIALOGUE or self.state in (ServerState.AUTH_PROOF, ServerState.DATA):
            self._drop_dialogue()
            self._emit(SessionFailed(f"peer closed the connection in state {self.state.value}"))
        return Outcome.OK

    def _ignore(self, inp: _In) -> Outcome:
        return Outcome.OK


def _server_table() -> Table[ServerState, ServerInput, ServerAction]:
    """(state, input) -> (action, {outcome: next state}); built row by row below, every pair covered.

    An error reply (Outcome.ERROR) leaves the state as the row says; the one that spends the error budget
    (TOO_MANY_ERRORS) closes: `err(s)` is that pair of edges."""
    S, X, A, R = ServerState, ServerInput, SmtpServerSession, Outcome  # table shorthand (R: the result)
    t: Table[ServerState, ServerInput, ServerAction] = {}

    def ok(state: ServerState) -> dict[Outcome, ServerState]:
        return {R.OK: state}

    def err(state: ServerState) -> dict[Outcome, ServerState]:
        return {R.ERROR: state, R.TOO_MANY_ERRORS: S.CLOSED}

    closed = ok(S.CLOSED)
    dialogue = _DIALOGUE
    command_states = (S.CONNECTED, S.READY, S.IDLE, *dialogue, S.MAIL, S.RCPT)
    extensions = (X.L2S_WINDOW, X.L2S_DELTA, X.L2S_LIST, X.L2S_GET, X.L2S_PUSH)

    # commands that behave the same wherever commands are read
    for s in command_states:
        after_reset = {S.CONNECTED: S.CONNECTED, S.READY: S.READY}.get(s, S.IDLE)
        after_error = S.IDLE if s in dialogue else s  # an error inside the dialogue drops it
        t[(s, X.NOOP)] = (A._noop, ok(s))
        t[(s, X.RSET)] = (A._rset, ok(after_reset))
        t[(s, X.QUIT)] = (A._quit, closed)
        t[(s, X.BAD_COMMAND)] = (A._reject, err(after_error))
        t[(s, X.LINE_TOO_LONG)] = (A._reject, err(after_error))
        t[(s, X.LINE_FATAL)] = (A._fatal_line, closed)
        t[(s, X.EOF)] = (A._eof, closed)
        t[(s, X.LINE)] = (A._reject, err(s))  # never produced outside AUTH_PROOF / DATA
        t[(s, X.DATA_END)] = (A._reject, err(s))  # idem

    # before authentication
    for s in (S.CONNECTED, S.READY):
        t[(s, X.EHLO)] = (A._ehlo, ok(S.READY))
        t[(s, X.HELO)] = (A._helo, ok(S.READY))
        for i in (X.L2S_CHUNK, X.L2S_MORE, X.MAIL, X.RCPT, X.DATA, *extensions):
            t[(s, i)] = (A._auth_required, err(s))
    t[(S.CONNECTED, X.X_EXPS)] = (A._need_ehlo, err(S.CONNECTED))
    t[(S.READY, X.X_EXPS)] = (A._auth_start, ok(S.AUTH_PROOF) | err(S.READY))

    # the proof line: anything but a proof ends the connection (the nonce is single-use)
    for i in X:
        t[(S.AUTH_PROOF, i)] = (A._auth_broken, {R.OK: S.CLOSED, R.REFUSED: S.CLOSED})
    t[(S.AUTH_PROOF, X.LINE)] = (A._auth_proof, {R.OK: S.IDLE, R.REFUSED: S.CLOSED})
    t[(S.AUTH_PROOF, X.LINE_FATAL)] = (A._fatal_line, closed)

    # authenticated, and the mail transaction
    for s in (S.IDLE, S.MAIL, S.RCPT):
        t[(s, X.EHLO)] = (A._ehlo, ok(S.IDLE))
        t[(s, X.HELO)] = (A._helo, ok(S.IDLE))
        t[(s, X.X_EXPS)] = (A._already_authed, err(s))
        t[(s, X.L2S_CHUNK)] = (A._bad_sequence, err(s))
        t[(s, X.L2S_MORE)] = (A._bad_sequence, err(s))
        for i in extensions:
            t[(s, i)] = (A._bad_sequence, err(s))
        t[(s, X.MAIL)] = (A._bad_sequence, err(s))
        t[(s, X.RCPT)] = (A._rcpt, {R.OK: S.RCPT, R.REFUSED: s})  # 452: too many recipients, no change
        t[(s, X.DATA)] = (A._bad_sequence, err(s))
    # X-LINK2STATE opens with a digest-only LAST chunk: equal digests end it at once, else our chunks follow
    opened = {R.DONE: S.IDLE, R.SENDING: S.L2S_SEND, R.RECEIVING: S.L2S_RECV}
    t[(S.IDLE, X.L2S_CHUNK)] = (A._l2s_open, opened | err(S.IDLE))
    t[(S.IDLE, X.L2S_WINDOW)] = (A._window, ok(S.IDLE) | err(S.IDLE))
    t[(S.IDLE, X.L2S_DELTA)] = (A._delta_open, {R.DONE: S.IDLE, R.OK: S.DELTA} | err(S.IDLE))
    t[(S.IDLE, X.L2S_PUSH)] = (A._push_open, ok(S.PUSH_RECV) | err(S.IDLE))
    t[(S.IDLE, X.MAIL)] = (A._mail, {R.OK: S.MAIL, R.REFUSED: S.IDLE})  # 552: the declared size is too big
    t[(S.IDLE, X.RCPT)] = (A._bad_sequence, err(S.IDLE))
    t[(S.RCPT, X.DATA)] = (A._data_start, ok(S.DATA))

    # the X-LINK2STATE dialogue: only MORE (while we send) or a chunk (while we take) moves it on
    for s in dialogue:
        for i in (X.EHLO, X.HELO, X.X_EXPS, X.L2S_CHUNK, X.L2S_MORE, X.MAIL, X.RCPT, X.DATA, *extensions):
            t[(s, i)] = (A._l2s_interrupted, err(S.IDLE))
    t[(S.L2S_SEND, X.L2S_MORE)] = (A._l2s_more, {R.SENDING: S.L2S_SEND, R.RECEIVING: S.L2S_RECV})
    t[(S.L2S_RECV, X.L2S_CHUNK)] = (A._l2s_recv, {R.RECEIVING: S.L2S_RECV, R.DONE: S.IDLE} | err(S.IDLE))
    # a delta round: LIST and GET from the snapshot, then the client's sections, then ours
    sections = {R.RECEIVING: S.DELTA_RECV, R.SENDING: S.DELTA_SEND, R.DONE: S.IDLE} | err(S.IDLE)
    t[(S.DELTA, X.L2S_LIST)] = (A._delta_list, ok(S.DELTA) | err(S.IDLE))
    t[(S.DELTA, X.L2S_GET)] = (A._delta_get, ok(S.DELTA) | err(S.IDLE))
    t[(S.DELTA, X.L2S_CHUNK)] = (A._delta_recv, sections)
    t[(S.DELTA_RECV, X.L2S_CHUNK)] = (A._delta_recv, sections)
    t[(S.DELTA_SEND, X.L2S_MORE)] = (A._l2s_more, {R.SENDING: S.DELTA_SEND, R.DONE: S.IDLE})
    # the pushed frame is taken like the client's packet: MORE, then 200 Done (written after the caller merged it,
    # so the client's check that follows compares merged tables)
    t[(S.PUSH_RECV, X.L2S_CHUNK)] = (A._l2s_recv, {R.RECEIVING: S.PUSH_RECV, R.DONE: S.IDLE} | err(S.IDLE))

    # message text
    for i in X:
        t[(S.DATA, i)] = (A._data_line, ok(S.DATA))  # only LINE / DATA_END / LINE_* / EOF are produced here
    t[(S.DATA, X.DATA_END)] = (A._data_end, {R.OK: S.IDLE, R.REFUSED: S.IDLE} | err(S.IDLE))
    t[(S.DATA, X.LINE_TOO_LONG)] = (A._data_too_long, ok(S.DATA))
    t[(S.DATA, X.LINE_FATAL)] = (A._fatal_line, closed)
    t[(S.DATA, X.EOF)] = (A._eof, closed)

    for i in X:
        t[(S.CLOSED, i)] = (A._ignore, closed)
    return t


_DIALOGUE = (
    ServerState.L2S_SEND, ServerState.L2S_RECV, ServerState.DELTA, ServerState.DELTA_RECV, ServerState.DELTA_SEND,
    ServerState.PUSH_RECV,
)  # fmt: skip
SERVER_TABLE = _server_table()
INITIAL = (ServerState.CONNECTED,)
