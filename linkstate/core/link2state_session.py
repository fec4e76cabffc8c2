"""Sans-I/O SMTP sessions between bridgeheads: what both sides share, and the dialogue (DECISIONS §3).

Owns: the events a session emits, `SmtpSession` (the base both sides build on: line reader, output buffer, event
list, byte and chunk counters, the frame source and reassembler) and the limits. The two machines live in
linkstate.core.link2state_server (`SmtpServerSession`, the remote bridgehead, which answers) and
linkstate.core.link2state_client (`SmtpClientSession`, the local bridgehead, which initiates). Both are h11 style:
`receive_data(bytes) -> list[event]` (b"" means the peer closed), then `data_to_send() -> bytes`; `closed` tells
the shell to flush what is left and close the connection. Each is an explicit table (state, input) -> (action,
{outcome: next state}) (linkstate.core.machine), like h2's `stream.py`: the tables cover every pair and every
state is reachable from them alone (checked by the tests); an action reports its outcome (a failed proof, the last
chunk) and the table, not the action, names the next state.

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
Negotiated extensions (docs/PROTOCOL.md §3.11; only with `extensions=True` on both sides: the server advertises
them in EHLO, the client uses what it sees advertised): pipelined chunks (`WINDOW=<n>`: a sender keeps up to n chunks
unacknowledged; the receiver's replies are unchanged and matched in order) and section-level delta (`DELTA=<md5>`,
then `TREE`/`LIST` summaries, `GET`, each side's sections in one frame, and a new `DELTA=` round as the check, the
seed's full exchange as the last resort). Without them every byte is the seed's dialogue above.
Invariants: no I/O, no clock, no randomness (nonces are passed in); every peer input is handled by the table and
only the session's own events come out (no exception escapes `receive_data`); a stream never has more than
`window` chunks unacknowledged (1 without the extension: the seed's one round trip per chunk).
May import: the standard library, proto.*, linkstate.core.auth and linkstate.core.machine (Outcome).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from linkstate.core import auth
from linkstate.core.machine import Outcome
from proto import link2state as l2s
from proto.codec import Limits
from proto.smtp import LineReader
from proto.summary import Summary

MAX_MESSAGE_SIZE = 5_242_880
MAX_RECIPIENTS = 100
MAX_ERRORS = 10
GUID_PATTERN = re.compile(r"[0-9a-f]{32}")
PROOF_PATTERN = re.compile(r"[0-9a-f]{64}")

FrameSource = Callable[[], tuple[str, bytes]]  # -> (digest, full frame), a consistent snapshot
SummarySource = Callable[[], Summary]  # -> the table as the delta exchange sees it, a consistent snapshot


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class OrgInfoReceived:
    """The peer's complete frame (raw, not yet decoded or merged)."""

    frame: bytes
    peer_guid: str


@dataclass(frozen=True, slots=True)
class Done:
    """The X-LINK2STATE dialogue ended well: `exchanged` is False when the digests were equal; `agreed`: it ended
    with both tables equal (a delta round's check), so what changes next can be pushed (docs/PROTOCOL.md §3.11)."""

    exchanged: bool
    agreed: bool = False


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


class SmtpSession:
    """What both sides share: the line reader, the output buffer, the event list and the byte counters."""

    def __init__(
        self, local_guid: str, secret: bytes, fqdn: str, get_frame: FrameSource, nonce: str, chunk_raw_bytes: int,
        limits: Limits, get_summary: SummarySource | None = None,
    ) -> None:  # fmt: skip
        if not auth.valid_nonce(nonce):
            raise ValueError("nonce must be 32 lowercase hex digits")
        self.local_guid = local_guid
        self.secret = secret
        self.fqdn = fqdn
        self.get_frame = get_frame
        self.get_summary = get_summary
        self.extensions = get_summary is not None  # offers (server) / may use (client) the negotiated extensions
        self.nonce = nonce
        self.chunk_raw_bytes = chunk_raw_bytes
        self.peer_guid: str | None = None
        self._reassembler = l2s.Reassembler(limits)
        self._chunks: l2s.Chunker | None = None
        self._next_chunk = 0
        self._acked = 0
        self.window = 1  # chunks a stream may have unacknowledged (WINDOW=, docs/PROTOCOL.md §3.11)
        self._snapshot: Summary | None = None  # the table this delta round compares (taken at DELTA=)
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

    # --- taking the peer's frame, one chunk at a time -----------------------------------------------------------

    _MORE = b""  # what this side sends for each chunk but the last: the client's MORE command, the server's reply

    def _refuse_chunk(self, exc: l2s.Link2StateError) -> Outcome:
        raise NotImplementedError

    def _feed(self, chunk: l2s.Chunk) -> bytes | Outcome:
        """One chunk of the peer's frame: the whole frame once it is complete; before that MORE goes out
        (RECEIVING); a chunk that breaks the reassembly's bounds (MS05-021) is refused as each side refuses."""
        try:
            frame = self._reassembler.feed(chunk)
        except l2s.Link2StateError as exc:
            return self._refuse_chunk(exc)
        self.chunks_in += 1
        if frame is None:
            self._send(self._MORE)
            return Outcome.RECEIVING
        return frame

    # --- streaming a frame, `window` chunks at a time (1: the seed's dialogue) ---------------------------------

    def _format_chunk(self, chunk: l2s.Chunk) -> bytes:
        raise NotImplementedError

    def _stream(self, frame: bytes) -> bool:
        """Start sending `frame`; True when it is already all sent and acknowledged (one chunk)."""
        self._chunks, self._next_chunk, self._acked = l2s.Chunker(frame, self.chunk_raw_bytes), 0, 0
        self._fill()
        return self._streamed()

    def _fill(self) -> None:
        chunks = self._chunks
        assert chunks is not None
        while self._next_chunk < len(chunks) and self._next_chunk - self._acked < self.window:
            chunk = chunks[self._next_chunk]
            self._next_chunk += 1
            self.chunks_out += 1
            self._send(self._format_chunk(chunk))

    def _ack(self) -> bool:
        """The peer took one more of our chunks (`MORE`); False if it had nothing left to take."""
        assert self._chunks is not None
        if self._acked >= min(self._next_chunk, len(self._chunks) - 1):
            return False
        self._acked += 1
        self._fill()
        return True

    def _streamed(self) -> bool:
        """Every chunk sent, and every one before the LAST acknowledged."""
        assert self._chunks is not None
        n = len(self._chunks)
        return self._next_chunk == n and self._acked == n - 1

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events
