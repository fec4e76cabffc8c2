"""Prometheus metrics and health of one node, derived from what its core already gives the service.

Owns: `NodeMetrics`, one per node, with its own `CollectorRegistry` (never the process-wide one): the tallies
it keeps of the core's inputs and outputs as the service hands them over (`on_input`, `on_outputs`: bytes and
SMTP lines from DataReceived and Send, connections open from PeerConnected and PeerLost, sessions, decode and
authentication failures, oscillation windows and exchange durations from the Diagnostics, by event name), and
a collector that reads the node when it is scraped (`NodeCore.view()` and its table: version per group,
digest, attached members, quorum, connector states, updates by kind, 691 frames); `health()`, the answer of
GET /health; `routes()`, the two pages for linkstate.service.http; `MetricsAddress`, where they are served.
Invariants: nothing here writes to the core or calls it but to read it (`view()`, `lsdb`), in the pump's own
thread between two of its steps; the families and their label values are fixed, and every counter series
exists (at 0) from the start; a scrape never fails because the node is not started yet (it answers what it
has). The event names are the catalog's (linkstate.core.catalog), so a renamed event breaks mypy, not a graph.
May import: the standard library, prometheus_client, proto, linkstate.core, linkstate.service.http.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from linkstate.core import events as ev
from linkstate.core.catalog import Ev
from linkstate.core.node import NodeCore
from linkstate.core.topology import Topology
from linkstate.core.view import NodeView
from linkstate.service.http import Response, Route
from proto.model import ConnectorState

PROTOCOLS = tuple(p.value for p in ev.Proto)  # "691", "smtp"
DIRECTIONS = ("in", "out")
SESSION_RESULTS = {
    ev.Proto.RG691.value: ("authenticated", "auth_failed", "failed"),
    ev.Proto.SMTP.value: ("authenticated", "auth_failed", "rejected", "failed", "exchanged", "in_sync"),
}
WINDOW_OUTCOMES = ("opened", "suppressed")
EXCHANGE_RESULTS = ("exchanged", "in_sync")
VERSION_PARTS = ("major", "minor", "user")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, math.inf)


@dataclass(frozen=True, slots=True)
class MetricsAddress:
    """Where a node serves /metrics and /health; `required`: failing to bind it stops the node (an address the
    operator gave), else the node runs without (the default derived from the 691 port)."""

    host: str
    port: int
    required: bool = True

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}/metrics"


class Node(Protocol):
    """What the metrics read of a node service."""

    @property
    def core(self) -> NodeCore | None: ...

    @property
    def topology(self) -> Topology: ...


@dataclass(frozen=True, slots=True)
class Health:
    serving: bool
    reason: str


def health(view: NodeView | None, group_size: int) -> Health:
    """200 when the node serves: a member attached to its master, or a master with quorum; else why not."""
    if view is None:
        return Health(False, "starting: the routing engine is not running yet")
    if view.orphaned:
        return Health(False, f"member of {view.routing_group}: the directory names no usable master")
    if view.is_master:
        members = f"{len(view.attached_members)} of {group_size - 1} members attached"
        if view.quorum:
            return Health(True, f"master of {view.routing_group} with quorum: {members}")
        return Health(False, f"master of {view.routing_group} without quorum: {members}")
    if view.attached:
        return Health(True, f"member of {view.routing_group}: attached to its master {view.master}")
    return Health(False, f"member of {view.routing_group}: not attached to its master {view.master}")


class _Tallies:
    """What the node's inputs and outputs added up to (the service-side counts)."""

    def __init__(self) -> None:
        self.bytes: Counter[tuple[str, str]] = Counter({(p, d): 0 for p in PROTOCOLS for d in DIRECTIONS})
        self.lines: Counter[str] = Counter({d: 0 for d in DIRECTIONS})  # SMTP lines by direction
        self.sessions: Counter[tuple[str, str]] = Counter(
            {(p, r): 0 for p, results in SESSION_RESULTS.items() for r in results}
        )
        self.decode_failures: Counter[str] = Counter({p: 0 for p in PROTOCOLS})
        self.auth_failures: Counter[str] = Counter({p: 0 for p in PROTOCOLS})
        self.windows: Counter[str] = Counter({o: 0 for o in WINDOW_OUTCOMES})
        self.conns: dict[int, str] = {}  # open connection -> protocol
        self.durations = {r: _Histogram() for r in EXCHANGE_RESULTS}


