"""`NodeView`: the read-only picture of a node that shells, tools, tests and benchmarks read (`NodeCore.view()`).

Owns: the frozen snapshot of one node's standing: which server and group, its role, the master it follows,
whether it is attached and who is attached to it, quorum, whether a master has published, whether it is orphaned,
its table's digest and its own group's version, which 691 and SMTP connections are authenticated, its table-change
counts and its 691 frame counts. Reading a view never changes the node; a view does not change when the node
does (take a new one).
May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from linkstate.core.role import RoleName
from proto.model import Version


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """One node at one moment (module docstring).

    `attached`: the server takes part in its group's exchange (a master always, a member once its ATTACH was
    accepted); `attached_members`: the names of the members attached to this master (empty on a member);
    `master`: the name of the master the directory designates, None while orphaned; `version`: this server's copy
    of its own group's section version (None before it holds one); `authenticated`: the ids of the 691
    connections past mutual authentication; `smtp_authenticated`: the ids of the SMTP connections whose peer
    authenticated (AUTH), and of every outbound one; `table_changes`: table changes by kind since the node started;
    `exchanges`: X-LINK2STATE exchanges its outbound sessions completed with a packet sent; `frames_in`,
    `frames_out`: TCP 691 frames received and sent after authentication (AUTH frames are not counted)."""

    server: str
    routing_group: str
    role: RoleName
    master: str | None
    attached: bool
    attached_members: tuple[str, ...]
    quorum: bool
    published: bool
    orphaned: bool
    digest: str
    version: Version | None
    authenticated: frozenset[int]
    smtp_authenticated: frozenset[int] = frozenset()
    table_changes: Mapping[str, int]
    exchanges: int
    frames_in: int = 0
    frames_out: int = 0

    @property
    def is_master(self) -> bool:
        return self.role is RoleName.MASTER
