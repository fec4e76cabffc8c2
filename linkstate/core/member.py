"""A member (subordinate service node) of a routing group (requirements R79, R84–R86, R128–R129, G31).

Owns: the one upstream connection to the group's master: connect with backoff and jitter, ATTACH (offering the
delta capability when the node offers the extensions, docs/PROTOCOL.md §2.5), the `Simple_Poll` timer, applying
the master's pushes (REPLY, then the revised packet when it still differs; after a `DELTA` push, `REPLY RESEND` when
the result is not the master's digest and no forward of its own explains it), and
forwarding local state reports (STATE): those queued while detached, then, once attached, what its bridgehead
observed (a `JoinedGroup` fact: a restarted master rebuilds from it, R130). While the master is away the member
keeps serving its last table.
Failures to reach the master are warnings, but the retries after the first failure of a streak are info, and so
is every failure while the node starts (within `master_settle` of the role's start and before it ever attached:
the servers of a group start in any order; docs/EVENTS.md). A master that detaches its members (DETACH: it is
stopping, or giving up the role) said goodbye: that is info, and so is every failure to reach it within
`master_settle` after (a restart is expected); a master still away after that is a warning again.
Invariants: at most one upstream connection; a member never writes its group's section itself; applying a
push adopts every section whose version is at least the local one (the master is the member's authority), so
a table changed behind the member's back converges at the next poll.
May import: the standard library, proto, linkstate.core (never node.py).
"""

from __future__ import annotations

from linkstate.core.catalog import Ev
from linkstate.core.context import NodeContext, Outbox
from linkstate.core.events import ChangeKind
from linkstate.core.facts import JoinedGroup
from linkstate.core.role import RoleName, RoleStatus
from linkstate.core.topology import ServerSpec
from proto import rg691
from proto.model import OrgInfo


