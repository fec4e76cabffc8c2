"""What `NodeCore` asks of a role, and what a role tells about itself.

Owns: `Role`, the interface `MasterRole` and `MemberRole` both implement (the node calls every method on whichever
role it holds; a role ignores what does not concern it), `RoleName`, and `RoleStatus`, a role's answer to "where
do you stand" that the node's public view and the DUMP answer are built from.
Invariants: NodeCore never asks which class its role is and never writes a role's attributes; a role is built
with everything it needs (context, outbox, the time, whether it starts orphaned).
May import: the standard library, proto.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from proto import rg691
from proto.model import OrgInfo


class RoleName(enum.StrEnum):
    MASTER = "master"
    MEMBER = "member"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleStatus:
    """Where a role stands.

    `attached`: the server takes part in its group's exchange (a master always; a member once its master accepted
    its ATTACH). `attached_members`: the GUIDs of the members attached to a master (empty for a member).
    `attached_count`: what DUMP reports (a master: its attached members; a member: 1 when attached, else 0).
    `published`: a master has published its section since it started. `orphaned`: the directory names no usable
    master; the server keeps its table and attaches to no one (R81, R128). `master`: the master it is or follows —
    the directory's, or the one with quorum that outvoted it (R80)."""

    name: RoleName
    attached: bool
    master: str = ""  # the GUID of the master this server is or follows ("" while orphaned)
    attached_members: tuple[str, ...] = ()
    attached_count: int = 0
    quorum: bool = False
    published: bool = False
    orphaned: bool = False


class Role(Protocol):
    """The node's view of a role. `handle`-style methods take the time of the input as `now`."""

    name: RoleName

    def start(self, now: float) -> None:
        """The node started (or took this role): connect, or begin the settle period."""

    def stop(self, reason: str) -> None:
        """The role ends (shutdown, the master moved): detach and close its connections."""

    def next_deadline(self) -> float | None:
        """The earliest time `on_timer` has work to do, or None."""

    def on_timer(self, now: float) -> None:
        """Do what is due at `now` (never earlier than `next_deadline()`)."""

    def on_connected(self, conn: int, now: float) -> None:
        """An outbound 691 connection (the answer to this role's connect) is up."""

    def on_connect_failed(self, reason: str, now: float) -> None:
        """This role's outbound 691 connect failed."""

    def on_authenticated(self, conn: int, now: float) -> None:
        """A 691 connection passed authentication both ways."""

    def on_lost(self, conn: int, now: float) -> None:
        """A 691 connection is gone (closed by either side, or failed)."""

    def on_message(self, conn: int, msg: rg691.Message, now: float) -> bool:
        """An authenticated peer's message; False when the role has no use for it."""

    def report_state(self, report: rg691.StateReport, now: float) -> None:
        """A local state change (a bridgehead state, the service status) to publish or forward."""

    def learn(self, org: OrgInfo, now: float, source: str) -> None:
        """A packet from outside the group (a bridgehead session, an injected tombstone)."""

    def topology_changed(self, now: float) -> None:
        """The directory changed and this role stays (a master publishes a major update when its section differs)."""

    def status(self) -> RoleStatus:
        """Where the role stands (module docstring)."""
