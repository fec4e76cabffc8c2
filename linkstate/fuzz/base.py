"""What a fuzz target is: `Target`, the `Finding` an invariant raises, and the documented waivers.

Owns: `Target` (a name, a one-input check, the module prefixes whose coverage counts, an optional
structure-aware mutator), `Finding` (an invariant that does not hold, as one line), `outcome` (a call's result
or its expected error, so two decoders can be compared), `splits` (a deterministic cut of a byte string into
pieces, drawn from a seed, so "any split" is part of the input), and `WAIVERS`: checks switched off by default
because the finding belongs to another open issue (see docs/FUZZING.md). `LINKSTATE_FUZZ_ENFORCE` (a comma list
of waiver names, or `all`) switches them on for a fuzzing run; a replay checks everything unless told to waive.
Invariants: a check either returns (the input is fine) or raises; `Finding` is the only exception a check
raises on purpose, anything else escaping it is a bug in the code under test.
May import: the standard library only (targets import the code under test lazily, see linkstate.fuzz).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ENFORCE_ENV = "LINKSTATE_FUZZ_ENFORCE"

# name -> what it waives and why; each is a known finding owned by another issue (never by a regression input)
WAIVERS: dict[str, str] = {}  # none open: issue 11 fixed rg691-string and rg691-banner (now regressions)


class Finding(AssertionError):
    """An invariant that does not hold for one input: `what` is one line."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def enforced(waiver: str) -> bool:
    """True when the check behind `waiver` runs (its name, or `all`, is in LINKSTATE_FUZZ_ENFORCE)."""
    names = {n.strip() for n in os.environ.get(ENFORCE_ENV, "").split(",")}
    return waiver in names or "all" in names


@contextlib.contextmanager
def enforcing(names: str) -> Iterator[None]:
    """Switch waived checks on (`all` or a comma list) for the duration of the block."""
    previous = os.environ.get(ENFORCE_ENV)
    os.environ[ENFORCE_ENV] = names
    try:
        yield
    finally:
        if previous is None:
            del os.environ[ENFORCE_ENV]
        else:
            os.environ[ENFORCE_ENV] = previous


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Finding(what)


Mutator = Callable[[bytes, int, random.Random], bytes | None]


@dataclass(frozen=True)
class Target:
    """One fuzz target: `check(data)` checks every invariant on one input."""

    name: str
    summary: str
    check: Callable[[bytes], None]
    instrument: tuple[str, ...]  # module prefixes whose coverage guides the fuzzer
    mutator: Mutator | None = None  # structure-aware; the engine mutates bytes when it returns None
    max_len: int = 4096


@dataclass(frozen=True, slots=True)
class Err:
    """An expected error, reduced to what two implementations must agree on."""

    kind: str
    detail: tuple[Any, ...]


def outcome(fn: Callable[[], Any], *expected: type[BaseException]) -> Any:
    """`fn()`'s result, or an `Err` when it raised one of `expected` (anything else propagates)."""
    try:
        return fn()
    except expected as exc:
        offset = getattr(exc, "offset", None)
        reason = getattr(exc, "reason", str(exc))
        return Err(type(exc).__name__, (offset, reason))


def splits(data: bytes, seed: int, max_pieces: int = 16) -> list[bytes]:
    """`data` cut at up to `max_pieces - 1` places drawn from `seed` (seed 0: one piece; 1: byte by byte)."""
    if seed == 0 or len(data) < 2:
        return [data]
    if seed == 1:
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, max_pieces - 1))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
