"""Running targets: atheris/libFuzzer worker processes, the hypothesis fallback, replay, and the mutator comparison.

Owns: `Options` (time, runs, corpus, jobs, dictionary, findings directory, seed, mutator on/off), `run` (picks
the engine: atheris when importable, else hypothesis, and says which), `run_atheris` (N worker processes over
one shared corpus directory, their libFuzzer status lines parsed into `Stats`, progress printed while they
run, every crash file reported with a one-line reproduction command), `run_hypothesis` (the same target and
invariants driven by hypothesis from the seed corpus through the same mutators, the shrunk failing input
written as a crash file), `replay` (re-run files or directories; the target is named by the directory or the
file name prefix), `compare_mutators` (edges covered in the same time with and without the structure-aware
mutator) and where the committed corpora live (`FUZZ_DIR`).
Invariants: processes this module starts are its own children, stopped by PID; a run never writes into the
committed seed corpus (new inputs go to the working corpus, `.fuzz/<target>/corpus` unless --corpus says).
May import: the standard library, linkstate.fuzz (the engines on demand: atheris, hypothesis).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from linkstate.fuzz import targets
from linkstate.fuzz.base import Finding, Target, enforcing

FUZZ_DIR = Path(__file__).resolve().parent.parent.parent / "fuzz"  # the committed corpora (a source checkout)
WORK_DIR = Path(".fuzz")
MAX_DICT_BYTES = 1024 * 1024  # libFuzzer dictionaries are a few KiB
_STATUS = re.compile(r"#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+.*?exec/s: (\d+)")
_WRITTEN = re.compile(r"Test unit written to (\S+)")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")

Echo = Callable[[str], None]


class EngineError(Exception):
    """A run that cannot start (no engine, a bad path); one line for the user."""


@dataclass(frozen=True)
class Options:
    time: float = 60.0
    runs: int | None = None
    corpus: Path | None = None  # the working corpus (new inputs are written here)
    jobs: int = 1
    dict_path: Path | None = None
    findings: Path = WORK_DIR / "findings"
    seed: int | None = None
    structured: bool = True
    engine: str = "auto"  # auto | atheris | hypothesis
    max_len: int | None = None  # the target's own when None
    timeout: int = 10  # seconds one input may take before it is a finding


@dataclass
class Stats:
    """What one run measured (summed over jobs)."""

    target: str
    engine: str
    structured: bool
    seconds: float = 0.0  # wall clock, the workers' start-up (instrumenting, reading the corpus) included
    execs: int = 0
    coverage: int | None = None  # libFuzzer's `cov:` (edges of the code under test); None on hypothesis
    features: int | None = None
    corpus: int = 0
    findings: list[tuple[Path, str]] = field(default_factory=list)
    note: str = ""

    @property
    def execs_per_s(self) -> float:
        return self.execs / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        cov = "n/a (hypothesis measures no coverage)" if self.coverage is None else f"{self.coverage} edges"
        ft = "" if self.features is None else f", {self.features} features"
        mut = "structure-aware + byte" if self.structured else "byte only"
        return (
            f"{self.target}: {self.engine}, {mut} mutations, {self.seconds:.0f} s, {self.execs:,} executions "
            f"({self.execs_per_s:,.0f}/s), coverage {cov}{ft}, corpus {self.corpus}, findings {len(self.findings)}"
        )


# ------------------------------------------------------------------------------------------------ paths


def seed_dir(target: str) -> Path:
    return FUZZ_DIR / "corpus" / target


def default_dict(target: str) -> Path | None:
    path = FUZZ_DIR / "dicts" / f"{target}.dict"
    return path if path.is_file() else None


def repro_command(path: Path) -> str:
    return f"linkstate fuzz replay {path}"


def have_atheris() -> bool:
    return importlib.util.find_spec("atheris") is not None


def pick_engine(requested: str) -> tuple[str, str]:
    """(engine, why) for `auto`, `atheris` or `hypothesis`."""
    if requested == "hypothesis":
        return "hypothesis", "asked for"
    if have_atheris():
        return "atheris", "libFuzzer, coverage-guided"
    if requested == "atheris":
        raise EngineError("atheris is not installed: pip install 'linkstate[fuzz]' (Linux, CPython 3.11-3.14)")
    if importlib.util.find_spec("hypothesis") is None:
        raise EngineError("neither atheris nor hypothesis is installed: pip install 'linkstate[fuzz]'")
    return "hypothesis", "atheris is not installed (no wheel for this platform?): same targets, no coverage"


def run(target: str, opts: Options, echo: Echo) -> Stats:
    engine, why = pick_engine(opts.engine)
    echo(f"fuzzing {target} with {engine} ({why})")
    if engine == "atheris":
        return run_atheris(target, opts, echo)
    return run_hypothesis(target, opts, echo)


# ------------------------------------------------------------------------------------------------ atheris


@dataclass
class _Job:
    proc: subprocess.Popen[bytes]
    log: Path
    offset: int = 0
    status: tuple[int, int, int, int, int] | None = None  # execs, cov, ft, corpus, exec/s
    stats: dict[str, int] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def poll_log(self) -> None:
        with self.log.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        cut = chunk.rfind(b"\n") + 1
        self.offset += cut
        for line in chunk[:cut].decode("utf-8", "replace").splitlines():
            self._parse(line)

    def _parse(self, line: str) -> None:
        if m := _STATUS.search(line):
            self.status = (int(m[1]), int(m[3]), int(m[4]), int(m[5]), int(m[6]))
        elif m := _WRITTEN.search(line):
            self.written.append(Path(m[1]))
        elif m := _STAT.search(line):
            self.stats[m[1]] = int(m[2])
        elif line.startswith(("Finding: ", "==", "AssertionError", "Traceback")) or "Error:" in line:
            self.errors.append(line.strip())


def _worker_command(target: str, opts: Options, corpus: Path, job: int) -> list[str]:
    args = [
        str(corpus),
        *([str(seed_dir(target))] if seed_dir(target).is_dir() else []),
        f"-max_len={opts.max_len or targets.MAX_LEN[target]}",
        f"-timeout={opts.timeout}",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={opts.findings}/{target}-",
    ]
    if opts.time:
        args.append(f"-max_total_time={max(1, int(opts.time))}")
    if opts.runs is not None:
        args.append(f"-runs={opts.runs}")
    dictionary = opts.dict_path or default_dict(target)
    if dictionary is not None:
        args.append(f"-dict={dictionary}")
    if opts.seed is not None:
        args.append(f"-seed={opts.seed + job}")
    mode = "--structured" if opts.structured else "--bytes"
    return [sys.executable, "-m", "linkstate.fuzz.worker", target, mode, "--", *args]


def run_atheris(target: str, opts: Options, echo: Echo) -> Stats:
    corpus = opts.corpus or WORK_DIR / target / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    opts.findings.mkdir(parents=True, exist_ok=True)
    logs = corpus.with_name(corpus.name + ".logs")  # beside the corpus: runs on other corpora never share logs
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    jobs = [_start_job(target, opts, corpus, i, logs) for i in range(max(1, opts.jobs))]
    try:
        _watch(jobs, target, started, echo)
    finally:
        for job in jobs:
            _stop(job.proc)
    structured = opts.structured and targets.has_mutator(target)
    stats = Stats(target, "atheris", structured, seconds=time.monotonic() - started)
    for job in jobs:
        job.poll_log()
        _collect(stats, job)
    stats.corpus = sum(1 for _ in corpus.iterdir())
    for path, reason in stats.findings:
        echo(f"FINDING {target}: {reason}\n  written to {path}\n  reproduce: {repro_command(path)}")
    failed = [j for j in jobs if j.proc.returncode not in (0, None) and not j.written]
    if failed and not stats.execs:
        tail = (failed[0].errors or ["(no output)"])[-1]
        raise EngineError(f"the {target} worker failed to start: {tail} (log: {failed[0].log})")
    return stats


def _start_job(target: str, opts: Options, corpus: Path, i: int, logs: Path) -> _Job:
    log = logs / f"job{i}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(_worker_command(target, opts, corpus, i), stdout=out, stderr=subprocess.STDOUT)
    return _Job(proc, log)


def _watch(jobs: list[_Job], target: str, started: float, echo: Echo) -> None:
    next_report = started + 10
    while any(j.proc.poll() is None for j in jobs):
        time.sleep(0.5)
        for job in jobs:
            job.poll_log()
        if any(j.written for j in jobs):
            return  # the first finding stops every job
        if time.monotonic() >= next_report:
            next_report += 10
            done = [j.status for j in jobs if j.status]
            if done:
                execs = sum(s[0] for s in done)
                elapsed = time.monotonic() - started
                echo(f"  {target} {elapsed:5.0f} s  {execs:,} execs  {execs / elapsed:,.0f}/s  "
                     f"cov {max(s[1] for s in done)}  corpus {max(s[3] for s in done)}")  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _collect(stats: Stats, job: _Job) -> None:
    execs = job.stats.get("number_of_executed_units") or (job.status[0] if job.status else 0)
    stats.execs += execs
    if job.status:
        stats.coverage = max(stats.coverage or 0, job.status[1])
        stats.features = max(stats.features or 0, job.status[2])
    for path in job.written:
        stats.findings.append((path, _reason(job.errors)))


def _reason(errors: list[str]) -> str:
    """The one line that names a finding: the invariant, else the exception, else libFuzzer's own verdict."""
    for pick in (
        lambda e: e.startswith("Finding: "),
        lambda e: re.match(r"[\w.]+(Error|Exception|Exit|Interrupt)\b.*:", e) is not None,
        lambda e: "ERROR: libFuzzer:" in e,
    ):
        found = [e for e in errors if pick(e)]
        if found:
            return found[-1].split("ERROR: ", 1)[-1] if "ERROR: libFuzzer:" in found[-1] else found[-1]
    return "uncaught exception"


