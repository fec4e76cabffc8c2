"""Fixtures of the netns tests: whether this machine can run them (root, Linux, pyroute2, a namespace can really
be created), a guard that every test leaves no namespace of its own behind, and `runs_cleaned`: whatever the CLI
runs of a test (`cluster up --netns`, `demo --netns`, with their state under the test's directory) left when the
test ended, passed or failed midway, is stopped by PID and removed by its namespace prefix.

The tests that build networks are skipped, with the reason, where namespaces cannot be made; the pure planning
tests always run. Every namespace a test makes starts with a fresh `ls-<hex>-` prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from linkstate.netns.enter import NetnsError
from linkstate.netns.plan import new_prefix
from tests.netns.cleanup import clean_runs

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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


_PASSED = pytest.StashKey[bool]()


@pytest.fixture
def runs_cleaned(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test's CLI runs keep their state under `tmp_path` (XDG_RUNTIME_DIR, and TMPDIR for the demo's work
    directory); on the way out, whatever they left runs no more and no namespace of theirs remains. A test that
    passed but left something fails."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    yield tmp_path
    left = clean_runs(tmp_path)
    if left and request.node.stash.get(_PASSED, False):
        pytest.fail(f"the test left behind (now removed): {', '.join(left)}")
