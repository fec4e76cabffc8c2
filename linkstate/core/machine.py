"""The shape the core's session state machines share: `(state, input) -> (action, {outcome: next state})`.

Owns: `Outcome` (what an action reports about how its step went), the `Table` type, and reading a table as a
graph (`edges`, `reachable`), so that a test, or a diagram, sees every edge and every state without running the
machine (linkstate.core.session691, linkstate.core.link2state_session).
Invariants: an action never sets its machine's state: it does its work and returns an Outcome, and the table says
where that outcome leads (h11's rule: a conditional result is part of the key). A dispatcher takes the next state
from the table and from nowhere else; an outcome the table does not list for that pair is a bug.
May import: the standard library.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar


class Outcome(enum.Enum):
    """How one step of a session went (the part of a transition the action decides)."""

    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    OK = "ok"  # the step did what the input asked
    ERROR = "error"  # answered with an error reply that counts against the session's error budget
    TOO_MANY_ERRORS = "too-many-errors"  # that error spent the budget: the session closes
    REFUSED = "refused"  # the peer was refused (a failed proof, a size or recipient limit)
    FAILED = "failed"  # the session failed and ends
    SENDING = "sending"  # our packet's chunks continue
    RECEIVING = "receiving"  # the peer's chunks continue
    DONE = "done"  # the X-LINK2STATE dialogue ended well
    WINDOW = "window"  # a WINDOW= request went first: its reply comes before the rest (docs/PROTOCOL.md §3.11)
    DELTA = "delta"  # a delta round began: the peer's buckets come next
    FULL = "full"  # the seed's full exchange follows (the delta's last resort)
    CHECK = "check"  # the peer's sections are taken: the check waits until they are merged
    PUSH = "push"  # our changed sections went first (PUSH=): the peer's MOREs and 200 Done come next
    KEPT = "kept"  # the dialogue ended well and the session stays open for the next one


StateT = TypeVar("StateT", bound=enum.Enum)
InputT = TypeVar("InputT", bound=enum.Enum)
ActionT = TypeVar("ActionT")

Table = dict[tuple[StateT, InputT], tuple[ActionT, Mapping[Outcome, StateT]]]


def edges(table: Table[StateT, InputT, ActionT]) -> Iterator[tuple[StateT, InputT, Outcome, StateT]]:
    """Every transition the table allows: (state, input, outcome, next state)."""
    for (state, inp), (_, outcomes) in table.items():
        for outcome, target in outcomes.items():
            yield state, inp, outcome, target


def reachable(table: Table[StateT, InputT, ActionT], start: Iterable[StateT]) -> set[StateT]:
    """The states reachable from `start` by following the table's edges alone."""
    seen = set(start)
    frontier = list(seen)
    successors: dict[StateT, set[StateT]] = {}
    for state, _, _, target in edges(table):
        successors.setdefault(state, set()).add(target)
    while frontier:
        for target in successors.get(frontier.pop(), ()):
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen
