"""Mutation testing of the core's state machines (`make mutation`; not in CI): mutmut campaigns, one module at a time,
and the score of each against docs/TESTING.md.

Owns: the list of mutated modules (`MODULES`, in the order they run), running one bounded mutmut campaign per
module (`mutmut run "linkstate.core.<module>.*"`, its own process group, killed whole when the bound expires), and
the report: per module the mutants, those killed (a failing test or a timeout: a mutant that makes the core loop
forever in virtual time is caught that way), the survivors listed as equivalent in docs/TESTING.md, the survivors
not listed, and the score (killed / mutants). Exit status 1 when a module is under `TARGET` or has a survivor that
docs/TESTING.md does not account for, lists a mutant that no longer survives, or has a row judged on another mutant
of that name (each row carries the hash of the mutated function it was judged on: `mutant_hashes`), or a row that
looks like a mutant's but does not parse.
`--typecheck` applies each survivor alone to a copy of the source and runs the project's strict mypy on it (what
`make test` runs before any test): a survivor mypy rejects is *caught by mypy* (kept in mutants/typecheck.json with
mypy's first error, per module until its source changes) — counted apart from the killed ones, and needing no line
in docs/TESTING.md.
mutmut's own settings (what it copies, which tests it may run, timeouts) are in pyproject.toml, `[tool.mutmut]`;
its working copy is `mutants/` (git-ignored), refreshed when pyproject.toml changes.
Usage: python -m tests.mutation [--jobs N] [--bound SECONDS] [--report] [--show] [MODULE ...]
May import: the standard library (it drives mutmut as a program, never as a library).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).parent / "mutmut"
DOC = ROOT / "docs" / "TESTING.md"
LOG = ROOT / "mutants" / "campaigns.log"  # mutmut's own output, appended
MODULES = ("dampening", "quorum", "routes", "connstate", "lsdb", "member", "bridgehead", "master", "routing")
TARGET = 0.85
KILLED = {"killed", "timeout"}
TYPECHECK = ROOT / "mutants" / "typecheck.json"  # per module: its source hash, each survivor checked -> mypy's error
_MUTANT_CELL = re.compile(r"^\|\s*\w+\s*\|\s*`[^`]+__mutmut_\d+`\s*\|")
_EQUIVALENT_ROW = re.compile(r"^\|\s*(\w+)\s*\|\s*`([^`]+__mutmut_\d+)`\s*\|.*\|\s*(?:`([0-9a-f]{8})`)?\s*\|\s*$")


@dataclass
class Score:
    module: str
    statuses: dict[str, str] = field(default_factory=dict)  # short mutant name -> mutmut's status
    typed: set[str] = field(default_factory=set)  # survivors strict mypy rejects (--typecheck)
    stamps: dict[str, str | None] = field(default_factory=dict)  # docs/TESTING.md's rows: mutant -> hash judged on
    hashes: dict[str, str] = field(default_factory=dict)  # every mutant's hash now (`mutant_hashes`)

    @property
    def equivalent(self) -> set[str]:
        """Listed in docs/TESTING.md and judged on the mutant the name stands for now."""
        return judged(self.stamps, self.hashes)[0]

    @property
    def rejudge(self) -> dict[str, str]:
        """Listed, but the name stands for another mutant now (or the row has no hash) -> its hash now."""
        return judged(self.stamps, self.hashes)[1]

    @property
    def killed(self) -> int:
        return sum(s in KILLED for s in self.statuses.values())

    @property
    def caught_by_mypy(self) -> set[str]:
        return {m for m, s in self.statuses.items() if s not in KILLED and m in self.typed}

    @property
    def survivors(self) -> set[str]:
        return {m for m, s in self.statuses.items() if s not in KILLED and m not in self.typed}

    @property
    def unexplained(self) -> set[str]:
        """Survivors no row accounts for, or whose row was judged on another mutant of that name."""
        return self.survivors - self.equivalent

    @property
    def stale(self) -> set[str]:
        """Listed as equivalent, but killed now (or gone): the list must drop them."""
        return self.equivalent - self.survivors

    @property
    def score(self) -> float:
        """Caught: killed by a test, or rejected by strict mypy (`make test` fails either way)."""
        return (self.killed + len(self.caught_by_mypy)) / len(self.statuses) if self.statuses else 0.0

    @property
    def test_score(self) -> float:
        return self.killed / len(self.statuses) if self.statuses else 0.0

    @property
    def ok(self) -> bool:
        return self.score >= TARGET and not self.unexplained and not self.stale and not self.rejudge


def equivalents(doc: Path = DOC) -> dict[str, dict[str, str | None]]:
    """The equivalent mutants docs/TESTING.md lists, by module, each with the hash of the mutant it was judged on
    (rows `| module | `mutant` | mutation | why | `hash` |`; None where a row has none)."""
    listed: dict[str, dict[str, str | None]] = {}
    for line in doc.read_text().splitlines():
        m = _EQUIVALENT_ROW.match(line)
        if m:
            listed.setdefault(m.group(1), {})[m.group(2)] = m.group(3)
    return listed


def mutant_hashes(module: str, source: Path | None = None) -> dict[str, str]:
    """Each mutant of `module` -> the first 8 hex digits of the SHA-256 of its mutated function as mutmut wrote it
    in mutants/ (`ast.unparse`: comments and layout aside). mutmut numbers a function's mutants anew when the
    function changes, so a name can come to stand for another mutation: a row judged on one hash says nothing of
    another. Empty when mutants/ holds no copy of the module."""
    path = source or ROOT / "mutants" / "linkstate" / "core" / f"{module}.py"
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return {}
    return {node.name: hashlib.sha256(ast.unparse(node).encode()).hexdigest()[:8] for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name}  # fmt: skip


def judged(listed: dict[str, str | None], hashes: dict[str, str]) -> tuple[set[str], dict[str, str]]:
    """Split a module's rows into those that still name the mutant they were judged on (or cannot be checked: no
    copy in mutants/) and those whose mutant is another now (name -> the hash it has now)."""
    same, other = set(), {}
    for name, judged_on in listed.items():
        now = hashes.get(name)
        if now is None or judged_on == now:
            same.add(name)
        else:
            other[name] = now
    return same, other


def malformed_rows(doc: Path = DOC) -> list[str]:
    """Lines that name a mutant like an equivalent row but do not parse as one (a cell missing, the hash cell in
    another form): such a row would silently count for nothing."""
    return [line for line in doc.read_text().splitlines()
            if _MUTANT_CELL.match(line) and not _EQUIVALENT_ROW.match(line)]  # fmt: skip


def results() -> dict[str, dict[str, str]]:
    """mutmut's status of every mutant it knows, by module and short name."""
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    by_module: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name.startswith("linkstate.core."):
            module, _, short = name.removeprefix("linkstate.core.").partition(".")
            by_module.setdefault(module, {})[short] = status
    return by_module


