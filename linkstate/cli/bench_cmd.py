"""`linkstate bench convergence …`: the convergence benchmark (linkstate.bench.convergence) from the command line.

Owns the command-line surface only: every argument after `convergence` goes to the benchmark's own parser
(`linkstate bench convergence run --help`).
May import: anything (CLI layer).
"""

from __future__ import annotations

import sys

import click

from linkstate.cli.common import HelpGroup


@click.group("bench", cls=HelpGroup)
def bench() -> None:
    """Benchmarks."""


@bench.command(
    "convergence",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def convergence(args: tuple[str, ...]) -> None:
    """Convergence after major/minor/user updates and oscillation, on sim, memory or loopback TCP.

    Arguments go to the benchmark: `run …`, `compare A.json B.json` (see `… convergence run --help`).
    """
    from linkstate.bench.convergence.cli import main  # the benchmark's imports only when it runs

    code = main(list(args) or ["--help"])
    if code:
        sys.exit(code)


def register(cli: click.Group) -> None:
    cli.add_command(bench)
