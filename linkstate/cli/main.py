"""The `linkstate` entry point: a click group with one sub-module per command group.

Owns: registration of command groups and the last-resort guard that turns any unexpected exception into one
line on stderr (exit 1) instead of a traceback.
May import: anything in the project.
"""

from __future__ import annotations

import sys

import click

from linkstate import __version__
from linkstate.cli import common


@click.group(cls=common.HelpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="linkstate")
def cli() -> None:
    """linkstate: the Exchange link-state routing engine, re-implemented (OrgInfo, TCP 691, X-LINK2STATE)."""


def _register() -> None:
    import importlib

    commands = ("orginfo", "topology", "route", "node", "ops", "netns", "events", "bench", "fuzz")
    for name in (f"{c}_cmd" for c in commands):
        try:
            module = importlib.import_module(f"linkstate.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"linkstate.cli.{name}":
                raise
            continue
        module.register(cli)


_register()


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="linkstate")
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(common.EXIT_BAD_INPUT)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the last guard: no traceback reaches a user
        click.echo(f"error: internal: {type(exc).__name__}: {exc}", err=True)
        sys.exit(common.EXIT_FAILED)
    sys.exit(0)


if __name__ == "__main__":
    main()
