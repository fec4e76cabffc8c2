"""The mutation tool's own checks: each survivor is judged by mypy on its own source (`--typecheck`), never by what
mypy's cache remembers of the survivor checked before it; an equivalent row counts only for the mutant it was judged
on (its hash), never for another mutation mutmut later gave the same name.

Owns: tests of tests/mutation.py's `checked_error`, `_write`, `equivalents`, `mutant_hashes`, `judged` and `Score`,
on throw-away files.
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


def test_the_mutant_and_the_restored_source_are_both_written_with_their_own_time(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the machine's speed: `checked_error` writes through `_write` (which stamps the time), once for the
    mutant and once to put the source back."""
    written: list[str] = []
    real = mutation._write

    def spy(path: Path, text: str) -> None:
        written.append(text)
        real(path, text)

    monkeypatch.setattr(mutation, "_write", spy)
    mutation.checked_error(project, project / "pkg" / "m.py", FUNCTION, FUNCTION.replace("lost = False", "lost = True"))
    assert written == [SOURCE.replace("lost = False", "lost = True"), SOURCE]


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


MUTANTS = '''
def x_f__mutmut_1(a: int) -> int:
    return a - 1  # a comment


class C:
    def xǁCǁg__mutmut_2(self) -> int:
        return 2


def helper() -> None:
    pass
'''


def test_each_mutant_is_known_by_a_hash_of_its_mutated_function(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(MUTANTS)
    hashes = mutation.mutant_hashes("m", path)
    assert set(hashes) == {"x_f__mutmut_1", "xǁCǁg__mutmut_2"} and all(len(h) == 8 for h in hashes.values())
    path.write_text(MUTANTS.replace("  # a comment", "").replace("    return a", "    return (a)"))
    assert mutation.mutant_hashes("m", path) == hashes  # comments and layout aside
    path.write_text(MUTANTS.replace("a - 1", "a + 1"))  # mutmut numbered the function's mutants anew
    changed = mutation.mutant_hashes("m", path)
    assert changed["x_f__mutmut_1"] != hashes["x_f__mutmut_1"]
    assert changed["xǁCǁg__mutmut_2"] == hashes["xǁCǁg__mutmut_2"]
    assert mutation.mutant_hashes("m", tmp_path / "absent.py") == {}


def test_a_row_counts_only_for_the_mutant_it_was_judged_on(tmp_path: Path) -> None:
    doc = tmp_path / "TESTING.md"
    doc.write_text(
        "| module | mutant | mutation | why it cannot be killed | judged on |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| routing | `x_f__mutmut_1` | `a - 1` → `a + 1` | why | `0123abcd` |\n"
        "| routing | `x_f__mutmut_2` | `b` → `c` | why, with `deadbeef` in it |  |\n"
        "| master | `xǁCǁg__mutmut_2` | `2` → `3` | why | `89abcdef` |\n"
        "| master | `x_h__mutmut_1` | a row of four cells | why |\n"
    )
    listed = mutation.equivalents(doc)
    assert listed == {"routing": {"x_f__mutmut_1": "0123abcd", "x_f__mutmut_2": None},
                      "master": {"xǁCǁg__mutmut_2": "89abcdef"}}  # fmt: skip
    same, other = mutation.judged(listed["routing"], {"x_f__mutmut_1": "0123abcd", "x_f__mutmut_2": "ffff0000"})
    assert (same, other) == ({"x_f__mutmut_1"}, {"x_f__mutmut_2": "ffff0000"})  # no hash: judged on nothing known
    assert mutation.judged(listed["master"], {}) == ({"xǁCǁg__mutmut_2"}, {})  # no copy in mutants/: not checked
    assert mutation.malformed_rows(doc) == ["| master | `x_h__mutmut_1` | a row of four cells | why |"]
    statuses = {"x_f__mutmut_1": "survived", "x_f__mutmut_2": "survived"} | {f"k{i}": "killed" for i in range(20)}
    now = {"x_f__mutmut_1": "0123abcd", "x_f__mutmut_2": "ffff0000"}
    score = mutation.Score("routing", statuses, set(), listed["routing"], now)
    assert score.score > mutation.TARGET and score.unexplained == {"x_f__mutmut_2"} and not score.ok
    assert mutation.Score("routing", statuses, set(), listed["routing"] | {"x_f__mutmut_2": "ffff0000"}, now).ok
