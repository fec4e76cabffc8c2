"""NodeCore: one server's routing engine, sans I/O — `handle(input, now) -> outputs`, `next_deadline()`.

Owns: the server's context (identity, topology, link-state table: linkstate.core.context), its outbox and 691
connections (one Session691 each), its role (`MasterRole` when the topology names it master of its group,
`MemberRole` otherwise — or a member following the master with quorum that outvoted it, R80), its bridgehead (the
SMTP side), its route answers (one router for its life, linkstate.core.routes) and its operator commands
(linkstate.core.operator); the routing of every input to the part that owns it, and of every fact a part raises to
the part that acts on it. Data flows one way: an input goes to one part; the part reads the context, writes
requests to the outbox and posts facts; NodeCore then drains the facts in one loop (depth first: a fact's
consequences before the next fact) and hands the outputs back. It applies directory reloads (major updates, master
moves: relinquish with event 958, R81/R88), refuses an ORGINFO whose digest is not its bytes' (G39) and turns
local observations into state reports. Its public reads are `view()` and `route()`.
Invariants: the core never reads a clock or draws randomness (`now` is an argument, `nonce`/`rand` are passed
in); it never raises on peer input: every fault closes that one connection and is reported as a Diagnostic;
the parts never call NodeCore and NodeCore never writes a part's attributes.
May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

from collections.abc import Callable

from linkstate.core import events as ev
from linkstate.core import facts
from linkstate.core.bridgehead import Bridgehead
from linkstate.core.catalog import Ev
from linkstate.core.context import Conn691, NodeContext, Outbox
from linkstate.core.lsdb import LinkStateDB, TableStates
from linkstate.core.master import MasterRole
from linkstate.core.member import MemberRole
from linkstate.core.operator import Operator
from linkstate.core.role import Role, RoleName, RoleStatus
from linkstate.core.routes import NodeRoutes
from linkstate.core.routing import Route
from linkstate.core.session691 import Authenticated, Fault, PeerKind, Session691
from linkstate.core.topology import RoutingGroupSpec, ServerSpec, Topology
from linkstate.core.view import NodeView
from proto import rg691
from proto.sectioncache import SectionCache


class NodeCore:
    """One server's routing engine (module docstring).

    The shell calls `start(now)` once, then `handle(input, now)` for every input and `on_timer(now)` when
    `next_deadline()` has come, and applies the outputs each returns, in order; `shutdown()` ends it. Each call
    returns everything the node wants done; nothing happens between calls."""

    def __init__(
        self,
        topology: Topology,
        server: str,
        *,
        nonce: Callable[[], str],
        rand: Callable[[], float],
        now: float = 0.0,
        version: str = "0.1.0",
        sections: SectionCache | None = None,
        tables: TableStates | None = None,
    ) -> None:
        """`sections`: the decode cache this node's sessions share; `tables`: the memo of table states its table
        uses (linkstate.core.lsdb). A simulated network shares both among its nodes; by default the node has its
        own."""
        sections = sections if sections is not None else SectionCache()
        self.ctx = NodeContext(
            topology=topology,
            me=topology.server(server),
            lsdb=LinkStateDB.from_topology(topology, cache=sections, states=tables),
            nonce=nonce,
            rand=rand,
            sections=sections,
            version=version,
        )
        self.out = Outbox(self.ctx)
        self.role: Role = self._make_role(now)
        self.bridgehead = Bridgehead(self.ctx, self.out, now, is_master=self._is_master())
        self.routes = NodeRoutes(self.ctx)
        self.operator = Operator(
            self.ctx, self.out, self.bridgehead, self.routes, status=self._status, settle=self._settle
        )
        self._deadline: float | None = None
        self._deadline_known = False  # `_deadline` is next_deadline() until an input may have moved it
        self._quiet = False  # the input being handled only moved bytes (an SMTP line, no session event)

    # --- reading -----------------------------------------------------------------------------------------

    @property
    def lsdb(self) -> LinkStateDB:
        """The link-state table (read it; only the node's parts write it)."""
        return self.ctx.lsdb

    @property
    def me(self) -> ServerSpec:
        return self.ctx.me

    @property
    def rg(self) -> RoutingGroupSpec:
        return self.ctx.rg

    def view(self) -> NodeView:
        """This node now, read-only (linkstate.core.view)."""
        st, ctx = self.role.status(), self.ctx
        own = ctx.lsdb.section(ctx.rg.guid)
        return NodeView(
            server=ctx.me.name,
            routing_group=ctx.rg.name,
            role=st.name,
            master=None if st.orphaned else ctx.server_name(st.master),
            attached=st.attached,
            attached_members=tuple(ctx.server_name(g) for g in st.attached_members),
            quorum=st.quorum,
            published=st.published,
            orphaned=st.orphaned,
            digest=ctx.lsdb.digest,
            version=own.version if own is not None else None,
            authenticated=frozenset(conn for conn, c in self.out.conns.items() if c.session.authenticated),
            smtp_authenticated=self.bridgehead.trusted(),
            table_changes=dict(self.out.counters.table_changes),
            exchanges=self.bridgehead.counters.exchanges,
            frames_in=self.out.counters.frames_in,
            frames_out=self.out.counters.frames_out.total(),
        )

    def route(self, query: rg691.RouteQuery) -> Route:
        """Where this node routes `query`, from its own router (the answer to `ROUTE ASK`, linkstate.core.routes)."""
        return self.routes.route(query)

    def _status(self) -> RoleStatus:
        return self.role.status()

    def _is_master(self) -> bool:
        return self.role.status().name is RoleName.MASTER

    def _make_role(self, now: float, *, orphan: bool = False) -> Role:
        if not orphan and self.ctx.topology.is_master(self.ctx.me.name):
            return MasterRole(self.ctx, self.out, now)
        return MemberRole(self.ctx, self.out, now, orphan=orphan)

    # --- the core interface --------------------------------------------------------------------------------

    def start(self, now: float) -> list[ev.Output]:
        """The node starts: its role connects (member) or begins its settle period (master)."""
        ctx = self.ctx
        self.out.diag(
            Ev.NODE_STARTED, server=ctx.me.name, rg=ctx.rg.name, role=self.role.name.value, digest=ctx.lsdb.digest
        )
        self.role.start(now)
        self._settle(now)
        self._deadline_known = False
        return self.out.take()

    def handle(self, event: ev.Input, now: float) -> list[ev.Output]:
        """One input at time `now`: the part that owns it acts, the facts it raised are drained, and everything the
        node wants done comes back, in order (docs/ARCHITECTURE.md: one received frame)."""
        handler = _INPUTS[type(event)]
        self._quiet = False
        handler(self, event, now)
        self._settle(now)  # every handler settles after each part it calls; nothing may wait for the next input
        if not self._quiet:
            self._deadline_known = False
        return self.out.take()

    def next_deadline(self) -> float | None:
        """The earliest time `on_timer` has work (the role's timers, the bridgehead's probes), or None. Computed once
        after an input that may have moved it, and kept while inputs only move bytes (an SMTP line that raised no
        session event: most of an exchange's lines)."""
        if not self._deadline_known:
            self._deadline, self._deadline_known = self._compute_deadline(), True
        return self._deadline

    def _compute_deadline(self) -> float | None:
        role, links = self.role.next_deadline(), self.bridgehead.next_deadline()
        if role is None:
            return links
        return role if links is None or role <= links else links

    def on_timer(self, now: float) -> list[ev.Output]:
        """Time `now` has come (at or after `next_deadline()`): the role, then the bridgehead, do what is due."""
        self._deadline_known = False
        self.role.on_timer(now)
        self._settle(now)
        self.bridgehead.on_timer(now)
        self._settle(now)
        self._deadline_known = False
        return self.out.take()

    def shutdown(self, reason: str = "shutting down") -> list[ev.Output]:
        """The node stops: its role detaches, every connection closes."""
        self._deadline_known = False
        self.role.stop(reason)
        self.bridgehead.stop()
        for conn in list(self.out.conns):
            self.out.close(conn, reason)
        return self.out.take()

    # --- facts: what one part tells another ------------------------------------------------------------------

    def _settle(self, now: float) -> None:
        """Handle every fact the parts posted, depth first (facts.py): the order of the former nested calls."""
        queue = self.out.take_facts()
        while queue:
            fact = queue.pop(0)
            _FACTS[type(fact)](self, fact, now)
            raised = self.out.take_facts()
            if raised:
                queue[:0] = raised

    def _on_bumped(self, fact: facts.Fact, now: float) -> None:
        assert isinstance(fact, facts.TableBumped)
        self.routes.reset()
        self.bridgehead.trigger(now, fact.kind)

    def _on_learned(self, fact: facts.Fact, now: float) -> None:
        assert isinstance(fact, facts.Learned)
        self.role.learn(fact.org, now, fact.source)

    def _on_observed(self, fact: facts.Fact, now: float) -> None:
        assert isinstance(fact, facts.Observed)
        self._observe(fact.connector, fact.state.value, now)

    def _on_joined(self, fact: facts.Fact, now: float) -> None:
        assert isinstance(fact, facts.JoinedGroup)
        self.bridgehead.announce(now)

    def _on_outvoted(self, fact: facts.Fact, now: float) -> None:
        """A master without quorum was outvoted (R80, G28): it follows the master with quorum, as a member, until
        its directory names another master (linkstate.core.quorum)."""
        assert isinstance(fact, facts.Outvoted)
        master = self.ctx.topology.server_by_guid(fact.master)
        if master is None or not self._is_master():
            return
        self.role.stop("this server is no longer master: another master has quorum")
        self.role = MemberRole(self.ctx, self.out, now, master=master)
        self.role.start(now)
        self.bridgehead.configure(now, is_master=False)

    def _on_link_idle(self, fact: facts.Fact, now: float) -> None:
        assert isinstance(fact, facts.LinkIdle)
        self.bridgehead.rerun(fact.connector, now)

    def _observe(self, connector: str, state: str, now: float) -> None:
        ctx = self.ctx
        if ctx.me.suppress_state_changes:
            self.out.diag(Ev.STATE_CHANGE_SUPPRESSED, connector=ctx.connector_name(connector), state=state)
            return
        self.role.report_state(rg691.StateReport("BH", connector, ctx.me.vs_guid, state), now)

    # --- inputs ----------------------------------------------------------------------------------------------

    def _new_session(self, inbound: bool) -> Session691:
        ctx = self.ctx
        return Session691(
            initiator=not inbound,
            local_guid=ctx.me.guid,
            secret=ctx.topology.secret,
            nonce=ctx.nonce,
            kind=PeerKind.MEMBER,
            fqdn=ctx.me.fqdn,
            version=ctx.version,
            sections=ctx.sections,
            extensions=ctx.settings.delta,
            limits=ctx.lsdb.limits.decode,
        )

    def _on_connected(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.PeerConnected)
        if e.proto == ev.Proto.SMTP:
            if e.inbound:
                self.bridgehead.on_inbound(e.conn, now)
            else:
                self.bridgehead.on_connected(e.conn, e.tag, now)
            self.bridgehead.flush(e.conn, now)
            self._settle(now)
            return
        self.out.conns[e.conn] = Conn691(self._new_session(e.inbound), e.inbound, e.peer, e.peer_host)
        if not e.inbound:
            self.role.on_connected(e.conn, now)

    def _on_connect_failed(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.ConnectFailed)
        if e.proto == ev.Proto.SMTP:
            self.bridgehead.on_connect_failed(e.tag, e.reason, now)
        else:
            self.role.on_connect_failed(e.reason, now)
        self._settle(now)

    def _on_lost(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.PeerLost)
        if self.bridgehead.owns(e.conn):
            self.bridgehead.on_lost(e.conn, now)
            self._settle(now)
            return
        c = self.out.conns.pop(e.conn, None)
        if c is None:
            return
        if not c.session.authenticated and not c.session.closed:
            self.out.diag(
                Ev.CLIENT_AUTH_FAILED if c.session.peer_kind is PeerKind.CLIENT else Ev.AUTH_FAILED,
                protocol=ev.Proto.RG691.value, conn=e.conn, peer=c.peer or c.peer_host, cause=ev.Cause.CLOSED.value,
                reason=f"connection closed before authentication completed ({e.reason})",
            )  # fmt: skip
        self.role.on_lost(e.conn, now)
        self._settle(now)

    def _on_data(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.DataReceived)
        if e.conn in self.bridgehead.smtp:  # bridgehead.owns(), inlined: this runs once per SMTP line
            self._on_smtp_data(e.conn, e.data, now)
            return
        c = self.out.conns.get(e.conn)
        if c is None:
            return
        self.out.counters.bytes_in += len(e.data)
        for result in c.session.receive(e.data):
            if isinstance(result, Fault):
                self._fault(e.conn, c, result)
                self.out.close(e.conn, result.reason)
                self.role.on_lost(e.conn, now)
                self._settle(now)
                return
            if isinstance(result, Authenticated):
                self.out.diag(
                    Ev.CLIENT_AUTHENTICATED if result.peer_kind is PeerKind.CLIENT else Ev.AUTHENTICATED,
                    protocol=ev.Proto.RG691.value, peer=self.ctx.server_name(result.peer_guid),
                    peer_kind=result.peer_kind.value,
                )  # fmt: skip
                self.role.on_authenticated(e.conn, now)
                continue
            self.out.counters.frames_in += 1
            self._dispatch(e.conn, c, result, now)
            self._settle(now)
            if e.conn not in self.out.conns:
                return

    def _fault(self, conn: int, c: Conn691, fault: Fault) -> None:
        """Log a failed 691 session: an authentication failure (961, 962) before authentication completed, a
        session failure after."""
        protocol, reason, cause = ev.Proto.RG691.value, fault.reason, fault.cause.value
        if fault.event_id is None:
            self.out.diag(Ev.SESSION_FAILED, protocol=protocol, conn=conn, reason=reason, cause=cause)
            return
        peer = self.ctx.server_name(c.session.peer_guid) if c.session.peer_guid else c.peer or c.peer_host
        self.out.diag(
            Ev.CLIENT_AUTH_FAILED if fault.event_id == 962 else Ev.AUTH_FAILED,
            protocol=protocol, conn=conn, peer=peer, reason=reason, cause=cause,
        )  # fmt: skip

    def _on_smtp_data(self, conn: int, data: bytes, now: float) -> None:
        self.out.counters.bytes_in += len(data)
        bridgehead = self.bridgehead
        events = bridgehead.receive(conn, data)
        for event in events:
            bridgehead.on_session_event(conn, event, now)
            self._settle(now)
        quiet = bridgehead.flush(conn, now)
        self._settle(now)
        self._quiet = quiet and not events

    def _dispatch(self, conn: int, c: Conn691, msg: rg691.Message, now: float) -> None:
        if isinstance(msg, rg691.Dump) and not msg.response:
            self.operator.dump(conn, now)
            if conn not in self.out.conns:  # closed: past its DUMP rate; the role forgets it too
                self.role.on_lost(conn, now)
            return
        if c.session.peer_kind is PeerKind.CLIENT:
            self.operator.command(conn, msg, c.peer_host, now)
            return
        if isinstance(msg, rg691.OrgInfoFrame | rg691.Delta) and msg.decoded.tampered:  # checked first (G39)
            self.out.diag(Ev.ORGINFO_REJECTED, conn=conn, reason=msg.decoded.tampered)
            return
        if self.role.on_message(conn, msg, now):
            return
        if isinstance(msg, rg691.Attach):
            master = self.ctx.server_name(self.role.status().master)
            self.out.send(conn, rg691.AttachAck(False, reason=f"not the master; the master is {master}"))
            self.out.close(conn, "ATTACH to a non-master")
            return
        self.out.diag(Ev.UNEXPECTED_MESSAGE, conn=conn, message=type(msg).__name__)

    def _on_topology(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.TopologyChanged)
        new, ctx = e.topology, self.ctx
        try:
            new.server(ctx.me.name)
        except KeyError:
            self.out.diag(
                Ev.TOPOLOGY_REJECTED,
                reason=f"server {ctx.me.name} is not in the new topology; keeping the old one",
            )
            return
        st = self.role.status()
        was_master = st.name is RoleName.MASTER
        old_master = None if st.orphaned else ctx.topology.master_of(ctx.rg.name).name
        ctx.topology = new
        ctx.me = new.server(ctx.me.name)
        ctx.lsdb.configure(new)
        self.routes.directory_changed()
        new_master = new.master_of(ctx.rg.name).name
        self.out.diag(Ev.TOPOLOGY_LOADED, master=new_master)
        if was_master and new_master != ctx.me.name:
            self.out.diag(Ev.MASTER_RELINQUISHED, new_master=new_master, reason="the directory names another master")
            self._switch_role(now, "the routing group master moved")
        elif not was_master and new_master != old_master:
            self._switch_role(now, "the routing group master moved")
        else:
            self.role.topology_changed(now)
            self._settle(now)
        self.bridgehead.configure(now, is_master=self._is_master())

    def _on_master_unknown(self, e: ev.Input, now: float) -> None:
        """R81: the master designation points to a deleted object: a master relinquishes (958); every server of
        the group keeps its last table and attaches to no one until the directory names a master again."""
        assert isinstance(e, ev.MasterUnknown)
        st = self.role.status()
        if st.orphaned:
            return
        if st.name is RoleName.MASTER:
            self.out.diag(
                Ev.MASTER_RELINQUISHED,
                new_master=e.master,
                reason="the directory names a master that does not exist",
            )
        else:
            self.out.diag(Ev.MASTER_UNKNOWN, master=e.master)
        self.role.stop("the routing group master no longer exists")
        self.role = self._make_role(now, orphan=True)
        self.bridgehead.configure(now, is_master=False)

    def _switch_role(self, now: float, reason: str) -> None:
        self.role.stop(reason)
        self.role = self._make_role(now)
        self.role.start(now)
        self._settle(now)

    def _on_service(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.ServiceStatusChanged)
        self.role.report_state(rg691.StateReport("SERVICE", self.ctx.me.guid, "", e.status), now)
        self._settle(now)

    def _on_bridgehead(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.BridgeheadObserved)
        self._observe(e.connector, e.state.value, now)
        self._settle(now)

    def _on_listener(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.ListenerChanged)
        state = "running" if e.running else "not running"
        self.out.diag(Ev.LISTENER_CHANGED, quiet=e.running, protocol=e.proto.value, state=state)
        if e.proto is ev.Proto.SMTP:
            self.bridgehead.listener(e.running, now)
            self._settle(now)

    def _on_fault(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.FaultInjected)
        self.operator.fault_input(e.connector, e.state, now)

    def _on_tombstone(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.TombstoneRequested)
        self.operator.tombstone_input(e.routing_group, e.peer_host, now)

    def _on_seeded(self, e: ev.Input, now: float) -> None:
        assert isinstance(e, ev.TableSeeded)
        ctx = self.ctx
        ctx.lsdb.merge(e.orginfo, own_group=ctx.rg.guid if self._is_master() else None)


_INPUTS: dict[type, Callable[[NodeCore, ev.Input, float], None]] = {
    ev.PeerConnected: NodeCore._on_connected,
    ev.ConnectFailed: NodeCore._on_connect_failed,
    ev.PeerLost: NodeCore._on_lost,
    ev.DataReceived: NodeCore._on_data,
    ev.TopologyChanged: NodeCore._on_topology,
    ev.ServiceStatusChanged: NodeCore._on_service,
    ev.BridgeheadObserved: NodeCore._on_bridgehead,
    ev.ListenerChanged: NodeCore._on_listener,
    ev.FaultInjected: NodeCore._on_fault,
    ev.TombstoneRequested: NodeCore._on_tombstone,
    ev.MasterUnknown: NodeCore._on_master_unknown,
    ev.TableSeeded: NodeCore._on_seeded,
}

_FACTS: dict[type, Callable[[NodeCore, facts.Fact, float], None]] = {
    facts.TableBumped: NodeCore._on_bumped,
    facts.Learned: NodeCore._on_learned,
    facts.Observed: NodeCore._on_observed,
    facts.JoinedGroup: NodeCore._on_joined,
    facts.Outvoted: NodeCore._on_outvoted,
    facts.LinkIdle: NodeCore._on_link_idle,
}
