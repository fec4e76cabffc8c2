"""`linkstate events`: the event catalog (every event a node logs, its ID, level and fields).

Owns the command-line surface of linkstate.core.catalog: one line per event (by ID), `--json`, or `--markdown`
(the text of docs/EVENTS.md).
May import: anything (CLI layer).
"""

from __future__ import annotations

import click

from linkstate.cli.common import fail, print_json
from linkstate.core.catalog import CATALOG, markdown


@click.command("events")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--markdown", "as_markdown", is_flag=True, help="docs/EVENTS.md, generated.")
def events(as_json: bool, as_markdown: bool) -> None:
    """Every event a node logs: its event ID, level and fields (docs/EVENTS.md)."""
    if as_json and as_markdown:
        fail("give --json or --markdown, not both")
    rows = sorted(CATALOG.items(), key=lambda item: item[1].event_id)
    if as_markdown:
        click.echo(markdown(), nl=False)
    elif as_json:
        print_json([
            {"event": ev.value, "event_id": spec.event_id, "level": spec.level, "quiet_level": spec.quiet,
             "fields": list(spec.fields), "meaning": spec.meaning}
            for ev, spec in rows
        ])  # fmt: skip
    else:
        for ev, spec in rows:
            level = f"{spec.level}/{spec.quiet}" if spec.quiet else spec.level
            click.echo(f"{spec.event_id:>5}  {level:<12}  {ev.value:<26}  {', '.join(spec.fields)}".rstrip())


def register(cli: click.Group) -> None:
    cli.add_command(events)
