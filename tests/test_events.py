"""The event catalog (linkstate/core/catalog.py, docs/EVENTS.md) against the code.

Every call that logs (`Outbox.diag` in the core, `EventLog.emit` in the service and the CLI) is read from the source
(parsed, not executed): its event must be a member of the catalog (`Ev.NAME`, or a conditional between two) and
its keywords among that event's fields; no module logs around the catalog; every event of the catalog is logged
somewhere. IDs are unique, Exchange's own seven keep their numbers, every other is in the private range under its
area. docs/EVENTS.md is the catalog's text. At run time an unregistered name is refused, and an `Instant` is
written as a wall-clock ISO-8601 time.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from linkstate.cli.main import cli
from linkstate.core import events as ev
from linkstate.core.catalog import CATALOG, EXCHANGE_IDS, FIELDS, PRIVATE_RANGE, Ev, markdown
from linkstate.core.context import Outbox
from linkstate.service.eventlog import EventLog

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(ROOT.joinpath("linkstate").rglob("*.py"))
LOGGING_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "msg"}


def _log_calls() -> Iterator[tuple[str, ast.Call]]:
    """Every `….diag(…)` and `….emit(…)` call of the package, with where it is."""
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(node, ast.Call) and isinstance(func, ast.Attribute) and func.attr in ("diag", "emit"):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node


def _events(expr: ast.expr) -> list[str] | None:
    """The catalog names an event argument can take: `Ev.NAME`, or `Ev.A if … else Ev.B` (None: anything else)."""
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "Ev":
        return [expr.attr]
    if isinstance(expr, ast.IfExp):
        body, orelse = _events(expr.body), _events(expr.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


CALLS = list(_log_calls())


def test_the_calls_were_found() -> None:
    assert len(CALLS) > 50


@pytest.mark.parametrize(("where", "call"), CALLS, ids=[w for w, _ in CALLS])
def test_every_logged_event_is_in_the_catalog_with_its_fields(where: str, call: ast.Call) -> None:
    assert call.args, f"{where}: no event"
    names = _events(call.args[0])
    assert names, f"{where}: write the event Ev.NAME (or a conditional of two), not {ast.unparse(call.args[0])}"
    assert len(call.args) == 1, f"{where}: fields are keywords"
    keywords = {k.arg for k in call.keywords}
    assert None not in keywords, f"{where}: no **fields: the test must see every field"
    for name in names:
        assert name in Ev.__members__, f"{where}: Ev.{name} is not in the catalog"
        spec = CATALOG[Ev[name]]
        unknown = keywords - {"quiet"} - set(spec.fields)
        assert not unknown, f"{where}: {Ev[name].value} has no field(s) {sorted(unknown)} (catalog: {spec.fields})"
        if "quiet" in keywords:
            assert spec.quiet is not None, f"{where}: {Ev[name].value} has no quiet level"


def test_every_event_of_the_catalog_is_logged_somewhere() -> None:
    used = {name for _, call in CALLS for name in _events(call.args[0]) or []}
    assert set(Ev.__members__) - used == set()


def test_nothing_logs_around_the_catalog() -> None:
    """No structlog call (`log.info(…)`, `self.log.warning(…)`) outside the one writer, linkstate.service.eventlog."""
    found = []
    for path in SOURCES:
        if path.name == "eventlog.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr in LOGGING_METHODS:
                owner = func.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if "log" in name.lower():
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node.func)}")
    assert found == []


def test_ids_are_unique_and_in_their_ranges() -> None:
    ids = [spec.event_id for spec in CATALOG.values()]
    assert len(ids) == len(set(ids))
    assert set(CATALOG) == set(Ev)
    assert sorted(i for i in ids if i not in PRIVATE_RANGE) == sorted(EXCHANGE_IDS)
    areas = {  # the hundred of each event's area (catalog docstring)
        "node_started": 300, "listening": 300, "master_started": 301, "attached": 302, "session_failed": 303,
        "bridgehead_session_failed": 304, "orginfo_applied": 305, "fault_injected": 306, "metrics_unavailable": 307,
    }  # fmt: skip
    for name, area in areas.items():
        assert CATALOG[Ev(name)].event_id // 100 == area
    exchange = {e.value: s.event_id for e, s in CATALOG.items() if s.event_id in EXCHANGE_IDS}
    assert exchange == {
        "topology_rejected": 929, "master_relinquished": 958, "auth_failed": 961, "client_auth_failed": 962,
        "authenticated": 995, "client_authenticated": 996, "reset_routes": 4005,
    }  # fmt: skip


def test_the_events_the_issue_named_have_ids_and_authentication_successes_are_debug() -> None:
    for name in ("fault_injected", "tombstone_injected", "master_unreachable", "member_detached", "orginfo_applied",
                 "bridgehead_session_failed", "oscillation_suppressed"):  # fmt: skip
        assert CATALOG[Ev(name)].event_id in PRIVATE_RANGE
    assert CATALOG[Ev.AUTHENTICATED].level == CATALOG[Ev.CLIENT_AUTHENTICATED].level == "debug"


def test_every_field_has_a_meaning() -> None:
    used = {f for spec in CATALOG.values() for f in spec.fields}
    assert used == set(FIELDS)


def test_docs_events_md_is_the_catalog() -> None:
    """docs/EVENTS.md is generated: `linkstate events --markdown > docs/EVENTS.md`."""
    assert ROOT.joinpath("docs", "EVENTS.md").read_text() == markdown()


def test_the_events_command_lists_the_catalog_in_each_form() -> None:
    run = CliRunner().invoke
    ids = sorted(spec.event_id for spec in CATALOG.values())
    plain = run(cli, ["events"])
    assert plain.exit_code == 0 and [int(line.split()[0]) for line in plain.output.splitlines()] == ids
    assert "  929  error         topology_rejected           problems, first, reason\n" in plain.output
    as_json = run(cli, ["events", "--json"])
    rows = json.loads(as_json.output)
    assert as_json.exit_code == 0 and [r["event_id"] for r in rows] == ids
    assert {r["event"]: (r["level"], tuple(r["fields"])) for r in rows} == {
        e.value: (spec.level, spec.fields) for e, spec in CATALOG.items()
    }
    as_markdown = run(cli, ["events", "--markdown"])
    assert as_markdown.exit_code == 0 and as_markdown.output == ROOT.joinpath("docs", "EVENTS.md").read_text()
    both = run(cli, ["events", "--json", "--markdown"])
    assert (both.exit_code, both.output) == (2, "error: give --json or --markdown, not both\n")


# --- at run time --------------------------------------------------------------------------------------------


def test_an_unregistered_event_cannot_be_emitted() -> None:
    with pytest.raises(TypeError, match="not an event of the catalog"):
        ev.Diagnostic("made_up")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an event of the catalog"):
        ev.Diagnostic("authenticated")  # type: ignore[arg-type]  # the name of one, but not the catalog's member
    with pytest.raises(KeyError):
        Outbox(None).diag("made_up")  # type: ignore[arg-type]
    log = EventLog(_Recorder(), clock=lambda: 0.0, wall=lambda: 0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an event of the catalog"):
        log.emit("listening")  # type: ignore[arg-type]


class _Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))


def test_lines_carry_the_catalog_s_id_and_level_and_wall_clock_times() -> None:
    rec = _Recorder()
    log = EventLog(rec, clock=lambda: 1000.0, wall=lambda: 1_700_000_000.0)  # type: ignore[arg-type]
    window = {"window_start": ev.Instant(400.0), "window_end": ev.Instant(1000.0)}
    log.diagnostic(ev.Diagnostic(Ev.OSCILLATION_SUPPRESSED, "warning", {"connector": "C", "changes": 3, **window}))
    log.emit(Ev.MASTER_UNREACHABLE, quiet=True, master="M", reason="r", attempt=2, retry_in_s=1.0)
    log.emit(Ev.MASTER_UNREACHABLE, master="M", reason="r", attempt=1, retry_in_s=1.0)
    assert rec.lines[0] == ("warning", "oscillation_suppressed", {
        "event_id": 30505, "connector": "C", "changes": 3,
        "window_start": "2023-11-14T22:03:20.000Z", "window_end": "2023-11-14T22:13:20.000Z",
    })  # fmt: skip
    assert [(level, fields["event_id"]) for level, _, fields in rec.lines[1:]] == [("info", 30202), ("warning", 30202)]
