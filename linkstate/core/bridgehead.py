"""The SMTP side of a server: bridgehead link-state exchange between routing groups (R89–R101, G34–G40).

Owns: every SMTP connection of the node — inbound sessions (each server's SMTP virtual server answers
X-LINK2STATE and accepts simulated mail) and, for each group-to-group connector this server is a source
bridgehead of, the outbound sessions to the connector's remote bridgeheads: started at once when the table
takes a major or minor change (G33/G34), and every `bh_probe_interval` as a probe that also compares digests
(R92, G39). Probe results become the bridgehead's observed state (G40): `CONN_NOT_AVAILABLE` after
`bh_fail_threshold` failed sessions in a row, `CONN_AVAIL` on the next success; an operator may force a state.
A run of failed sessions is one warning (its first failure), the rest of the run is info, and so is every
failure while the node starts (within `master_settle` of the link's creation, before its first success: the
servers of an organization start in any order; docs/EVENTS.md). What a session brings in is decoded strictly and
posted as a `Learned` fact, never merged partially; an observed state is posted as an `Observed` fact
(linkstate.core.facts): the node's role decides what they mean.
With the extensions (delta mode, a peer that offers them; docs/PROTOCOL.md §3.11) a link keeps its authenticated
session open between exchanges (a NOOP every half `smtp_command_timeout` while idle): a change then goes out on it at
once, its sections pushed first when the link's last round ended with both tables equal (the table's change log
says what changed since). A probe always opens a new connection (and replaces the kept one), so what a probe tests,
and when a connector is declared unavailable, is what it always was; a kept session that fails before it could
answer is replaced by a new connection, not counted as a failure.
Invariants: at most one outbound session per connector at a time (a trigger during one re-runs it after);
nothing a peer sends raises; every failure is a Diagnostic.
May import: the standard library, proto, linkstate.core (never node.py or a role).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from linkstate.core.catalog import Ev
from linkstate.core.context import NodeContext, Outbox
from linkstate.core.events import Cause, ChangeKind, Proto
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
    SummarySource,
)
from linkstate.core.nexthop import SmartHostProbe
from linkstate.core.topology import ConnectorSpec, ServerSpec
from proto.errors import DecodeError
from proto.model import BridgeheadState
from proto.sectioncache import decode_strict_cached
from proto.summary import Summary


class Target(enum.Enum):
    """What a link's probes reach (G40): the connected group's bridgeheads (an X-LINK2STATE session), a smart
    host (its SMTP greeting), a next-hop MTA (the TCP connect), or nothing (the state follows the listener)."""

    REMOTE_BRIDGEHEADS = "remote bridgeheads"
    SMART_HOST = "smart host"
    NEXT_HOP_MTA = "next-hop MTA"
    NOTHING = "nothing"


@dataclass(kw_only=True)
class Link:
    """One connector this server is a source bridgehead of."""

    connector: ConnectorSpec
    target: Target
    remotes: tuple[ServerSpec, ...] = ()
    in_flight: int | None = None  # conn of the running session (or -1 while connecting)
    again: bool = False
    failures: int = 0
    next_probe: float = 0.0
    probed: BridgeheadState = BridgeheadState.CONN_AVAIL  # what the probes say
    observed: BridgeheadState = BridgeheadState.CONN_AVAIL  # the state last reported (forced, listener, probes)
    forced: BridgeheadState | None = None
    reported_at: float = float("-inf")
    sessions: int = 0
    exchanged: int = 0
    started_at: float = 0.0  # when the running (or last) session was asked for
    starting_until: float = 0.0  # failures are quiet until then, while the link never succeeded
    succeeded: bool = False
    warned: bool = False  # this streak of failures has had its warning
    kept: int | None = None  # conn of the idle session kept open for the next exchange (extensions)
    kept_at: float = 0.0  # when the kept session last carried something (its keepalive is due half a timeout on)
    reused: bool = False  # the running session is the kept one
    snapped: int = 0  # the table's change count when this link's session last took a snapshot of it
    agreed: int | None = None  # the change count of the last round that ended with both tables equal


@dataclass
class _Smtp:
    session: SmtpServerSession | SmtpClientSession | SmartHostProbe
    link: Link | None = None  # set for outbound sessions
    done: bool = False
    failure: str = ""  # why a probe of a smart host failed, for the bridgehead_session_failed event


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


PUSH_MAX = 64  # sections pushed first at most; more changes since the link last agreed: a delta round instead


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
        self.listening = True  # this server's SMTP listener runs (the shell says when it does not)
        self.configure(now, is_master=is_master)

    # --- configuration -----------------------------------------------------------------------------------

    def configure(self, now: float, *, is_master: bool) -> None:
        """(Re)compute the connectors this server is a source bridgehead of, keeping running state. A connector
        without explicit source bridgeheads is the master's (`is_master`: this server's role is master)."""
        ctx = self.ctx
        topo = ctx.topology
        fresh: dict[str, Link] = {}
        for c in topo.connectors_from(ctx.rg.name):
            mine = ctx.me.name in c.source_bridgeheads or (not c.source_bridgeheads and is_master)
            if not mine:
                continue
            target = _target(c)
            remotes: tuple[ServerSpec, ...] = ()
            if c.connected_routing_group:
                names = c.remote_bridgeheads or (topo.routing_group(c.connected_routing_group).master,)
                remotes = tuple(topo.server(n) for n in names)
            old = self.links.get(c.guid)
            if old is not None and old.target is target:
                old.connector, old.remotes = c, remotes
                fresh[c.guid] = old
            else:
                settle = ctx.settings.scaled("master_settle")
                fresh[c.guid] = Link(connector=c, target=target, remotes=remotes, next_probe=now,
                                     starting_until=now + settle)  # fmt: skip
        for guid, link in self.links.items():
            if fresh.get(guid) is not link:
                self._drop_kept(link, now)
        self.links = fresh

    def next_deadline(self) -> float | None:
        """The earliest probe due of a link with no session running, or keepalive of a kept session (None without
        links)."""
        due: float | None = None
        keepalive = self._keepalive()
        for link in self.links.values():
            if link.in_flight is None and link.target is not Target.NOTHING and (due is None or link.next_probe < due):
                due = link.next_probe
            if keepalive is not None and link.kept is not None and (due is None or link.kept_at + keepalive < due):
                due = link.kept_at + keepalive
        return due

    def on_timer(self, now: float) -> None:
        """Start the session of every idle link whose probe is due; keep kept sessions alive."""
        keepalive = self._keepalive()
        for link in self.links.values():
            if link.in_flight is None and now >= link.next_probe and link.target is not Target.NOTHING:
                self._start(link, now, probe=True)
            elif keepalive is not None and link.kept is not None and now >= link.kept_at + keepalive:
                self._keep_alive(link, now)

    def _keepalive(self) -> float | None:
        """How long a kept session may idle before a NOOP: half the command timeout after which a server closes an
        idle connection — None when the next probe surely replaces the session before that (the probe interval,
        which backoff and jitter only lengthen, is under half the timeout). With the defaults (60 s and 60 s) a
        probe may come after the server's timeout: without a NOOP every idle kept session would end in the
        server's `connection_timeout` warning."""
        settings = self.ctx.settings
        timeout = settings.scaled("smtp_command_timeout")
        return timeout / 2 if settings.scaled("bh_probe_interval") >= timeout / 2 else None

    def trigger(self, now: float, reason: ChangeKind) -> None:
        """The table took a major or minor change: tell every remote bridgehead now (G34)."""
        for link in self.links.values():
            if link.target is not Target.REMOTE_BRIDGEHEADS:
                continue
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

    def _start(self, link: Link, now: float, probe: bool = False) -> None:
        interval = self.ctx.settings.scaled("bh_probe_interval")
        link.next_probe = now + interval
        link.again = False
        link.started_at = now
        link.sessions += 1
        self.counters.sessions_out += 1
        if probe:  # a probe tests the path: a new connection, as always
            self._drop_kept(link, now)
        if link.kept is not None:
            self._reuse(link, now)
            return
        link.in_flight = -1
        link.reused = False
        hop = link.connector.next_hop
        if link.target is Target.REMOTE_BRIDGEHEADS or hop is None:
            target = link.remotes[link.failures % len(link.remotes)]
            self.out.connect(target.name, proto=Proto.SMTP, tag=link.connector.guid)
        else:
            self.out.connect_to(hop[0], hop[1], proto=Proto.SMTP, tag=link.connector.guid)

    # --- kept sessions (the extensions: docs/PROTOCOL.md §3.11) ---------------------------------------------------

    def _reuse(self, link: Link, now: float) -> None:
        """The next exchange on the link's kept session: its changes pushed first when it can, else a delta round."""
        conn, link.kept = link.kept, None
        assert conn is not None
        entry = self.smtp[conn]
        assert type(entry.session) is SmtpClientSession
        link.in_flight, link.reused, entry.done = conn, True, False
        self._owned(conn, entry.session.again(self._push_for(link)), now)

    def _push_for(self, link: Link) -> bytes | None:
        """The sections stored since the link's last round ended agreed, as a frame (None: nothing to push, too
        much, or no agreement to start from)."""
        lsdb = self.ctx.lsdb
        changed = lsdb.changed_since(link.agreed) if link.agreed is not None and self.ctx.settings.delta else None
        if not changed or len(changed) > PUSH_MAX:
            return None
        return lsdb.sections_frame(changed)

    def _keep_alive(self, link: Link, now: float) -> None:
        conn = link.kept
        entry = self.smtp.get(conn) if conn is not None else None
        if conn is None or entry is None or type(entry.session) is not SmtpClientSession or not entry.session.kept:
            link.kept = None
            return
        link.kept_at = now
        self._owned(conn, entry.session.noop(), now)

    def _drop_kept(self, link: Link, now: float) -> None:
        """Close the link's kept session (a probe replaces it, or the connector is gone): idle, it has nothing to
        say; the server takes the close of an idle session quietly."""
        conn, link.kept = link.kept, None
        if conn is not None and self.smtp.pop(conn, None) is not None:
            self.out.close(conn, "kept session replaced")

    def _owned(self, conn: int, events: list[Event], now: float) -> None:
        """What a kept session did at our asking (`again`, `noop`, `quit`): its events handled, its bytes sent."""
        for event in events:
            self.on_session_event(conn, event, now)
        self.flush(conn, now)

    def on_connected(self, conn: int, tag: str, now: float) -> None:
        link = self.links.get(tag)
        if link is None:
            self.out.close(conn, "connector no longer configured")
            return
        if link.target is Target.NEXT_HOP_MTA:  # the TCP connect is the probe
            self.out.close(conn, "next-hop MTA reachable")
            self._succeeded(link, exchanged=False, now=now)
            return
        if link.target is Target.SMART_HOST:
            link.in_flight = conn
            self.smtp[conn] = _Smtp(SmartHostProbe(link.connector.smart_host or ""), link)
            return
        ctx = self.ctx
        remote = link.remotes[link.failures % len(link.remotes)]
        delta = ctx.settings.delta
        session = SmtpClientSession(
            ctx.me.guid,
            ctx.topology.secret,
            ctx.me.fqdn,
            self._frame_source,
            ctx.nonce(),
            expected_peer=remote.guid,
            chunk_raw_bytes=ctx.settings.chunk_raw_bytes,
            get_summary=(lambda: self._snapshot(link)) if delta else None,
            keep=delta,
            push=self._push_for(link),
            limits=ctx.lsdb.limits.decode,
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
        starting = not link.succeeded and now < link.starting_until
        quiet = starting or link.warned  # one warning per run of failures
        link.warned = link.warned or not quiet
        self.out.diag(
            Ev.BRIDGEHEAD_SESSION_FAILED,
            quiet=quiet,
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
        link.succeeded, link.warned = True, False
        duration = round(now - link.started_at, 6)
        name = link.connector.name
        self.out.diag(Ev.BRIDGEHEAD_SESSION_DONE, connector=name, exchanged=exchanged, duration_s=duration)
        if exchanged:
            link.exchanged += 1
            self.counters.exchanges += 1
        self._observe(link, BridgeheadState.CONN_AVAIL, now, again=True)
        self.out.post(LinkIdle(link.connector.guid))  # after the observation: it may start the link itself

    def _observe(self, link: Link, state: BridgeheadState, now: float, again: bool = False) -> None:
        """What a probe found: report the link's state if it changed; with `again`, report a lasting state once
        more (at most once per probe interval): a window that ended as oscillation leaves the connector UP, and
        only a later report of a state that lasts can open the next window (R117–R118)."""
        link.probed = state
        self._report(link, now, again)

    def _report(self, link: Link, now: float, again: bool = False) -> None:
        """Post the link's state — forced by an operator, else CONN_NOT_STARTED while this server's SMTP listener
        is not running (G40), else what the probes found — when it changed (or again, see `_observe`)."""
        state = link.forced or (BridgeheadState.CONN_NOT_STARTED if not self.listening else link.probed)
        interval = self.ctx.settings.scaled("bh_probe_interval")
        if state is not link.observed or (again and now - link.reported_at >= interval):
            link.observed = state
            link.reported_at = now
            self.out.post(Observed(link.connector.guid, state))

    def listener(self, running: bool, now: float) -> None:
        """This server's SMTP listener (its virtual server) started or stopped: every connector it is a source
        bridgehead of is CONN_NOT_STARTED while it is down (G40)."""
        self.listening = running
        for link in self.links.values():
            self._report(link, now)

    def announce(self, now: float) -> None:
        """The server (re)joined its group's exchange: post again what each link has observed (or is forced to),
        so a (re)started master hears it (R130). A link not probed yet has nothing to tell."""
        for link in self.links.values():
            if link.forced is not None or link.reported_at != float("-inf"):
                self.out.post(Observed(link.connector.guid, link.forced or link.observed))

    def force(self, connector: str, state: BridgeheadState | None, now: float) -> bool:
        link = self.links.get(connector)
        if link is None:
            return False
        link.forced = state
        self._report(link, now)
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
            get_summary=self._summary_source(),
            limits=ctx.lsdb.limits.decode,
        )
        self.counters.sessions_in += 1
        self.smtp[conn] = _Smtp(session)

    def _frame_source(self) -> tuple[str, bytes]:
        return self.ctx.lsdb.digest, self.ctx.lsdb.frame()

    def _summary_source(self) -> SummarySource | None:
        """The table as the delta exchange sees it, when this node offers the extensions (docs/PROTOCOL.md §3.11)."""
        return self._summary if self.ctx.settings.delta else None

    def _summary(self) -> Summary:
        return self.ctx.lsdb.state().summary()

    def _snapshot(self, link: Link) -> Summary:
        """A link's session takes a snapshot: remember where the table's change log stood."""
        link.snapped = self.ctx.lsdb.seq
        return self._summary()

    # --- data ----------------------------------------------------------------------------------------------

    def owns(self, conn: int) -> bool:
        return conn in self.smtp

    def trusted(self) -> frozenset[int]:
        """The SMTP connections past authentication: inbound sessions whose peer authenticated (AUTH), and every
        outbound one (this server opened it)."""
        return frozenset(
            conn for conn, entry in self.smtp.items()
            if not isinstance(entry.session, SmtpServerSession) or entry.session.authenticated
        )  # fmt: skip

    def receive(self, conn: int, data: bytes) -> list[Event]:
        """Feed one chunk to the connection's session; its events go back, one by one, to `on_session_event`."""
        entry = self.smtp.get(conn)
        if entry is None:
            return []
        self.counters.bytes_in += len(data)
        return entry.session.receive_data(data)

    def flush(self, conn: int, now: float) -> bool:
        """Send what the session wrote (a client session first resumes: what it handed over is merged by now); close
        the connection once the session is over. True when nothing happened but bytes sent (no event, no close)."""
        entry = self.smtp.get(conn)
        if entry is None:
            return True
        quiet = True
        if type(entry.session) is SmtpClientSession:
            for event in entry.session.resume():
                quiet = False
                self.on_session_event(conn, event, now)
        data = entry.session.data_to_send()
        if data:
            self.counters.bytes_out += len(data)
            self.out.send_bytes(conn, data)
        if entry.session.closed:
            self.smtp.pop(conn, None)
            self.out.close(conn, "SMTP session over")
            self._ended(entry, now)
            return False
        return quiet

    def on_lost(self, conn: int, now: float) -> None:
        entry = self.smtp.pop(conn, None)
        if entry is not None:
            self._ended(entry, now)

    def _ended(self, entry: _Smtp, now: float) -> None:
        link = entry.link
        if link is not None and link.kept is not None and self.smtp.get(link.kept) is None:
            link.kept = None  # the kept session is gone (the peer's idle timeout, a restart): nothing failed
        if link is None or entry.done or link.in_flight is None:
            return
        entry.done = True
        if link.reused:  # a kept session that could not carry the exchange: a new connection, not a failure
            link.in_flight, link.reused = None, False
            self._start(link, now)
            return
        self._failed(link, entry.failure or "SMTP session ended before the exchange completed", now)

    def on_session_event(self, conn: int, event: Event, now: float) -> None:
        """One event of connection `conn`'s session (the node settles the facts it raises before the next)."""
        entry = self.smtp.get(conn)
        if entry is not None:
            _SESSION_EVENTS[type(event)](self, conn, entry, event, now)

    def _on_orginfo(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, OrgInfoReceived)
        self._learn(event.frame, event.peer_guid)

    def _on_done(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, Done)
        entry.done = True
        link = entry.link
        if link is None:
            return
        if event.agreed:
            link.agreed = link.snapped
        if type(entry.session) is SmtpClientSession and entry.session.kept:
            link.kept, link.kept_at = conn, now
        link.reused = False
        self._succeeded(link, event.exchanged, now)

    def _on_auth_succeeded(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, AuthSucceeded)
        self.out.diag(
            Ev.CLIENT_AUTHENTICATED if event.event_id == 996 else Ev.AUTHENTICATED,
            protocol=Proto.SMTP.value, peer=self.ctx.server_name(event.peer_guid), peer_kind="BRIDGEHEAD",
        )  # fmt: skip

    def _on_auth_failed(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, AuthFailed)
        self.out.diag(
            Ev.CLIENT_AUTH_FAILED if event.event_id == 962 else Ev.AUTH_FAILED,
            protocol=Proto.SMTP.value, conn=conn, reason=event.reason, cause=Cause.AUTH.value,
            peer=self.ctx.server_name(event.peer_guid) if event.peer_guid else "",
        )  # fmt: skip

    def _on_session_failed(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, SessionFailed)
        if entry.link is not None and entry.link.target is Target.SMART_HOST:
            entry.failure = event.reason  # no X-LINK2STATE here: the probe's failure is the link's
            return
        self.counters.rejected += 1
        self.counters.by_reason[event.reason] = self.counters.by_reason.get(event.reason, 0) + 1
        self.out.diag(Ev.LINK2STATE_REJECTED, conn=conn, reason=event.reason, fatal=event.fatal)

    def _on_mail(self, conn: int, entry: _Smtp, event: Event, now: float) -> None:
        assert isinstance(event, MailReceived)
        self.counters.mail_received += 1
        self.out.diag(Ev.MAIL_QUEUED, sender=event.sender, recipients=len(event.recipients), size=len(event.data))

    def _learn(self, frame: bytes, peer: str) -> None:
        try:
            decoded = decode_strict_cached(frame, self.ctx.lsdb.limits.decode, self.ctx.sections)
        except DecodeError as exc:
            self.out.diag(Ev.ORGINFO_REJECTED, peer=self.ctx.server_name(peer), reason=str(exc))
            return
        if decoded.tampered:
            self.out.diag(Ev.ORGINFO_REJECTED, peer=self.ctx.server_name(peer), reason=decoded.tampered)
            return
        self.out.post(Learned(decoded.orginfo, f"smtp:{self.ctx.server_name(peer)}"))


def _target(c: ConnectorSpec) -> Target:
    """What the source bridgeheads of `c` probe (Target)."""
    if c.connected_routing_group:
        return Target.REMOTE_BRIDGEHEADS
    if c.next_hop is None:
        return Target.NOTHING
    return Target.SMART_HOST if c.type == "smtp" else Target.NEXT_HOP_MTA


_SESSION_EVENTS: dict[type, Callable[[Bridgehead, int, _Smtp, Event, float], None]] = {
    OrgInfoReceived: Bridgehead._on_orginfo,
    Done: Bridgehead._on_done,
    AuthSucceeded: Bridgehead._on_auth_succeeded,
    AuthFailed: Bridgehead._on_auth_failed,
    SessionFailed: Bridgehead._on_session_failed,
    MailReceived: Bridgehead._on_mail,
}
