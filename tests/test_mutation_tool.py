"""The mutation tool's own type check (`python -m tests.mutation --typecheck`): each survivor is judged by mypy on
its own source, never by what mypy's cache remembers of the survivor checked before it.

Owns: tests of tests/mutation.py's `checked_error` and `_write` on a throw-away two-function project.
May import: tests.mutation, the standard library, pytest.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests import mutation

FUNCTION = textwrap.dedent(
    """\
    def f() -> bool:
        lost = False
        return usable(False) or lost"""
)
SOURCE = "def usable(flag: bool) -> bool:\n    return flag\n\n\n" + FUNCTION + "\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.mypy]\npython_version = "3.11"\nstrict = true\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(SOURCE)
    return tmp_path


def test_two_mutants_of_one_length_are_each_checked_on_their_own(project: Path) -> None:
    """`False` -> `None` (mypy rejects it) then `False` -> `True` (it type-checks): same file size, checked within
    a second of each other. With mypy's cache keyed on size and whole-second mtime, the second was once reported
    with the first's error (a survivor counted as caught by mypy)."""
    path = project / "pkg" / "m.py"
    rejected = FUNCTION.replace("usable(False)", "usable(None)")
    accepted = FUNCTION.replace("lost = False", "lost = True")
    assert len(rejected) == len(accepted)
    first = mutation.checked_error(project, path, FUNCTION, rejected)
    assert first is not None and 'incompatible type "None"' in first
    assert mutation.checked_error(project, path, FUNCTION, accepted) is None
    assert mutation.checked_error(project, path, FUNCTION, rejected) == first
    assert path.read_text() == SOURCE


def test_each_write_of_the_copy_gets_a_modification_time_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    stamps = set()
    for text in ("a = 1\n", "a = 2\n", "a = 1\n"):
        mutation._write(path, text)
        stamps.add(int(path.stat().st_mtime))
    assert len(stamps) == 3


def test_a_function_not_in_the_file_is_said_not_applied(project: Path) -> None:
    with pytest.raises(mutation.NotApplied):
        mutation.checked_error(project, project / "pkg" / "m.py", "def g() -> None:\n    pass", "def g() -> None: ...")
