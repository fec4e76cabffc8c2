"""The node's log: every line is an event of the catalog (linkstate.core.catalog), written through structlog.

Owns: `EventLog`, what the service writes its own events with (`emit`) and the core's Diagnostics (`diagnostic`):
each line gets its `event_id` from the catalog, its level from the catalog (or the Diagnostic's, which the core
took from the catalog), and its fields with every `Instant` (a moment on the core's clock, trio's) written as a
wall-clock ISO-8601 UTC time.
Invariants: an event that is not in the catalog cannot be written (TypeError; mypy refuses it before); no raw
monotonic time reaches a line.
May import: the standard library, trio, structlog, linkstate.core.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
import trio

from linkstate.core import events as ev
from linkstate.core.catalog import CATALOG, Ev, Level


class EventLog:
    """Writes one node's events (module docstring). `clock` is the clock of the core's `now` (trio's), `wall`
    the wall clock; an Instant `t` is written as `wall() - (clock() - t)`."""

    def __init__(
        self,
        log: structlog.typing.FilteringBoundLogger,
        *,
        clock: Callable[[], float] = trio.current_time,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.clock = clock
        self.wall = wall

    def emit(self, event: Ev, *, quiet: bool = False, **fields: object) -> None:
        """A service event (`quiet`: the catalog's quieter level for it)."""
        if not isinstance(event, Ev):
            raise TypeError(f"not an event of the catalog: {event!r}")
        self._write(event, CATALOG[event].level_for(quiet), fields)

    def diagnostic(self, d: ev.Diagnostic) -> None:
        """A Diagnostic of the core."""
        self._write(d.event, d.level, d.fields)

    def _write(self, event: Ev, level: Level, fields: Mapping[str, Any]) -> None:
        line = {name: self._plain(value) for name, value in fields.items()}
        getattr(self.log, level)(event.value, event_id=CATALOG[event].event_id, **line)

    def _plain(self, value: object) -> object:
        if isinstance(value, ev.Instant):
            return self.iso(value)
        return value

    def iso(self, instant: ev.Instant) -> str:
        """The wall-clock time of a moment on the core's clock, ISO-8601 UTC to the millisecond."""
        at = self.wall() - (self.clock() - instant.t)
        stamp = datetime.datetime.fromtimestamp(at, datetime.UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