# ------------------------------------------------------------------------------------------------ hypothesis


def corpus_files(*dirs: Path | None) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        if d is not None and d.is_dir():
            files.extend(sorted(p for p in d.rglob("*") if p.is_file()))
    return files


_DICT_LINE = re.compile(r'\s*(?:\w+\s*=\s*)?"(.*)"\s*$')


def check_dict(path: Path) -> None:
    """EngineError naming the first line of `path` that is not a libFuzzer dictionary entry (`name="value"` or
    `"value"`, blank lines and `#` comments), as libFuzzer would refuse it at start-up ("(no output)" before)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_DICT_BYTES + 1)
    except OSError as exc:
        raise EngineError(f"cannot read --dict {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_DICT_BYTES:
        raise EngineError(f"--dict {path} is not a dictionary: larger than {MAX_DICT_BYTES // 1024} KiB")
    for number, line in enumerate(data.decode("latin-1").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#") and not _DICT_LINE.match(line):
            raise EngineError(f"--dict {path} is not a libFuzzer dictionary: line {number} is not "
                              f'name="value" or "value"')  # fmt: skip


def read_dict(path: Path | None) -> tuple[bytes, ...]:
    """The tokens of a libFuzzer dictionary (`name="value"` lines, `\\xNN` and `\\"` escapes)."""
    if path is None or not path.is_file():
        return ()
    tokens = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _DICT_LINE.match(line)
        if m and not line.lstrip().startswith("#"):
            tokens.append(m[1].encode("latin-1", "replace").decode("unicode_escape").encode("latin-1"))
    return tuple(tokens)


def run_hypothesis(target: str, opts: Options, echo: Echo) -> Stats:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from linkstate.fuzz import mutate

    tgt = targets.load(target, structured=opts.structured)
    seeds = [p.read_bytes() for p in corpus_files(opts.corpus, seed_dir(target))] or [b""]
    tokens = read_dict(opts.dict_path or default_dict(target))
    stats = Stats(target, "hypothesis", tgt.mutator is not None, note="atheris not used: no coverage guidance")
    failing: list[bytes] = []

    def derive(pick: tuple[int, int, int]) -> bytes:
        index, rounds, seed = pick
        rng = random.Random(seed)
        data = seeds[index % len(seeds)]
        for _ in range(rounds):
            out = tgt.mutator(data, tgt.max_len, rng) if tgt.mutator and rng.random() < 0.6 else None
            data = out if out is not None else mutate.byte_mutate(data, tgt.max_len, rng, tokens)
        return data

    inputs = st.one_of(
        st.tuples(st.integers(0, 1 << 16), st.integers(0, 8), st.integers(0, 1 << 32)).map(derive),
        st.binary(max_size=256),
    )

    def body(data: bytes) -> None:
        stats.execs += 1
        try:
            tgt.check(data)
        except BaseException:
            failing.append(data)
            raise

    started = time.monotonic()
    batch = 0
    while time.monotonic() - started < opts.time and (opts.runs is None or stats.execs < opts.runs):
        batch += 1
        count = 200 if opts.runs is None else max(1, min(200, opts.runs - stats.execs))
        test = settings(
            max_examples=count,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )(given(inputs)(body))
        try:
            test()
        except Exception as exc:  # the shrunk failure: hypothesis re-raised it from the minimal example
            path = write_finding(opts.findings, target, failing[-1] if failing else b"")
            stats.findings.append((path, _one_line(exc)))
            break
    stats.seconds = time.monotonic() - started
    for path, reason in stats.findings:
        echo(f"FINDING {target}: {reason}\n  written to {path}\n  reproduce: {repro_command(path)}")
    return stats


def write_finding(findings: Path, target: str, data: bytes) -> Path:
    findings.mkdir(parents=True, exist_ok=True)
    path = findings / f"{target}-crash-{hashlib.sha1(data, usedforsecurity=False).hexdigest()}"
    path.write_bytes(data)
    return path


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, Finding):
        return f"Finding: {exc.what}"
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text[:200]}"


# ------------------------------------------------------------------------------------------------ replay


@dataclass(frozen=True, slots=True)
class Verdict:
    path: Path
    target: str
    ok: bool
    reason: str = ""
    seconds: float = 0.0


def target_of(path: Path) -> str | None:
    """The target a corpus or crash file belongs to: its directory's name or its `<target>-` prefix."""
    for part in reversed(path.parts[:-1]):
        if part in targets.TARGETS:
            return part
    head = path.name.split("-", 1)[0]
    return head if head in targets.TARGETS else None


