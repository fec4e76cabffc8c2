"""The master's per-connector oscillation window (requirements G41, G43, G65; R111, R117-R120).

Owns: `Dampener`, which turns connector state *reports* into *commits* (each commit is a minor update plus
"reset routes", event 4005, for the caller to publish), and `LocalStateFilter`, the SuppressStateChanges rule a
bridgehead applies before reporting (G43).

G41, as implemented (state_delay 600 s by default):
  - The committed state of every connector starts UP, or as `seed` sets it.
  - A DOWN report while the committed state is UP and no window is open opens a window [now, now + state_delay)
    (a `WindowOpened` diagnostic is recorded).
    Every later report inside the window is recorded; a report differing from the previous one is a *change*
    (the opening DOWN is the first, as it differs from the committed UP).
  - At window end: >= 2 changes (DOWN then UP, or more) -> oscillating: the committed state stays UP, nothing is
    committed, an `OscillationSuppressed` diagnostic is recorded (`oscillation_suppressed`). Otherwise the last
    report (DOWN) is committed.
  - An UP report while the committed state is DOWN and no window is open commits at once (availability first).
  - Reports equal to the committed state with no window open change nothing (a DOWN while DOWN opens no window:
    there is nothing to delay). Hence a window is only ever open while the committed state is UP, and a
    suppressed window never needs a commit to "return" to UP.
  - `state_delay = 0` commits every change at once.
  - A report at or after a window's end first closes that window (as `on_timer` would), then counts afresh.
`compat_e2k` (G65, R111): no windows and no suppression; reports are queued and applied at fixed batch
boundaries (multiples of `batch_interval`, 300 s, from `epoch`), in order, one commit per change.
Invariants: pure; time is the `now` argument (the caller re-arms `next_deadline()`); at most one commit per
connector per window; results are ordered deterministically (deadline, then connector GUID).
May import: the standard library, proto.* and linkstate.core.*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from proto.model import ConnectorState

UP, DOWN = ConnectorState.UP, ConnectorState.DOWN
STATE_DELAY = 600.0
E2K_BATCH_INTERVAL = 300.0


@dataclass(frozen=True, slots=True)
class Commit:
    """A committed connector state change: publish it as a minor update and reset routes (event 4005)."""

    connector_guid: str
    state: ConnectorState
    previous: ConnectorState
    at: float


@dataclass(frozen=True, slots=True)
class OscillationSuppressed:
    """The `oscillation_suppressed` diagnostic: a window saw `changes` conflicting reports; state stays UP."""

    connector_guid: str
    window_start: float
    at: float
    changes: int


@dataclass(frozen=True, slots=True)
class WindowOpened:
    """The `oscillation_window_opened` diagnostic: a DOWN report is held until `end` (G41)."""

    connector_guid: str
    start: float
    end: float


DampenerDiagnostic = OscillationSuppressed | WindowOpened


@dataclass(slots=True)
class _Window:
    start: float
    end: float
    last: ConnectorState
    changes: int


class Dampener:
    """Reports in, commits out; see the module docstring for the rules."""

    def __init__(
        self,
        state_delay: float = STATE_DELAY,
        compat_e2k: bool = False,
        *,
        batch_interval: float = E2K_BATCH_INTERVAL,
        epoch: float = 0.0,
    ) -> None:
        if not (state_delay >= 0 and math.isfinite(state_delay)):
            raise ValueError(f"state_delay must be a finite number >= 0, got {state_delay}")
        if not (batch_interval > 0 and math.isfinite(batch_interval)):
            raise ValueError(f"batch_interval must be a finite number > 0, got {batch_interval}")
        self.state_delay = state_delay
        self.compat_e2k = compat_e2k
        self.batch_interval = batch_interval
        self.epoch = epoch
        self._committed: dict[str, ConnectorState] = {}
        self._windows: dict[str, _Window] = {}
        self._pending: dict[str, list[ConnectorState]] = {}  # compat_e2k batch
        self._batch_due: float | None = None
        self._diagnostics: list[DampenerDiagnostic] = []
        self.reports = 0
        self.minor_updates = 0
        self.suppressed = 0

    # ------------------------------------------------------------------------------------------------ queries

    def committed(self, connector_guid: str) -> ConnectorState:
        return self._committed.get(connector_guid, UP)

    def window_open(self, connector_guid: str) -> bool:
        return connector_guid in self._windows

    def next_deadline(self) -> float | None:
        if not self._windows:  # the common case, asked on every message
            return self._batch_due
        ends = [w.end for w in self._windows.values()]
        if self._batch_due is not None:
            ends.append(self._batch_due)
        return min(ends, default=None)

    def diagnostics(self) -> list[DampenerDiagnostic]:
        """Drain the diagnostics recorded since the last call."""
        out, self._diagnostics = self._diagnostics, []
        return out

    # ------------------------------------------------------------------------------------------------ inputs

    def seed(self, connector_guid: str, state: ConnectorState) -> None:
        """Start from `state` as committed, with nothing published as a change (a master rebuilding its states
        from evidence after a start, R130); any open window or queued report of the key is dropped."""
        self._committed[connector_guid] = state
        self._windows.pop(connector_guid, None)
        self._pending.pop(connector_guid, None)

    def report(self, connector_guid: str, state: ConnectorState, now: float) -> list[Commit]:
        """A member (or local queuing) reports a connector state at `now`."""
        self.reports += 1
        commits = self.on_timer(now)
        if self.compat_e2k:
            self._queue(connector_guid, state, now)
        elif self.state_delay == 0:
            commits.extend(self._commit_if_changed(connector_guid, state, now))
        else:
            commits.extend(self._windowed(connector_guid, state, now))
        return commits

    def on_timer(self, now: float) -> list[Commit]:
        """Close every window (and the E2K batch) due at or before `now`."""
        commits: list[Commit] = []
        due = sorted((w.end, guid) for guid, w in self._windows.items() if w.end <= now)
        for _, guid in due:
            commits.extend(self._close(guid, self._windows.pop(guid)))
        if self._batch_due is not None and self._batch_due <= now:
            commits.extend(self._flush_batch(self._batch_due))
        return commits

    # ------------------------------------------------------------------------------------------------ rules

    def _windowed(self, guid: str, state: ConnectorState, now: float) -> list[Commit]:
        window = self._windows.get(guid)
        if window is not None:
            if state is not window.last:
                window.changes += 1
                window.last = state
            return []
        if state is DOWN and self.committed(guid) is UP:
            self._windows[guid] = _Window(now, now + self.state_delay, DOWN, 1)
            self._diagnostics.append(WindowOpened(guid, now, now + self.state_delay))
            return []
        return self._commit_if_changed(guid, state, now)  # UP while DOWN: at once; otherwise nothing

    def _close(self, guid: str, window: _Window) -> list[Commit]:
        if window.changes >= 2:
            self.suppressed += 1
            self._diagnostics.append(OscillationSuppressed(guid, window.start, window.end, window.changes))
            return []
        return self._commit_if_changed(guid, window.last, window.end)

    def _queue(self, guid: str, state: ConnectorState, now: float) -> None:
        self._pending.setdefault(guid, []).append(state)
        if self._batch_due is None:
            k = math.floor((now - self.epoch) / self.batch_interval) + 1
            self._batch_due = self.epoch + k * self.batch_interval

    def _flush_batch(self, at: float) -> list[Commit]:
        commits: list[Commit] = []
        for guid, states in self._pending.items():
            for state in states:
                commits.extend(self._commit_if_changed(guid, state, at))
        self._pending.clear()
        self._batch_due = None
        return commits

    def _commit_if_changed(self, guid: str, state: ConnectorState, at: float) -> list[Commit]:
        previous = self.committed(guid)
        if state is previous:
            return []
        self._committed[guid] = state
        self.minor_updates += 1
        return [Commit(guid, state, previous, at)]


class LocalStateFilter:
    """SuppressStateChanges (G43, R123-R125) on a bridgehead, applied before any STATE report is sent.

    When `suppress_state_changes` is on, local state changes of connectors this node is a source bridgehead of
    are dropped: they are never reported nor advertised, and those connectors keep their last committed state
    (normally UP). Consequence (R124): no failover away from those connectors. Everything else (other servers'
    link state, merging, forwarding, the digest exchange) is unaffected: this filter sees only local changes.
    """

    def __init__(self, suppress_state_changes: bool = False, source_connectors: Iterable[str] = ()) -> None:
        self.suppress_state_changes = suppress_state_changes
        self.source_connectors = frozenset(source_connectors)
        self.dropped = 0

    def set_source_connectors(self, connectors: Iterable[str]) -> None:
        """After a topology change: the connectors this node is now a source bridgehead of."""
        self.source_connectors = frozenset(connectors)

    def admit(self, connector_guid: str) -> bool:
        """Whether a local state change of this connector may be reported."""
        if self.suppress_state_changes and connector_guid in self.source_connectors:
            self.dropped += 1
            return False
        return True
