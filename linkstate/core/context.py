"""What the roles and the bridgehead see of their node: a read context and an outbox.

Owns: `NodeContext` (who am I, my group, the topology and its settings, the link-state table, the nonce and random
sources, the decode cache the node's sessions share) and `Outbox` (the node's 691 connections and everything a part
asks to be done: a 691 message, the whole table or some of its sections on a connection, raw SMTP bytes, a connect, a
diagnostic, a table-change record; and facts (linkstate.core.facts) for `NodeCore` to route), with the node's
traffic counters.
Invariants: a role, the bridgehead or the operator module reads its node only through the context and acts only
through the outbox: it never calls `NodeCore` or another part, and nothing writes its attributes from outside.
Only `NodeCore` replaces the context's topology (a directory reload). A 691 message is queued on its connection's
session and leaves with the node's next outputs; a close first flushes what that connection has queued.
May import: the standard library, proto, linkstate.core (never node.py, the roles or the bridgehead).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from linkstate.core import events as ev
from linkstate.core.catalog import CATALOG, Ev
from linkstate.core.facts import Fact, TableBumped
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.session691 import Session691
from linkstate.core.topology import RoutingGroupSpec, ServerSpec, Settings, Topology
from proto import rg691
from proto.errors import EncodeError
from proto.sectioncache import SectionCache

DEFAULT_SMTP_PORT = 25
DEFAULT_691_PORT = 691


@dataclass(kw_only=True)
class NodeContext:
    """The node as its parts may read it. `topology` and `me` change only on a directory reload (by NodeCore)."""

    topology: Topology
    me: ServerSpec
    lsdb: LinkStateDB
    nonce: Callable[[], str]
    rand: Callable[[], float]
    sections: SectionCache
    version: str = "0.1.0"

    @property
    def rg(self) -> RoutingGroupSpec:
        return self.topology.group_of(self.me.name)

    @property
    def settings(self) -> Settings:
        return self.topology.settings

    def server_name(self, guid: str) -> str:
        spec = self.topology.server_by_guid(guid)
        return spec.name if spec else guid

    def connector_name(self, guid: str) -> str:
        spec = self.topology.connector_by_guid(guid)
        return spec.name if spec else guid


@dataclass
class Conn691:
    """One 691 connection of the node: its session and where it came from."""

    session: Session691
    inbound: bool
    peer: str | None = None
    peer_host: str = ""


@dataclass
class Counters:
    """Traffic and event counts, for status views and benchmarks."""

    frames_out: Counter[str] = field(default_factory=Counter)
    frames_in: int = 0  # 691 frames received after authentication
    bytes_out: int = 0
    bytes_in: int = 0
    table_changes: Counter[str] = field(default_factory=Counter)


class Outbox:
    """The node's output side, shared by its parts: outputs in the order they were asked for, facts for NodeCore.

    Sends on 691 connections are queued on the sessions and collected by `take()`; every other output (raw SMTP
    bytes, connects, closes, diagnostics, table changes) is appended at once, so the outputs of one input keep the
    order of the requests that made them."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.conns: dict[int, Conn691] = {}
        self.counters = Counters()
        self._out: list[ev.Output] = []
        self._facts: list[Fact] = []

    # --- requests --------------------------------------------------------------------------------------

    def diag(self, event: Ev, *, quiet: bool = False, **fields: object) -> None:
        """Log `event` (the catalog gives its ID and level; `quiet`: its quieter level, where the catalog has one)."""
        self._out.append(ev.Diagnostic(event, CATALOG[event].level_for(quiet), dict(fields)))

    def send(self, conn: int, msg: rg691.Message) -> None:
        c = self.conns.get(conn)
        if c is None:
            return
        try:
            c.session.send(msg)
        except EncodeError as exc:  # a bug on our side: never let it take the node down
            self.diag(Ev.ENCODE_FAILED, reason=str(exc))
            return
        self.counters.frames_out[type(msg).__name__] += 1

    def send_table(self, conn: int) -> None:
        """The table as its own Send of the table's cached frame, after what the session has queued: every connection
        the same table goes to shares one bytes object, so a peer that asks for it again and again costs no memory
        (docs/SECURITY.md)."""
        c = self.conns.get(conn)
        if c is not None and c.session.authenticated:
            self._flush(conn, c)
            frame = self.ctx.lsdb.frame()
            self.counters.bytes_out += len(frame)
            self._out.append(ev.Send(conn, frame))
            self.counters.frames_out["OrgInfoFrame"] += 1

    def send_delta(self, conn: int, guids: Iterable[str]) -> None:
        """Only these sections, and the digest of the whole table after them (`DELTA`, docs/PROTOCOL.md §2.5)."""
        c = self.conns.get(conn)
        if c is not None and c.session.authenticated:
            lsdb = self.ctx.lsdb
            c.session.send_raw(rg691.delta_frame(lsdb.digest, lsdb.sections_frame(guids)))
            self.counters.frames_out["Delta"] += 1

    def send_bytes(self, conn: int, data: bytes) -> None:
        """Raw bytes on a connection the node does not frame itself (SMTP)."""
        self.counters.bytes_out += len(data)
        self._out.append(ev.Send(conn, data))

    def close(self, conn: int, reason: str) -> None:
        c = self.conns.pop(conn, None)
        if c is not None:
            self._flush(conn, c)
        self._out.append(ev.Close(conn, reason))

    def connect(self, peer: str, proto: ev.Proto = ev.Proto.RG691, tag: str = "") -> None:
        spec = self.ctx.topology.server(peer)
        smtp = proto is ev.Proto.SMTP
        port = (spec.port_smtp or DEFAULT_SMTP_PORT) if smtp else (spec.port_691 or DEFAULT_691_PORT)
        self._out.append(ev.Connect(peer, spec.address or "127.0.0.1", port, proto, tag))

    def connect_to(self, host: str, port: int, proto: ev.Proto, tag: str = "") -> None:
        """A connection to a host that is not a server of the organization (a smart host, a next-hop MTA); its
        `peer` is `host:port`."""
        self._out.append(ev.Connect(f"{host}:{port}", host, port, proto, tag))

    def table_changed(self, kind: ev.ChangeKind, groups: Iterable[str] = (), bumped: bool = False) -> None:
        """Record a change of the table; a major or minor one (own, or `bumped` in what was merged) resets routes
        and goes to the other groups at once (G33, G34: a `TableBumped` fact); user-only changes do neither and
        travel with the next session."""
        self.counters.table_changes[kind] += 1
        routes = bumped or kind is ev.ChangeKind.MAJOR or kind is ev.ChangeKind.MINOR
        self._out.append(ev.TableChanged(self.ctx.lsdb.digest, kind, tuple(groups), routes))
        if routes:
            self.post(TableBumped(kind))

    def post(self, fact: Fact) -> None:
        self._facts.append(fact)

    # --- NodeCore's side ---------------------------------------------------------------------------------

    def take_facts(self) -> list[Fact]:
        facts, self._facts = self._facts, []
        return facts

    def take(self) -> list[ev.Output]:
        """Every output asked for since the last call, then one event for what the table's limits refused meanwhile
        (linkstate.core.lsdb), then what each 691 session has queued."""
        if self.ctx.lsdb.refused:
            refused = self.ctx.lsdb.take_refusals()
            for reason, count in refused.counts.items():
                self.diag(Ev.SECTIONS_REFUSED, reason=reason, count=count, guids=refused.examples[reason])
        for conn, c in self.conns.items():  # flushing neither adds nor removes connections
            if c.session.pending:  # take_pending() of nothing is b"": nothing to send
                self._flush(conn, c)
        out, self._out = self._out, []
        return out

    def _flush(self, conn: int, c: Conn691) -> None:
        data = c.session.take_pending()
        if data:
            self.counters.bytes_out += len(data)
            self._out.append(ev.Send(conn, data))
