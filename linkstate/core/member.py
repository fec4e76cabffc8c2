"""A member (subordinate service node) of a routing group (requirements R79, R84–R86, R128–R129, G31).

Owns: the one upstream connection to the group's master: connect with backoff and jitter, ATTACH, the
`Simple_Poll` timer, applying the master's pushes (REPLY, then the revised packet when it still differs), and
forwarding local state reports (STATE). While the master is away the member keeps serving its last table.
Invariants: at most one upstream connection; a member never writes its group's section itself; applying a
push adopts every section whose version is at least the local one (the master is the member's authority), so
a table changed behind the member's back converges at the next poll.
May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proto import rg691

if TYPE_CHECKING:
    from linkstate.core.node import NodeCore


class MemberRole:
    name = "member"

    def __init__(self, node: NodeCore, now: float) -> None:
        self.node = node
        self.master = node.topo.master_of(node.rg.name)
        self.upstream: int | None = None
        self.connecting = False
        self.attached = False
        self.attempt = 0
        self.reconnect_at: float | None = None
        self.poll_at: float | None = None
        self.outbox: list[rg691.StateReport] = []  # state reports waiting for an attachment
        self.last_master_digest = ""
        self.orphan = False  # the directory names no usable master: keep the table, connect to no one (R128)

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self._connect()

    def stop(self, reason: str) -> None:
        if self.upstream is not None:
            self.node.send(self.upstream, rg691.Detach(reason))
            self.node.close(self.upstream, reason)
        self.upstream = None
        self.attached = False

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
            self.poll_at = now + self.node.settings.scaled("poll_interval")
            if self.attached and self.upstream is not None:
                self.node.send(self.upstream, rg691.SimplePoll(self.node.lsdb.digest))

    def _connect(self) -> None:
        if self.connecting or self.upstream is not None or self.orphan:
            return
        self.connecting = True
        self.node.connect(self.master.name)

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
        node = self.node
        own = node.lsdb.section(node.rg.guid)
        v = own.version if own is not None else None
        node.send(
            conn,
            rg691.Attach(
                node.me.guid,
                node.rg.guid,
                self.master.guid,
                node.lsdb.digest,
                v.major if v else 0,
                v.minor if v else 0,
                v.user if v else 0,
                own.version_guid if own is not None else "0" * 32,
            ),
        )

    def on_lost(self, conn: int, now: float) -> None:
        if conn == self.upstream:
            self.upstream = None
            self._lost("connection to the master lost", now)

    def _lost(self, reason: str, now: float) -> None:
        was_attached = self.attached
        self.attached = False
        self.poll_at = None
        delay = self.node.settings.backoff(self.attempt, "reconnect_max", self.node.rand())
        self.attempt += 1
        self.reconnect_at = now + delay
        level = "warning" if was_attached or self.attempt == 1 else "info"
        self.node.diag(
            "master_unreachable",
            level=level,
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
            self.node.diag("attach_refused", level="error", master=self.master.name, reason=msg.reason)
            self.node.close(conn, f"attach refused: {msg.reason}")
            self.on_lost(conn, now)
            return
        self.attached = True
        self.attempt = 0
        self.last_master_digest = msg.digest
        self.poll_at = now + self.node.settings.scaled("poll_interval")
        self.node.diag("attached", master=self.master.name, quorum=msg.quorum, attached=msg.attached)
        for report in self.outbox:
            self.node.send(conn, report)
        self.outbox.clear()

    def _on_poll_response(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.PollResponse)
        self.last_master_digest = msg.digest
        if not msg.same:
            self.node.diag("poll_different", master_digest=msg.digest, digest=self.node.lsdb.digest)

    def _on_orginfo(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.OrgInfoFrame)
        node = self.node
        master_digest = msg.decoded.digest
        self.last_master_digest = master_digest
        bumps = node.lsdb.bumps
        changed = node.adopt(msg.decoded.orginfo)
        if changed:
            node.table_changed("push", changed, bumped=node.lsdb.bumps != bumps)
        differs = node.lsdb.digest != master_digest
        node.send(conn, rg691.Reply(node.lsdb.digest, differs))
        if differs:
            node.send_table(conn)

    def _on_ack(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.Ack)
        self.last_master_digest = msg.digest

    def _on_detach(self, conn: int, msg: rg691.Message, now: float) -> None:
        assert isinstance(msg, rg691.Detach)
        self.node.diag("master_detached", level="warning", master=self.master.name, reason=msg.reason)
        self.node.close(conn, "master detached")
        self.on_lost(conn, now)

    # --- local state -----------------------------------------------------------------------------------

    def report_state(self, report: rg691.StateReport, now: float) -> None:
        """Members report state changes to the master at once (R57), or as soon as they are attached."""
        if self.attached and self.upstream is not None:
            self.node.send(self.upstream, report)
        else:
            self.outbox = [
                r for r in self.outbox if (r.kind, r.subject, r.item) != (report.kind, report.subject, report.item)
            ]
            self.outbox.append(report)


_HANDLERS = {
    rg691.AttachAck: MemberRole._on_attach_ack,
    rg691.PollResponse: MemberRole._on_poll_response,
    rg691.OrgInfoFrame: MemberRole._on_orginfo,
    rg691.Ack: MemberRole._on_ack,
    rg691.Detach: MemberRole._on_detach,
}
