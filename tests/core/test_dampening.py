"""linkstate.core.dampening: G41 windows (F9 exactly), state_delay 0, compat_e2k batching, SuppressStateChanges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate.core.dampening import Commit, Dampener, LocalStateFilter, OscillationSuppressed, WindowOpened
from proto.model import ConnectorState

UP, DOWN = ConnectorState.UP, ConnectorState.DOWN
C1, C2 = "c" * 32, "d" * 32


# ------------------------------------------------------------------------------------------------ F9


def test_f9_oscillation_inside_one_window() -> None:
    d = Dampener()
    commits = []
    for t, s in [(0, DOWN), (100, UP), (200, DOWN), (300, UP)]:
        commits += d.report(C1, s, t)
    assert d.next_deadline() == 600
    commits += d.on_timer(600)
    assert commits == [] and d.committed(C1) is UP
    assert d.minor_updates == 0 and d.suppressed == 1
    assert d.diagnostics() == [WindowOpened(C1, 0, 600), OscillationSuppressed(C1, 0, 600, 4)]
    assert d.diagnostics() == [] and d.next_deadline() is None


def test_f9_single_down_commits_at_window_end() -> None:
    d = Dampener()
    assert d.report(C1, DOWN, 0) == []
    assert d.committed(C1) is UP and d.next_deadline() == 600
    assert d.on_timer(599.9) == []
    assert d.on_timer(600) == [Commit(C1, DOWN, UP, 600)]
    assert d.committed(C1) is DOWN and d.minor_updates == 1 and d.next_deadline() is None


def test_f9_down_in_window_1_up_in_window_2_gives_two_updates() -> None:
    d = Dampener()
    commits = d.report(C1, DOWN, 0) + d.on_timer(600)
    commits += d.report(C1, UP, 700)  # committed DOWN, no window: at once
    assert commits == [Commit(C1, DOWN, UP, 600), Commit(C1, UP, DOWN, 700)]
    assert d.minor_updates == 2 and d.suppressed == 0


def test_down_then_up_is_already_oscillation() -> None:
    d = Dampener()
    assert d.report(C1, DOWN, 0) + d.report(C1, UP, 10) + d.on_timer(600) == []
    assert d.suppressed == 1 and d.committed(C1) is UP


def test_repeated_down_reports_are_one_change() -> None:
    d = Dampener()
    for t in range(0, 500, 50):
        assert d.report(C1, DOWN, t) == []
    assert d.on_timer(600) == [Commit(C1, DOWN, UP, 600)]


def test_report_after_window_end_closes_it_first() -> None:
    d = Dampener()
    d.report(C1, DOWN, 0)
    assert d.report(C1, UP, 600) == [Commit(C1, DOWN, UP, 600), Commit(C1, UP, DOWN, 600)]
    assert d.report(C1, DOWN, 601) == [] and d.window_open(C1)


def test_redundant_reports_change_nothing() -> None:
    d = Dampener()
    assert d.report(C1, UP, 0) == [] and not d.window_open(C1)
    d.report(C1, DOWN, 0)
    d.on_timer(600)
    assert d.report(C1, DOWN, 700) == [] and not d.window_open(C1)  # nothing to delay


def test_connectors_are_independent_and_ordered() -> None:
    d = Dampener(state_delay=10)
    d.report(C2, DOWN, 0)
    d.report(C1, DOWN, 0)
    d.report(C1, UP, 5)
    assert d.on_timer(100) == [Commit(C2, DOWN, UP, 10)]
    assert d.committed(C1) is UP and d.suppressed == 1


def test_state_delay_zero_commits_every_change() -> None:
    d = Dampener(state_delay=0)
    assert d.report(C1, DOWN, 0) == [Commit(C1, DOWN, UP, 0)]
    assert d.report(C1, DOWN, 1) == []
    assert d.report(C1, UP, 2) == [Commit(C1, UP, DOWN, 2)]
    assert d.next_deadline() is None and d.minor_updates == 2


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_delay(bad: float) -> None:
    with pytest.raises(ValueError):
        Dampener(state_delay=bad)
    with pytest.raises(ValueError):
        Dampener(batch_interval=bad if bad != -1.0 else 0.0)


# ------------------------------------------------------------------------------------------------ compat_e2k


def test_compat_e2k_batches_every_300_s_without_suppression() -> None:
    d = Dampener(compat_e2k=True)
    assert d.report(C1, DOWN, 10) == [] and d.report(C1, UP, 20) == [] and d.report(C2, DOWN, 30) == []
    assert d.next_deadline() == 300
    assert d.on_timer(299) == []
    assert d.on_timer(300) == [Commit(C1, DOWN, UP, 300), Commit(C1, UP, DOWN, 300), Commit(C2, DOWN, UP, 300)]
    assert d.suppressed == 0 and d.minor_updates == 3 and d.next_deadline() is None
    assert d.report(C1, DOWN, 300) == [] and d.next_deadline() == 600  # on a boundary: the next batch


def test_compat_e2k_epoch() -> None:
    d = Dampener(compat_e2k=True, batch_interval=100, epoch=5)
    d.report(C1, DOWN, 5)
    assert d.next_deadline() == 105


# ------------------------------------------------------------------------------------------------ properties

times = st.lists(st.tuples(st.floats(0, 900), st.sampled_from([UP, DOWN])), max_size=30).map(
    lambda xs: sorted(xs, key=lambda x: x[0])
)


@given(times, st.sampled_from([60.0, 600.0]))
def test_at_most_one_commit_per_window(reports: list[tuple[float, ConnectorState]], delay: float) -> None:
    d = Dampener(state_delay=delay)
    for t, s in reports:
        closing = d.on_timer(t)
        assert len(closing) <= 1  # one connector: at most one window closes, with at most one commit
        was_open = d.window_open(C1)
        got = d.report(C1, s, t)
        if was_open:
            assert got == []  # nothing is ever committed while a window is open
        assert all(c.state is not c.previous for c in closing + got)
    assert len(d.on_timer(10_000)) <= 1


@given(st.floats(0, 1000), st.lists(st.tuples(st.floats(0.001, 599.999), st.sampled_from([UP, DOWN])), max_size=20))
def test_oscillation_inside_one_window_commits_nothing(
    start: float, inside: list[tuple[float, ConnectorState]]
) -> None:
    d = Dampener()
    inside = sorted([*inside, (1.0, UP)], key=lambda x: x[0])  # at least one conflicting change
    commits = d.report(C1, DOWN, start)
    for dt, s in inside:
        commits += d.report(C1, s, start + dt)
    commits += d.on_timer(start + 600)
    assert commits == [] and d.committed(C1) is UP and d.suppressed == 1


def changes(states: list[ConnectorState]) -> int:
    prev, n = UP, 0
    for s in states:
        n += s is not prev
        prev = s
    return n


@given(times)
def test_compat_e2k_one_commit_per_flap_at_boundaries(reports: list[tuple[float, ConnectorState]]) -> None:
    d = Dampener(compat_e2k=True)
    commits = []
    for t, s in reports:
        commits += d.report(C1, s, t)
    commits += d.on_timer(10_000)
    assert len(commits) == changes([s for _, s in reports]) and d.suppressed == 0
    assert all(c.at % 300 == 0 for c in commits)


@given(times)
def test_state_delay_zero_commits_each_change(reports: list[tuple[float, ConnectorState]]) -> None:
    d = Dampener(state_delay=0)
    commits = [c for t, s in reports for c in d.report(C1, s, t)]
    assert len(commits) == changes([s for _, s in reports])
    assert [c.at for c in commits] == sorted(c.at for c in commits)


# ------------------------------------------------------------------------------------------------ G43


def test_suppress_state_changes_filter() -> None:
    f = LocalStateFilter(suppress_state_changes=True, source_connectors=[C1])
    assert not f.admit(C1) and f.admit(C2) and f.dropped == 1
    f.set_source_connectors([C2])
    assert f.admit(C1) and not f.admit(C2)
    off = LocalStateFilter(source_connectors=[C1])
    assert off.admit(C1) and off.dropped == 0
