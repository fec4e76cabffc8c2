"""The SMTP side of a server: bridgehead link-state exchange between routing groups (R89–R101, G34–G40).

Owns: every SMTP connection of the node — inbound sessions (each server's SMTP virtual server answers
X-LINK2STATE and accepts simulated mail) and, for each group-to-group connector this server is a source
bridgehead of, the outbound sessions to the connector's remote bridgeheads: started at once when the table
takes a major or minor change (G33/G34), and every `bh_probe_interval` as a probe that also compares digests
(R92, G39). Probe results become the bridgehead's observed state (G40): `CONN_NOT_AVAILABLE` after
`bh_fail_threshold` failed sessions in a row, `CONN_AVAIL` on the next success; an operator may force a state.
What a session brings in is decoded strictly and handed to the node (`NodeCore.learn`), never merged partially.
Invariants: at most one outbound session per connector at a time (a trigger during one re-runs it after);
nothing a peer sends raises; every failure is a Diagnostic.
May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from linkstate.core.link2state_session import (
    AuthFailed,
    AuthSucceeded,
    Done,
    Event,
    MailReceived,
    OrgInfoReceived,
    SessionFailed,
    SmtpClientSession,
    SmtpServerSession,
)
from linkstate.core.topology import ConnectorSpec, ServerSpec
from proto.errors import DecodeError
from proto.model import BridgeheadState
from proto.sectioncache import decode_strict_cached

if TYPE_CHECKING:
    from linkstate.core.node import NodeCore

DEFAULT_SMTP_PORT = 25


@dataclass
class Link:
    """One connector this server is a source bridgehead of."""

    connector: ConnectorSpec
    remotes: tuple[ServerSpec, ...]
    in_flight: int | None = None  # conn of the running session (or -1 while connecting)
    again: bool = False
    failures: int = 0
    next_probe: float = 0.0
    observed: BridgeheadState = BridgeheadState.CONN_AVAIL
    forced: BridgeheadState | None = None
    reported_at: float = float("-inf")
    sessions: int = 0
    exchanged: int = 0


@dataclass
class _Smtp:
    session: SmtpServerSession | SmtpClientSession
    link: Link | None = None  # set for outbound sessions
    done: bool = False


@dataclass
class Counters:
    sessions_out: int = 0
    sessions_in: int = 0
    exchanges: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    mail_received: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Bridgehead:
    def __init__(self, node: NodeCore, now: float) -> None:
        self.node = node
        self.smtp: dict[int, _Smtp] = {}
        self.counters = Counters()
        self.links: dict[str, Link] = {}
        self.configure(now)

    # --- configuration -----------------------------------------------------------------------------------

    def configure(self, now: float) -> None:
        """(Re)compute the connectors this server is a source bridgehead of, keeping running state."""
        node = self.node
        topo = node.topo
        fresh: dict[str, Link] = {}
        for c in topo.connectors_from(node.rg.name):
            if not c.connected_routing_group:
                continue  # address-space connectors carry no link state
            mine = node.me.name in c.source_bridgeheads or (not c.source_bridgeheads and node.is_master)
            if not mine:
                continue
            names = c.remote_bridgeheads or (topo.routing_group(c.connected_routing_group).master,)
            remotes = tuple(topo.server(n) for n in names)
            old = self.links.get(c.guid)
            if old is not None:
                old.connector, old.remotes = c, remotes
                fresh[c.guid] = old
            else:
                fresh[c.guid] = Link(c, remotes, next_probe=now)
        self.links = fresh

    def next_deadline(self) -> float | None:
        due: float | None = None
        for link in self.links.values():
            if link.in_flight is None and (due is None or link.next_probe < due):
                due = link.next_probe
        return due

    def on_timer(self, now: float) -> None:
        for link in self.links.values():
            if link.in_flight is None and now >= link.next_probe:
                self._start(link, now)

    def trigger(self, now: float, reason: str) -> None:
        """The table took a major or minor change: tell every remote bridgehead now (G34)."""
        for link in self.links.values():
            if link.in_flight is not None:
                link.again = True
            else:
                self._start(link, now)

    def stop(self) -> None:
        for conn in list(self.smtp):
            self.node.close(conn, "shutting down")
        self.smtp.clear()

    # --- outbound sessions ---------------------------------------------------------------------------------

    def _start(self, link: Link, now: float) -> None:
        interval = self.node.settings.scaled("bh_probe_interval")
        link.next_probe = now + interval
        link.again = False
        target = link.remotes[link.failures % len(link.remotes)]
        link.in_flight = -1
        link.sessions += 1
        self.counters.sessions_out += 1
        self.node.connect(target.name, proto="smtp", tag=link.connector.guid)

    def on_connected(self, conn: int, tag: str, now: float) -> None:
        link = self.links.get(tag)
        if link is None:
            self.node.close(conn, "connector no longer configured")
            return
        node = self.node
        remote = link.remotes[link.failures % len(link.remotes)]
        session = SmtpClientSession(
            node.me.guid,
            node.topo.secret,
            node.me.fqdn,
            self._frame_source,
            node.nonce(),
            expected_peer=remote.guid,
            chunk_raw_bytes=node.settings.chunk_raw_bytes,
            limits=node.lsdb.limits.decode,
        )
        link.in_flight = conn
        self.smtp[conn] = _Smtp(session, link)

    def on_connect_failed(self, tag: str, reason: str, now: float) -> None:
        link = self.links.get(tag)
        if link is not None:
            self._failed(link, reason, now)

    def _failed(self, link: Link, reason: str, now: float) -> None:
        link.in_flight = None
        link.failures += 1
        threshold = self.node.settings.bh_fail_threshold
        self.node.diag(
            "bridgehead_session_failed",
            level="warning" if link.failures <= threshold else "info",
            connector=link.connector.name,
            reason=reason,
            failures=link.failures,
        )
        link.next_probe = now + self.node.settings.backoff(link.failures - 1, "bh_probe_interval", self.node.rand())
        if link.failures >= threshold:
            self._observe(link, BridgeheadState.CONN_NOT_AVAILABLE, now, again=link.failures > threshold)

    def _succeeded(self, link: Link, exchanged: bool, now: float) -> None:
        link.in_flight = None
        link.failures = 0
        if exchanged:
            link.exchanged += 1
            self.counters.exchanges += 1
        self._observe(link, BridgeheadState.CONN_AVAIL, now, again=True)
        if link.again:
            self._start(link, now)

    def _observe(self, link: Link, state: BridgeheadState, now: float, again: bool = False) -> None:
        """Report a state change at once; with `again`, report a lasting state once more (at most once per
        probe interval): a window that ended as oscillation leaves the connector UP, and only a later report
        of a state that lasts can open the next window (R117–R118)."""
        if link.forced is not None:
            state = link.forced
        interval = self.node.settings.scaled("bh_probe_interval")
        if state is not link.observed or (again and now - link.reported_at >= interval):
            link.observed = state
            link.reported_at = now
            self.node.observe_bridgehead(link.connector.guid, state, now)

    def force(self, connector: str, state: BridgeheadState | None, now: float) -> bool:
        link = self.links.get(connector)
        if link is None:
            return False
        link.forced = state
        self._observe(link, state or BridgeheadState.CONN_AVAIL, now)
        return True

    # --- inbound sessions ----------------------------------------------------------------------------------

    def on_inbound(self, conn: int, now: float) -> None:
        node = self.node
        session = SmtpServerSession(
            node.me.guid,
            node.topo.secret,
            node.me.fqdn,
            self._frame_source,
            node.nonce(),
            chunk_raw_bytes=node.settings.chunk_raw_bytes,
            limits=node.lsdb.limits.decode,
        )
        self.counters.sessions_in += 1
        self.smtp[conn] = _Smtp(session)

    def _frame_source(self) -> tuple[str, bytes]:
        return self.node.lsdb.digest, self.node.lsdb.frame()

    # --- data ----------------------------------------------------------------------------------------------

    def owns(self, conn: int) -> bool:
        return conn in self.smtp

    def on_data(self, conn: int, data: bytes, now: float) -> None:
        entry = self.smtp.get(conn)
        if entry is None:
            return
        self.counters.bytes_in += len(data)
        for event in entry.session.receive_data(data):
            self._event(conn, entry, event, now)
        self.flush(conn)

    def flush(self, conn: int) -> None:
        entry = self.smtp.get(conn)
        if entry is None:
            return
        data = entry.session.data_to_send()
        if data:
            self.counters.bytes_out += len(data)
            self.node.send_bytes(conn, data)
        if entry.session.closed:
            self.smtp.pop(conn, None)
            self.node.close(conn, "SMTP session over")
            self._ended(entry, now=None)

    def on_lost(self, conn: int, now: float) -> None:
        entry = self.smtp.pop(conn, None)
        if entry is not None:
            self._ended(entry, now)

    def _ended(self, entry: _Smtp, now: float | None) -> None:
        link = entry.link
        if link is None or entry.done or link.in_flight is None:
            return
        entry.done = True
        self._failed(link, "SMTP session ended before the exchange completed", self.node.now if now is None else now)

    def _event(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        node = self.node
        if isinstance(event, OrgInfoReceived):
            self._learn(event.frame, event.peer_guid, now)
        elif isinstance(event, Done):
            entry.done = True
            if entry.link is not None:
                self._succeeded(entry.link, event.exchanged, now)
        elif isinstance(event, AuthSucceeded):
            node.diag("smtp_authenticated", event_id=event.event_id, peer=node.server_name(event.peer_guid))
        elif isinstance(event, AuthFailed):
            node.diag(
                "smtp_auth_failed",
                level="warning",
                event_id=event.event_id,
                reason=event.reason,
                peer=node.server_name(event.peer_guid) if event.peer_guid else "",
            )
        elif isinstance(event, SessionFailed):
            self.counters.rejected += 1
            self.counters.by_reason[event.reason] = self.counters.by_reason.get(event.reason, 0) + 1
            node.diag("link2state_rejected", level="warning", conn=conn, reason=event.reason, fatal=event.fatal)
        elif isinstance(event, MailReceived):
            self.counters.mail_received += 1
            node.diag("mail_queued", sender=event.sender, recipients=len(event.recipients), size=len(event.data))

    def _learn(self, frame: bytes, peer: str, now: float) -> None:
        try:
            decoded = decode_strict_cached(frame, self.node.lsdb.limits.decode)
        except DecodeError as exc:
            self.node.diag("orginfo_rejected", level="warning", peer=self.node.server_name(peer), reason=str(exc))
            return
        self.node.learn(decoded.orginfo, now, source=f"smtp:{self.node.server_name(peer)}")
