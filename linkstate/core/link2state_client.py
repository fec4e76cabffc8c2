"""The initiating bridgehead's SMTP session: greeting, EHLO, X-EXPS, the digest, both packets, QUIT.

Owns: `ClientState`, `ClientInput` (each complete reply classified: its code, an X-LINK2STATE item, an error, a
malformed line, the end of the stream; `RESUME`, the caller's word that what the session handed over is merged),
`SmtpClientSession` and `CLIENT_TABLE`, (state, input) -> (action, {outcome: next state}) for every pair. The client
is strict: any unexpected reply ends its session (QUIT, close).
With a summary source (`get_summary`) it uses what the server advertises of the negotiated extensions
(docs/PROTOCOL.md §3.11): `WINDOW=` pipelined before its opening (its chunks then go `window` at a time), and delta
rounds instead of the full exchange: `DELTA=<digest>`, the server's buckets compared with its own snapshot's, `LIST=`
for each bucket that differs (pipelined), then `GET=` for what it lacks and its own sections frame, the server's
sections frame back; once those are merged (`resume()`, called by its owner after it handled the events) it checks
with a new round (`DELTA=` again: equal digests end the session). A round whose summaries cannot explain the
difference (no bucket differs, or no section to move) ends with empty frames both ways and falls back to the seed's
full exchange; a round that would
only move again what the last one moved (the peer keeps its own copy of a section, e.g. of its own group) ends the
session: the rest is the peer's merge rules, not something a transfer can fix; so does a fourth round (the tables
are changing under the session: the next change or probe runs the link again). With `keep` the session stays open
after a dialogue that ended well (KEPT: `again()` starts the next, `noop()` keeps it alive; its owner closes it), and
with `push` (on a kept session too) it first sends the sections changed since the link last agreed (`PUSH=`), then
checks.
Invariants: the state changes only through the table; no exception escapes `receive_data`; no I/O, no clock, no
randomness (the nonce is passed in); without the extensions every byte is the seed's dialogue.
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
    Event,
    FrameSource,
    OrgInfoReceived,
    SessionFailed,
    SmtpSession,
    SummarySource,
)
from linkstate.core.machine import Outcome, Table
from proto import link2state as l2s
from proto import summary as sm
from proto.codec import DEFAULT_LIMITS, Limits
from proto.encode import frame_from_sections
from proto.smtp import (
    LineTooLong,
    Reply,
    ReplyError,
    ReplyParser,
    Verb,
    format_command,
)

_MORE_COMMAND = l2s.format_command(l2s.More())
MAX_ROUNDS = 3  # delta rounds that moved sections, in one session

class ClientState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    GREETING = "GREETING"  # waiting for 220
    EHLO = "EHLO"  # EHLO sent
    AUTH_CHALLENGE = "AUTH_CHALLENGE"  # X-EXPS sent, waiting for 334
    AUTH_RESULT = "AUTH_RESULT"  # proof sent, waiting for 235
    WINDOW = "WINDOW"  # WINDOW= sent (and the opening after it), waiting for its reply
    TREE = "TREE"  # DELTA= sent, waiting for DONE_RESPONSE or the server's buckets
    LISTING = "LISTING"  # LIST= sent for every bucket that differs, taking the replies
    GIVING = "GIVING"  # GET= and our sections frame sent, waiting for MOREs and the server's first chunk
    TAKING = "TAKING"  # taking the server's sections frame (MORE sent)
    CHECK = "CHECK"  # the server's sections handed over: waiting for them to be merged (RESUME)
    PUSHING = "PUSHING"  # PUSH= and our changed sections sent, waiting for the MOREs and 200 Done
    KEPT = "KEPT"  # a dialogue ended well; the session stays open for the next (again()), NOOP keeps it alive
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
    L2S_WINDOW = "L2S_WINDOW"  # 250 X-LINK2STATE WINDOW=<n>
    L2S_TREE = "L2S_TREE"  # 250 X-LINK2STATE TREE=... (one or more lines)
    L2S_LIST = "L2S_LIST"  # 250 X-LINK2STATE LIST=... (one or more lines)
    RESUME = "RESUME"  # not a reply: the owner handled the events (resume())
    AGAIN = "AGAIN"  # not a reply: the owner starts the next dialogue on a kept session (again())
    KEEPALIVE = "KEEPALIVE"  # not a reply: the owner wants a NOOP sent on a kept session (noop())
    NOOP_OK = "NOOP_OK"  # the 250 answering one of our NOOPs
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
    values: tuple[str, ...] = ()  # the values of an extension reply's items, one per line


_REPLY_INPUTS = {
    220: ClientInput.R220,
    250: ClientInput.R250,
    334: ClientInput.R334,
    235: ClientInput.R235,
    200: ClientInput.R200,
    221: ClientInput.R221,
}
_L2S_INPUTS = {l2s.DoneResponse: ClientInput.L2S_DONE, l2s.Chunk: ClientInput.L2S_CHUNK, l2s.More: ClientInput.L2S_MORE}
_EXT_INPUTS = {
    l2s.ExtKeyword.WINDOW: ClientInput.L2S_WINDOW,
    l2s.ExtKeyword.TREE: ClientInput.L2S_TREE,
    l2s.ExtKeyword.LIST: ClientInput.L2S_LIST,
}
_MULTI_LINE = (ClientInput.L2S_TREE, ClientInput.L2S_LIST)  # the extension replies that may span lines

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
        get_summary: SummarySource | None = None,
        keep: bool = False,
        push: bytes | None = None,
    ) -> None:
        """`get_summary`: use the extensions the server offers; `keep`: then stay open after a dialogue for the next
        (`again`); `push`: a frame of the sections changed since this link last agreed, sent first (PUSH=)."""
        super().__init__(local_guid, secret, fqdn, get_frame, nonce, chunk_raw_bytes, limits, get_summary)
        self.expected_peer = expected_peer
        self.keep = keep
        self._push = push
        self.state = ClientState.GREETING
        self._replies = ReplyParser()
        self._frame = b""
        self._offered_window = 0  # X-LINK2STATE-PIPELINING <n> in the server's EHLO (0: not offered)
        self._offered_delta = False  # X-LINK2STATE-DELTA in the server's EHLO
        self._opening = Outcome.FULL  # how the dialogue opened (FULL, DELTA, PUSH): WINDOW='s reply leads there
        self._noops = 0  # NOOPs sent whose 250 has not come back
        self.rounds = 0  # delta rounds that transferred sections
        self._depth = 1
        self._lists: dict[str, list[sm.Entry]] = {}  # the server's entries of each bucket asked for
        self._awaiting = 0  # LIST replies still to come / GET replies still to come
        self._sent: set[sm.Entry] = set()  # what the last round transferred, both ways
        self._falling_back = False  # this round ends empty, then the seed's full exchange
        self.delta_bytes = 0  # section bytes the delta rounds carried, both ways (frames)

    def resume(self) -> list[Event]:
        """The owner handled the events of the last `receive_data` (merged what was handed over): a pending check
        goes out now, read from the table as it is after the merge. Returns the events that caused."""
        if self.state is ClientState.CHECK:  # RESUME changes nothing in any other state (the table's _stay rows)
            self._dispatch(_Reply(ClientInput.RESUME))
            return self._take_events()
        return []

    @property
    def kept(self) -> bool:
        """Idle between dialogues, authenticated, ready for `again()`."""
        return self.state is ClientState.KEPT

    def again(self, push: bytes | None = None) -> list[Event]:
        """The next dialogue on a kept session: a delta round, or `push` first (the sections changed since the
        link last agreed). Returns the events that caused."""
        self._push = push
        return self._owner(ClientInput.AGAIN)

    def noop(self) -> list[Event]:
        """Keep a kept session alive (the peer closes a connection idle for its command timeout)."""
        return self._owner(ClientInput.KEEPALIVE)

    def _owner(self, kind: ClientInput) -> list[Event]:
        if not self.closed:
            self._dispatch(_Reply(kind))
        return self._take_events()

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
        if self._noops and reply.code == 250 and len(reply.lines) == 1 and not first.startswith(_L2S_REPLY_PREFIX):
            return _Reply(ClientInput.NOOP_OK, reply)
        if reply.code == 250 and len(reply.lines) == 1 and first.startswith(_L2S_REPLY_PREFIX):
            try:  # the canonical spelling: `parse_reply_text` would strip the same prefix
                item = l2s.parse_reply_item(first[_L2S_PREFIX_LEN:], self.extensions)
            except l2s.Link2StateError as exc:
                return _Reply(ClientInput.MALFORMED, reply, why=exc.reason)
            return self._item_reply(reply, item)
        if reply.code == 250 and len(reply.lines) == 1 and first[:13].upper() == l2s.VERB + b" ":
            try:
                item = l2s.parse_reply_text(250, first, self.extensions)
            except l2s.Link2StateError as exc:
                return _Reply(ClientInput.MALFORMED, reply, why=exc.reason)
            return self._item_reply(reply, item)
        if reply.code == 250 and len(reply.lines) > 1 and self.extensions and first.startswith(_L2S_REPLY_PREFIX):
            return self._classify_lines(reply)
        if reply.code >= 400:
            return _Reply(ClientInput.ERROR, reply)
        return _Reply(_REPLY_INPUTS.get(reply.code, ClientInput.OTHER), reply)

    def _item_reply(self, reply: Reply, item: l2s.Item) -> _Reply:
        if type(item) is l2s.Ext:
            return _Reply(_EXT_INPUTS.get(item.keyword, ClientInput.MALFORMED), reply, item,
                          why=f"{item.keyword.value} is a command, not a reply", values=(item.value,))  # fmt: skip
        return _Reply(_L2S_INPUTS[type(item)], reply, item)

    def _classify_lines(self, reply: Reply) -> _Reply:
        """A reply of several X-LINK2STATE lines: all TREE= or all LIST= items (docs/PROTOCOL.md §3.11)."""
        values, kinds = [], set()
        for line in reply.lines:
            try:
                ours = line.startswith(_L2S_REPLY_PREFIX)
                item = l2s.parse_reply_item(line[_L2S_PREFIX_LEN:], True) if ours else None
            except l2s.Link2StateError as exc:
                return _Reply(ClientInput.MALFORMED, reply, why=exc.reason)
            kind = _EXT_INPUTS.get(item.keyword) if type(item) is l2s.Ext else None
            if kind not in _MULTI_LINE:
                return _Reply(ClientInput.MALFORMED, reply, why="a reply of several lines that are not TREE= or LIST=")
            assert isinstance(item, l2s.Ext)
            values.append(item.value)
            kinds.add(kind)
        if len(kinds) != 1:
            return _Reply(ClientInput.MALFORMED, reply, why="a reply mixing TREE= and LIST= lines")
        return _Reply(kinds.pop(), reply, values=tuple(values))

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
        if self.extensions:
            window = features.get(l2s.EHLO_PIPELINING.encode(), [b""])
            self._offered_window = int(window[0]) if window and window[0].isdigit() else 0
            self._offered_delta = l2s.EHLO_DELTA.encode() in features
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
        window = min(l2s.DEFAULT_WINDOW, self._offered_window)
        if window > 1:  # pipelined: the request, then the opening right behind it (RFC 2920)
            self._send(l2s.format_command(l2s.Ext(l2s.ExtKeyword.WINDOW, str(window))))
        if not self._offered_delta:
            self._opening = self._open_full()
        else:
            self._opening = self._open_push() if self._push is not None else self._open_delta()
        return Outcome.WINDOW if window > 1 else self._opening

    def _again(self, inp: _Reply) -> Outcome:
        self.rounds, self._sent = 0, set()
        return self._open_push() if self._push is not None else self._open_delta()

    def _open_push(self) -> Outcome:
        """Our changed sections first (`PUSH=<digest>`, then their frame): the server takes them, then we check."""
        assert self.get_summary is not None and self._push is not None
        frame, self._push = self._push, None
        self._send(l2s.format_command(l2s.Ext(l2s.ExtKeyword.PUSH, self.get_summary().digest)))
        self.rounds += 1
        self.delta_bytes += len(frame)
        self._awaiting = 1  # the MORE answering PUSH= itself
        self._stream(frame)
        return Outcome.PUSH

    def _pushed(self, inp: _Reply) -> Outcome:
        """200 Done: the server took our sections (and merged them before it answered): the check follows."""
        if self._awaiting or not self._streamed():
            return self._fail("server said 200 Done before our LAST CHUNK")
        self._chunks = None
        return self._open_delta()

    def _keepalive(self, inp: _Reply) -> Outcome:
        self._noops += 1
        self._send(format_command(Verb.NOOP))
        return Outcome.OK

    def _noop_ok(self, inp: _Reply) -> Outcome:
        self._noops -= 1
        return Outcome.OK

    def _open_full(self) -> Outcome:
        """The seed's opening: our digest in a digest-only LAST CHUNK (the packet is the one of that moment)."""
        digest, self._frame = self.get_frame()
        self.chunks_out += 1
        self._send(l2s.opening_command(digest))
        return Outcome.FULL

    def _open_delta(self) -> Outcome:
        """A delta round: our digest, from a snapshot of our table that the round compares."""
        assert self.get_summary is not None
        self._snapshot = self.get_summary()
        self._send(l2s.format_command(l2s.Ext(l2s.ExtKeyword.DELTA, self._snapshot.digest)))
        return Outcome.DELTA

    def _window_granted(self, inp: _Reply) -> Outcome:
        granted = inp.values[0] if inp.values else ""
        if not granted.isdigit() or not 1 <= int(granted) <= l2s.DEFAULT_WINDOW:
            return self._fail(f"the server granted a window of {granted[:20]!r}")
        self.window = int(granted)
        return self._opening

    def _digests_equal(self, inp: _Reply) -> Outcome:
        return self._end(exchanged=self.rounds > 0, agreed=self._offered_delta)  # agreement matters to a push

    def _end(self, *, exchanged: bool, agreed: bool = False) -> Outcome:
        """The dialogue ended well: keep the session for the next one (a server with the extensions, `keep`), or
        QUIT."""
        self._emit(Done(exchanged=exchanged, agreed=agreed))
        self._snapshot, self._chunks = None, None
        if self.keep and self._offered_delta:
            return Outcome.KEPT
        return self._quit()

    # --- delta rounds (docs/PROTOCOL.md §3.11) -----------------------------------------------------------------

    def _buckets(self, inp: _Reply) -> Outcome:
        """The server's buckets: LIST= every one that differs from ours (pipelined), or fall back."""
        assert self._snapshot is not None
        theirs: dict[str, sm.Bucket] = {}
        try:
            for value in inp.values:
                theirs.update(sm.parse_tree(value))
        except sm.SummaryError as exc:
            return self._fail(f"X-LINK2STATE TREE from the server: {exc}")
        depth = {1: 1, sm.FANOUT: sm.MAX_DEPTH}.get(len(inp.values))
        if depth is None:
            return self._fail(f"the server sent {len(inp.values)} TREE lines")
        self._depth = depth
        prefixes = sm.differing(theirs, self._snapshot.buckets(depth))
        if not prefixes:
            return self._fall_back()
        self._lists, self._awaiting = {}, len(prefixes)
        for prefix in prefixes:
            self._send(l2s.format_command(l2s.Ext(l2s.ExtKeyword.LIST, prefix)))
        return Outcome.OK

    def _fall_back(self) -> Outcome:
        """The summaries cannot explain the difference: the seed's full exchange settles it, once this round is
        over (the server is in it: it takes our empty sections frame and answers with its own, empty)."""
        self._falling_back = True
        self._awaiting = 0
        self._stream(frame_from_sections([]))
        return Outcome.SENDING

    def _listed(self, inp: _Reply) -> Outcome:
        """One bucket's entries from the server; after the last one, what each side lacks goes across."""
        prefix = ""
        try:
            for value in inp.values:
                prefix, entries = sm.parse_list(value)
                if len(prefix) != self._depth or (prefix in self._lists and not entries):
                    raise sm.SummaryError(f"LIST for a bucket not asked for: {prefix!r}")
                self._lists.setdefault(prefix, []).extend(entries)
        except sm.SummaryError as exc:
            return self._fail(f"X-LINK2STATE LIST from the server: {exc}")
        self._awaiting -= 1
        if self._awaiting > 0:
            return Outcome.OK
        return self._transfer()

    def _transfer(self) -> Outcome:
        assert self._snapshot is not None
        give: list[sm.Entry] = []
        want: list[sm.Entry] = []
        for prefix, theirs in self._lists.items():
            g, w = sm.compare(self._snapshot.bucket(prefix), theirs)
            give += g
            want += w
        moved = set(give) | set(want)
        if not moved:
            self._lists = {}
            return self._fall_back()
        if moved <= self._sent:  # the server kept its own copies last round: a transfer cannot settle it
            self._lists = {}
            return self._end(exchanged=True)
        self._sent, self._lists = moved, {}
        self.rounds += 1
        gets = sm.get_items([e.guid for e in want])
        for item in gets:
            self._send(l2s.format_command(l2s.Ext(l2s.ExtKeyword.GET, item[4:])))
        self._awaiting = len(gets)
        frame = self._snapshot.frame_of(e.guid for e in give)
        self.delta_bytes += len(frame)
        self._stream(frame)
        return Outcome.SENDING

    def _given(self, inp: _Reply) -> Outcome:
        """A MORE: for a GET= or PUSH= line, or for one of our chunks (the window lets the next one go)."""
        if self._awaiting > 0:
            self._awaiting -= 1
            return Outcome.SENDING
        if not self._ack():
            return self._fail("server asked for MORE after our LAST CHUNK")
        return Outcome.SENDING

    def _take(self, inp: _Reply) -> Outcome:
        """A chunk of the server's sections frame (the reply to our LAST chunk, then one per MORE)."""
        assert isinstance(inp.item, l2s.Chunk)
        if self.state is ClientState.GIVING and (self._awaiting or not self._streamed()):
            return self._fail("server sent its sections before taking ours")
        frame = self._feed(inp.item)
        if not isinstance(frame, bytes):
            return frame
        if self._falling_back:  # the round that ends a fallback moved nothing: the seed's exchange now
            self._falling_back, self._snapshot, self._chunks = False, None, None
            return self._open_full()
        self.delta_bytes += len(frame)
        self._emit(OrgInfoReceived(frame, self.peer_guid or ""))
        return Outcome.CHECK

    def _check(self, inp: _Reply) -> Outcome:
        """What the server sent is merged: the next round compares the tables as they are now (equal: done). After
        MAX_ROUNDS rounds that each moved sections the tables are changing under us (other sessions are merging
        too): the session ends, and the next change or probe runs the link again."""
        self._chunks, self._snapshot = None, None
        return self._open_delta() if self.rounds < MAX_ROUNDS else self._end(exchanged=True)

    def _stay(self, inp: _Reply) -> Outcome:
        return Outcome.OK

    _MORE = _MORE_COMMAND

    def _refuse_chunk(self, exc: l2s.Link2StateError) -> Outcome:
        """A chunk of the server's frame broke the reassembly's bounds: the session ends."""
        return self._fail(f"X-LINK2STATE from the server: {exc.reason}")

    def _receive_chunk(self, inp: _Reply) -> Outcome:
        assert isinstance(inp.item, l2s.Chunk)
        frame = self._feed(inp.item)
        if not isinstance(frame, bytes):
            return frame
        self._emit(OrgInfoReceived(frame, self.peer_guid or ""))
        self._stream(self._frame)
        return Outcome.SENDING

    def _format_chunk(self, chunk: l2s.Chunk) -> bytes:
        return l2s.format_command(chunk)

    def _more(self, inp: _Reply) -> Outcome:
        if not self._ack():
            return self._fail("server asked for MORE after our LAST CHUNK")
        return Outcome.SENDING

    def _server_done(self, inp: _Reply) -> Outcome:
        assert self._chunks is not None
        if not self._streamed():
            return self._fail("server said 200 Done before our LAST CHUNK")
        return self._end(exchanged=True)

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
    opened = {R.WINDOW: S.WINDOW, R.DELTA: S.TREE, R.FULL: S.DIGEST, R.PUSH: S.PUSHING}
    ended = {R.DONE: S.QUITTING, R.KEPT: S.KEPT}
    t[(S.AUTH_RESULT, X.R235)] = (A._open_link2state, opened)
    t[(S.AUTH_RESULT, X.ERROR)] = (A._auth_refused, fails)
    t[(S.WINDOW, X.L2S_WINDOW)] = (A._window_granted, opened | fails)
    t[(S.DIGEST, X.L2S_DONE)] = (A._digests_equal, ended)
    # delta rounds: buckets, LIST replies, GET and our sections, the server's sections, the merge, the check
    t[(S.TREE, X.L2S_DONE)] = (A._digests_equal, ended)
    t[(S.TREE, X.L2S_TREE)] = (A._buckets, {R.OK: S.LISTING, R.SENDING: S.GIVING} | fails)
    transfer = {R.OK: S.LISTING, R.SENDING: S.GIVING} | ended | fails
    t[(S.LISTING, X.L2S_LIST)] = (A._listed, transfer)
    t[(S.GIVING, X.L2S_MORE)] = (A._given, {R.SENDING: S.GIVING} | fails)
    taking = {R.RECEIVING: S.TAKING, R.CHECK: S.CHECK, R.FULL: S.DIGEST} | fails
    t[(S.GIVING, X.L2S_CHUNK)] = (A._take, taking)
    t[(S.TAKING, X.L2S_CHUNK)] = (A._take, taking)
    t[(S.CHECK, X.RESUME)] = (A._check, {R.DELTA: S.TREE} | ended)
    # the server's packet: more chunks to take, or its LAST one taken and our first chunk sent
    taking = {R.RECEIVING: S.RECEIVING, R.SENDING: S.SENDING} | fails
    t[(S.DIGEST, X.L2S_CHUNK)] = (A._receive_chunk, taking)
    t[(S.RECEIVING, X.L2S_CHUNK)] = (A._receive_chunk, taking)
    t[(S.SENDING, X.L2S_MORE)] = (A._more, {R.SENDING: S.SENDING} | fails)
    t[(S.SENDING, X.R200)] = (A._server_done, ended | fails)
    # a push first (the sections changed since the link last agreed), then the check
    t[(S.PUSHING, X.L2S_MORE)] = (A._given, {R.SENDING: S.PUSHING} | fails)
    t[(S.PUSHING, X.R200)] = (A._pushed, {R.DELTA: S.TREE} | fails)
    # a kept session: the next dialogue, keepalives, QUIT
    t[(S.KEPT, X.AGAIN)] = (A._again, {R.DELTA: S.TREE, R.PUSH: S.PUSHING})
    t[(S.KEPT, X.KEEPALIVE)] = (A._keepalive, {R.OK: S.KEPT})
    for i in (X.EOF, X.ERROR):  # the server closed an idle session (its timeout, a restart): nothing failed
        t[(S.KEPT, i)] = (A._finished, {R.OK: S.CLOSED})
    for i in X:  # after QUIT, whatever comes (221, an error, the close) ends the session quietly
        t[(S.QUITTING, i)] = (A._finished, {R.OK: S.CLOSED})
        t[(S.CLOSED, i)] = (A._finished, {R.OK: S.CLOSED})
    for s in S:  # nothing waits for a merge but the check; a NOOP's 250 may come back in any state
        if s is not S.CHECK:
            t[(s, X.RESUME)] = (A._stay, {R.OK: s})
        if s not in (S.QUITTING, S.CLOSED):
            t[(s, X.NOOP_OK)] = (A._noop_ok, {R.OK: s})
    return t


CLIENT_TABLE = _client_table()
INITIAL = (ClientState.GREETING,)
