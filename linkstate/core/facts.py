"""Facts: what one part of a node tells another, queued for `NodeCore` to route (the core's internal events).

Owns: the frozen dataclasses a role, the bridgehead or the operator module posts to its outbox when something it
did matters to another part: the table took a major or minor change (`TableBumped`: the bridgehead tells the other
groups), a packet came from outside the group (`Learned`: the role merges it), a bridgehead state was observed
(`Observed`: the role reports or commits it), the server (re)joined its group's exchange (`JoinedGroup`: the
bridgehead tells what it has observed again), a master without quorum was outvoted (`Outvoted`: the node makes it
a member of the master with quorum), a bridgehead link went idle (`LinkIdle`: the bridgehead reruns it if a
change arrived meanwhile, once the link's own observation has been handled).
Invariants: a fact names what happened, never which part must act; `NodeCore` alone decides who handles it. A fact
raised while another is handled is handled before the facts that were already waiting (depth first), so effects
follow in the order the parts would have called each other.
May import: the standard library, proto.model, linkstate.core.events.
"""

from __future__ import annotations

from dataclasses import dataclass

from linkstate.core.events import ChangeKind
from proto.model import BridgeheadState, OrgInfo


@dataclass(frozen=True, slots=True)
class TableBumped:
    """The table took a major or minor change (own, or carried by what was merged): tell every remote bridgehead
    now (G33, G34)."""

    kind: ChangeKind


@dataclass(frozen=True, slots=True)
class Learned:
    """A packet from outside the group (a bridgehead session, an injected tombstone), decoded strictly (R109, G62)."""

    org: OrgInfo
    source: str


@dataclass(frozen=True, slots=True)
class Observed:
    """This server, as a source bridgehead of `connector`, observed (or was forced to) `state` (G40)."""

    connector: str
    state: BridgeheadState


@dataclass(frozen=True, slots=True)
class JoinedGroup:
    """This server (re)joined its group's exchange: a master that started, a member whose ATTACH was accepted.
    Its master has heard nothing from this server's bridgehead yet (R130: a restarted master rebuilds from what
    members report)."""


@dataclass(frozen=True, slots=True)
class Outvoted:
    """This server was master of its group without quorum, and `master` (a server GUID) is master of it with the
    acknowledgement of ⌊N/2⌋+1 servers (R80, G28): this one relinquished (958) and follows it."""

    master: str


@dataclass(frozen=True, slots=True)
class LinkIdle:
    """The outbound session of `connector` ended well; if a change arrived during it, the link runs again."""

    connector: str


Fact = TableBumped | Learned | Observed | JoinedGroup | Outvoted | LinkIdle
