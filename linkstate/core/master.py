"""The master service node of a routing group (requirements R79–R88, R128–R130, G26–G33, G48).

Owns: the group's authoritative section: who is attached (members' `connected` YES/NO), members' service
status, the committed bridgehead and connector states (kept by linkstate.core.connstate), the version and its
bumps (major on a directory change of its own group, minor on a committed connector change, user on
attach/detach/service changes), the settle period after a (re)start and the rebuild that ends it (R130), quorum,
and the push of each change to every attached member: the full OrgInfo, or, to a member that took the delta
capability at ATTACH (docs/PROTOCOL.md §2.5), only the sections stored since it was last sent the table (the
table's change log; the whole table when the log no longer reaches back, or when the member asks, `REPLY RESEND`).
Invariants: only this role writes its own group's section; versions never go backwards and the first version
published after a start is above every version of its group it saw (G31); once published, foreign data about its
own group is ignored (R107) but lifts the next version above it; before that, it holds the organization's copy
(R129) and publishes no state without evidence (R130).
May import: the standard library, proto, linkstate.core (never node.py).
"""

from __future__ import annotations

from dataclasses import replace

from linkstate.core.catalog import Ev
from linkstate.core.connstate import GroupStates
from linkstate.core.context import NodeContext, Outbox
from linkstate.core.dampening import Commit, DampenerDiagnostic, WindowOpened
from linkstate.core.directory import build_section
from linkstate.core.events import ChangeKind, Instant, UpdateKind
from linkstate.core.facts import JoinedGroup, Outvoted
from linkstate.core.quorum import QuorumWatch
from linkstate.core.role import RoleName, RoleStatus
from proto import rg691
from proto.model import BridgeheadState, ConnectorState, OrgInfo, RoutingGroup, Version


