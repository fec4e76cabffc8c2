"""The node core's vocabulary: inputs named as things that happened, outputs named as commands.

Owns: the frozen dataclasses passed between a `NodeCore` and the shell that runs it (linkstate.service or the
pure simulator in linkstate.sim). Connection ids are integers the shell assigns.
May import: the standard library, proto.model, linkstate.core.topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from linkstate.core.topology import Topology
from proto.model import BridgeheadState, OrgInfo

# --- inputs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A connection is up: `inbound` when a peer connected to us, else the answer to our `Connect(peer)`."""

    conn: int
    inbound: bool
    peer: str | None = None
    proto: str = "691"  # 691 | smtp
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
    proto: str = "691"
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
    """Open a 691 connection to server `peer`; answer with PeerConnected(inbound=False) or ConnectFailed."""

    peer: str
    host: str
    port: int
    proto: str = "691"  # 691 | smtp
    tag: str = ""  # opaque, echoed in PeerConnected / ConnectFailed


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something to log: `event` is a short snake_case name, `event_id` the Exchange event number if any."""

    event: str
    level: str = "info"
    event_id: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TableChanged:
    """The node's link-state table changed: `kind` is major | minor | user | merge; routes must be reset."""

    digest: str
    kind: str
    groups: tuple[str, ...] = ()


Output = Send | Close | Connect | Diagnostic | TableChanged
