"""The `rg691` target: the TCP 691 framer, the frame codec and the 691 session machine, on one input.

Input layout: byte 0 picks the session mode (low 2 bits: fresh responder, fresh initiator, authenticated
responder, authenticated initiator) and the split of the stream (the other 6 bits seed it); the rest is the
byte stream a peer sends.
Invariants checked on every input (docs/FUZZING.md):
  - only `DecodeError` escapes the framer and `decode_frame`;
  - the framer fed the stream in pieces gives the same messages and banner as fed whole, or fails at the same
    offset;
  - every decoded message re-encodes (`encode_message`) to a frame that decodes to the same message;
  - the session never raises; it delivers no message before `Authenticated`; a `Fault` is its last result
    and leaves it closed and deaf; everything it queues to send is valid 691 (our own framer reads it).
No waiver: issue 11 made `{len}` strings with CR/LF/NUL a DecodeError and the banner bound independent of the
split (their inputs are regressions now, fuzz/regressions/rg691).
May import: the standard library, proto.*, linkstate.core.*, linkstate.fuzz.
"""

from __future__ import annotations

import functools

from linkstate.core.session691 import Authenticated, Fault, Session691
from linkstate.fuzz.base import Err, expect, outcome, splits
from linkstate.fuzz.targets import fixture
from proto import rg691
from proto.decode import DEFAULT_LIMITS
from proto.errors import DecodeError, EncodeError

MODES = ("responder", "initiator", "authenticated-responder", "authenticated-initiator")


def check(data: bytes) -> None:
    if not data:
        return
    mode, seed, stream = data[0] & 3, data[0] >> 2, data[1:]
    pieces = splits(stream, seed)
    whole = _frame_all([stream], expect_banner=mode == 1)
    cut = _frame_all(pieces, expect_banner=mode == 1)
    _check_splits(stream, mode, whole, cut)
    for msg in whole[0]:
        _check_round_trip(msg)
    outcome(lambda: rg691.decode_frame(stream), DecodeError)
    _check_session(mode, pieces)


def _frame_all(pieces: list[bytes], *, expect_banner: bool) -> tuple[list[rg691.Message], Err | None, bytes | None]:
    framer = rg691.Framer(expect_banner=expect_banner, limits=DEFAULT_LIMITS)
    out: list[rg691.Message] = []
    for piece in pieces:
        got = outcome(functools.partial(_feed, framer, piece), DecodeError)
        if isinstance(got, Err):
            return out, got, framer.banner
        out.extend(got)
    return out, None, framer.banner


def _feed(framer: rg691.Framer, piece: bytes) -> list[rg691.Message]:
    framer.feed(piece)
    return framer.messages()


def _check_splits(stream: bytes, mode: int, whole: tuple, cut: tuple) -> None:  # type: ignore[type-arg]
    # the same messages, or an error at the same offset (the wording may differ with how much was buffered)
    same = cut == whole if whole[1] is None else cut[1] is not None and cut[1].detail[0] == whole[1].detail[0]
    expect(same, f"framer in pieces differs from whole: {_short(cut)} vs {_short(whole)}")


def _check_round_trip(msg: rg691.Message) -> None:
    wire = outcome(lambda: rg691.encode_message(msg), EncodeError)
    if isinstance(wire, Err):
        expect(False, f"decoded {type(msg).__name__} does not re-encode: {wire.detail[1]}")
    again = outcome(lambda: rg691.decode_frame(wire), DecodeError)
    expect(again == msg, f"{type(msg).__name__} re-encoded reads back as {_short(again)}")


def new_session(mode: int) -> Session691:
    """A session in `mode` (see MODES), authenticated first by a scripted peer for modes 2 and 3."""
    initiator = mode in (1, 3)
    session = Session691(initiator=initiator, local_guid=fixture.LOCAL_GUID, secret=fixture.SECRET,
                         nonce=fixture.counter_nonces(1), fqdn=fixture.FQDN)  # fmt: skip
    if mode >= 2:
        peer = Session691(initiator=not initiator, local_guid=fixture.PEER_GUID, secret=fixture.SECRET,
                          nonce=fixture.counter_nonces(2))  # fmt: skip
        for _ in range(4):
            session.receive(peer.take_pending())
            peer.receive(session.take_pending())
        expect(session.authenticated and peer.authenticated, "the scripted 691 handshake did not authenticate")
        session.take_pending()
    return session


def _check_session(mode: int, pieces: list[bytes]) -> None:
    session = new_session(mode)
    authed = session.authenticated
    results: list[object] = []
    reader = rg691.Framer(expect_banner=not session.initiator and mode == 0)
    for piece in pieces:
        closed_before = session.closed
        got = session.receive(piece)
        expect(not (closed_before and got), "a closed 691 session still delivers results")
        for r in got:
            expect(not isinstance(r, Authenticated) or not authed, "Authenticated twice")
            authed = authed or isinstance(r, Authenticated)
            expect(authed or isinstance(r, (Fault, Authenticated)), f"{type(r).__name__} before authentication")
        results.extend(got)
        reader.feed(session.take_pending())
        sent = outcome(reader.messages, DecodeError)
        expect(not isinstance(sent, Err), f"the session queued invalid 691 bytes: {sent}")
    faults = [i for i, r in enumerate(results) if isinstance(r, Fault)]
    expect(faults in ([], [len(results) - 1]), "a Fault that is not the session's last result")
    expect(not faults or session.closed, "a Fault left the session open")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) < 160 else text[:157] + "..."
