"""The routes a node answers: one router for the node's whole life, and the routes it has been asked for
(requirements R52–R55, G44, G45, G50; issue 10 item 8).

Owns: `NodeRoutes`: the node's `Router` (linkstate.core.routing), kept across every table change and directory
reload so its sticky choices between equal-cost connectors last (R55: no failback to an equal-cost connector that
recovers; R54: a cheaper one that recovers wins again); the destinations it has been asked about (the most recent
`REMEMBERED`), each routed again whenever routes may have changed (a major or minor version moved: "reset routes",
G45), as a server re-plans its queues; and the answer to a tool's `ROUTE ASK` (docs/PROTOCOL.md §2.3).
Invariants: pure; the table is only read; a question it cannot answer (an unknown server or group, a malformed
address) is answered `unreachable`, never raised.
May import: the standard library, proto, linkstate.core (never node.py or a role).
"""

from __future__ import annotations

from collections import OrderedDict

from linkstate.core.context import NodeContext
from linkstate.core.routing import MessageClass, Route, Router, RouteStatus, RoutingError
from proto import rg691

REMEMBERED = 256
_DESTINATIONS = {"ADDRESS": "to", "SERVER": "to_server", "GROUP": "to_group"}


class NodeRoutes:
    """One node's route answers (module docstring)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.router = Router(ctx.topology, seed=ctx.me.guid)
        self.asked: OrderedDict[rg691.RouteQuery, None] = OrderedDict()

    def route(self, query: rg691.RouteQuery) -> Route:
        """Answer one question from the node's current table, and remember it."""
        self.asked[query] = None
        self.asked.move_to_end(query)
        while len(self.asked) > REMEMBERED:
            self.asked.popitem(last=False)
        return self._lookup(query)

    def reset(self) -> None:
        """Routes may have changed (G45): route every remembered question again, so the router's choices follow
        the table as it changes, not only when someone asks."""
        for query in self.asked:
            self._lookup(query)

    def directory_changed(self) -> None:
        """A directory reload: the router takes the new names and settings, and keeps its sticky choices."""
        self.router = self.router.with_topology(self.ctx.topology)

    def answer(self, query: rg691.RouteQuery) -> rg691.RouteAnswer:
        """`ROUTE ANSWER` for a tool."""
        r = self.route(query)
        space = r.address_space
        return rg691.RouteAnswer(
            r.status.value,
            r.connector.guid if r.connector else "",
            r.cost,
            r.next_hop or "",
            r.path_guids,
            space.type if space else "",
            space.address if space else "",
            space.cost if space else None,
            space.connector.guid if space else "",
        )

    def _lookup(self, query: rg691.RouteQuery) -> Route:
        msg = MessageClass(sender=query.sender or None, size=query.size, priority=query.priority,
                           referral=query.referral)  # fmt: skip
        dest = {_DESTINATIONS[query.kind]: query.destination}
        try:
            return self.router.route(self.ctx.lsdb, query.server, msg=msg, **dest)
        except RoutingError:
            return Route(status=RouteStatus.UNREACHABLE)
