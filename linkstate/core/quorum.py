"""A master's watch over its own standing: "(N/2)+1 servers in the routing group must agree and acknowledge the
master" (seed L6384; requirements R80, R81, R132, G28; fixture F12).

Owns: `QuorumWatch`: since when the master has lacked quorum (itself plus its attached members fewer than
⌊N/2⌋+1 of the N servers its directory puts in the group), the probes it sends while it lacks it, and what they
found. A probe is a 691 connection to each server of the group not attached to it, authenticated like a member's,
asking `DUMP`; a server that answers it is master of this group, names itself master and has quorum is a *rival
with quorum*. When the master has lacked quorum for the grace period (`master_settle`) and a probe finds such a
rival, it is outvoted: the role relinquishes (event 958) and follows that master (linkstate.core.node).
Invariants: a master with quorum never probes and is never outvoted; a probe connection carries `DUMP` and
nothing else, and is closed on its answer; only a live answer counts (a section still circulating from an old
master's reign is never evidence: that master may be gone); probes go out at most once per grace period.
May import: the standard library, proto, linkstate.core (never node.py or a role).
"""

from __future__ import annotations

from linkstate.core.catalog import Ev
from linkstate.core.context import NodeContext, Outbox
from linkstate.core.role import RoleName
from proto import rg691


class QuorumWatch:
    """One master's quorum standing and its probes (module docstring). The master tells it when its quorum
    changes (`update`) and hands it its probe connections' events."""

    def __init__(self, ctx: NodeContext, out: Outbox, now: float, *, quorum: bool) -> None:
        self.ctx = ctx
        self.out = out
        self.lacking_since: float | None = None
        self.probe_at: float | None = None
        self.probes: set[int] = set()  # outbound 691 connections: a master opens no others
        self.update(quorum, now)

    @property
    def grace(self) -> float:
        return self.ctx.settings.scaled("master_settle")

    def update(self, quorum: bool, now: float) -> None:
        """The master's quorum now: it starts (or stops) the clock of the grace period."""
        if quorum:
            self.lacking_since = self.probe_at = None
            for conn in list(self.probes):
                self.out.close(conn, "quorum regained")
            self.probes.clear()
        elif self.lacking_since is None:
            self.lacking_since = now
            self.probe_at = now + self.grace

    def close(self) -> None:
        """The role ends: no more probes."""
        self.update(True, 0.0)

    def next_deadline(self) -> float | None:
        return self.probe_at

    def on_timer(self, now: float, attached: set[str]) -> None:
        """Probe every server of the group that is not attached (at most once per grace period)."""
        if self.probe_at is None or now < self.probe_at:
            return
        self.probe_at = now + self.grace
        ctx = self.ctx
        for server in ctx.topology.servers_in(ctx.rg.name):
            if server.guid != ctx.me.guid and server.guid not in attached:
                self.out.connect(server.name)

    # --- the probe connections -------------------------------------------------------------------------------

    def opened(self, conn: int) -> None:
        self.probes.add(conn)

    def authenticated(self, conn: int) -> None:
        if conn in self.probes:
            self.out.send(conn, rg691.Dump())

    def lost(self, conn: int) -> None:
        self.probes.discard(conn)

    def answered(self, conn: int, view: rg691.Dump, now: float) -> str | None:
        """A probe's answer: the GUID of the rival with quorum the master must follow, if it is outvoted now."""
        if conn not in self.probes:
            return None
        self.probes.discard(conn)
        self.out.close(conn, "quorum probe answered")
        ctx = self.ctx
        rival = (
            view.routing_group == ctx.rg.guid
            and view.role == RoleName.MASTER.value
            and view.node == view.master != ctx.me.guid
            and view.quorum
        )
        self.out.diag(Ev.QUORUM_PROBE_ANSWERED, server=ctx.server_name(view.node), role=view.role,
                      master=ctx.server_name(view.master), quorum=view.quorum)  # fmt: skip
        lacking = self.lacking_since is not None and now >= self.lacking_since + self.grace
        return view.node if rival and lacking else None
