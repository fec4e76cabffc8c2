"""The answering bridgehead's SMTP session: greeting, EHLO, X-EXPS, the X-LINK2STATE dialogue and simulated mail.

Owns: `ServerState`, `ServerInput` (each received line classified: a command, a proof line, message text, a line
too long, the end of the stream), `SmtpServerSession` and `SERVER_TABLE`, (state, input) -> (action, {outcome:
next state}) for every pair. The dialogue and its decisions are in linkstate.core.link2state_session's docstring.
Invariants: the state changes only through the table; an error reply is `Outcome.ERROR` and the one that spends
the error budget is `Outcome.TOO_MANY_ERRORS` (421, close); no exception escapes `receive_data`; no I/O, no clock,
no randomness (the nonce is passed in).
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
)
from linkstate.core.machine import Outcome, Table
from proto import link2state as l2s
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
    ) -> None:
        super().__init__(local_guid, secret, fqdn, get_frame, nonce, chunk_raw_bytes, limits)
        if max_errors < 1:
            raise ValueError("max_errors must be at least 1")
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
        self._chunks, self._next_chunk = l2s.Chunker(own, self.chunk_raw_bytes), 0
        return self._send_chunk()

    def _send_chunk(self) -> Outcome:
        """Our next chunk; after the LAST one we take the client's chunks (RECEIVING), else wait for MORE."""
        assert self._chunks is not None
        chunk = self._chunks[self._next_chunk]
        self._next_chunk += 1
        self.chunks_out += 1
        self._send(l2s.format_reply(chunk))
        if chunk.kind is l2s.ChunkKind.LAST:
            self._chunks = None
            self._reassembler.reset()
            return Outcome.RECEIVING
        return Outcome.SENDING

    def _l2s_more(self, inp: _In) -> Outcome:
        return self._send_chunk()

    def _l2s_recv(self, inp: _In) -> Outcome:
        assert isinstance(inp.item, l2s.Chunk)
        try:
            frame = self._reassembler.feed(inp.item)
        except l2s.Link2StateError as exc:
            return self._l2s_fail(exc)
        self.chunks_in += 1
        if frame is None:
            self._send(_MORE_REPLY)
            return Outcome.RECEIVING
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
        if self.state in (ServerState.L2S_SEND, ServerState.L2S_RECV):
            self._drop_dialogue()
            self._emit(SessionFailed(f"X-LINK2STATE: {reason}", fatal=fatal))

    def _drop_dialogue(self) -> None:
        self._reassembler.reset()
        self._chunks = None

    def _bad_sequence(self, inp: _In) -> Outcome:
        what = {
            ServerInput.L2S_CHUNK: "X-LINK2STATE inside a mail transaction",
            ServerInput.L2S_MORE: "X-LINK2STATE MORE with no chunk being sent",
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
        if self.state in (ServerState.AUTH_PROOF, ServerState.L2S_SEND, ServerState.L2S_RECV, ServerState.DATA):
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
    command_states = (S.CONNECTED, S.READY, S.IDLE, S.L2S_SEND, S.L2S_RECV, S.MAIL, S.RCPT)
    dialogue = (S.L2S_SEND, S.L2S_RECV)

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
        for i in (X.L2S_CHUNK, X.L2S_MORE, X.MAIL, X.RCPT, X.DATA):
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
        t[(s, X.MAIL)] = (A._bad_sequence, err(s))
        t[(s, X.RCPT)] = (A._rcpt, {R.OK: S.RCPT, R.REFUSED: s})  # 452: too many recipients, no change
        t[(s, X.DATA)] = (A._bad_sequence, err(s))
    # X-LINK2STATE opens with a digest-only LAST chunk: equal digests end it at once, else our chunks follow
    opened = {R.DONE: S.IDLE, R.SENDING: S.L2S_SEND, R.RECEIVING: S.L2S_RECV}
    t[(S.IDLE, X.L2S_CHUNK)] = (A._l2s_open, opened | err(S.IDLE))
    t[(S.IDLE, X.MAIL)] = (A._mail, {R.OK: S.MAIL, R.REFUSED: S.IDLE})  # 552: the declared size is too big
    t[(S.IDLE, X.RCPT)] = (A._bad_sequence, err(S.IDLE))
    t[(S.RCPT, X.DATA)] = (A._data_start, ok(S.DATA))

    # the X-LINK2STATE dialogue: only MORE (while we send) or a chunk (while we take) moves it on
    for s in dialogue:
        for i in (X.EHLO, X.HELO, X.X_EXPS, X.L2S_CHUNK, X.L2S_MORE, X.MAIL, X.RCPT, X.DATA):
            t[(s, i)] = (A._l2s_interrupted, err(S.IDLE))
    t[(S.L2S_SEND, X.L2S_MORE)] = (A._l2s_more, {R.SENDING: S.L2S_SEND, R.RECEIVING: S.L2S_RECV})
    t[(S.L2S_RECV, X.L2S_CHUNK)] = (A._l2s_recv, {R.RECEIVING: S.L2S_RECV, R.DONE: S.IDLE} | err(S.IDLE))

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


SERVER_TABLE = _server_table()
INITIAL = (ServerState.CONNECTED,)
