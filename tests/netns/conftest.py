"""Fixtures of the netns tests: whether this machine can run them (root, Linux, pyroute2, a namespace can really
be created), and a guard that every test leaves no namespace of its own behind.

The tests that build networks are skipped, with the reason, where namespaces cannot be made; the pure planning
tests always run. Every namespace a test makes starts with a fresh `ls-<hex>-` prefix.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from linkstate.netns.enter import NetnsError
from linkstate.netns.plan import new_prefix

_verdict: str | bool | None = False  # False: not probed yet; None: supported; str: why not


def netns_unavailable() -> str | None:
    """Why netns tests cannot run here (probed once: a namespace is created and removed)."""
    global _verdict
    if _verdict is not False:
        return _verdict  # type: ignore[return-value]
    from linkstate.netns import fabric

    reason = fabric.unsupported()
    if reason is None:
        probe = new_prefix() + "probe"
        try:
            fabric.create(probe)
            fabric.remove([probe])
        except (OSError, NetnsError) as exc:
            reason = f"cannot create a network namespace here: {exc}"
    _verdict = reason
    return reason


@pytest.fixture
def netns_ok() -> None:
    """Skips the test, with the reason, where network namespaces cannot be made."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"netns tests need root and network namespaces: {reason}")


@pytest.fixture
def netns_prefix(netns_ok: None) -> Iterator[str]:
    """A fresh run prefix; fails the test if it left a namespace with it behind (and removes them)."""
    from linkstate.netns import fabric

    prefix = new_prefix()
    yield prefix
    left = fabric.leftovers(prefix)
    if left:
        fabric.remove(left)
        pytest.fail(f"the test left namespaces behind: {left}")
