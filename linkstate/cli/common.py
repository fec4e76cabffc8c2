"""Shared CLI plumbing: reading inputs, one-line errors, JSON output.

Owns: the rule that a user never sees a traceback: every failure is one line `error: <reason>` on stderr and
exit code 2 (bad input) or 1 (the operation failed).
May import: click, the standard library, proto, linkstate.core.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from linkstate.core.topology import file_error

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class CliError(click.ClickException):
    """A user-facing failure: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click's class default is 1; ours varies per error

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class HelpGroup(click.Group):
    """A command group that prints its help and exits 0 when called with nothing after it (`linkstate`,
    `linkstate cluster`), instead of a usage error."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    raise CliError(message, code)


MAX_INPUT_BYTES = 64 * 1024 * 1024  # an OrgInfo frame is at most 16 MiB; its JSON form a few times that


def read_input(path: str) -> bytes:
    """Bytes of FILE, or of standard input for `-`; at most MAX_INPUT_BYTES (`/dev/zero` is an error, not a
    process that fills its memory)."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read {path}: {file_error(exc)}")
    if len(data) > MAX_INPUT_BYTES:
        fail(f"cannot read {'standard input' if path == '-' else path}: larger than "
             f"{MAX_INPUT_BYTES // (1024 * 1024)} MiB (an OrgInfo frame is at most 16 MiB)")  # fmt: skip
    return data


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))
