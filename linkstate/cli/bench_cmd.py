"""`linkstate bench convergence …`: the convergence benchmark (bench/convergence.py) from the command line.

Owns the command-line surface only: every argument after `convergence` goes to the script's own parser
(`linkstate bench convergence run --help`). The benchmark lives in the source tree's bench/ directory, which is
not part of an installed wheel: from an install without it the command says so.
May import: anything (CLI layer).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import click

from linkstate.cli.common import EXIT_FAILED, HelpGroup, fail

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "convergence.py"


def load_benchmark(path: Path = SCRIPT) -> ModuleType:
    """bench/convergence.py as a module (it is a script, not part of the package)."""
    if not path.is_file():
        fail(f"the benchmark is not here: {path} (run it from a source checkout)", EXIT_FAILED)
    spec = importlib.util.spec_from_file_location("linkstate_bench_convergence", path)
    if spec is None or spec.loader is None:
        fail(f"cannot load {path}", EXIT_FAILED)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


@click.group("bench", cls=HelpGroup)
def bench() -> None:
    """Benchmarks (from a source checkout)."""


@bench.command(
    "convergence",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def convergence(args: tuple[str, ...]) -> None:
    """Convergence after major/minor/user updates and oscillation, on sim, memory or loopback TCP.

    Arguments go to bench/convergence.py: `run …`, `compare A.json B.json` (see `… convergence run --help`).
    """
    module = load_benchmark()
    code = module.main(list(args) or ["--help"])
    if code:
        sys.exit(code)


def register(cli: click.Group) -> None:
    cli.add_command(bench)