def fresh_workdir() -> None:
    """mutmut keeps its copy in mutants/; a change of its settings (pyproject.toml) needs a new one."""
    stamp = ROOT / "mutants" / "mutmut-stats.json"
    if stamp.exists() and stamp.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime:
        shutil.rmtree(ROOT / "mutants")


def campaign(module: str, jobs: int, bound: float) -> bool:
    """One module's mutants, within `bound` seconds of wall time; False if the bound cut it short."""
    cmd = [str(MUTMUT), "run", "--max-children", str(jobs), f"linkstate.core.{module}.*"]
    started = time.monotonic()
    print(f"== {module}: {' '.join(cmd[1:])} (bound {bound:.0f} s)", flush=True)
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("a") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            print(f"   {module}: stopped at the bound", flush=True)
            return False
    outcome = "done" if proc.returncode == 0 else f"mutmut exited {proc.returncode}: see {LOG.relative_to(ROOT)}"
    print(f"   {module}: {outcome} in {time.monotonic() - started:.0f} s", flush=True)
    return proc.returncode == 0


def diff(mutant: str) -> str:
    """The changed lines of one mutant (`mutmut show`)."""
    shown = subprocess.run([str(MUTMUT), "show", mutant], cwd=ROOT, capture_output=True, text=True).stdout
    changed = [line for line in shown.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    return "\n".join("    " + line for line in changed)


def _source_hash(module: str) -> str:
    return hashlib.sha256((ROOT / "linkstate" / "core" / f"{module}.py").read_bytes()).hexdigest()


def _typecheck_record() -> dict[str, dict[str, Any]]:
    """mutants/typecheck.json: per module, the source it was checked against and, per survivor checked, mypy's first
    error or None. A module whose source changed since is dropped (mutmut reuses names for other mutations)."""
    try:
        record: dict[str, dict[str, Any]] = json.loads(TYPECHECK.read_text())
    except (OSError, ValueError):
        return {}
    return {m: r for m, r in record.items() if isinstance(r, dict) and r.get("source") == _source_hash(m)}


def typechecked() -> dict[str, set[str]]:
    """The survivors strict mypy rejects, by module (written by `--typecheck`)."""
    record = _typecheck_record()
    return {m: {short for short, error in r["checked"].items() if error} for m, r in record.items()}


def _sides(shown: str) -> tuple[str, str]:
    """The function before and after one mutant, from `mutmut show` (a diff of the function alone, dedented)."""
    body = [line for line in shown.splitlines()[1:] if not line.startswith(("---", "+++", "@@"))]
    old = "\n".join(line[1:] for line in body if line[:1] in " -")
    new = "\n".join(line[1:] for line in body if line[:1] in " +")
    return old, new


def _indented(text: str, indent: str) -> str:
    return "\n".join(indent + line if line else line for line in text.splitlines())


class NotApplied(Exception):
    """The mutant's function was not found in the source as `mutmut show` prints it (never counted as caught)."""


_STAMPS = itertools.count(int(time.time()) + 1)


def _write(path: Path, text: str) -> None:
    """Write a file of the mypy copy with a modification time no earlier write had: mypy's incremental cache trusts
    a file whose size and whole-second mtime match its record, and two mutants of the same length written within
    one second (`False` -> `None`, then `False` -> `True`) would otherwise be answered from the first's check."""
    path.write_text(text)
    stamp = next(_STAMPS)
    os.utime(path, (stamp, stamp))


def mypy_error(mutant: str, work: Path) -> str | None:
    """Apply one mutant to the copy in `work` and run strict mypy there: its first error, or None (it type-checks).
    Raises NotApplied when the function is not found as shown."""
    module = mutant.removeprefix("linkstate.core.").partition(".")[0]
    shown = subprocess.run([str(MUTMUT), "show", mutant], cwd=ROOT, capture_output=True, text=True).stdout
    try:
        return checked_error(work, work / "linkstate" / "core" / f"{module}.py", *_sides(shown))
    except NotApplied:
        raise NotApplied(mutant) from None


def checked_error(work: Path, path: Path, old: str, new: str) -> str | None:
    """Replace the function `old` by `new` in `path` (a file of the copy in `work`), run strict mypy there, put the
    file back: mypy's first error, or None. Raises NotApplied when `old` is not in the file."""
    source = path.read_text()
    for indent in ("    ", ""):
        if _indented(old, indent) in source:
            _write(path, source.replace(_indented(old, indent), _indented(new, indent), 1))
            break
    else:
        raise NotApplied(str(path))
    try:
        done = subprocess.run([str(MUTMUT.parent / "mypy"), "--no-error-summary", str(path.relative_to(work))],
                              cwd=work, capture_output=True, text=True)  # fmt: skip
    finally:
        _write(path, source)
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    return errors[0] if done.returncode != 0 and errors else None


def typecheck(modules: list[str]) -> None:
    """Run `mypy_error` for every survivor of `modules` not yet checked against the module's current source."""
    record, statuses = _typecheck_record(), results()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for part in ("linkstate", "proto"):
            shutil.copytree(ROOT / part, work / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", work)
        for module in modules:
            checked = record.setdefault(module, {"source": _source_hash(module), "checked": {}})["checked"]
            for short, status in sorted(statuses.get(module, {}).items(), key=lambda kv: _natural(kv[0])):
                if status in KILLED or status == "not checked" or short in checked:
                    continue
                name = f"linkstate.core.{module}.{short}"
                try:
                    checked[short] = error = mypy_error(name, work)
                except NotApplied:
                    print(f"not applied     {name}: its function is not in the source as mutmut shows it", flush=True)
                    continue
                print(f"{'caught by mypy' if error else 'type-checks   '}  {name}", flush=True)
                TYPECHECK.write_text(json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False))


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("_")
    return stem, int(number) if number.isdigit() else 0


def report(modules: list[str], show: bool = False) -> list[Score]:
    statuses, listed, typed = results(), equivalents(), typechecked()
    scores = [Score(m, statuses.get(m, {}), typed.get(m, set()), listed.get(m, {}), mutant_hashes(m)) for m in modules]
    print("\n| module | mutants | killed by a test | caught by mypy | survived, equivalent | survived, unexplained "
          "| score (tests only) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in scores:
        explained = len(s.survivors & s.equivalent)
        print(f"| {s.module} | {len(s.statuses)} | {s.killed} | {len(s.caught_by_mypy)} | {explained} "
              f"| {len(s.unexplained)} | {s.score:.1%} ({s.test_score:.1%}) |")
    for s in scores:
        for name in sorted(s.unexplained, key=_natural):
            if name in s.rejudge and s.stamps.get(name) is None:
                print(f"{s.module}: {s.statuses[name]}, its row in docs/TESTING.md has no hash: {name}; judge it, "
                      f"then give the row `{s.rejudge[name]}`")
            elif name in s.rejudge:
                print(f"{s.module}: {s.statuses[name]}, its row in docs/TESTING.md was judged on another mutant of "
                      f"that name (its function changed): {name}; judge it again (its hash now: `{s.rejudge[name]}`)")
            else:
                print(f"{s.module}: {s.statuses[name]}, not in docs/TESTING.md: {name}")
            if show and s.statuses[name] != "not checked":
                print(diff(f"linkstate.core.{s.module}.{name}").rstrip("\n") + f"\n    (hash for its row: "
                      f"`{s.hashes.get(name, '?')}`)")
        for name in sorted(set(s.rejudge) - s.survivors, key=_natural):
            print(f"{s.module}: listed as equivalent in docs/TESTING.md, but that name is another mutant now, "
                  f"which does not survive: drop the row {name}")
        for name in sorted(s.stale):
            print(f"{s.module}: listed as equivalent in docs/TESTING.md but no longer survives: {name}")
        if s.score < TARGET:
            print(f"{s.module}: score {s.score:.1%} is under the target {TARGET:.0%}")
    for line in malformed_rows():
        print(f"docs/TESTING.md: a row naming a mutant does not parse (five cells, the last its hash): {line}")
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"of linkstate.core (default: all of {MODULES})")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--bound", type=float, default=7200, help="wall-clock seconds per module (default 7200)")
    parser.add_argument("--report", action="store_true", help="report the last results, run nothing")
    parser.add_argument("--show", action="store_true", help="print the diff of each survivor not accounted for")
    parser.add_argument("--typecheck", action="store_true",
                        help="check each survivor with strict mypy (applied alone to a copy of the source)")
    args = parser.parse_args(argv)
    modules = list(args.modules) or list(MODULES)
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        parser.error(f"not a mutated module: {', '.join(unknown)} (choose from {', '.join(MODULES)})")
    if not args.report and not args.typecheck:
        fresh_workdir()
        for module in modules:
            campaign(module, args.jobs, args.bound)
    if args.typecheck:
        typecheck(modules)
    scores = report(modules, args.show)
    return 0 if all(s.ok for s in scores) and not malformed_rows() else 1


if __name__ == "__main__":
    sys.exit(main())
