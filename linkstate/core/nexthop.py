"""Probing a connector's smart host (SMTP) as a sans-I/O session (requirements G40, R32; seed L6495: "The smart host
becomes unavailable, so the Exchange 2003 bridgehead server marks the route through its SMTP connector as
unavailable").

Owns: `SmartHostProbe`, the source bridgehead's side of one probe connection to a connector's smart host: the
host is available when it greets with `220`; then `QUIT` and close. Anything else — another reply, a malformed
or endless line, the host closing first — is a failed probe. The table `PROBE_TABLE[(state, input)] -> (action,
{outcome: next state})` has the shape of linkstate.core.machine. (An X.400 connector's next-hop MTA is probed by
the TCP connect alone: linkstate.core.bridgehead.)
Invariants: no I/O, no clock, no randomness; the same interface as the bridgehead's other SMTP sessions
(`receive_data(bytes) -> events`, b"" meaning the peer closed; `data_to_send()`; `closed`); exactly one `Done`
or `SessionFailed` per probe; nothing a peer sends raises.
May import: the standard library, proto, linkstate.core.machine, linkstate.core.link2state_session (its events).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from linkstate.core.link2state_session import Done, Event, SessionFailed
from linkstate.core.machine import Outcome, Table
from proto.smtp import LineReader, LineTooLong, ReplyError, ReplyParser, Verb, format_command


class ProbeState(enum.Enum):
    GREETING = "greeting"
    CLOSED = "closed"


class ProbeInput(enum.Enum):
    __hash__ = object.__hash__
    R220 = "220"  # the host is ready
    OTHER = "other"  # any other complete reply (554: refuses service, 421: closing...)
    MALFORMED = "malformed"  # not an SMTP reply, or a line too long
    EOF = "eof"  # the host closed the connection


ProbeAction = Callable[["SmartHostProbe", str], Outcome]


class SmartHostProbe:
    """One probe of a smart host (module docstring)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.state = ProbeState.GREETING
        self.closed = False
        self._reader = LineReader()
        self._replies = ReplyParser()
        self._out: list[bytes] = []
        self._events: list[Event] = []

    def receive_data(self, data: bytes) -> list[Event]:
        if not data:
            self._dispatch(ProbeInput.EOF, "")
        else:
            self._reader.feed(data)
            while self.state is not ProbeState.CLOSED and self._next():
                pass
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        data, self._out = b"".join(self._out), []
        return data

    def _next(self) -> bool:
        try:
            line = self._reader.next_line()
            reply = None if line is None else self._replies.feed_line(line)
        except (LineTooLong, ReplyError) as exc:
            self._dispatch(ProbeInput.MALFORMED, exc.reason)
            return False
        if line is None:
            return False
        if reply is not None:
            kind = ProbeInput.R220 if reply.code == 220 else ProbeInput.OTHER
            self._dispatch(kind, f"{reply.code} {reply.text[:80]}")
        return True

    def _dispatch(self, inp: ProbeInput, detail: str) -> None:
        action, outcomes = PROBE_TABLE[(self.state, inp)]
        self.state = outcomes[action(self, detail)]
        self.closed = self.state is ProbeState.CLOSED

    # --- actions ---------------------------------------------------------------------------------------------

    def _ready(self, detail: str) -> Outcome:
        self._out.append(format_command(Verb.QUIT))
        self._events.append(Done(exchanged=False))
        return Outcome.DONE

    def _refused(self, detail: str) -> Outcome:
        self._out.append(format_command(Verb.QUIT))
        self._events.append(SessionFailed(f"smart host {self.host} answered {detail!r} instead of 220"))
        return Outcome.FAILED

    def _broken(self, detail: str) -> Outcome:
        self._events.append(SessionFailed(f"smart host {self.host}: {detail or 'closed before its greeting'}"))
        return Outcome.FAILED

    def _ignore(self, detail: str) -> Outcome:
        return Outcome.OK


def _probe_table() -> Table[ProbeState, ProbeInput, ProbeAction]:
    S, X, A, R = ProbeState, ProbeInput, SmartHostProbe, Outcome
    t: Table[ProbeState, ProbeInput, ProbeAction] = {
        (S.GREETING, X.R220): (A._ready, {R.DONE: S.CLOSED}),
        (S.GREETING, X.OTHER): (A._refused, {R.FAILED: S.CLOSED}),
        (S.GREETING, X.MALFORMED): (A._broken, {R.FAILED: S.CLOSED}),
        (S.GREETING, X.EOF): (A._broken, {R.FAILED: S.CLOSED}),
    }
    for i in X:  # once over, nothing the host says matters
        t[(S.CLOSED, i)] = (A._ignore, {R.OK: S.CLOSED})
    return t


PROBE_TABLE = _probe_table()
INITIAL = (ProbeState.GREETING,)
