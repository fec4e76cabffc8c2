"""`linkstate fuzz …`: fuzz the parsers and session machines, replay findings, compare mutators, fuzz a live node.

Owns the command-line surface of linkstate.fuzz:
  linkstate fuzz TARGET [--time S] [--runs N] [--corpus DIR] [--jobs N] [--dict FILE] [--engine E] [--no-mutator]
  linkstate fuzz all [--time S]                     every target in turn (what `make fuzz` runs)
  linkstate fuzz replay FILE|DIR… [--target T]      re-run crash files or corpora; exit 1 if any fails
  linkstate fuzz --compare-mutators [--target T]… [--time S]   edges covered with and without the
                                                    structure-aware mutator, in the same time
  linkstate fuzz node HOST[:PORT] --topology FILE [--i-own-this-target HOST] [--batches N] [--time S]
  linkstate fuzz seeds [DIR]                        rewrite the committed seed corpora and dictionaries
Exit codes: 0 no finding, 1 a finding (or a failed replay), 2 bad input.
May import: anything (CLI layer).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from linkstate.cli import netns_cmd
from linkstate.cli.cluster import Cluster
from linkstate.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, fail
from linkstate.core.topology import Topology
from linkstate.fuzz import engine
from linkstate.fuzz.base import ENFORCE_ENV, WAIVERS
from linkstate.fuzz.targets import TARGETS

T = TypeVar("T")
_TIME = click.option("--time", "seconds", type=float, default=60.0, show_default=True, help="Seconds to fuzz.")


def _enforce_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--enforce",
        metavar="NAMES",
        help=f"Switch waived checks on (comma list or 'all'; known: {', '.join(WAIVERS)}); see docs/FUZZING.md.",
    )(fn)


def _apply_enforce(names: str | None) -> None:
    if names:
        unknown = [n for n in names.split(",") if n.strip() not in (*WAIVERS, "all")]
        if unknown:
            known = f"known are {', '.join(WAIVERS)} (or 'all')" if WAIVERS else "no check is waived now (only 'all')"
            fail(f"unknown waiver {unknown[0]!r}: {known}")
        os.environ[ENFORCE_ENV] = names


@click.group("fuzz", invoke_without_command=True)
@click.option("--compare-mutators", is_flag=True, help="Coverage with and without the structure-aware mutator.")
@click.option("--target", "compare_targets", multiple=True, type=click.Choice(["orginfo", "rg691"]),
              help="With --compare-mutators: which targets (default both).")  # fmt: skip
@_TIME
@click.option("--seed", type=int, default=1, show_default=True, help="libFuzzer seed (the same for both runs).")
@click.pass_context
def fuzz(
    ctx: click.Context, compare_mutators: bool, compare_targets: tuple[str, ...], seconds: float, seed: int
) -> None:
    """Coverage-guided fuzzing (atheris/libFuzzer; hypothesis without it). Targets: orginfo, rg691, smtp, topology."""
    if ctx.invoked_subcommand is not None:
        if compare_mutators:
            fail(f"--compare-mutators runs on its own: name its targets with --target (orginfo, rg691), not "
                 f"'{ctx.invoked_subcommand}'")  # fmt: skip
        return
    if not compare_mutators:
        click.echo(ctx.get_help())
        return
    _check_time(seconds)
    if not engine.have_atheris():
        fail("--compare-mutators measures libFuzzer coverage: install atheris (pip install 'linkstate[fuzz]')",
             EXIT_FAILED)  # fmt: skip
    rows = []
    for name in compare_targets or ("orginfo", "rg691"):
        click.echo(f"{name}: {seconds:g} s without, then {seconds:g} s with the structure-aware mutator (seed {seed})")
        opts = _opts(seconds, seed=seed)
        plain, structured = _guarded(functools.partial(engine.compare_mutators, name, opts, click.echo))
        rows.append((name, plain, structured))
    click.echo("")
    click.echo(f"{'target':10} {'edges, bytes only':>18} {'edges, structure-aware':>23}   execs/s (bytes / struct)")
    for name, plain, structured in rows:
        click.echo(f"{name:10} {plain.coverage or 0:>18} {structured.coverage or 0:>23} "
                   f"{plain.execs_per_s:>12,.0f} / {structured.execs_per_s:,.0f}")  # fmt: skip


def _check_time(seconds: float) -> None:
    if not (seconds > 0 and math.isfinite(seconds)):
        fail(f"--time must be a positive number of seconds, got {seconds:g}")


def _check_directory(option: str, path: Path | None) -> None:
    """A directory the fuzzer writes to: absent (it is made) or a directory."""
    if path is not None and path.exists() and not path.is_dir():
        fail(f"{option} {path} is not a directory")


def _opts(seconds: float, **kw: object) -> engine.Options:
    return engine.Options(time=seconds, **kw)  # type: ignore[arg-type]


def _guarded(call: Callable[[], T]) -> T:
    try:
        return call()
    except engine.EngineError as exc:
        fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_FAILED)


def _run_options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed([
        _TIME,
        click.option("--runs", type=click.IntRange(min=1), help="Stop after this many executions."),
        click.option("--corpus", type=click.Path(file_okay=False, path_type=Path),
                     help="Working corpus (new inputs go here; default .fuzz/TARGET/corpus)."),
        click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Parallel workers."),
        click.option("--dict", "dict_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help="libFuzzer dictionary (default fuzz/dicts/TARGET.dict)."),
        click.option("--engine", "engine_name", type=click.Choice(["auto", "atheris", "hypothesis"]), default="auto",
                     show_default=True, help="auto = atheris when installed, else hypothesis."),
        click.option("--no-mutator", is_flag=True, help="Byte mutations only (no structure-aware mutator)."),
        click.option("--findings", type=click.Path(file_okay=False, path_type=Path), default=Path(".fuzz/findings"),
                     show_default=True, help="Where crash files are written."),
        click.option("--seed", type=int, help="Random seed (reproducible runs)."),
        _enforce_option,
    ]):  # fmt: skip
        fn = option(fn)
    return fn


def _run(
    target: str, seconds: float, runs: int | None, corpus: Path | None, jobs: int, dict_path: Path | None,
    engine_name: str, no_mutator: bool, findings: Path, seed: int | None, enforce: str | None,
) -> bool:  # fmt: skip
    _check_time(seconds)
    _check_directory("--corpus", corpus)
    _check_directory("--findings", findings)
    if dict_path is not None:
        try:
            engine.check_dict(dict_path)
        except engine.EngineError as exc:
            fail(str(exc))
    _apply_enforce(enforce)
    opts = engine.Options(time=seconds, runs=runs, corpus=corpus, jobs=jobs, dict_path=dict_path, findings=findings,
                          seed=seed, structured=not no_mutator, engine=engine_name)  # fmt: skip
    stats = _guarded(lambda: engine.run(target, opts, click.echo))
    click.echo(stats.line())
    return not stats.findings


def _target_command(name: str) -> click.Command:
    @click.command(name, help=f"Fuzz {TARGETS[name]}.")
    @_run_options
    def command(**kw: object) -> None:
        if not _run(name, **kw):  # type: ignore[arg-type]
            raise SystemExit(EXIT_FAILED)

    return command


for _name in TARGETS:
    fuzz.add_command(_target_command(_name))


@fuzz.command("all")
@_run_options
def fuzz_all(**kw: object) -> None:
    """Every target in turn, each for --time seconds (what `make fuzz` runs)."""
    failed = [name for name in TARGETS if not _run(name, **kw)]  # type: ignore[arg-type]
    if failed:
        click.echo(f"findings in: {', '.join(failed)}", err=True)
        raise SystemExit(EXIT_FAILED)


@fuzz.command("replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--target", type=click.Choice(list(TARGETS)), help="The target (default: from the path).")
@click.option("--timeout", type=click.FloatRange(min=0, max=86400), default=10.0, show_default=True,
              help="Seconds one input may take (0: none).")  # fmt: skip
@click.option("--quiet", is_flag=True, help="Print failures and the summary only.")
@click.option("--waive", is_flag=True, help="Apply the documented waivers (default: every check runs).")
def replay(paths: tuple[Path, ...], target: str | None, timeout: float, quiet: bool, waive: bool) -> None:
    """Re-run crash files or whole corpus directories through every check of their target."""
    passed = failed = 0
    try:
        for v in engine.replay(list(paths), target, timeout or None, waive=waive):
            if v.ok:
                passed += 1
                if not quiet:
                    click.echo(f"ok    {v.target:8} {v.path}  ({v.seconds * 1000:.0f} ms)")
            else:
                failed += 1
                click.echo(f"FAIL  {v.target:8} {v.path}: {v.reason}")
    except engine.EngineError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {exc.filename}: {exc.strerror or exc}")
    click.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise SystemExit(EXIT_FAILED)


@fuzz.command("seeds")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def seeds(directory: Path | None) -> None:
    """Rewrite the seed corpora and dictionaries (default: the checkout's fuzz/ directory)."""
    from linkstate.fuzz import seeds as seeds_module

    for name, count in seeds_module.write(directory or engine.FUZZ_DIR).items():
        click.echo(f"{name}: {count} seeds")


@fuzz.command("node")
@click.argument("target", metavar="HOST[:PORT]")
@click.option("--topology", "topology_file", required=True, type=click.Path(dir_okay=False),
              help="The organization's topology (its secret; server names; ports).")  # fmt: skip
@click.option("--smtp-port", type=click.IntRange(1, 65535), help="The node's SMTP port (default: from the file).")
@click.option("--i-own-this-target", "owned", multiple=True, metavar="HOST",
              help="Allow this non-loopback host (only a node you own).")  # fmt: skip
@click.option("--batches", type=click.IntRange(min=1), default=20, show_default=True, help="Batches to send.")
@click.option("--batch-size", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Connections per batch.")  # fmt: skip
@_TIME
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--findings", type=click.Path(file_okay=False, path_type=Path), default=Path(".fuzz/findings"),
              show_default=True, help="Where a failing batch is written.")  # fmt: skip
@click.option("--replay", "replay_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Send a written batch again instead of fuzzing.")  # fmt: skip
def node(target: str, topology_file: str, smtp_port: int | None, owned: tuple[str, ...], batches: int,
         batch_size: int, seconds: float, seed: int, findings: Path, replay_file: Path | None) -> None:  # fmt: skip
    """Fuzz a running node over TCP 691 and SMTP; after each batch it must answer DUMP with a valid table."""
    from linkstate.cli.node_cmd import _target
    from linkstate.core.topology import TopologyError
    from linkstate.fuzz import live
    from linkstate.service.topofile import load_topology

    _check_time(seconds)
    try:
        topo = load_topology(topology_file)
    except TopologyError as exc:
        fail(str(exc).splitlines()[0])
    host, port = _target(target, topo, topology_file)  # a server name, and a running cluster's ports, work too
    smtp = smtp_port or _smtp_port(topo, topology_file, host, port)
    ns = netns_cmd.query_namespace(topology_file, host)  # a node of a netns run on this machine: fuzzed in there
    try:
        address = host if ns is not None else live.allowed_target(host, owned)
    except live.LiveError as exc:
        fail(str(exc))
    plan = live.Plan(address, port, smtp, topo.secret, topo, batches, batch_size, seconds, seed, findings)
    try:
        if replay_file is not None:
            problem = netns_cmd.run_in(ns, live.replay_batch, plan, live.read_batch(replay_file))
            click.echo(f"FAIL  {problem}" if problem else "ok    the node answers DUMP and its table is valid")
            if problem:
                raise SystemExit(EXIT_FAILED)
            return
        report = netns_cmd.run_in(ns, live.run, plan, click.echo)
    except live.LiveError as exc:
        fail(str(exc), EXIT_FAILED)
    click.echo(f"{report.batches} batches, {report.connections} connections, {report.bytes_sent:,} bytes sent")
    if report.failure:
        click.echo(f"FINDING node {host}:{port}: {report.failure}\n  written to {report.written}\n  reproduce: "
                   f"linkstate fuzz node {target} --topology {topology_file} --replay {report.written}")  # fmt: skip
        raise SystemExit(EXIT_FAILED)


def _smtp_port(topo: Topology, topology_file: str, host: str, port: int) -> int | None:
    """The SMTP port of the node listening on host:port 691 (a running cluster's record, else the file's)."""
    state = Cluster(Path(topology_file)).state()
    for record in state.servers.values() if state is not None else ():
        if (record.host, record.port) == (host, port):
            return record.port_smtp
    for s in topo.servers:
        if (s.address or "127.0.0.1", s.port_691 or 691) == (host, port):
            return s.port_smtp or 25
    return None


def register(cli: click.Group) -> None:
    cli.add_command(fuzz)


__all__ = ["EXIT_BAD_INPUT", "register"]
