"""linkstate.core.connstate: the master's connector states through `GroupStates` itself (its reports in, its
commits and window diagnostics out), on the failover example seen from its master HUB-M.

Exact outcomes: which commits come out, with which states and times, what each commit is logged as, and which
oscillation windows open and end when.
"""

from __future__ import annotations

from linkstate.core.connstate import Committed, GroupStates
from linkstate.core.dampening import Commit, OscillationSuppressed, WindowOpened
from proto.model import BridgeheadState, ConnectorState
from tests.core.failure_helpers import failover
from tests.core.role_helpers import context

TOPO = failover()
SPEC = TOPO.connector("Hub-Branch")
HB = SPEC.guid
A = TOPO.server("HUB-A").vs_guid
KEY = f"{HB}/{A}"  # the dampener key of HUB-A as a source bridgehead of Hub-Branch
DELAY = 600.0
UP, DOWN = ConnectorState.UP, ConnectorState.DOWN
AVAIL, NOT_AVAILABLE, NOT_STARTED = (BridgeheadState.CONN_AVAIL, BridgeheadState.CONN_NOT_AVAILABLE,
                                     BridgeheadState.CONN_NOT_STARTED)  # fmt: skip


def published() -> GroupStates:
    """HUB-M's states after its first publication: HUB-A attached and reported Hub-Branch available."""
    states = GroupStates(context(TOPO, "HUB-M"), 0.0)
    assert states.attach(A, 0.0) == [] and states.report(SPEC, A, AVAIL, 0.0) == []  # nothing before the rebuild
    states.rebuild(None, 0.0)
    assert states.conn_states[HB] is UP and states.bh_states[(HB, A)] is AVAIL
    assert states.diagnostics() == []
    return states


def test_a_bridgehead_unavailable_another_way_is_committed_at_once_as_it_is() -> None:
    states = published()
    assert states.report(SPEC, A, NOT_AVAILABLE, 10) == []
    assert states.diagnostics() == [WindowOpened(KEY, 10, 10 + DELAY), WindowOpened(HB, 10, 10 + DELAY)]
    commits = states.on_timer(10 + DELAY)
    assert commits == [Commit(HB, DOWN, UP, 10 + DELAY), Commit(KEY, DOWN, UP, 10 + DELAY)]
    assert [states.commit(c) for c in commits] == [
        Committed("Hub-Branch", "", "DOWN"),
        Committed("Hub-Branch", "HUB-A", "CONN_NOT_AVAILABLE"),
    ]
    (again,) = states.report(SPEC, A, NOT_STARTED, 700)  # still unavailable: no window, published at once
    assert again == Commit(KEY, DOWN, DOWN, 700)
    assert states.commit(again) == Committed("Hub-Branch", "HUB-A", "CONN_NOT_STARTED")
    assert states.bh_states[(HB, A)] is NOT_STARTED and states.conn_states[HB] is DOWN
    assert states.report(SPEC, A, NOT_STARTED, 710) == []  # the same again: nothing


def test_a_window_that_ended_as_oscillation_opens_the_next_one_at_once_when_the_change_lasts() -> None:
    states = published()
    for t, state in ((10, NOT_AVAILABLE), (20, AVAIL), (30, NOT_AVAILABLE)):
        assert states.report(SPEC, A, state, t) == []
    assert states.on_timer(10 + DELAY) == []  # three changes: oscillation, nothing committed
    end = 10 + DELAY
    assert states.diagnostics() == [
        WindowOpened(KEY, 10, end),
        WindowOpened(HB, 10, end),
        OscillationSuppressed(HB, 10, end, 3),
        OscillationSuppressed(KEY, 10, end, 3),
        WindowOpened(HB, end, end + DELAY),  # still DOWN: reported again at once (R117, R118)
        WindowOpened(KEY, end, end + DELAY),
    ]
    assert states.next_deadline() == end + DELAY
    commits = states.on_timer(end + DELAY)
    assert commits == [Commit(HB, DOWN, UP, end + DELAY), Commit(KEY, DOWN, UP, end + DELAY)]


def test_a_report_after_an_oscillating_window_ended_closes_it_then_counts_afresh() -> None:
    """No timer ran at the window's end: the next report closes it first (as the timer would), then the state
    that holds is reported again to the next window."""
    states = published()
    states.report(SPEC, A, NOT_AVAILABLE, 10)
    states.report(SPEC, A, AVAIL, 20)
    states.diagnostics()
    assert states.report(SPEC, A, NOT_AVAILABLE, 700) == []
    assert states.diagnostics() == [
        OscillationSuppressed(HB, 10, 10 + DELAY, 2),
        OscillationSuppressed(KEY, 10, 10 + DELAY, 2),
        WindowOpened(KEY, 700, 700 + DELAY),
        WindowOpened(HB, 700, 700 + DELAY),
    ]
    assert states.on_timer(700 + DELAY) == [Commit(HB, DOWN, UP, 1300), Commit(KEY, DOWN, UP, 1300)]


def test_a_bridgehead_back_but_silent_at_the_window_end_is_published_not_available() -> None:
    """HUB-A's server detaches (its reports are forgotten) and attaches again inside the window without reporting:
    nothing is UP without evidence, so the window ends DOWN and HUB-A is published CONN_NOT_AVAILABLE."""
    states = published()
    assert states.detach(A, 100) == []
    assert states.attach(A, 200) == []  # live, not heard from: unknown, nothing reported to the windows
    commits = states.on_timer(100 + DELAY)
    assert commits == [Commit(HB, DOWN, UP, 700), Commit(KEY, DOWN, UP, 700)]
    assert [states.commit(c) for c in commits] == [
        Committed("Hub-Branch", "", "DOWN"),
        Committed("Hub-Branch", "HUB-A", "CONN_NOT_AVAILABLE"),
    ]
    assert states.bh_states[(HB, A)] is NOT_AVAILABLE