class _Histogram:
    """Observations in DURATION_BUCKETS (cumulative when exported)."""

    def __init__(self) -> None:
        self.counts = [0] * len(DURATION_BUCKETS)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[next(i for i, bound in enumerate(DURATION_BUCKETS) if value <= bound)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, n in zip(DURATION_BUCKETS, self.counts, strict=True):
            total += n
            out.append(("+Inf" if math.isinf(bound) else repr(bound), float(total)))
        return out


class NodeMetrics:
    """The metrics of one node (module docstring). `node` is read at scrape time."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.tallies = _Tallies()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    # --- what the service hands over ------------------------------------------------------------------------

    def on_input(self, event: ev.Input) -> None:
        handler = _INPUTS.get(type(event))
        if handler is not None:
            handler(self.tallies, event)

    def on_outputs(self, outputs: list[ev.Output]) -> None:
        tallies = self.tallies
        for out in outputs:
            if type(out) is ev.Send:
                _sent(tallies, out)
            elif type(out) is ev.Diagnostic:
                counted = _EVENTS.get(out.event)
                if counted is not None:
                    counted(self, out.fields)

    # --- the pages --------------------------------------------------------------------------------------------

    def health(self) -> Health:
        core = self.node.core
        view = core.view() if core is not None else None
        size = len(self.node.topology.servers_in(view.routing_group)) if view is not None else 0
        return health(view, size)

    def routes(self) -> dict[str, Route]:
        return {"/metrics": self._metrics_page, "/health": self._health_page}

    def _metrics_page(self) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def _health_page(self) -> Response:
        h = self.health()
        return Response(200 if h.serving else 503, f"{'ok' if h.serving else 'unavailable'}: {h.reason}\n".encode())


# --- inputs and outputs ---------------------------------------------------------------------------------------


def _connected(t: _Tallies, e: ev.Input) -> None:
    assert isinstance(e, ev.PeerConnected)
    t.conns[e.conn] = e.proto.value


def _lost(t: _Tallies, e: ev.Input) -> None:
    assert isinstance(e, ev.PeerLost)
    t.conns.pop(e.conn, None)


def _received(t: _Tallies, e: ev.Input) -> None:
    assert isinstance(e, ev.DataReceived)
    proto = t.conns.get(e.conn)
    if proto is not None:
        t.bytes[(proto, "in")] += len(e.data)
        if proto == ev.Proto.SMTP.value:
            t.lines["in"] += e.data.count(b"\n")


def _sent(t: _Tallies, out: ev.Send) -> None:
    proto = t.conns.get(out.conn)
    if proto is not None:
        t.bytes[(proto, "out")] += len(out.data)
        if proto == ev.Proto.SMTP.value:
            t.lines["out"] += out.data.count(b"\n")


_INPUTS: dict[type, Callable[[_Tallies, ev.Input], None]] = {
    ev.PeerConnected: _connected,
    ev.PeerLost: _lost,
    ev.DataReceived: _received,
}

Fields = Mapping[str, Any]
SMTP = ev.Proto.SMTP.value
RG691 = ev.Proto.RG691.value


def _session(result: str, default: str = RG691) -> Callable[[NodeMetrics, Fields], None]:
    def count(m: NodeMetrics, fields: Fields) -> None:
        m.tallies.sessions[(str(fields.get("protocol", default)), result)] += 1

    return count


def _auth_failed(m: NodeMetrics, fields: Fields) -> None:
    protocol = str(fields.get("protocol", RG691))
    m.tallies.sessions[(protocol, "auth_failed")] += 1
    m.tallies.auth_failures[protocol] += 1
    if fields.get("cause") == "decode":
        m.tallies.decode_failures[protocol] += 1


def _session_failed(m: NodeMetrics, fields: Fields) -> None:
    m.tallies.sessions[(RG691, "failed")] += 1
    if fields.get("cause") == "decode":
        m.tallies.decode_failures[RG691] += 1


def _rejected(m: NodeMetrics, fields: Fields) -> None:
    m.tallies.sessions[(SMTP, "rejected")] += 1
    m.tallies.decode_failures[SMTP] += 1


def _orginfo_rejected(m: NodeMetrics, fields: Fields) -> None:
    m.tallies.decode_failures[SMTP] += 1


def _exchange_done(m: NodeMetrics, fields: Fields) -> None:
    result = "exchanged" if fields.get("exchanged") else "in_sync"
    m.tallies.sessions[(SMTP, result)] += 1
    duration = fields.get("duration_s")
    if isinstance(duration, int | float) and math.isfinite(duration) and duration >= 0:
        m.tallies.durations[result].observe(float(duration))


def _window(outcome: str) -> Callable[[NodeMetrics, Fields], None]:
    def count(m: NodeMetrics, fields: Fields) -> None:
        if not fields.get("bridgehead"):  # a connector's window (each source bridgehead has its own too)
            m.tallies.windows[outcome] += 1

    return count


_EVENTS: dict[str, Callable[[NodeMetrics, Fields], None]] = {
    Ev.AUTHENTICATED: _session("authenticated"),
    Ev.CLIENT_AUTHENTICATED: _session("authenticated"),
    Ev.AUTH_FAILED: _auth_failed,
    Ev.CLIENT_AUTH_FAILED: _auth_failed,
    Ev.SESSION_FAILED: _session_failed,
    Ev.LINK2STATE_REJECTED: _rejected,
    Ev.ORGINFO_REJECTED: _orginfo_rejected,
    Ev.BRIDGEHEAD_SESSION_FAILED: _session("failed", SMTP),
    Ev.BRIDGEHEAD_SESSION_DONE: _exchange_done,
    Ev.OSCILLATION_WINDOW_OPENED: _window("opened"),
    Ev.OSCILLATION_SUPPRESSED: _window("suppressed"),
}


# --- the scrape -----------------------------------------------------------------------------------------------


class _Collector:
    """Yields every family at scrape time from the node's view and table and from the tallies."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        core, topo = m.node.core, m.node.topology
        view = core.view() if core is not None else None
        yield from _node_families(view, topo)
        yield from _table_families(core, topo)
        yield from _traffic_families(m.tallies, view)


def _node_families(view: NodeView | None, topo: Topology) -> Iterator[Metric]:
    info = InfoMetricFamily("linkstate_node", "This server: its routing group, role and master.")
    digest = InfoMetricFamily("linkstate_table_digest", "The MD5 digest of the node's link-state table.")
    attached = GaugeMetricFamily("linkstate_attached", "1 when the server takes part in its group's exchange.")
    members = GaugeMetricFamily("linkstate_attached_members", "Members attached to this master (0 on a member).")
    servers = GaugeMetricFamily("linkstate_group_servers", "Servers in this server's routing group (directory).")
    quorum = GaugeMetricFamily("linkstate_quorum", "1 when the group has quorum as this server sees it.")
    updates = CounterMetricFamily("linkstate_table_updates", "Changes of the table by kind.", labels=["kind"])
    if view is not None:
        info.add_metric([], {
            "server": view.server, "routing_group": view.routing_group, "role": view.role.value,
            "master": view.master or "",
        })  # fmt: skip
        digest.add_metric([], {"digest": view.digest})
        attached.add_metric([], float(view.attached))
        members.add_metric([], float(len(view.attached_members)))
        servers.add_metric([], float(len(topo.servers_in(view.routing_group))))
        quorum.add_metric([], float(view.quorum))
    for kind in ev.ChangeKind:
        updates.add_metric([kind.value], float(view.table_changes.get(kind, 0) if view is not None else 0))
    yield from (info, digest, attached, members, servers, quorum, updates)


def _table_families(core: NodeCore | None, topo: Topology) -> Iterator[Metric]:
    version = GaugeMetricFamily(
        "linkstate_table_version",
        "The version of each routing group's section in the node's table (part: major, minor, user).",
        labels=["routing_group", "part"],
    )
    states = GaugeMetricFamily(
        "linkstate_connector_state",
        "Each connector's state in the node's table: 1 for its current state, 0 for the other.",
        labels=["routing_group", "connector", "state"],
    )
    if core is not None:
        for section in core.lsdb.snapshot().routing_groups:
            group = topo.routing_group_by_guid(section.guid)
            name = group.name if group is not None else section.guid
            for part in VERSION_PARTS:
                version.add_metric([name, part], float(getattr(section.version, part)))
            for conn in section.connectors:
                spec = topo.connector_by_guid(conn.guid)
                cname = spec.name if spec is not None else conn.guid
                for state in ConnectorState:
                    states.add_metric([name, cname, state.value], float(conn.state is state))
    yield from (version, states)


def _traffic_families(t: _Tallies, view: NodeView | None) -> Iterator[Metric]:
    sessions = CounterMetricFamily(
        "linkstate_sessions", "Session outcomes by protocol (README, Metrics).", labels=["protocol", "result"]
    )
    for (protocol, result), n in sorted(t.sessions.items()):
        sessions.add_metric([protocol, result], float(n))
    data = CounterMetricFamily("linkstate_bytes", "Bytes on the wire.", labels=["protocol", "direction"])
    for (protocol, direction), n in sorted(t.bytes.items()):
        data.add_metric([protocol, direction], float(n))
    messages = CounterMetricFamily(
        "linkstate_messages",
        "Messages: TCP 691 frames after authentication, SMTP lines (commands, replies, data).",
        labels=["protocol", "direction"],
    )
    frames = {"in": view.frames_in if view is not None else 0, "out": view.frames_out if view is not None else 0}
    for direction in DIRECTIONS:
        messages.add_metric([RG691, direction], float(frames[direction]))
        messages.add_metric([SMTP, direction], float(t.lines[direction]))
    decode = CounterMetricFamily(
        "linkstate_decode_failures", "Frames, chunks or packets that did not decode.", labels=["protocol"]
    )
    auth = CounterMetricFamily("linkstate_auth_failures", "Failed mutual authentications.", labels=["protocol"])
    for protocol in PROTOCOLS:
        decode.add_metric([protocol], float(t.decode_failures[protocol]))
        auth.add_metric([protocol], float(t.auth_failures[protocol]))
    windows = CounterMetricFamily(
        "linkstate_oscillation_windows", "Connectors' state-delay windows the master opened and suppressed.",
        labels=["outcome"],
    )
    for outcome in WINDOW_OUTCOMES:
        windows.add_metric([outcome], float(t.windows[outcome]))
    conns = GaugeMetricFamily("linkstate_connections_open", "Connections open now.", labels=["protocol"])
    open_by = Counter(t.conns.values())
    for protocol in PROTOCOLS:
        conns.add_metric([protocol], float(open_by[protocol]))
    durations = HistogramMetricFamily(
        "linkstate_exchange_duration_seconds",
        "Outbound X-LINK2STATE sessions that ended well, from connect to end (result: exchanged when packets "
        "were sent, in_sync when the digests matched).",
        labels=["result"],
    )
    for result, h in t.durations.items():
        durations.add_metric([result], h.buckets(), h.sum)
    yield from (sessions, data, messages, decode, auth, windows, conns, durations)
