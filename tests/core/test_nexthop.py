"""The smart-host probe (linkstate.core.nexthop) as a table like the sessions' (linkstate.core.machine): every
(state, input) pair is in it, every state is reachable from the table alone, and each greeting ends the probe
with exactly one verdict, whatever the bytes and however they are split."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from linkstate.core.link2state_session import Done, Event, SessionFailed
from linkstate.core.machine import edges, reachable
from linkstate.core.nexthop import INITIAL, PROBE_TABLE, ProbeInput, ProbeState, SmartHostProbe


def test_the_table_covers_every_state_and_input() -> None:
    assert set(PROBE_TABLE) == set(itertools.product(ProbeState, ProbeInput))


def test_every_state_is_reachable_and_every_greeting_input_ends_the_probe() -> None:
    assert reachable(PROBE_TABLE, INITIAL) == set(ProbeState)
    assert {inp for state, inp, _, target in edges(PROBE_TABLE)
            if state is ProbeState.GREETING and target is ProbeState.CLOSED} == set(ProbeInput)  # fmt: skip


def verdicts(greeting: bytes, split: int) -> tuple[list[Event], bytes, bool]:
    """What a probe reports when the host sends `greeting` in two parts and then closes (b"" is the close)."""
    probe = SmartHostProbe("[192.0.2.1]:25")
    events: list[Event] = []
    for part in (greeting[:split], greeting[split:]):
        if part:
            events += probe.receive_data(part)
    events += probe.receive_data(b"")
    return events, probe.data_to_send(), probe.closed


def test_a_220_greeting_is_available_and_quits() -> None:
    for split in range(len(b"220 smart ESMTP\r\n") + 1):
        events, sent, closed = verdicts(b"220 smart ESMTP\r\n", split)
        assert events == [Done(exchanged=False)] and sent == b"QUIT\r\n" and closed


def test_anything_else_is_unavailable() -> None:
    for greeting, why in ((b"554 go away\r\n", "answered '554 go away' instead of 220"),
                          (b"", "closed before its greeting"), (b"garbage\r\n", "")):  # fmt: skip
        events, _, closed = verdicts(greeting, len(greeting) // 2)
        assert closed and len(events) == 1 and isinstance(events[0], SessionFailed), events
        assert why in events[0].reason


@given(st.binary(max_size=600), st.integers(0, 600))
def test_any_bytes_end_in_exactly_one_verdict(data: bytes, split: int) -> None:
    events, _, closed = verdicts(data, split)
    assert closed and len(events) == 1 and isinstance(events[0], Done | SessionFailed)
