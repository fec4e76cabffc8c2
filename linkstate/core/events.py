"""The node core's vocabulary: inputs named as things that happened, outputs named as commands.

Owns: the frozen dataclasses passed between a `NodeCore` and the shell that runs it (linkstate.service or the
pure simulator in linkstate.sim), and the closed vocabularies they carry: `Proto` (which protocol a connection
speaks), `ChangeKind` (what changed the table) and `Cause` (why a session failed); a `Diagnostic` names its
event from the catalog (linkstate.core.catalog: `Ev`, which gives its ID and level) and may carry `Instant`s,
moments on the core's clock that the shell writes as wall-clock times. Connection ids are integers the shell assigns.
May import: the standard library, proto.model, linkstate.core.topology, linkstate.core.catalog.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

from linkstate.core.catalog import CATALOG, Ev, Level
from linkstate.core.topology import Topology
from proto.model import BridgeheadState, OrgInfo


class Proto(enum.StrEnum):
    """The protocol of a connection: TCP 691 inside a routing group, SMTP (X-LINK2STATE) between groups."""

    RG691 = "691"
    SMTP = "smtp"


class Cause(enum.StrEnum):
    """Why a session failed (the `cause` of an authentication or session failure): a wrong proof (AUTH), bytes
    that do not parse (DECODE), a step or verb out of order (PROTOCOL), or the connection closed before
    authentication completed (CLOSED)."""

    AUTH = "auth"
    DECODE = "decode"
    PROTOCOL = "protocol"
    CLOSED = "closed"


class ChangeKind(enum.StrEnum):
    """What changed a node's table.

    MAJOR, MINOR, USER: the master wrote its own group's section (a directory change or a version moved above
    another epoch's; a committed connector state; attach, detach or a service status: R105, G33). MERGE: sections
    from outside the group were merged (a member's or a bridgehead's packet, an injected tombstone). PUSH: a
    member adopted sections from its master's push."""

    MAJOR = "major"
    MINOR = "minor"
    USER = "user"
    MERGE = "merge"
    PUSH = "push"


UpdateKind = Literal[ChangeKind.MAJOR, ChangeKind.MINOR, ChangeKind.USER]  # the master's bumps of its own version


@dataclass(frozen=True, slots=True)
class Instant:
    """A moment on the core's clock (the `now` it was given): in a Diagnostic's fields, the shell writes it as a
    wall-clock ISO-8601 time, never as the raw monotonic value."""

    t: float

# --- inputs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A connection is up: `inbound` when a peer connected to us, else the answer to our `Connect(peer)`."""

    conn: int
    inbound: bool
    peer: str | None = None
    proto: Proto = Proto.RG691
    tag: str = ""  # echoed from the Connect that asked for it
    peer_host: str = ""  # the remote address, where the transport knows it


@dataclass(frozen=True, slots=True)
class DataReceived:
    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class PeerLost:
    conn: int
    reason: str = "closed"


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    peer: str
    reason: str
    proto: Proto = Proto.RG691
    tag: str = ""


@dataclass(frozen=True, slots=True)
class TopologyChanged:
    topology: Topology


@dataclass(frozen=True, slots=True)
class ServiceStatusChanged:
    """This server's services started or stopped: a user update (requirements R105)."""

    status: str


@dataclass(frozen=True, slots=True)
class BridgeheadObserved:
    """This server, as a source bridgehead of `connector`, observed its state (G40, or injected)."""

    connector: str
    state: BridgeheadState


@dataclass(frozen=True, slots=True)
class ListenerChanged:
    """This server's `proto` listener started or stopped (an SMTP port that cannot be bound: the node runs without
    its virtual server, and its bridgehead states are CONN_NOT_STARTED, G40)."""

    proto: Proto
    running: bool


@dataclass(frozen=True, slots=True)
class FaultInjected:
    """An operator forces this bridgehead's state for `connector` (None clears the force)."""

    connector: str
    state: BridgeheadState | None


@dataclass(frozen=True, slots=True)
class TombstoneRequested:
    """An operator asks this server to write a Remonitor tombstone for a routing group (G53, G54)."""

    routing_group: str
    peer_host: str = ""


@dataclass(frozen=True, slots=True)
class MasterUnknown:
    """The directory now names, as master of this server's group, a server it does not hold (a deleted object:
    R81). The rest of that directory is not applied."""

    master: str


@dataclass(frozen=True, slots=True)
class TableSeeded:
    """Sections handed to the node out of band (a benchmark skipping the start-up exchange of every group's first
    section): merged by the table's rules, a master keeping its own group's section, and silently: no table
    change is reported and no exchange starts."""

    orginfo: OrgInfo


Input = (
    PeerConnected
    | DataReceived
    | PeerLost
    | ConnectFailed
    | TopologyChanged
    | ServiceStatusChanged
    | BridgeheadObserved
    | ListenerChanged
    | FaultInjected
    | TombstoneRequested
    | MasterUnknown
    | TableSeeded
)

# --- outputs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    conn: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a `proto` connection to server `peer`; answer with PeerConnected(inbound=False) or ConnectFailed."""

    peer: str
    host: str
    port: int
    proto: Proto = Proto.RG691
    tag: str = ""  # opaque, echoed in PeerConnected / ConnectFailed


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something to log: `event` is one of the catalog's (anything else is refused), `level` its level (or its
    quiet level: the catalog says when), `fields` what the catalog lists for it."""

    event: Ev
    level: Level = "info"
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.event, Ev):
            raise TypeError(f"not an event of the catalog: {self.event!r}")

    @property
    def event_id(self) -> int:
        return CATALOG[self.event].event_id


@dataclass(frozen=True, slots=True)
class TableChanged:
    """The node's link-state table changed (`kind`: ChangeKind). `resets_routes`: a major or minor version moved
    (the master's own update, or carried by what was merged or pushed), so routes may have changed: "reset
    routes", event 4005. A user update (who is attached, a service's status) changes no route (seed L9014)."""

    digest: str
    kind: ChangeKind
    groups: tuple[str, ...] = ()
    resets_routes: bool = False


Output = Send | Close | Connect | Diagnostic | TableChanged
