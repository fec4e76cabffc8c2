"""NodeCore: one server's routing engine, sans I/O — `handle(input, now) -> outputs`, `next_deadline()`.

Owns: the server's identity in the directory, its link-state table (LinkStateDB), its 691 connections (one
Session691 each), and its role: `MasterRole` when the topology names it master of its group, `MemberRole`
otherwise. It answers what every node answers (DUMP for WinRoute-style tools, rate-limited per connection; ATTACH
refused when it is not the master), applies directory reloads (major updates, master moves: relinquish with event
958, R81/R88), and turns local observations into state reports. What the table's limits refuse is reported once
per input (`sections_refused`); tables go out as the table's cached frame, shared by every connection.
Invariants: the core never reads a clock or draws randomness (`now` is an argument, `nonce`/`rand` are passed
in); it never raises on peer input: every fault closes that one connection and is reported as a Diagnostic.
May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from linkstate.core import events as ev
from linkstate.core.bridgehead import DEFAULT_SMTP_PORT, Bridgehead
from linkstate.core.directory import tombstone
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.master import MasterRole
from linkstate.core.member import MemberRole
from linkstate.core.ratelimit import TokenBucket
from linkstate.core.session691 import Authenticated, Fault, Session691
from linkstate.core.topology import RoutingGroupSpec, ServerSpec, Settings, Topology
from proto import rg691
from proto.errors import EncodeError
from proto.model import BridgeheadState, OrgInfo

Role = MasterRole | MemberRole


@dataclass
class _Conn:
    session: Session691
    inbound: bool
    peer: str | None = None
    peer_host: str = ""
    dumps: TokenBucket | None = None  # DUMP answers left (made on the first DUMP)


@dataclass
class Counters:
    """Traffic and event counts, for status views and benchmarks."""

    frames_out: Counter[str] = field(default_factory=Counter)
    bytes_out: int = 0
    bytes_in: int = 0
    table_changes: Counter[str] = field(default_factory=Counter)


class NodeCore:
    def __init__(
        self,
        topology: Topology,
        server: str,
        *,
        nonce: Callable[[], str],
        rand: Callable[[], float],
        now: float = 0.0,
        version: str = "0.1.0",
    ) -> None:
        self.topo = topology
        self.me: ServerSpec = topology.server(server)
        self.nonce = nonce
        self.rand = rand
        self.version = version
        self.lsdb = LinkStateDB.from_topology(topology)
        self.conns: dict[int, _Conn] = {}
        self.out: list[ev.Output] = []
        self.counters = Counters()
        self.now = now
        self.role: Role = self._make_role(now)
        self.bridgehead = Bridgehead(self, now)
        self.service_status = self.lsdb_member_status()

    # --- identity helpers --------------------------------------------------------------------------------

    @property
    def rg(self) -> RoutingGroupSpec:
        return self.topo.group_of(self.me.name)

    @property
    def settings(self) -> Settings:
        return self.topo.settings

    def server_name(self, guid: str) -> str:
        spec = self.topo.server_by_guid(guid)
        return spec.name if spec else guid

    def connector_name(self, guid: str) -> str:
        spec = self.topo.connector_by_guid(guid)
        return spec.name if spec else guid

    def lsdb_member_status(self) -> str:
        own = self.lsdb.section(self.rg.guid)
        for m in own.members if own else ():
            if m.guid == self.me.guid:
                return m.service_status
        return "0701000000000101"

    @property
    def is_master(self) -> bool:
        return isinstance(self.role, MasterRole)

    @property
    def attached(self) -> bool:
        return True if isinstance(self.role, MasterRole) else self.role.attached

    @property
    def quorum(self) -> bool:
        return self.role.quorum if isinstance(self.role, MasterRole) else self.role.attached

    def _make_role(self, now: float) -> Role:
        if self.topo.is_master(self.me.name):
            return MasterRole(self, now)
        return MemberRole(self, now)

    # --- output helpers used by the roles -----------------------------------------------------------------

    def diag(self, event: str, level: str = "info", event_id: int | None = None, **fields: object) -> None:
        self.out.append(ev.Diagnostic(event, level, event_id, dict(fields)))

    def send(self, conn: int, msg: rg691.Message) -> None:
        c = self.conns.get(conn)
        if c is None:
            return
        try:
            c.session.send(msg)
        except EncodeError as exc:  # a bug on our side: never let it take the node down
            self.diag("encode_failed", level="error", reason=str(exc))
            return
        self.counters.frames_out[type(msg).__name__] += 1

    def send_table(self, conn: int) -> None:
        """The table as its own Send of the table's cached frame, after what is queued: every connection the same
        table goes to shares one bytes object, so a peer that asks for it again and again costs no memory."""
        c = self.conns.get(conn)
        if c is not None and c.session.authenticated:
            self._flush_one(conn, c)
            frame = self.lsdb.frame()
            self.counters.bytes_out += len(frame)
            self.out.append(ev.Send(conn, frame))
            self.counters.frames_out["OrgInfoFrame"] += 1

    def send_bytes(self, conn: int, data: bytes) -> None:
        """Raw bytes on a connection the node does not frame itself (SMTP)."""
        self.counters.bytes_out += len(data)
        self.out.append(ev.Send(conn, data))

    def close(self, conn: int, reason: str) -> None:
        c = self.conns.pop(conn, None)
        if c is not None:
            self._flush_one(conn, c)
        self.out.append(ev.Close(conn, reason))

    def connect(self, peer: str, proto: str = "691", tag: str = "") -> None:
        spec = self.topo.server(peer)
        port = (spec.port_smtp or DEFAULT_SMTP_PORT) if proto == "smtp" else (spec.port_691 or 691)
        self.out.append(ev.Connect(peer, spec.address or "127.0.0.1", port, proto, tag))

    def table_changed(self, kind: str, groups: tuple[str, ...] = (), bumped: bool = False) -> None:
        """Record a change; a major or minor one (own, or `bumped` in what was merged) goes to the other groups at
        once (G33, G34); user-only changes travel with the next session."""
        self.counters.table_changes[kind] += 1
        self.out.append(ev.TableChanged(self.lsdb.digest, kind, tuple(groups)))
        if bumped or kind in ("major", "minor"):
            self.bridgehead.trigger(self.now, kind)

    def learn(self, org: OrgInfo, now: float, source: str) -> None:
        """A packet from outside the group (a bridgehead session, an injected tombstone) (R109, G62)."""
        if isinstance(self.role, MasterRole):
            self.role.merge_foreign(org, now)
            return
        bumps = self.lsdb.bumps
        result = self.lsdb.merge(org, own_group=self.rg.guid)
        if not result.changed:
            return
        self.diag("orginfo_learned", source=source, groups=len(result.changed), digest=self.lsdb.digest)
        self.table_changed("merge", result.changed, bumped=self.lsdb.bumps != bumps)
        upstream = self.role.upstream
        if self.role.attached and upstream is not None:  # the master merges it and fans it out
            self.send(upstream, rg691.Reply(self.lsdb.digest, True))
            self.send_table(upstream)

    def observe_bridgehead(self, connector: str, state: BridgeheadState, now: float) -> None:
        if self.me.suppress_state_changes:
            self.diag("state_change_suppressed", connector=self.connector_name(connector), state=state.value)
            return
        self._report(rg691.StateReport("BH", connector, self.me.vs_guid, state.value), now)

    def adopt(self, org: OrgInfo) -> tuple[str, ...]:
        """Take every received section whose version is at least ours (a member trusting its master)."""
        return self.lsdb.adopt(org)

    # --- the core interface --------------------------------------------------------------------------------

    def start(self, now: float) -> list[ev.Output]:
        self.now = now
        self.diag("node_started", server=self.me.name, rg=self.rg.name, role=self.role.name, digest=self.lsdb.digest)
        self.role.start(now)
        return self._drain()

    def handle(self, event: ev.Input, now: float) -> list[ev.Output]:
        self.now = now
        handler = _INPUTS[type(event)]
        handler(self, event, now)
        return self._drain()

    def next_deadline(self) -> float | None:
        role, links = self.role.next_deadline(), self.bridgehead.next_deadline()
        if role is None:
            return links
        return role if links is None or role <= links else links

    def on_timer(self, now: float) -> list[ev.Output]:
        self.now = now
        self.role.on_timer(now)
        self.bridgehead.on_timer(now)
        return self._drain()

    def shutdown(self, reason: str = "shutting down") -> list[ev.Output]:
        self.role.stop(reason)
        self.bridgehead.stop()
        for conn in list(self.conns):
            self.close(conn, reason)
        return self._drain()

    def _drain(self) -> list[ev.Output]:
        if self.lsdb.refused:
            self._report_refusals()
        for conn, c in self.conns.items():  # flushing neither adds nor removes connections
            if c.session.pending:  # take_pending() of nothing is b"": nothing to send
                self._flush_one(conn, c)
        out, self.out = self.out, []
        return out

    def _report_refusals(self) -> None:
        """One event for what the table's limits refused since the last input (lsdb module docstring)."""
        refused = self.lsdb.take_refusals()
        for reason, count in refused.counts.items():
            self.diag("sections_refused", level="warning", reason=reason, count=count, first=refused.examples[reason])

    def _flush_one(self, conn: int, c: _Conn) -> None:
        data = c.session.take_pending()
        if data:
            self.counters.bytes_out += len(data)
            self.out.append(ev.Send(conn, data))

    # --- inputs ----------------------------------------------------------------------------------------------

    def _new_session(self, inbound: bool) -> Session691:
        return Session691(
            initiator=not inbound,
            local_guid=self.me.guid,
            secret=self.topo.secret,
            nonce=self.nonce,
            kind="MEMBER",
            fqdn=self.me.fqdn,
            version=self.version,
            limits=self.lsdb.limits.decode,
        )

    def _on_connected(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.PeerConnected)
        if e.proto == "smtp":
            if e.inbound:
                self.bridgehead.on_inbound(e.conn, now)
            else:
                self.bridgehead.on_connected(e.conn, e.tag, now)
            self.bridgehead.flush(e.conn)
            return
        self.conns[e.conn] = _Conn(self._new_session(e.inbound), e.inbound, e.peer, e.peer_host)
        if not e.inbound and isinstance(self.role, MemberRole):
            self.role.on_connected(e.conn, now)

    def _on_connect_failed(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.ConnectFailed)
        if e.proto == "smtp":
            self.bridgehead.on_connect_failed(e.tag, e.reason, now)
        elif isinstance(self.role, MemberRole):
            self.role.on_connect_failed(e.reason, now)

    def _on_lost(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.PeerLost)
        if self.bridgehead.owns(e.conn):
            self.bridgehead.on_lost(e.conn, now)
            return
        c = self.conns.pop(e.conn, None)
        if c is None:
            return
        if not c.session.authenticated and not c.session.closed:
            event_id = 962 if c.session.peer_kind == "CLIENT" else 961
            self.diag(
                "session_failed",
                level="warning",
                event_id=event_id,
                conn=e.conn,
                reason=f"connection closed before authentication completed ({e.reason})",
            )
        self.role.on_lost(e.conn, now)

    def _on_data(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.DataReceived)
        if e.conn in self.bridgehead.smtp:  # bridgehead.owns(), inlined: this runs once per SMTP line
            self.counters.bytes_in += len(e.data)
            self.bridgehead.on_data(e.conn, e.data, now)
            return
        c = self.conns.get(e.conn)
        if c is None:
            return
        self.counters.bytes_in += len(e.data)
        for result in c.session.receive(e.data):
            if isinstance(result, Fault):
                self.diag(
                    "session_failed",
                    level="warning",
                    event_id=result.event_id,
                    conn=e.conn,
                    reason=result.reason,
                )
                self.close(e.conn, result.reason)
                self.role.on_lost(e.conn, now)
                return
            if isinstance(result, Authenticated):
                self.diag(
                    "authenticated",
                    event_id=result.event_id,
                    peer=self.server_name(result.peer_guid),
                    kind=result.peer_kind,
                )
                if isinstance(self.role, MemberRole):
                    self.role.on_authenticated(e.conn, now)
                continue
            self._dispatch(e.conn, c, result, now)
            if e.conn not in self.conns:
                return

    def _dispatch(self, conn: int, c: _Conn, msg: rg691.Message, now: float) -> None:
        if isinstance(msg, rg691.Dump) and not msg.response:
            self._answer_dump(conn)
            return
        if c.session.peer_kind == "CLIENT":
            self._client_command(conn, c, msg, now)
            return
        if self.role.on_message(conn, msg, now):
            return
        if isinstance(msg, rg691.Attach):
            master = self.topo.master_of(self.rg.name)
            self.send(conn, rg691.AttachAck(False, reason=f"not the master; the master is {master.name}"))
            self.close(conn, "ATTACH to a non-master")
            return
        self.diag("unexpected_message", level="warning", conn=conn, message=type(msg).__name__)

    def _client_command(self, conn: int, c: _Conn, msg: rg691.Message, now: float) -> None:
        """Operator tools (client nodes): DUMP above, INJECT a tombstone, force a bridgehead state."""
        if isinstance(msg, rg691.Inject):
            refusal = self._inject(msg.routing_group, c.peer_host, now)
        elif isinstance(msg, rg691.StateReport) and msg.kind == "FAULT":
            refusal = self._fault(msg.subject, msg.value, now)
        else:
            refusal = f"{type(msg).__name__} is not a client command"
        if refusal:
            self.diag("client_command_refused", level="warning", command=type(msg).__name__, reason=refusal)
            self.send(conn, rg691.Detach(refusal))
            self.close(conn, refusal)
        else:
            self.send(conn, rg691.Ack(self.lsdb.digest))

    def _inject(self, rg_guid: str, peer_host: str, now: float) -> str:
        if peer_host and peer_host == (self.me.address or ""):
            return "cannot inject on the server the tool runs on (R135)"
        if rg_guid == self.rg.guid:
            return "cannot delete the routing group this server belongs to"
        section = self.lsdb.section(rg_guid)
        if section is None:
            return f"routing group {rg_guid} is not in this server's table"
        dead = tombstone(section)
        self.diag("tombstone_injected", routing_group=rg_guid, version=str(dead.version))
        self.learn(OrgInfo((dead,)), now, source="remonitor")
        return ""

    def _fault(self, connector: str, value: str, now: float) -> str:
        state = None
        if value != "CLEAR":
            try:
                state = BridgeheadState(value.removeprefix("VS_"))
            except ValueError:
                return f"unknown bridgehead state {value!r}"
        if not self.bridgehead.force(connector, state, now):
            return "this server is not a source bridgehead of that connector"
        self.diag("fault_injected", connector=self.connector_name(connector), state=value)
        return ""

    def _answer_dump(self, conn: int) -> None:
        c = self.conns[conn]
        if c.dumps is None:
            c.dumps = TokenBucket(self.settings.dump_rate, self.settings.dump_burst, self.now)
        if not c.dumps.take(self.now):
            reason = f"DUMP rate exceeded ({self.settings.dump_burst} at once, then {self.settings.dump_rate:g}/s)"
            self.diag("dump_rate_exceeded", level="warning", conn=conn, peer_host=c.peer_host)
            self.send(conn, rg691.Detach(reason))
            self.close(conn, reason)
            self.role.on_lost(conn, self.now)
            return
        master = self.topo.master_of(self.rg.name)
        attached_count = len(self.role.attached) if isinstance(self.role, MasterRole) else int(self.attached)
        view = rg691.Dump(
            True,
            self.me.guid,
            self.rg.guid,
            self.role.name,
            master.guid,
            self.attached,
            self.quorum,
            attached_count,
            len(self.topo.servers_in(self.rg.name)),
        )
        self.send(conn, view)
        self.send_table(conn)

    def _on_topology(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.TopologyChanged)
        new = e.topology
        try:
            new.server(self.me.name)
        except KeyError:
            self.diag(
                "topology_rejected",
                level="error",
                event_id=929,
                reason=f"server {self.me.name} is not in the new topology; keeping the old one",
            )
            return
        was_master = self.is_master
        old_master = None if self._orphan() else self.topo.master_of(self.rg.name).name
        self.topo = new
        self.me = new.server(self.me.name)
        self.lsdb.configure(new)
        new_master = new.master_of(self.rg.name).name
        self.diag("topology_loaded", master=new_master)
        if was_master and new_master != self.me.name:
            self.diag("master_relinquished", level="warning", event_id=958, new_master=new_master)
            self._switch_role(now, "the routing group master moved")
        elif not was_master and new_master != old_master:
            self._switch_role(now, "the routing group master moved")
        elif isinstance(self.role, MasterRole):
            self.role.topology_changed(now)
        self.bridgehead.configure(now)

    def _orphan(self) -> bool:
        return isinstance(self.role, MemberRole) and self.role.orphan

    def _on_master_unknown(self, e: ev.Input, now: float) -> None:
        """R81: the master designation points to a deleted object: a master relinquishes (958); every server of
        the group keeps its last table and attaches to no one until the directory names a master again."""
        assert isinstance(e, ev.MasterUnknown)
        if self._orphan():
            return
        if self.is_master:
            self.diag(
                "master_relinquished",
                level="warning",
                event_id=958,
                new_master=e.master,
                reason="the directory names a master that does not exist",
            )
        else:
            self.diag("master_unknown", level="warning", master=e.master)
        self.role.stop("the routing group master no longer exists")
        member = MemberRole(self, now)
        member.orphan = True
        self.role = member
        self.bridgehead.configure(now)

    def _switch_role(self, now: float, reason: str) -> None:
        self.role.stop(reason)
        self.role = self._make_role(now)
        self.role.start(now)
        self.bridgehead.configure(now)

    def _on_service(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.ServiceStatusChanged)
        self.service_status = e.status
        self._report(rg691.StateReport("SERVICE", self.me.guid, "", e.status), now)

    def _on_bridgehead(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.BridgeheadObserved)
        self.observe_bridgehead(e.connector, e.state, now)

    def _on_fault(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.FaultInjected)
        refusal = self._fault(e.connector, e.state.value if e.state else "CLEAR", now)
        if refusal:
            self.diag("fault_refused", level="warning", reason=refusal)

    def _on_tombstone(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.TombstoneRequested)
        refusal = self._inject(e.routing_group, e.peer_host, now)
        if refusal:
            self.diag("inject_refused", level="warning", reason=refusal)

    def _report(self, report: rg691.StateReport, now: float) -> None:
        self.role.report_state(report, now)


_INPUTS: dict[type, Callable[[NodeCore, ev.Input, float], None]] = {
    ev.PeerConnected: NodeCore._on_connected,
    ev.ConnectFailed: NodeCore._on_connect_failed,
    ev.PeerLost: NodeCore._on_lost,
    ev.DataReceived: NodeCore._on_data,
    ev.TopologyChanged: NodeCore._on_topology,
    ev.ServiceStatusChanged: NodeCore._on_service,
    ev.BridgeheadObserved: NodeCore._on_bridgehead,
    ev.FaultInjected: NodeCore._on_fault,
    ev.TombstoneRequested: NodeCore._on_tombstone,
    ev.MasterUnknown: NodeCore._on_master_unknown,
}
