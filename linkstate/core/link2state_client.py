"""The initiating bridgehead's SMTP session: greeting, EHLO, X-EXPS, the digest, both packets, QUIT.

Owns: `ClientState`, `ClientInput` (each complete reply classified: its code, an X-LINK2STATE item, an error, a
malformed line, the end of the stream), `SmtpClientSession` and `CLIENT_TABLE`, (state, input) -> (action,
{outcome: next state}) for every pair. The client is strict: any unexpected reply ends its session (QUIT, close).
Invariants: the state changes only through the table; no exception escapes `receive_data`; no I/O, no clock, no
randomness (the nonce is passed in).
May import: the standard library, proto.* and linkstate.core (auth, machine, link2state_session).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from linkstate.core import auth
from linkstate.core.link2state_session import (
    GUID_PATTERN,
    AuthFailed,
    AuthSucceeded,
    Done,
    FrameSource,
    OrgInfoReceived,
    SessionFailed,
    SmtpSession,
)
from linkstate.core.machine import Outcome, Table
from proto import link2state as l2s
from proto.codec import DEFAULT_LIMITS, Limits
from proto.smtp import (
    LineTooLong,
    Reply,
    ReplyError,
    ReplyParser,
    Verb,
    format_command,
)

_MORE_COMMAND = l2s.format_command(l2s.More())

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

ClientAction = Callable[["SmtpClientSession", _Reply], Outcome]
_L2S_REPLY_PREFIX = l2s.VERB + b" "
_L2S_PREFIX_LEN = len(_L2S_REPLY_PREFIX)


class SmtpClientSession(SmtpSession):
    """The initiating bridgehead's side of one SMTP connection: greeting, EHLO, X-EXPS, the digest, both packets,
    QUIT. Every complete reply is classified into a `ClientInput` and handled by `CLIENT_TABLE`; `expected_peer`,
    when given, is the only server GUID it accepts."""

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
        action, outcomes = CLIENT_TABLE[(self.state, inp.kind)]
        self.state = outcomes[action(self, inp)]
        self.closed = self.state is ClientState.CLOSED

    # -------------------------------------------------------------------------------------------- actions

    def _ehlo(self, inp: _Reply) -> Outcome:
        self._send(format_command(Verb.EHLO, self.fqdn))
        return Outcome.OK

    def _start_auth(self, inp: _Reply) -> Outcome:
        assert inp.reply is not None
        features = {words[0]: words[1:] for words in (ln.upper().split() for ln in inp.reply.lines[1:]) if words}
        if l2s.VERB not in features:
            return self._fail("the server does not advertise X-LINK2STATE")
        if auth.SCHEME.encode() not in features.get(b"X-EXPS", []):
            return self._fail(f"the server does not offer X-EXPS {auth.SCHEME}")
        self._send(format_command(Verb.X_EXPS, f"{auth.SCHEME} {self.local_guid} {self.nonce}"))
        return Outcome.OK

    def _answer_challenge(self, inp: _Reply) -> Outcome:
        assert inp.reply is not None
        words = inp.reply.lines[0].decode("ascii", "replace").split(" ")
        if len(words) != 3 or not GUID_PATTERN.fullmatch(words[0]) or not auth.valid_nonce(words[1]):
            return self._auth_fail("", "malformed 334 challenge")
        peer, peer_nonce, claimed = words
        if self.expected_peer is not None and peer != self.expected_peer:
            return self._auth_fail(peer, f"server is {peer}, expected {self.expected_peer}")
        if not auth.check(self.secret, auth.RESPONDER, claimed, self.nonce, peer_nonce, self.local_guid, peer):
            return self._auth_fail(peer, "server proof does not match the organization secret")
        self.peer_guid = peer
        self._send(auth.proof(self.secret, auth.INITIATOR, self.nonce, peer_nonce, self.local_guid, peer).encode())
        self._send(b"\r\n")
        return Outcome.OK

    def _auth_refused(self, inp: _Reply) -> Outcome:
        text = inp.reply.text if inp.reply else ""
        return self._auth_fail(self.peer_guid or "", f"server refused authentication: {text}", cancel=False)

    def _auth_fail(self, peer: str, reason: str, *, cancel: bool = True) -> Outcome:
        """Our side refuses the server: cancel the exchange with `*` (RFC 4954 style), then close."""
        self._emit(AuthFailed(peer, reason, 962))
        if cancel:
            self._send(b"*\r\n")
        return self._fail(reason, send_quit=not cancel)

    def _open_link2state(self, inp: _Reply) -> Outcome:
        assert self.peer_guid is not None
        self._emit(AuthSucceeded(self.peer_guid, 996))
        digest, self._frame = self.get_frame()
        self.chunks_out += 1
        self._send(l2s.opening_command(digest))
        return Outcome.OK

    def _digests_equal(self, inp: _Reply) -> Outcome:
        self._emit(Done(exchanged=False))
        return self._quit()

    def _receive_chunk(self, inp: _Reply) -> Outcome:
        assert isinstance(inp.item, l2s.Chunk)
        try:
            frame = self._reassembler.feed(inp.item)
        except l2s.Link2StateError as exc:
            return self._fail(f"X-LINK2STATE from the server: {exc.reason}")
        self.chunks_in += 1
        if frame is None:
            self._send(_MORE_COMMAND)
            return Outcome.RECEIVING
        self._emit(OrgInfoReceived(frame, self.peer_guid or ""))
        self._chunks, self._next_chunk = l2s.Chunker(self._frame, self.chunk_raw_bytes), 0
        return self._send_chunk()

    def _send_chunk(self) -> Outcome:
        assert self._chunks is not None
        if self._next_chunk >= len(self._chunks):
            return self._fail("server asked for MORE after our LAST CHUNK")
        chunk = self._chunks[self._next_chunk]
        self._next_chunk += 1
        self.chunks_out += 1
        self._send(l2s.format_command(chunk))
        return Outcome.SENDING

    def _more(self, inp: _Reply) -> Outcome:
        return self._send_chunk()

    def _server_done(self, inp: _Reply) -> Outcome:
        assert self._chunks is not None
        if self._next_chunk < len(self._chunks):
            return self._fail("server said 200 Done before our LAST CHUNK")
        self._emit(Done(exchanged=True))
        return self._quit()

    def _quit(self) -> Outcome:
        self._send(format_command(Verb.QUIT))
        return Outcome.DONE

    def _fail(self, reason: str, *, send_quit: bool = True) -> Outcome:
        self._reassembler.reset()
        self._emit(SessionFailed(reason))
        if send_quit and self.state is not ClientState.QUITTING:
            self._send(format_command(Verb.QUIT))
        return Outcome.FAILED

    def _unexpected(self, inp: _Reply) -> Outcome:
        if inp.kind is ClientInput.EOF:
            return self._fail(f"server closed the connection in state {self.state.value}")
        shown = inp.why or (inp.reply.text[:80] if inp.reply else inp.kind.value)
        return self._fail(f"unexpected reply in state {self.state.value}: {shown}")

    def _finished(self, inp: _Reply) -> Outcome:
        return Outcome.OK


def _client_table() -> Table[ClientState, ClientInput, ClientAction]:
    """(state, input) -> (action, {outcome: next state}); everything not listed is an unexpected reply (fail, QUIT).

    A failed step (Outcome.FAILED) always closes; DONE means the dialogue ended well and QUIT was sent."""
    S, X, A, R = ClientState, ClientInput, SmtpClientSession, Outcome  # table shorthand (R: the result)
    fails = {R.FAILED: S.CLOSED}
    t: Table[ClientState, ClientInput, ClientAction] = {(s, i): (A._unexpected, fails) for s in S for i in X}
    t[(S.GREETING, X.R220)] = (A._ehlo, {R.OK: S.EHLO})
    t[(S.EHLO, X.R250)] = (A._start_auth, {R.OK: S.AUTH_CHALLENGE} | fails)
    t[(S.AUTH_CHALLENGE, X.R334)] = (A._answer_challenge, {R.OK: S.AUTH_RESULT} | fails)
    t[(S.AUTH_CHALLENGE, X.ERROR)] = (A._auth_refused, fails)
    t[(S.AUTH_RESULT, X.R235)] = (A._open_link2state, {R.OK: S.DIGEST})
    t[(S.AUTH_RESULT, X.ERROR)] = (A._auth_refused, fails)
    t[(S.DIGEST, X.L2S_DONE)] = (A._digests_equal, {R.DONE: S.QUITTING})
    # the server's packet: more chunks to take, or its LAST one taken and our first chunk sent
    taking = {R.RECEIVING: S.RECEIVING, R.SENDING: S.SENDING} | fails
    t[(S.DIGEST, X.L2S_CHUNK)] = (A._receive_chunk, taking)
    t[(S.RECEIVING, X.L2S_CHUNK)] = (A._receive_chunk, taking)
    t[(S.SENDING, X.L2S_MORE)] = (A._more, {R.SENDING: S.SENDING} | fails)
    t[(S.SENDING, X.R200)] = (A._server_done, {R.DONE: S.QUITTING} | fails)
    for i in X:  # after QUIT, whatever comes (221, an error, the close) ends the session quietly
        t[(S.QUITTING, i)] = (A._finished, {R.OK: S.CLOSED})
        t[(S.CLOSED, i)] = (A._finished, {R.OK: S.CLOSED})
    return t


CLIENT_TABLE = _client_table()
INITIAL = (ClientState.GREETING,)