def replay_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            yield path
        elif path.exists():
            raise EngineError(f"not a regular file or a directory: {path}")
        else:
            raise EngineError(f"no such file or directory: {path}")


def replay(
    paths: list[Path], target: str | None = None, timeout: float | None = None, *, waive: bool = False
) -> Iterator[Verdict]:
    """Check every file under `paths` with its target; a file slower than `timeout` seconds fails too.

    Every check runs, the waived ones included (a known finding fails its replay), unless `waive` is set.
    """
    loaded: dict[str, Target] = {}
    for path in replay_files(paths):
        name = target or target_of(path)
        if name is None:
            raise EngineError(f"cannot tell which target {path} is for: use --target ({', '.join(targets.TARGETS)})")
        tgt = loaded.setdefault(name, targets.load(name, structured=False))
        if waive:
            yield _replay_one(tgt, path, timeout)
            continue
        with enforcing("all"):
            yield _replay_one(tgt, path, timeout)


def _replay_one(tgt: Target, path: Path, timeout: float | None) -> Verdict:
    data = path.read_bytes()
    started = time.monotonic()
    try:
        with _deadline(timeout):
            tgt.check(data)
    except _Timeout:
        return Verdict(path, tgt.name, False, f"took over {timeout:g} s", time.monotonic() - started)
    except Exception as exc:
        return Verdict(path, tgt.name, False, _one_line(exc), time.monotonic() - started)
    return Verdict(path, tgt.name, True, "", time.monotonic() - started)


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    if not seconds or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------------ compare


def compare_mutators(target: str, opts: Options, echo: Echo) -> tuple[Stats, Stats]:
    """The same time and seed with and without the structure-aware mutator, each from the seed corpus only."""
    results = []
    for structured in (False, True):
        corpus = WORK_DIR / target / ("compare-structured" if structured else "compare-bytes")
        if corpus.exists():
            for old in corpus.iterdir():
                old.unlink()
        stats = run_atheris(target, replace(opts, structured=structured, corpus=corpus, jobs=1), echo)
        echo("  " + stats.line())
        results.append(stats)
    return results[0], results[1]


def env_with_enforce(names: str | None) -> None:
    """Switch waived checks on for this process and its workers (base.ENFORCE_ENV)."""
    if names:
        from linkstate.fuzz.base import ENFORCE_ENV

        os.environ[ENFORCE_ENV] = names