class MasterRole:
    """The master of its routing group (module docstring), seen by the node through `linkstate.core.role.Role`.

    Reads its node through `ctx` and acts through `out`; members' ATTACH, polls, REPLY/ORGINFO, state reports and
    DETACH arrive through `on_message`; its section changes are recorded with `out.table_changed`."""

    name = RoleName.MASTER

    def __init__(self, ctx: NodeContext, out: Outbox, now: float) -> None:
        self.ctx = ctx
        self.out = out
        self.attached_members: dict[str, int] = {}  # member GUID -> its conn
        self.delta_members: dict[int, int] = {}  # conn of a delta member -> the table's `seq` it was last sent up to
        self.services: dict[str, str] = {}
        self.states = GroupStates(ctx, now)  # live bridgeheads, their reports, committed connector states
        self.epoch = ctx.nonce()  # a fresh version GUID at every master start (G31)
        self.version = Version()
        self.acked_top = Version()  # the highest version of this group its own table or an attached member held
        self.foreign_top = Version()  # the highest version of this group seen at or above its own, not its own
        self.published = False
        self.settle_deadline: float | None = now + ctx.settings.scaled("master_settle")
        self.watch = QuorumWatch(ctx, out, now, quorum=self.quorum)
        self._conflict = ""  # the version GUID of the other master last reported as a conflict
        self._pinned_seen: dict[str, BridgeheadState] = {}  # connector GUID -> the last state its pin held off

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        own = self.ctx.lsdb.section(self.ctx.rg.guid)
        if own is not None:
            self.acked_top = max(self.acked_top, own.version)
        if own is None or own.version == Version():
            self.ctx.lsdb.put(self._unavailable())
        self.out.diag(Ev.MASTER_STARTED, rg=self.ctx.rg.name, settle_s=self.ctx.settings.scaled("master_settle"))
        self.out.post(JoinedGroup())  # its own bridgehead tells what it has observed (after a role switch)
        self._maybe_publish(now)

    def stop(self, reason: str) -> None:
        for conn in list(self.attached_members.values()):
            self.out.send(conn, rg691.Detach(reason))
            self.out.close(conn, reason)
        self.attached_members.clear()
        self.delta_members.clear()
        self.watch.close()

    def status(self) -> RoleStatus:
        return RoleStatus(
            name=self.name,
            attached=True,
            master=self.ctx.me.guid,
            attached_members=tuple(self.attached_members),
            attached_count=len(self.attached_members),
            quorum=self.quorum,
            published=self.published,
        )

    @property
    def quorum(self) -> bool:
        n = len(self.ctx.topology.servers_in(self.ctx.rg.name))
        return len(self.attached_members) + 1 >= n // 2 + 1

    def next_deadline(self) -> float | None:
        return _earliest(_earliest(self.settle_deadline, self.states.next_deadline()), self.watch.next_deadline())

    def on_timer(self, now: float) -> None:
        if self.settle_deadline is not None and now >= self.settle_deadline:
            self.settle_deadline = None
            self._publish(now, reason="settle period over")
        self._apply_commits(self.states.on_timer(now), now)
        self.watch.on_timer(now, set(self.attached_members))

    # --- messages --------------------------------------------------------------------------------------

    def on_message(self, conn: int, msg: rg691.Message, now: float) -> bool:
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            return False
        if type(msg) in _FROM_MEMBERS and conn not in self.attached_members.values():
            # only an attached member polls, answers a push, sends a packet or reports state: an authenticated
            # peer that skipped ATTACH (or was refused) does not write this group's table
            self.out.diag(Ev.UNEXPECTED_MESSAGE, conn=conn, message=f"{type(msg).__name__} before ATTACH")
            self.out.close(conn, "not an attached member")
            self.on_lost(conn, now)
            return True
        handler(self, conn, msg, now)
        return True

    def on_connected(self, conn: int, now: float) -> None:
        """The only 691 connections a master opens are its quorum probes."""
        self.watch.opened(conn)

    def on_connect_failed(self, reason: str, now: float) -> None:
        """A probe found nobody there: nothing to learn."""

    def on_authenticated(self, conn: int, now: float) -> None:
        """Members speak first (ATTACH); a probe asks DUMP."""
        self.watch.authenticated(conn)

    def on_lost(self, conn: int, now: float) -> None:
        self.watch.lost(conn)
        self.delta_members.pop(conn, None)
        for guid, c in list(self.attached_members.items()):
            if c == conn:
                del self.attached_members[guid]
                member, attached = self.ctx.server_name(guid), len(self.attached_members)
                self.out.diag(Ev.MEMBER_DETACHED, member=member, attached=attached)
                self._commit(ChangeKind.USER, now)
                self._liveness(guid, now, live=False)
                self.watch.update(self.quorum, now)

    def _on_dump(self, conn: int, msg: rg691.Message, now: float) -> None:
        """A quorum probe's answer (linkstate.core.quorum): outvoted by a master with quorum, relinquish (958)."""
        assert isinstance(msg, rg691.Dump)
        rival = self.watch.answered(conn, msg, now)
        if rival is None:
            return
        n, grace = len(self.ctx.topology.servers_in(self.ctx.rg.name)), self.watch.grace
        why = f"it has the acknowledgement of {n // 2 + 1} of {n} servers; this server lacked quorum {grace:g} s"
        self.out.diag(Ev.MASTER_RELINQUISHED, new_master=self.ctx.server_name(rival), reason=why)
        self.out.post(Outvoted(rival))

    def _liveness(self, member: str, now: float, *, live: bool) -> None:
        """A member's server came or went: the connectors it is a source bridgehead of follow (issue 10, item 1)."""
        spec = self.ctx.topology.server_by_guid(member)
        if spec is None:
            return
        states = self.states
        commits = states.attach(spec.vs_guid, now) if live else states.detach(spec.vs_guid, now)
        self._apply_commits(commits, now)

    def _on_attach(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.Attach)
        ctx, out = self.ctx, self.out
        member = ctx.topology.server_by_guid(msg.member)
        refusal = None
        if msg.routing_group != ctx.rg.guid or member is None or member.routing_group != ctx.rg.name:
            refusal = "not a member of this routing group"
        elif msg.master != ctx.me.guid:
            refusal = "this server is not the master you named"
        elif member.guid == ctx.me.guid:
            refusal = "a server cannot attach to itself"
        if refusal:
            out.send(conn, rg691.AttachAck(False, reason=refusal))
            out.diag(Ev.ATTACH_REFUSED, member=msg.member, reason=refusal)
            out.close(conn, refusal)
            return
        assert member is not None
        old = self.attached_members.get(msg.member)
        if old is not None and old != conn:
            out.close(old, "replaced by a new attachment")
        self.attached_members[msg.member] = conn
        reported = Version(msg.major, msg.minor, msg.user)
        if not ctx.lsdb.plausible(ctx.rg.guid, reported):  # a forged version: not a reason to move (issue 11)
            out.diag(Ev.VERSION_REFUSED, member=member.name, version=str(reported))
            reported = Version()
        self.acked_top = max(self.acked_top, reported)
        delta = rg691.CAP_DELTA in msg.caps and ctx.settings.delta
        out.send(
            conn,
            rg691.AttachAck(
                True,
                ctx.lsdb.digest,
                len(self.attached_members),
                len(ctx.topology.servers_in(ctx.rg.name)),
                self.quorum,
                caps=(rg691.CAP_DELTA,) if delta else (),
            ),
        )
        out.diag(Ev.MEMBER_ATTACHED, member=member.name, attached=len(self.attached_members), quorum=self.quorum)
        self._liveness(member.guid, now, live=True)
        self.watch.update(self.quorum, now)
        if msg.digest != ctx.lsdb.digest:
            # published: the member takes what is newer; not yet: its answer (REPLY FOLLOWS and its table) brings
            # this group's section as the organization holds it, the start of the rebuild (R129, R130). A delta
            # member that holds one of our recent tables gets only what changed since (docs/PROTOCOL.md §2.5).
            since = ctx.lsdb.seq_of(msg.digest) if delta else None
            changed = ctx.lsdb.changed_since(since) if since is not None else None
            if changed:
                out.send_delta(conn, changed)
            else:
                out.send_table(conn)
        if delta:  # it holds our table now (equal digests, or it takes every section of the push)
            self.delta_members[conn] = ctx.lsdb.seq
        if self.published:
            above = self._above(reported, msg.version_guid)
            if above is not None:
                self._commit(ChangeKind.MAJOR, now, above=above)
            else:
                self._commit(ChangeKind.USER, now)
        else:
            self._maybe_publish(now)

    def _on_poll(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.SimplePoll)
        same = msg.digest == self.ctx.lsdb.digest
        self.out.send(conn, rg691.PollResponse(same, self.ctx.lsdb.digest))
        if same:
            self._holds_ours(conn)
        elif self.published:
            self._send_table(conn)

    def _on_reply(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.Reply)
        if msg.digest == self.ctx.lsdb.digest:
            self._holds_ours(conn)
        if msg.resend and conn in self.delta_members:  # a delta left it differing: the whole table settles it
            self._send_table(conn)
        elif not msg.follows:  # otherwise the revised ORGINFO follows, and its ACK with it
            self.out.send(conn, rg691.Ack(self.ctx.lsdb.digest))

    def _on_orginfo(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.OrgInfoFrame | rg691.Delta)
        self.merge_foreign(msg.decoded.orginfo, now)
        self.out.send(conn, rg691.Ack(self.ctx.lsdb.digest))

    def learn(self, org: OrgInfo, now: float, source: str) -> None:
        """A packet from outside the group: merged like a member's (R107, R109)."""
        self.merge_foreign(org, now)

    def merge_foreign(self, org: OrgInfo, now: float) -> None:
        """Merge a packet from a member or a bridgehead (R107): own group ignored, others newer-wins. Before its
        first publication after a start the master takes its own group's section newer-wins too: it holds what
        the organization holds until it has rebuilt its own (R129, R130)."""
        bumps = self.ctx.lsdb.bumps
        theirs = org.group(self.ctx.rg.guid)
        if theirs is not None and not self.ctx.lsdb.plausible(self.ctx.rg.guid, theirs.version):
            theirs = None  # a forged version (the merge refuses it too): not a reason to move (issue 11)
        result = self.ctx.lsdb.merge(org, own_group=self.ctx.rg.guid if self.published else None)
        if theirs is not None and self._ahead(theirs.version, theirs.version_guid) and not self._rival(theirs):
            self.foreign_top = max(self.foreign_top, theirs.version)
            if self.published and self.quorum:
                self._commit(ChangeKind.MAJOR, now, above=theirs.version)
        if result.changed:
            self.out.table_changed(ChangeKind.MERGE, result.changed, bumped=self.ctx.lsdb.bumps != bumps)
            self._push_all(except_conn=None)

    def _ahead(self, version: Version, version_guid: str) -> bool:
        """Someone holds a version of this group at or above ours from another epoch: ours must move above."""
        return version > self.version or (version == self.version and version_guid != self.epoch)

    def _rival(self, theirs: RoutingGroup) -> bool:
        """A section of this group, not its own publication, in which another server is master with quorum.

        Only a master with quorum publishes above what it did not publish (R80, G28: two masters never outbid each
        other without end; the one without quorum waits, and is outvoted after its grace period). And not above
        such a section: two servers with quorum each means two directories that disagree on the group; both keep
        their own, the organization keeps the higher, and `master_conflict` says so."""
        if theirs.master == self.ctx.me.guid or not _shows_quorum(theirs):
            return False
        if self._conflict != theirs.version_guid:
            self._conflict = theirs.version_guid
            why = "another server publishes this group with quorum: check each server's copy of the directory"
            self.out.diag(Ev.MASTER_CONFLICT, other_master=self.ctx.server_name(theirs.master), reason=why)
        return True

    def _above(self, reported: Version, version_guid: str) -> Version | None:
        """What a (re)attaching member makes this master publish above: the member's own version when it is ahead
        (the member must take the next push), and, once the master has quorum, any other epoch's it saw."""
        candidates = [reported] if self._ahead(reported, version_guid) else []
        if self.quorum and self.foreign_top >= self.version:
            candidates.append(self.foreign_top)
        return max(candidates, default=None)

    def _on_state(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.StateReport)
        self.report_state(msg, now)

    def report_state(self, msg: rg691.StateReport, now: float) -> None:
        if msg.kind == "SERVICE":
            if self.services.get(msg.subject) != msg.value:
                self.services[msg.subject] = msg.value
                self._commit(ChangeKind.USER, now)
            return
        self._report_bridgehead(msg.subject, msg.item, msg.value, now)
        self._maybe_publish(now)

    def _report_bridgehead(self, connector: str, vs: str, value: str, now: float) -> None:
        spec = self.ctx.topology.connector_by_guid(connector)
        if spec is None or spec.routing_group != self.ctx.rg.name:
            self.out.diag(Ev.STATE_IGNORED, connector=connector, reason="not a connector of this group")
            return
        try:
            state = BridgeheadState(value.removeprefix("VS_"))
        except ValueError:
            self.out.diag(Ev.STATE_IGNORED, connector=connector, reason=f"unknown state {value!r}")
            return
        if self.states.pinned(connector):
            # no alternate path: the connector stays UP and no link-state traffic is generated (R121, G42)
            if self._pinned_seen.get(connector) is not state:  # said once per change, not at every probe
                self._pinned_seen[connector] = state
                self.out.diag(Ev.STATE_CHANGE_PINNED, connector=spec.name, state=state.value)
            return
        self._apply_commits(self.states.report(spec, vs, state, now), now)

    def _on_detach(self, conn: int, msg: rg691.Message, now: float) -> None:
        self.out.close(conn, "member detached")
        self.on_lost(conn, now)

    # --- state and versions -----------------------------------------------------------------------------

    def _apply_commits(self, commits: list[Commit], now: float) -> None:
        states = self.states
        for diag in states.diagnostics():
            self._log_window(diag)
        if not commits:
            return
        for commit in commits:
            done = states.commit(commit)
            if done.bridgehead:
                self.out.diag(Ev.BRIDGEHEAD_STATE_COMMITTED, connector=done.connector, bridgehead=done.bridgehead,
                              state=done.state)  # fmt: skip
            else:
                self.out.diag(Ev.CONNECTOR_STATE_COMMITTED, connector=done.connector, state=done.state)
        self._commit(ChangeKind.MINOR, now)

    def _log_window(self, diag: DampenerDiagnostic) -> None:
        """What the dampener noted: a window opened, or one that ended as oscillation (times as Instants), for a
        connector or one of its bridgeheads (`bridgehead` "" for the connector itself)."""
        connector, bridgehead = self.states.describe(diag.connector_guid)
        if isinstance(diag, WindowOpened):
            self.out.diag(
                Ev.OSCILLATION_WINDOW_OPENED, connector=connector, bridgehead=bridgehead,
                state=ConnectorState.DOWN.value, window_end=Instant(diag.end),
            )  # fmt: skip
            return
        self.out.diag(
            Ev.OSCILLATION_SUPPRESSED, connector=connector, bridgehead=bridgehead, changes=diag.changes,
            window_start=Instant(diag.window_start), window_end=Instant(diag.at),
        )  # fmt: skip

    def _maybe_publish(self, now: float) -> None:
        """Publish before the settle period ends once every member has attached and every live bridgehead has
        reported (nothing left to guess, R130)."""
        if self.published:
            return
        expected = {s.guid for s in self.ctx.topology.servers_in(self.ctx.rg.name)} - {self.ctx.me.guid}
        if expected <= set(self.attached_members) and self.states.ready():
            self._publish(now, reason="every member attached and reported")

    def _publish(self, now: float, reason: str) -> None:
        if self.published:
            return
        self.published = True
        self.settle_deadline = None
        held = self.ctx.lsdb.section(self.ctx.rg.guid)  # what the organization holds, if anything (merge_foreign)
        self.states.rebuild(held if held is not None and held.version > Version() else None, now)
        base = max(self.acked_top, self.foreign_top) if self.quorum else self.acked_top  # R80: see merge_foreign
        self.version = base.bump_major()  # (base.major + 1).0.0, saturating at 2**64-1
        self._check_saturated()
        attached = len(self.attached_members)
        self.out.diag(Ev.MASTER_PUBLISHED, version=str(self.version), reason=reason, attached=attached)
        self._write_section(ChangeKind.MAJOR)

    def _commit(self, kind: UpdateKind, now: float, above: Version | None = None) -> None:
        if not self.published:
            return
        if kind == ChangeKind.MAJOR:
            base = max(self.version, above) if above is not None else self.version
            self.version = base.bump_major()
        elif kind == ChangeKind.MINOR:
            self.version = self.version.bump_minor()
        else:
            self.version = self.version.bump_user()
        self._check_saturated()
        self._write_section(kind)

    def _check_saturated(self) -> None:
        """A major of 2**64-1 cannot be published above: the version stays (proto.model.Version), said loudly."""
        if self.version.saturated:
            self.out.diag(Ev.VERSION_SATURATED, version=str(self.version))

    def _unavailable(self) -> RoutingGroup:
        """Where a (re)started master begins (R130, DECISIONS §2): its own section with every other server
        `connected NO`, every source bridgehead unavailable and every connector that can be down DOWN, at version
        0.0.0 with the lowest version GUID, so that no table holding the directory's copy (or anything newer) ever
        takes it instead: only this master's own table and a member as new as it is hold it, until the master
        adopts the organization's copy or publishes."""
        ctx = self.ctx
        servers = [s.name for s in ctx.topology.servers_in(ctx.rg.name)]
        section = build_section(ctx.topology, ctx.rg.name, version_guid="0" * 32, down=servers)
        members = tuple(replace(m, connected=m.guid == ctx.me.guid) for m in section.members)
        return replace(section, members=members)

    def build_own_section(self) -> RoutingGroup:
        ctx = self.ctx
        base = build_section(ctx.topology, ctx.rg.name, version=self.version, version_guid=self.epoch)
        present = set(self.attached_members) | {ctx.me.guid}
        members = tuple(
            replace(m, connected=m.guid in present, service_status=self.services.get(m.guid, m.service_status))
            for m in base.members
        )
        connectors = []
        for c in base.connectors:
            bh_states, conn_states = self.states.bh_states, self.states.conn_states
            bhs = tuple(replace(b, state=bh_states.get((c.guid, b.guid), b.state)) for b in c.bridgeheads)
            connectors.append(replace(c, bridgeheads=bhs, state=conn_states.get(c.guid, c.state)))
        return replace(base, members=members, connectors=tuple(connectors))

    def _write_section(self, kind: UpdateKind) -> None:
        section = self.build_own_section()
        if self.ctx.lsdb.put(section):
            self.out.table_changed(kind, (section.guid,))
            self._push_all(except_conn=None)

    def topology_changed(self, now: float) -> None:
        """The directory changed (seed L8980–L9014, R105): a server added to or removed from the group is a user
        update; any other change of this group's section (a connector added, removed or changed, the group's
        addresses) is a major one."""
        self.states.directory_changed(now)
        if not self.published:
            return
        current = self.ctx.lsdb.section(self.ctx.rg.guid)
        candidate = self.build_own_section()
        if current is None or replace(candidate, version=current.version, members=current.members) != current:
            self._commit(ChangeKind.MAJOR, now)
        elif candidate.members != current.members:
            self._commit(ChangeKind.USER, now)

    def _push_all(self, except_conn: int | None) -> None:
        for conn in self.attached_members.values():
            if conn != except_conn:
                self._push(conn)

    def _push(self, conn: int) -> None:
        """The change to one member: the sections stored since it was last sent the table (a delta member whose
        mark the change log still reaches), nothing if there are none, else the whole table."""
        lsdb = self.ctx.lsdb
        sent = self.delta_members.get(conn)
        changed = None if sent is None else lsdb.changed_since(sent)
        if changed is None:
            self._send_table(conn)
        elif changed:
            self.out.send_delta(conn, changed)
            self.delta_members[conn] = lsdb.seq

    def _holds_ours(self, conn: int) -> None:
        """A delta member reported our digest: it holds our table as it is now."""
        if conn in self.delta_members:
            self.delta_members[conn] = self.ctx.lsdb.seq

    def _send_table(self, conn: int) -> None:
        self.out.send_table(conn)
        if conn in self.delta_members:
            self.delta_members[conn] = self.ctx.lsdb.seq


def _shows_quorum(section: RoutingGroup) -> bool:
    """The section's own members list shows its master acknowledged by ⌊N/2⌋+1 of them (connected YES)."""
    return sum(m.connected for m in section.members) >= len(section.members) // 2 + 1


def _earliest(a: float | None, b: float | None) -> float | None:
    """The earlier of two optional deadlines (called on every message: no temporary lists)."""
    if a is None:
        return b
    return a if b is None or a <= b else b


_HANDLERS = {
    rg691.Attach: MasterRole._on_attach,
    rg691.SimplePoll: MasterRole._on_poll,
    rg691.Reply: MasterRole._on_reply,
    rg691.OrgInfoFrame: MasterRole._on_orginfo,
    rg691.Delta: MasterRole._on_orginfo,
    rg691.StateReport: MasterRole._on_state,
    rg691.Detach: MasterRole._on_detach,
    rg691.Dump: MasterRole._on_dump,
}
# what only an attached member may send (anything else of these is refused and its connection closed)
_FROM_MEMBERS = frozenset({rg691.SimplePoll, rg691.Reply, rg691.OrgInfoFrame, rg691.Delta, rg691.StateReport})

__all__ = ["MasterRole"]