class MemberRole:
    """A member of its routing group (module docstring), seen by the node through `linkstate.core.role.Role`.

    Reads its node through `ctx` and acts through `out`. Built `orphan` when the directory names no usable master
    (R81): it then keeps its table and connects to no one. Built with `master` (a server of its group) when it
    follows a master other than the directory's: the one with quorum that outvoted it (R80, G28)."""

    name = RoleName.MEMBER

    def __init__(
        self, ctx: NodeContext, out: Outbox, now: float, *, orphan: bool = False, master: ServerSpec | None = None
    ) -> None:
        self.ctx = ctx
        self.out = out
        self.master = master or ctx.topology.master_of(ctx.rg.name)
        self.upstream: int | None = None
        self.connecting = False
        self.attached = False
        self.attempt = 0
        self.reconnect_at: float | None = None
        self.poll_at: float | None = None
        self.outbox: list[rg691.StateReport] = []  # state reports waiting for an attachment
        self.orphan = orphan  # the directory names no usable master: keep the table, connect to no one (R128)
        self.starting_until = now + ctx.settings.scaled("master_settle")  # quiet failures until then, if never attached
        self.ever_attached = False
        self.warned = False  # this streak of failures has had its warning
        self.detached_until = 0.0  # the master said DETACH: failures to reach it are expected until then
        self.delta = False  # the master took our delta capability (ATTACH_ACK)
        self.forwarding = 0  # packets forwarded to the master (REPLY FOLLOWS) whose ACK has not come back

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self._connect()

    def stop(self, reason: str) -> None:
        if self.upstream is not None:
            self.out.send(self.upstream, rg691.Detach(reason))
            self.out.close(self.upstream, reason)
        self.upstream = None
        self.attached = False

    def status(self) -> RoleStatus:
        return RoleStatus(
            name=self.name,
            attached=self.attached,
            master="" if self.orphan else self.master.guid,
            attached_count=int(self.attached),
            quorum=self.attached,
            orphaned=self.orphan,
        )

    def next_deadline(self) -> float | None:
        a, b = self.reconnect_at, self.poll_at
        if a is None:
            return b
        return a if b is None or a <= b else b

    def on_timer(self, now: float) -> None:
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self.reconnect_at = None
            self._connect()
        if self.poll_at is not None and now >= self.poll_at:
            self.poll_at = now + self.ctx.settings.scaled("poll_interval")
            if self.attached and self.upstream is not None:
                self.out.send(self.upstream, rg691.SimplePoll(self.ctx.lsdb.digest))

    def _connect(self) -> None:
        if self.connecting or self.upstream is not None or self.orphan:
            return
        self.connecting = True
        self.out.connect(self.master.name)

    # --- connection events -----------------------------------------------------------------------------

    def on_connected(self, conn: int, now: float) -> None:
        self.connecting = False
        self.upstream = conn

    def on_connect_failed(self, reason: str, now: float) -> None:
        self.connecting = False
        self._lost(reason, now)

    def on_authenticated(self, conn: int, now: float) -> None:
        if conn != self.upstream:
            return
        ctx = self.ctx
        own = ctx.lsdb.section(ctx.rg.guid)
        v = own.version if own is not None else None
        self.out.send(
            conn,
            rg691.Attach(
                ctx.me.guid,
                ctx.rg.guid,
                self.master.guid,
                ctx.lsdb.digest,
                v.major if v else 0,
                v.minor if v else 0,
                v.user if v else 0,
                own.version_guid if own is not None else "0" * 32,
                caps=(rg691.CAP_DELTA,) if ctx.settings.delta else (),
            ),
        )

    def on_lost(self, conn: int, now: float) -> None:
        if conn == self.upstream:
            self.upstream = None
            self._lost("connection to the master lost", now)

    def _lost(self, reason: str, now: float) -> None:
        was_attached = self.attached
        self.attached = False
        self.delta, self.forwarding = False, 0
        self.poll_at = None
        delay = self.ctx.settings.backoff(self.attempt, "reconnect_max", self.ctx.rand())
        self.attempt += 1
        self.reconnect_at = now + delay
        starting = not self.ever_attached and now < self.starting_until
        planned = now < self.detached_until  # the master said goodbye: a restart is under way
        quiet = starting or planned or (self.warned and not was_attached)
        self.warned = self.warned or not quiet
        self.out.diag(
            Ev.MASTER_UNREACHABLE,
            quiet=quiet,
            master=self.master.name,
            reason=reason,
            attempt=self.attempt,
            retry_in_s=round(delay, 3),
        )

    # --- messages --------------------------------------------------------------------------------------

    def on_message(self, conn: int, msg: rg691.Message, now: float) -> bool:
        if conn != self.upstream:
            return False
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            return False
        handler(self, conn, msg, now)
        return True

    def _on_attach_ack(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.AttachAck)
        if not msg.ok:
            self.out.diag(Ev.ATTACH_REFUSED_BY_MASTER, master=self.master.name, reason=msg.reason)
            self.out.close(conn, f"attach refused: {msg.reason}")
            self.on_lost(conn, now)
            return
        self.attached = True
        self.ever_attached = True
        self.delta = rg691.CAP_DELTA in msg.caps and self.ctx.settings.delta
        self.warned = False
        self.attempt = 0
        self.poll_at = now + self.ctx.settings.scaled("poll_interval")
        self.out.diag(Ev.ATTACHED, master=self.master.name, quorum=msg.quorum, attached=msg.attached)
        for report in self.outbox:
            self.out.send(conn, report)
        self.outbox.clear()
        self.out.post(JoinedGroup())  # the master (perhaps just restarted) hears what this bridgehead observed

    def _on_poll_response(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.PollResponse)
        if not msg.same:
            self.out.diag(Ev.POLL_DIFFERENT, master_digest=msg.digest, digest=self.ctx.lsdb.digest)

    def _on_orginfo(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.OrgInfoFrame)
        lsdb, out = self.ctx.lsdb, self.out
        master_digest = msg.decoded.digest
        bumps = lsdb.bumps
        changed = self._adopt(msg.decoded.orginfo)
        if changed:
            out.table_changed(ChangeKind.PUSH, changed, bumped=lsdb.bumps != bumps)
        differs = lsdb.digest != master_digest
        out.send(conn, rg691.Reply(lsdb.digest, differs))
        if differs:
            out.send_table(conn)

    def _on_delta(self, conn: int, msg: rg691.Message, now: float) -> None:
        """A push of the sections that changed: taken like a whole one; the result should be the master's table
        (its digest travels with them). If it is not, and no packet we forwarded explains it, we ask for the whole
        table (the delta's fallback)."""
        assert isinstance(msg, rg691.Delta)
        lsdb, out = self.ctx.lsdb, self.out
        bumps = lsdb.bumps
        changed = self._adopt(msg.decoded.orginfo)
        if changed:
            out.table_changed(ChangeKind.PUSH, changed, bumped=lsdb.bumps != bumps)
        resend = lsdb.digest != msg.target and not self.forwarding
        out.send(conn, rg691.Reply(lsdb.digest, False, resend=resend))
    def _adopt(self, org: OrgInfo) -> tuple[str, ...]:
        """Take every received section whose version is at least ours (a member trusting its master), within the
        table's bounds on unknown groups (linkstate.core.lsdb: the master keeps the same subset)."""
        return self.ctx.lsdb.adopt(org)

    def _on_ack(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.Ack)
        self.forwarding = max(0, self.forwarding - 1)

    def _on_detach(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.Detach)
        self.out.diag(Ev.MASTER_DETACHED, master=self.master.name, reason=msg.reason)
        self.detached_until = now + self.ctx.settings.scaled("master_settle")
        self.out.close(conn, "master detached")
        self.on_lost(conn, now)

    # --- local state and outside packets ---------------------------------------------------------------

    def learn(self, org: OrgInfo, now: float, source: str) -> None:
        """A packet from outside the group (R109, G62): merged newer-wins; the master gets it to fan it out."""
        lsdb = self.ctx.lsdb
        bumps = lsdb.bumps
        result = lsdb.merge(org, own_group=self.ctx.rg.guid)
        if not result.changed:
            return
        self.out.diag(Ev.ORGINFO_LEARNED, source=source, groups=len(result.changed), digest=lsdb.digest)
        self.out.table_changed(ChangeKind.MERGE, result.changed, bumped=lsdb.bumps != bumps)
        upstream = self.upstream
        if self.attached and upstream is not None:  # the master merges it and fans it out
            self.out.send(upstream, rg691.Reply(lsdb.digest, True))
            if self.delta:  # only what it learned
                self.out.send_delta(upstream, result.changed)
            else:
                self.out.send_table(upstream)
            self.forwarding += 1

    def topology_changed(self, now: float) -> None:
        """A member's section is its master's to write: nothing to do."""

    def report_state(self, report: rg691.StateReport, now: float) -> None:
        """Members report state changes to the master at once (R57), or as soon as they are attached."""
        if self.attached and self.upstream is not None:
            self.out.send(self.upstream, report)
        else:
            self.outbox = [
                r for r in self.outbox if (r.kind, r.subject, r.item) != (report.kind, report.subject, report.item)
            ]
            self.outbox.append(report)


_HANDLERS = {
    rg691.AttachAck: MemberRole._on_attach_ack,
    rg691.PollResponse: MemberRole._on_poll_response,
    rg691.OrgInfoFrame: MemberRole._on_orginfo,
    rg691.Delta: MemberRole._on_delta,
    rg691.Ack: MemberRole._on_ack,
    rg691.Detach: MemberRole._on_detach,
}
