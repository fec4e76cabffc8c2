"""The SMTP side of a server: bridgehead link-state exchange between routing groups (R89–R101, G34–G40).

Owns: every SMTP connection of the node — inbound sessions (each server's SMTP virtual server answers
X-LINK2STATE and accepts simulated mail) and, for each group-to-group connector this server is a source
bridgehead of, the outbound sessions to the connector's remote bridgeheads: started at once when the table
takes a major or minor change (G33/G34), and every `bh_probe_interval` as a probe that also compares digests
(R92, G39). Probe results become the bridgehead's observed state (G40): `CONN_NOT_AVAILABLE` after
`bh_fail_threshold` failed sessions in a row, `CONN_AVAIL` on the next success; an operator may force a state.
What a session brings in is decoded strictly and posted as a `Learned` fact, never merged partially; an observed
state is posted as an `Observed` fact (linkstate.core.facts): the node's role decides what they mean.
Invariants: at most one outbound session per connector at a time (a trigger during one re-runs it after);
nothing a peer sends raises; every failure is a Diagnostic.
May import: the standard library, proto, linkstate.core (never node.py or a role).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from linkstate.core.context import NodeContext, Outbox
from linkstate.core.events import ChangeKind, Proto
from linkstate.core.facts import Learned, LinkIdle, Observed
from linkstate.core.link2state_client import SmtpClientSession
from linkstate.core.link2state_server import SmtpServerSession
from linkstate.core.link2state_session import (
    AuthFailed,
    AuthSucceeded,
    Done,
    Event,
    MailReceived,
    OrgInfoReceived,
    SessionFailed,
)
from linkstate.core.topology import ConnectorSpec, ServerSpec
from proto.codec import DEFAULT_LIMITS
from proto.errors import DecodeError
from proto.model import BridgeheadState
from proto.sectioncache import decode_strict_cached


@dataclass(kw_only=True)
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
    """The SMTP side of one server (module docstring): its links (connectors it is a source bridgehead of) and every
    SMTP session, inbound and outbound.

    Reads its node through `ctx` and acts through `out`. The node hands it SMTP connection events and the session
    events of each received chunk (`receive`, then `on_session_event` one by one), and the `TableBumped` and
    `LinkIdle` facts (`trigger`, `rerun`)."""

    def __init__(self, ctx: NodeContext, out: Outbox, now: float, *, is_master: bool) -> None:
        self.ctx = ctx
        self.out = out
        self.smtp: dict[int, _Smtp] = {}
        self.counters = Counters()
        self.links: dict[str, Link] = {}
        self.configure(now, is_master=is_master)

    # --- configuration -----------------------------------------------------------------------------------

    def configure(self, now: float, *, is_master: bool) -> None:
        """(Re)compute the connectors this server is a source bridgehead of, keeping running state. A connector
        without explicit source bridgeheads is the master's (`is_master`: this server's role is master)."""
        ctx = self.ctx
        topo = ctx.topology
        fresh: dict[str, Link] = {}
        for c in topo.connectors_from(ctx.rg.name):
            if not c.connected_routing_group:
                continue  # address-space connectors carry no link state
            mine = ctx.me.name in c.source_bridgeheads or (not c.source_bridgeheads and is_master)
            if not mine:
                continue
            names = c.remote_bridgeheads or (topo.routing_group(c.connected_routing_group).master,)
            remotes = tuple(topo.server(n) for n in names)
            old = self.links.get(c.guid)
            if old is not None:
                old.connector, old.remotes = c, remotes
                fresh[c.guid] = old
            else:
                fresh[c.guid] = Link(connector=c, remotes=remotes, next_probe=now)
        self.links = fresh

    def next_deadline(self) -> float | None:
        """The earliest probe due of a link with no session running (None without links)."""
        due: float | None = None
        for link in self.links.values():
            if link.in_flight is None and (due is None or link.next_probe < due):
                due = link.next_probe
        return due

    def on_timer(self, now: float) -> None:
        """Start the session of every idle link whose probe is due."""
        for link in self.links.values():
            if link.in_flight is None and now >= link.next_probe:
                self._start(link, now)

    def trigger(self, now: float, reason: ChangeKind) -> None:
        """The table took a major or minor change: tell every remote bridgehead now (G34)."""
        for link in self.links.values():
            if link.in_flight is not None:
                link.again = True
            else:
                self._start(link, now)

    def rerun(self, connector: str, now: float) -> None:
        """A link's session ended well and its observation was handled: run it again if a change came meanwhile."""
        link = self.links.get(connector)
        if link is not None and link.again:
            self._start(link, now)

    def stop(self) -> None:
        for conn in list(self.smtp):
            self.out.close(conn, "shutting down")
        self.smtp.clear()

    # --- outbound sessions ---------------------------------------------------------------------------------

    def _start(self, link: Link, now: float) -> None:
        interval = self.ctx.settings.scaled("bh_probe_interval")
        link.next_probe = now + interval
        link.again = False
        target = link.remotes[link.failures % len(link.remotes)]
        link.in_flight = -1
        link.sessions += 1
        self.counters.sessions_out += 1
        self.out.connect(target.name, proto=Proto.SMTP, tag=link.connector.guid)

    def on_connected(self, conn: int, tag: str, now: float) -> None:
        link = self.links.get(tag)
        if link is None:
            self.out.close(conn, "connector no longer configured")
            return
        ctx = self.ctx
        remote = link.remotes[link.failures % len(link.remotes)]
        session = SmtpClientSession(
            ctx.me.guid,
            ctx.topology.secret,
            ctx.me.fqdn,
            self._frame_source,
            ctx.nonce(),
            expected_peer=remote.guid,
            chunk_raw_bytes=ctx.settings.chunk_raw_bytes,
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
        threshold = self.ctx.settings.bh_fail_threshold
        self.out.diag(
            "bridgehead_session_failed",
            level="warning" if link.failures <= threshold else "info",
            connector=link.connector.name,
            reason=reason,
            failures=link.failures,
        )
        link.next_probe = now + self.ctx.settings.backoff(link.failures - 1, "bh_probe_interval", self.ctx.rand())
        if link.failures >= threshold:
            self._observe(link, BridgeheadState.CONN_NOT_AVAILABLE, now, again=link.failures > threshold)

    def _succeeded(self, link: Link, exchanged: bool, now: float) -> None:
        link.in_flight = None
        link.failures = 0
        if exchanged:
            link.exchanged += 1
            self.counters.exchanges += 1
        self._observe(link, BridgeheadState.CONN_AVAIL, now, again=True)
        self.out.post(LinkIdle(link.connector.guid))  # after the observation: it may start the link itself

    def _observe(self, link: Link, state: BridgeheadState, now: float, again: bool = False) -> None:
        """Report a state change at once; with `again`, report a lasting state once more (at most once per
        probe interval): a window that ended as oscillation leaves the connector UP, and only a later report
        of a state that lasts can open the next window (R117–R118)."""
        if link.forced is not None:
            state = link.forced
        interval = self.ctx.settings.scaled("bh_probe_interval")
        if state is not link.observed or (again and now - link.reported_at >= interval):
            link.observed = state
            link.reported_at = now
            self.out.post(Observed(link.connector.guid, state))

    def force(self, connector: str, state: BridgeheadState | None, now: float) -> bool:
        link = self.links.get(connector)
        if link is None:
            return False
        link.forced = state
        self._observe(link, state or BridgeheadState.CONN_AVAIL, now)
        return True

    # --- inbound sessions ----------------------------------------------------------------------------------

    def on_inbound(self, conn: int, now: float) -> None:
        ctx = self.ctx
        session = SmtpServerSession(
            ctx.me.guid,
            ctx.topology.secret,
            ctx.me.fqdn,
            self._frame_source,
            ctx.nonce(),
            chunk_raw_bytes=ctx.settings.chunk_raw_bytes,
        )
        self.counters.sessions_in += 1
        self.smtp[conn] = _Smtp(session)

    def _frame_source(self) -> tuple[str, bytes]:
        return self.ctx.lsdb.digest, self.ctx.lsdb.frame()

    # --- data ----------------------------------------------------------------------------------------------

    def owns(self, conn: int) -> bool:
        return conn in self.smtp

    def receive(self, conn: int, data: bytes) -> list[Event]:
        """Feed one chunk to the connection's session; its events go back, one by one, to `on_session_event`."""
        entry = self.smtp.get(conn)
        if entry is None:
            return []
        self.counters.bytes_in += len(data)
        return entry.session.receive_data(data)

    def flush(self, conn: int, now: float) -> None:
        """Send what the session wrote; close the connection once the session is over."""
        entry = self.smtp.get(conn)
        if entry is None:
            return
        data = entry.session.data_to_send()
        if data:
            self.counters.bytes_out += len(data)
            self.out.send_bytes(conn, data)
        if entry.session.closed:
            self.smtp.pop(conn, None)
            self.out.close(conn, "SMTP session over")
            self._ended(entry, now)

    def on_lost(self, conn: int, now: float) -> None:
        entry = self.smtp.pop(conn, None)
        if entry is not None:
            self._ended(entry, now)

    def _ended(self, entry: _Smtp, now: float) -> None:
        link = entry.link
        if link is None or entry.done or link.in_flight is None:
            return
        entry.done = True
        self._failed(link, "SMTP session ended before the exchange completed", now)

    def on_session_event(self, conn: int, event: Event, now: float) -> None:
        """One event of connection `conn`'s session (the node settles the facts it raises before the next)."""
        entry = self.smtp.get(conn)
        if entry is not None:
            _SESSION_EVENTS[type(event)](self, conn, entry, event, now)

    def _on_orginfo(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, OrgInfoReceived)
        self._learn(event.frame, event.peer_guid, now)

    def _on_done(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, Done)
        entry.done = True
        if entry.link is not None:
            self._succeeded(entry.link, event.exchanged, now)

    def _on_auth_succeeded(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, AuthSucceeded)
        self.out.diag("smtp_authenticated", event_id=event.event_id, peer=self.ctx.server_name(event.peer_guid))

    def _on_auth_failed(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, AuthFailed)
        self.out.diag(
            "smtp_auth_failed",
            level="warning",
            event_id=event.event_id,
            reason=event.reason,
            peer=self.ctx.server_name(event.peer_guid) if event.peer_guid else "",
        )

    def _on_session_failed(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, SessionFailed)
        self.counters.rejected += 1
        self.counters.by_reason[event.reason] = self.counters.by_reason.get(event.reason, 0) + 1
        self.out.diag("link2state_rejected", level="warning", conn=conn, reason=event.reason, fatal=event.fatal)

    def _on_mail(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, MailReceived)
        self.counters.mail_received += 1
        self.out.diag("mail_queued", sender=event.sender, recipients=len(event.recipients), size=len(event.data))

    def _learn(self, frame: bytes, peer: str, now: float) -> None:
        try:
            decoded = decode_strict_cached(frame, DEFAULT_LIMITS, self.ctx.sections)
        except DecodeError as exc:
            self.out.diag("orginfo_rejected", level="warning", peer=self.ctx.server_name(peer), reason=str(exc))
            return
        self.out.post(Learned(decoded.orginfo, f"smtp:{self.ctx.server_name(peer)}"))


_SESSION_EVENTS: dict[type, Callable[[Bridgehead, int, _Smtp, Event, float], None]] = {
    OrgInfoReceived: Bridgehead._on_orginfo,
    Done: Bridgehead._on_done,
    AuthSucceeded: Bridgehead._on_auth_succeeded,
    AuthFailed: Bridgehead._on_auth_failed,
    SessionFailed: Bridgehead._on_session_failed,
    MailReceived: Bridgehead._on_mail,
}
