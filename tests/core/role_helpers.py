"""Test support for driving one part of a node (a role, the quorum watch, the connector states, the route answers)
through its own API: the node's real read context, and an outbox that records what the part asked for.

May import: anything (tests).
"""

from __future__ import annotations

from collections.abc import Iterable

from linkstate.core import events as ev
from linkstate.core.context import NodeContext, Outbox
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.topology import Topology
from proto import rg691
from proto.sectioncache import SectionCache


def context(topo: Topology, me: str, *, draw: float = 0.5) -> NodeContext:
    """Server `me`'s context on the directory's own table; `draw` is every random draw (backoff jitter)."""
    return NodeContext(
        topology=topo,
        me=topo.server(me),
        lsdb=LinkStateDB.from_topology(topo),
        nonce=lambda: "0" * 32,
        rand=lambda: draw,
        sections=SectionCache(),
    )


class RecordingOutbox(Outbox):
    """An outbox whose 691 connections need no session: every message, table and delta a part sends is recorded
    in `sent` as (conn, message, "TABLE" or ("DELTA", the sections' GUIDs)), in order; everything else goes out as
    usual (`take()`)."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.sent: list[tuple[int | None, rg691.Message | str | tuple[str, tuple[str, ...]]]] = []

    def send(self, conn: int, msg: rg691.Message) -> None:
        self.sent.append((conn, msg))

    def send_table(self, conn: int) -> None:
        self.sent.append((conn, "TABLE"))

    def send_delta(self, conn: int, guids: Iterable[str]) -> None:
        self.sent.append((conn, ("DELTA", tuple(guids))))

    def taken(self, kind: type) -> list[object]:
        """The outputs of one kind (ev.Diagnostic, ev.Close, ev.Connect, ev.TableChanged) since the last call."""
        return [o for o in self.take() if isinstance(o, kind)]

    def diags(self) -> list[tuple[str, dict[str, object]]]:
        return [(d.event, d.fields) for d in self.taken(ev.Diagnostic)]  # type: ignore[attr-defined]
