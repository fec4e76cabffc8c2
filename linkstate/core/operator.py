"""The node's answers to operator tools: DUMP (the WinRoute-style view), INJECT (a Remonitor tombstone), FAULT
(force a bridgehead state) and ROUTE (a route question, answered by linkstate.core.routes), from a 691 client
connection or from the shell's control inputs.

Owns: checking each command (who may inject what, R135; which states exist; whether this server is a source
bridgehead of the connector), carrying it out through the outbox and the bridgehead, and the reply: the DUMP view
and table, an ACK with the digest after the command took effect, or a DETACH with the one-line refusal; and the DUMP
rate of each connection (`dump_burst` at once, then `dump_rate` a second: beyond it DETACH and close, docs/SECURITY.md).
Invariants: a refused command changes nothing and is logged (`client_command_refused`, `inject_refused`,
`fault_refused`, `dump_rate_exceeded`); an accepted one is logged once; the connection of a refused client command
is closed. The
operator runs at the node's level: it may ask the node to settle (handle the facts a command raised) before it
answers, because an answer carries the state after the command.
May import: the standard library, proto, linkstate.core (never node.py or a role).
"""

from __future__ import annotations

from collections.abc import Callable

from linkstate.core.bridgehead import Bridgehead
from linkstate.core.catalog import Ev
from linkstate.core.context import NodeContext, Outbox
from linkstate.core.directory import tombstone
from linkstate.core.facts import Learned
from linkstate.core.ratelimit import TokenBucket
from linkstate.core.role import RoleStatus
from linkstate.core.routes import NodeRoutes
from proto import rg691
from proto.model import BridgeheadState, OrgInfo


class Operator:
    """Operator commands for one node (module docstring). `status` gives the role's current standing and `settle`
    lets the node handle the facts a command raised before the answer is written."""

    def __init__(
        self,
        ctx: NodeContext,
        out: Outbox,
        bridgehead: Bridgehead,
        routes: NodeRoutes,
        *,
        status: Callable[[], RoleStatus],
        settle: Callable[[float], None],
    ) -> None:
        self.ctx = ctx
        self.out = out
        self.bridgehead = bridgehead
        self.routes = routes
        self.status = status
        self.settle = settle
        self._dumps: dict[int, TokenBucket] = {}  # conn -> DUMP answers it has left (made at its first DUMP)

    # --- from a 691 client connection --------------------------------------------------------------------

    def dump(self, conn: int, now: float) -> None:
        """Answer DUMP: this server's standing in its group, then its table (the shared frame) — or, past the
        connection's DUMP rate, DETACH and close."""
        if not self._dump_allowed(conn, now):
            settings = self.ctx.settings
            reason = f"DUMP rate exceeded ({settings.dump_burst} at once, then {settings.dump_rate:g}/s)"
            c = self.out.conns.get(conn)
            self.out.diag(Ev.DUMP_RATE_EXCEEDED, conn=conn, peer_host=c.peer_host if c else "")
            self.out.send(conn, rg691.Detach(reason))
            self.out.close(conn, reason)
            return
        ctx, st = self.ctx, self.status()
        view = rg691.Dump(
            True,
            ctx.me.guid,
            ctx.rg.guid,
            st.name.value,
            st.master or ctx.topology.master_of(ctx.rg.name).guid,
            st.attached,
            st.quorum,
            st.attached_count,
            len(ctx.topology.servers_in(ctx.rg.name)),
        )
        self.out.send(conn, view)
        self.out.send_table(conn)

    def _dump_allowed(self, conn: int, now: float) -> bool:
        bucket = self._dumps.get(conn)
        if bucket is None:
            if len(self._dumps) > len(self.out.conns) + 16:  # forget the connections that are gone
                self._dumps = {c: b for c, b in self._dumps.items() if c in self.out.conns}
            settings = self.ctx.settings
            bucket = self._dumps[conn] = TokenBucket(settings.dump_rate, settings.dump_burst, now)
        return bucket.take(now)

    def command(self, conn: int, msg: rg691.Message, peer_host: str, now: float) -> None:
        """A client node's INJECT or FAULT: ACK with the digest after it took effect, or DETACH and close. A route
        question is answered from the node's own router (`ROUTE ANSWER`)."""
        if isinstance(msg, rg691.RouteQuery):
            self.out.send(conn, self.routes.answer(msg))
            return
        if isinstance(msg, rg691.Inject):
            refusal = self.inject(msg.routing_group, peer_host, now)
        elif isinstance(msg, rg691.StateReport) and msg.kind == "FAULT":
            refusal = self.fault(msg.subject, msg.value, now)
        else:
            refusal = f"{type(msg).__name__} is not a client command"
        if refusal:
            self.out.diag(Ev.CLIENT_COMMAND_REFUSED, command=type(msg).__name__, reason=refusal)
            self.out.send(conn, rg691.Detach(refusal))
            self.out.close(conn, refusal)
        else:
            self.out.send(conn, rg691.Ack(self.ctx.lsdb.digest))

    # --- the commands ----------------------------------------------------------------------------------------

    def inject(self, rg_guid: str, peer_host: str, now: float) -> str:
        """Write a Remonitor tombstone for `rg_guid` (G53, G54); the refusal, or "" once it is merged."""
        ctx = self.ctx
        if peer_host and peer_host == (ctx.me.address or ""):
            return "cannot inject on the server the tool runs on (R135)"
        if rg_guid == ctx.rg.guid:
            return "cannot delete the routing group this server belongs to"
        section = ctx.lsdb.section(rg_guid)
        if section is None:
            return f"routing group {rg_guid} is not in this server's table"
        dead = tombstone(section)
        self.out.diag(Ev.TOMBSTONE_INJECTED, routing_group=rg_guid, version=str(dead.version))
        self.out.post(Learned(OrgInfo((dead,)), "remonitor"))
        self.settle(now)
        return ""

    def fault(self, connector: str, value: str, now: float) -> str:
        """Force this bridgehead's state for `connector` (`CLEAR` lifts the force); the refusal, or ""."""
        state = None
        if value != "CLEAR":
            try:
                state = BridgeheadState(value.removeprefix("VS_"))
            except ValueError:
                return f"unknown bridgehead state {value!r}"
        if not self.bridgehead.force(connector, state, now):
            return "this server is not a source bridgehead of that connector"
        self.settle(now)
        self.out.diag(Ev.FAULT_INJECTED, connector=self.ctx.connector_name(connector), state=value)
        return ""

    # --- from the shell's control inputs ----------------------------------------------------------------------

    def fault_input(self, connector: str, state: BridgeheadState | None, now: float) -> None:
        refusal = self.fault(connector, state.value if state else "CLEAR", now)
        if refusal:
            self.out.diag(Ev.FAULT_REFUSED, reason=refusal)

    def tombstone_input(self, rg_guid: str, peer_host: str, now: float) -> None:
        refusal = self.inject(rg_guid, peer_host, now)
        if refusal:
            self.out.diag(Ev.INJECT_REFUSED, reason=refusal)
