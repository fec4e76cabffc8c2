"""The master service node of a routing group (requirements R79–R88, R128–R130, G26–G33, G48).

Owns: the group's authoritative section: who is attached (members' `connected` YES/NO), members' service
status, committed bridgehead and connector states, the version and its bumps (major on a directory change of
its own group, minor on a committed connector change, user on attach/detach/service changes), the settle
period after a (re)start, quorum, and the push of the full OrgInfo to every attached member on each change.
Invariants: only this role writes its own group's section; versions never go backwards and the first version
published after a start is above every version of its group a member reported (G31); foreign data about its
own group is ignored (R107) but lifts the next version above it.
May import: the standard library, proto, linkstate.core (never node.py).
"""

from __future__ import annotations

from dataclasses import replace

from linkstate.core.context import NodeContext, Outbox
from linkstate.core.dampening import Commit, Dampener
from linkstate.core.directory import build_section
from linkstate.core.events import ChangeKind, UpdateKind
from linkstate.core.role import RoleName, RoleStatus
from linkstate.core.routing import connector_pinned
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
        self.services: dict[str, str] = {}
        self.bh_states: dict[tuple[str, str], BridgeheadState] = {}  # committed (connector, vs) -> state
        self.conn_states: dict[str, ConnectorState] = {}  # committed connector -> state
        self.reported: dict[tuple[str, str], BridgeheadState] = {}  # latest reported (connector, vs) -> state
        self.epoch = ctx.nonce()  # a fresh version GUID at every master start (G31)
        self.version = Version()
        self.highest_seen = Version()
        self.published = False
        self.settle_deadline: float | None = now + ctx.settings.scaled("master_settle")
        self.dampener = Dampener(
            ctx.settings.scaled("state_delay"),
            compat_e2k=ctx.settings.compat_e2k,
            batch_interval=ctx.settings.scaled("poll_interval"),
            epoch=now,
        )
        self._pinned_cache: tuple[str, dict[str, bool]] | None = None  # digest -> connector -> pinned?

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        own = self.ctx.lsdb.section(self.ctx.rg.guid)
        if own is not None:
            self.highest_seen = max(self.highest_seen, own.version)
        self.out.diag("master_started", rg=self.ctx.rg.name, settle_s=self.ctx.settings.scaled("master_settle"))
        self._maybe_publish(now)

    def stop(self, reason: str) -> None:
        for conn in list(self.attached_members.values()):
            self.out.send(conn, rg691.Detach(reason))
            self.out.close(conn, reason)
        self.attached_members.clear()

    def status(self) -> RoleStatus:
        return RoleStatus(
            name=self.name,
            attached=True,
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
        return _earliest(self.settle_deadline, self.dampener.next_deadline())

    def on_timer(self, now: float) -> None:
        if self.settle_deadline is not None and now >= self.settle_deadline:
            self.settle_deadline = None
            self._publish(now, reason="settle period over")
        self._apply_commits(self.dampener.on_timer(now), now)

    # --- messages --------------------------------------------------------------------------------------

    def on_message(self, conn: int, msg: rg691.Message, now: float) -> bool:
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            return False
        handler(self, conn, msg, now)
        return True

    def on_connected(self, conn: int, now: float) -> None:
        """A master opens no 691 connection of its own."""

    def on_connect_failed(self, reason: str, now: float) -> None:
        """A master opens no 691 connection of its own."""

    def on_authenticated(self, conn: int, now: float) -> None:
        """Members speak first (ATTACH): nothing to do until they do."""

    def on_lost(self, conn: int, now: float) -> None:
        for guid, c in list(self.attached_members.items()):
            if c == conn:
                del self.attached_members[guid]
                self.out.diag("member_detached", member=self.ctx.server_name(guid), attached=len(self.attached_members))
                self._commit(ChangeKind.USER, now)

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
            out.diag("attach_refused", level="warning", member=msg.member, reason=refusal)
            out.close(conn, refusal)
            return
        assert member is not None
        old = self.attached_members.get(msg.member)
        if old is not None and old != conn:
            out.close(old, "replaced by a new attachment")
        self.attached_members[msg.member] = conn
        reported = Version(msg.major, msg.minor, msg.user)
        self.highest_seen = max(self.highest_seen, reported)
        out.send(
            conn,
            rg691.AttachAck(
                True,
                ctx.lsdb.digest,
                len(self.attached_members),
                len(ctx.topology.servers_in(ctx.rg.name)),
                self.quorum,
            ),
        )
        out.diag("member_attached", member=member.name, attached=len(self.attached_members), quorum=self.quorum)
        if self.published:
            if self._ahead(reported, msg.version_guid):  # the member saw a later epoch: publish above it
                self._commit(ChangeKind.MAJOR, now, above=reported)
            else:
                self._commit(ChangeKind.USER, now)
            if msg.digest != ctx.lsdb.digest:
                out.send_table(conn)
        else:
            self._maybe_publish(now)

    def _on_poll(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.SimplePoll)
        same = msg.digest == self.ctx.lsdb.digest
        self.out.send(conn, rg691.PollResponse(same, self.ctx.lsdb.digest))
        if not same and self.published:
            self.out.send_table(conn)

    def _on_reply(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.Reply)
        if not msg.follows:  # otherwise the revised ORGINFO follows, and its ACK with it
            self.out.send(conn, rg691.Ack(self.ctx.lsdb.digest))

    def _on_orginfo(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.OrgInfoFrame)
        self.merge_foreign(msg.decoded.orginfo, now)
        self.out.send(conn, rg691.Ack(self.ctx.lsdb.digest))

    def learn(self, org: OrgInfo, now: float, source: str) -> None:
        """A packet from outside the group: merged like a member's (R107, R109)."""
        self.merge_foreign(org, now)

    def merge_foreign(self, org: OrgInfo, now: float) -> None:
        """Merge a packet from a member or a bridgehead (R107): own group ignored, others newer-wins."""
        bumps = self.ctx.lsdb.bumps
        result = self.ctx.lsdb.merge(org, own_group=self.ctx.rg.guid)
        theirs = org.group(self.ctx.rg.guid)
        if theirs is not None:
            self.highest_seen = max(self.highest_seen, theirs.version)
            mine = self.ctx.lsdb.section(self.ctx.rg.guid)
            if self.published and theirs != mine and self._ahead(theirs.version, theirs.version_guid):
                self._commit(ChangeKind.MAJOR, now, above=theirs.version)
        if result.changed:
            self.out.table_changed(ChangeKind.MERGE, result.changed, bumped=self.ctx.lsdb.bumps != bumps)
            self._push_all(except_conn=None)

    def _ahead(self, version: Version, version_guid: str) -> bool:
        """Someone holds a version of this group at or above ours from another epoch: ours must move above."""
        return version > self.version or (version == self.version and version_guid != self.epoch)

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

    def _report_bridgehead(self, connector: str, vs: str, value: str, now: float) -> None:
        spec = self.ctx.topology.connector_by_guid(connector)
        if spec is None or spec.routing_group != self.ctx.rg.name:
            self.out.diag("state_ignored", level="warning", connector=connector, reason="not a connector of this group")
            return
        try:
            state = BridgeheadState(value.removeprefix("VS_"))
        except ValueError:
            self.out.diag("state_ignored", level="warning", connector=connector, reason=f"unknown state {value!r}")
            return
        self.reported[(connector, vs)] = state
        if self._pinned(connector):
            # no alternate path: the connector stays UP and no link-state traffic is generated (R121, G42)
            self.out.diag("state_change_pinned", connector=spec.name, state=state.value)
            return
        derived = self._derived_state(spec.guid, self.reported)
        if derived is self.dampener.committed(connector):
            self._refresh_bridgeheads(connector, now)
        self._apply_commits(self.dampener.report(connector, derived, now), now)

    def _pinned(self, connector: str) -> bool:
        settings = self.ctx.settings
        if settings.compat_e2k:
            return False
        digest = self.ctx.lsdb.digest
        if self._pinned_cache is None or self._pinned_cache[0] != digest:
            self._pinned_cache = (digest, {})
        known = self._pinned_cache[1]
        if connector not in known:  # one connector's search, not the whole table's (G42)
            known[connector] = connector_pinned(self.ctx.lsdb.snapshot(), connector, settings.leaf_rule)
        return known[connector]

    def _refresh_bridgeheads(self, connector: str, now: float) -> None:
        """A bridgehead changed but the connector's state did not: publish the bridgehead states (minor).

        Inside an open window, or while the connector is committed DOWN, nothing is published: the states wait for
        the connector's own commit."""
        quiet = self.dampener.committed(connector) is ConnectorState.UP and not self.dampener.window_open(connector)
        if quiet and self._take_reports(connector):
            self._commit(ChangeKind.MINOR, now)

    def _take_reports(self, connector: str) -> bool:
        """Make the latest reported bridgehead states of `connector` the published ones; True if any changed."""
        changed = False
        for (c, vs), bh in self.reported.items():
            if c == connector and self.bh_states.get((c, vs), BridgeheadState.CONN_AVAIL) is not bh:
                self.bh_states[(c, vs)] = bh
                changed = True
        return changed

    def _on_detach(self, conn: int, msg: rg691.Message, now: float) -> None:
        self.out.close(conn, "member detached")
        self.on_lost(conn, now)

    # --- state and versions -----------------------------------------------------------------------------

    def _derived_state(self, connector: str, states: dict[tuple[str, str], BridgeheadState]) -> ConnectorState:
        """DOWN only when every explicit source bridgehead is not available (R46–R47)."""
        spec = self.ctx.topology.connector_by_guid(connector)
        if spec is None or not spec.source_bridgeheads:
            return ConnectorState.UP
        vs_guids = [self.ctx.topology.bridgehead_of(name) for name in spec.source_bridgeheads]
        all_down = all(
            states.get((connector, vs), BridgeheadState.CONN_AVAIL) is not BridgeheadState.CONN_AVAIL for vs in vs_guids
        )
        return ConnectorState.DOWN if all_down else ConnectorState.UP

    def _apply_commits(self, commits: list[Commit], now: float) -> None:
        for diag in self.dampener.diagnostics():
            self.out.diag(
                diag.name,
                level="warning",
                connector=self.ctx.connector_name(diag.connector_guid),
                changes=diag.changes,
                window_start=round(diag.window_start, 3),
            )
        if not commits:
            return
        for commit in commits:
            connector, state = commit.connector_guid, commit.state
            self.conn_states[connector] = state
            self._take_reports(connector)
            self.out.diag(
                "connector_state_committed",
                connector=self.ctx.connector_name(connector),
                state=state.value,
                event_id=4005,
            )
        self._commit(ChangeKind.MINOR, now)

    def _maybe_publish(self, now: float) -> None:
        expected = {s.guid for s in self.ctx.topology.servers_in(self.ctx.rg.name)} - {self.ctx.me.guid}
        if not self.published and expected <= set(self.attached_members):
            self._publish(now, reason="every member attached")

    def _publish(self, now: float, reason: str) -> None:
        if self.published:
            return
        self.published = True
        self.settle_deadline = None
        self.version = Version(max(self.highest_seen.major + 1, 1), 0, 0)
        self.out.diag("master_published", version=str(self.version), reason=reason, attached=len(self.attached_members))
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
        self._write_section(kind)

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
            bhs = tuple(replace(b, state=self.bh_states.get((c.guid, b.guid), b.state)) for b in c.bridgeheads)
            connectors.append(replace(c, bridgeheads=bhs, state=self.conn_states.get(c.guid, c.state)))
        return replace(base, members=members, connectors=tuple(connectors))

    def _write_section(self, kind: UpdateKind) -> None:
        section = self.build_own_section()
        if self.ctx.lsdb.put(section):
            self.out.table_changed(kind, (section.guid,))
            self._push_all(except_conn=None)

    def topology_changed(self, now: float) -> None:
        """The directory changed: a major update if this group's section differs beyond versions (R105)."""
        if not self.published:
            return
        current = self.ctx.lsdb.section(self.ctx.rg.guid)
        candidate = self.build_own_section()
        if current is None or replace(candidate, version=current.version) != current:
            self._commit(ChangeKind.MAJOR, now)

    def _push_all(self, except_conn: int | None) -> None:
        for conn in self.attached_members.values():
            if conn != except_conn:
                self.out.send_table(conn)


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
    rg691.StateReport: MasterRole._on_state,
    rg691.Detach: MasterRole._on_detach,
}

__all__ = ["MasterRole"]
