"""The pure simulated network: NodeCores joined by an event heap in virtual time.

Owns: delivery of the cores' outputs to each other with a fixed latency and per-connection FIFO order,
connection set-up/tear-down, node stop/start, partitions, per-node timers, traffic counters (split by
protocol: 691 and SMTP), and hosts outside the organization (`external`: a smart host or next-hop MTA, by
`host:port`, that accepts a connection and says one line — its greeting — then ignores what it is sent).
No trio, no sockets: thousands of hypothesis examples and 1,000-server benchmarks run here in virtual time.
Invariants: every event is processed in (time, sequence) order, so a run is a pure function of its inputs and
its seed; a stopped node loses its state (a restart builds a fresh core, as a restarted process would).
May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from linkstate.core import events as ev
from linkstate.core.lsdb import TableStates
from linkstate.core.node import NodeCore
from linkstate.core.topology import Topology
from proto.codec import DEFAULT_LIMITS
from proto.encode import encode
from proto.model import OrgInfo
from proto.sectioncache import SectionCache, decode_strict_cached


@dataclass
class Traffic:
    """Messages (one per `Send`) and bytes on the wire; `by_proto` splits them by protocol (events.Proto)."""

    messages: int = 0
    bytes: int = 0
    by_proto: dict[str, Traffic] = field(default_factory=dict)

    def count(self, proto: str, size: int) -> None:
        self.messages += 1
        self.bytes += size
        split = self.by_proto.get(proto)
        if split is None:
            split = self.by_proto[proto] = Traffic()
        split.messages += 1
        split.bytes += size


@dataclass
class SimNetwork:
    topology: Topology
    latency: float = 0.001
    seed: int = 0
    now: float = 0.0
    nodes: dict[str, NodeCore] = field(default_factory=dict)
    diagnostics: list[tuple[float, str, ev.Diagnostic]] = field(default_factory=list)
    traffic: Traffic = field(default_factory=Traffic)
    partitions: set[frozenset[str]] = field(default_factory=set)
    external: dict[str, bytes] = field(default_factory=dict)  # "host:port" -> its greeting; absent: refused
    on_output: Callable[[str, ev.Output], None] | None = None
    keep_diagnostics: bool = True  # False: `diagnostics` stays empty (a long benchmark that does not read them)

    def __post_init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._conn_ids = itertools.count(1)
        self._links: dict[tuple[str, int], tuple[str, int]] = {}
        self._fifo: dict[tuple[str, int], float] = {}
        self._proto: dict[tuple[str, int], ev.Proto] = {}
        self._timer_gen: dict[str, int] = {}
        self._armed: dict[str, float] = {}  # the deadline of each node's live timer entry
        self._rng = random.Random(self.seed)
        self._nonce_counter = itertools.count()
        self._sections = SectionCache()  # the decode cache the nodes of this network share
        self._tables = TableStates(size=8)  # and the memo of their tables' states (linkstate.core.lsdb)

    # --- building ------------------------------------------------------------------------------------------

    def start_all(self) -> None:
        for server in self.topology.servers:
            self.start(server.name)

    def start(self, name: str, topology: Topology | None = None) -> NodeCore:
        """Start (or restart) server `name`, optionally from its own copy of the directory."""
        rng = random.Random(f"{self.seed}:{name}:{next(self._nonce_counter)}")
        core = NodeCore(
            topology or self.topology,
            name,
            nonce=lambda: f"{rng.getrandbits(128):032x}",
            rand=rng.random,
            now=self.now,
            sections=self._sections,
            tables=self._tables,
        )
        self.nodes[name] = core
        self._apply(name, core.start(self.now))
        return core

    def stop(self, name: str, *, planned: bool = False) -> None:
        """The server's process ends: `planned` as `serve` does on SIGTERM (the core's DETACH is written before the
        connections end, and reaches the peers), else as a crash (the peers only see their connections lost)."""
        core = self.nodes.get(name)
        if core is None:
            return
        if planned:
            self._apply(name, core.shutdown("server shutting down"))
        del self.nodes[name]
        self._timer_gen[name] = self._timer_gen.get(name, 0) + 1
        self._armed.pop(name, None)
        for (owner, conn), (peer, peer_conn) in list(self._links.items()):
            if owner == name:
                self._drop_link(owner, conn)
                self._schedule(self.latency, self._lost_cb(peer, peer_conn, "peer died"))

    def partition(self, a: str, b: str) -> None:
        """Cut every link between servers a and b (their connections drop; new ones fail)."""
        self.partitions.add(frozenset((a, b)))
        for (owner, conn), (peer, peer_conn) in list(self._links.items()):
            if {owner, peer} == {a, b}:
                self._drop_link(owner, conn)
                self._schedule(self.latency, self._lost_cb(owner, conn, "partition"))
                self._schedule(self.latency, self._lost_cb(peer, peer_conn, "partition"))

    def heal(self, a: str, b: str) -> None:
        self.partitions.discard(frozenset((a, b)))

    def inject(self, name: str, event: ev.Input) -> None:
        """Hand an input to a node now (topology change, observed state, ...)."""
        self._deliver(name, event)

    def seed_table(self, org: OrgInfo) -> None:
        """Hand every node these sections now (`TableSeeded`: merged as a bridgehead exchange would), decoded once
        through the network's shared decode cache, so that no node encodes them again (a benchmark's warm-up)."""
        decoded = decode_strict_cached(encode(org), DEFAULT_LIMITS, self._sections).orginfo
        for name in list(self.nodes):
            self._deliver(name, ev.TableSeeded(decoded))

    # --- running -------------------------------------------------------------------------------------------

    def run_until(self, t: float, stop: Callable[[], bool] | None = None) -> bool:
        """Process events up to virtual time t; returns True if `stop()` became true first."""
        while self._heap and self._heap[0][0] <= t:
            when, _, fn = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            fn()
            if stop is not None and stop():
                return True
        self.now = max(self.now, t)
        return stop() if stop is not None else False

    def run_for(self, seconds: float, stop: Callable[[], bool] | None = None) -> bool:
        return self.run_until(self.now + seconds, stop)

    def digests(self) -> dict[str, str]:
        return {name: core.lsdb.digest for name, core in self.nodes.items()}

    def converged(self) -> bool:
        return len(set(self.digests().values())) == 1

    # --- internals -------------------------------------------------------------------------------------------

    def _lost_cb(self, name: str, conn: int, reason: str) -> Callable[[], None]:
        return lambda: self._deliver(name, ev.PeerLost(conn, reason))

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (self.now + delay, next(self._seq), fn))

    def _deliver(self, name: str, event: ev.Input) -> None:
        core = self.nodes.get(name)
        if core is None:
            return
        self._apply(name, core.handle(event, self.now))

    def _apply(self, name: str, outputs: list[ev.Output]) -> None:
        for out in outputs:
            if self.on_output is not None:
                self.on_output(name, out)
            handler = _OUTPUTS[type(out)]
            handler(self, name, out)
        self._arm_timer(name)

    def _arm_timer(self, name: str) -> None:
        core = self.nodes.get(name)
        if core is None:
            return
        deadline = core.next_deadline()
        if deadline is not None and self._armed.get(name) == deadline:
            return  # the live entry already fires then (most outputs leave the deadline alone)
        gen = self._timer_gen.get(name, 0) + 1
        self._timer_gen[name] = gen
        if deadline is None:
            self._armed.pop(name, None)
            return
        self._armed[name] = deadline
        delay = max(0.0, deadline - self.now)
        self._schedule(delay, lambda: self._fire(name, gen))

    def _fire(self, name: str, gen: int) -> None:
        core = self.nodes.get(name)
        if core is None or self._timer_gen.get(name) != gen:
            return
        self._armed.pop(name, None)
        self._apply(name, core.on_timer(self.now))

    def _drop_link(self, owner: str, conn: int) -> None:
        peer = self._links.pop((owner, conn), None)
        self._proto.pop((owner, conn), None)
        self._fifo.pop((owner, conn), None)
        if peer is not None:
            self._links.pop(peer, None)
            self._proto.pop(peer, None)
            self._fifo.pop(peer, None)

    def _out_send(self, name: str, out: ev.Output) -> None:
        assert isinstance(out, ev.Send)
        key = (name, out.conn)
        target = self._links.get(key)
        if target is None:
            return
        self.traffic.count(self._proto.get(key, ev.Proto.RG691), len(out.data))
        when = self.now + self.latency
        last = self._fifo.get(key, 0.0)
        if last > when:  # = max(when, last)
            when = last
        self._fifo[key] = when
        peer, peer_conn = target
        heapq.heappush(
            self._heap,
            (when, next(self._seq), lambda: self._deliver_data(peer, peer_conn, out.data)),
        )

    def _deliver_data(self, peer: str, peer_conn: int, data: bytes) -> None:
        if (peer, peer_conn) in self._links:  # _deliver(), inlined: this runs once per message
            core = self.nodes.get(peer)
            if core is not None:
                self._apply(peer, core.handle(ev.DataReceived(peer_conn, data), self.now))

    def _out_close(self, name: str, out: ev.Output) -> None:
        assert isinstance(out, ev.Close)
        target = self._links.get((name, out.conn))
        if target is None:
            return
        key = (name, out.conn)
        when = max(self.now + self.latency, self._fifo.get(key, 0.0))
        peer, peer_conn = target
        # as TCP does: what the closing side sent before its close still reaches the peer (a DETACH, a 221), then
        # the close; the closing side itself neither sends nor receives any more
        self._links.pop(key, None)
        self._proto.pop(key, None)
        self._fifo.pop(key, None)

        def lost() -> None:
            self._drop_link(peer, peer_conn)
            self._deliver(peer, ev.PeerLost(peer_conn, out.reason or "closed"))

        heapq.heappush(self._heap, (when, next(self._seq), lost))

    def _out_connect(self, name: str, out: ev.Output) -> None:
        assert isinstance(out, ev.Connect)
        peer, proto, tag = out.peer, out.proto, out.tag
        if peer in self.external and peer not in self.nodes:
            self._connect_external(name, out)
            return
        if peer not in self.nodes or frozenset((name, peer)) in self.partitions:
            failed = ev.ConnectFailed(peer, "connection refused", proto, tag)
            self._schedule(self.latency, lambda: self._deliver(name, failed))
            return
        mine, theirs = next(self._conn_ids), next(self._conn_ids)
        self._links[(name, mine)] = (peer, theirs)
        self._links[(peer, theirs)] = (name, mine)
        self._proto[(name, mine)] = self._proto[(peer, theirs)] = proto

        def up() -> None:
            if (name, mine) not in self._links:  # the peer died or was cut off while we were connecting
                self._deliver(name, ev.ConnectFailed(peer, "connection reset", proto, tag))
                return
            self._deliver(peer, ev.PeerConnected(theirs, inbound=True, proto=proto, peer_host=name))
            self._deliver(name, ev.PeerConnected(mine, inbound=False, peer=peer, proto=proto, tag=tag))

        self._schedule(self.latency, up)

    def _connect_external(self, name: str, out: ev.Connect) -> None:
        """A host outside the organization: it accepts and greets; what it is sent goes nowhere."""
        mine = next(self._conn_ids)
        outside = (f"@{out.peer}", next(self._conn_ids))  # no node has this name: deliveries to it are dropped
        self._links[(name, mine)] = outside
        self._links[outside] = (name, mine)
        self._proto[(name, mine)] = self._proto[outside] = out.proto
        greeting = self.external[out.peer]

        def up() -> None:
            if (name, mine) not in self._links:
                return
            self._deliver(name, ev.PeerConnected(mine, inbound=False, peer=out.peer, proto=out.proto, tag=out.tag))
            self._deliver_data(name, mine, greeting)

        self._schedule(self.latency, up)

    def _out_diag(self, name: str, out: ev.Output) -> None:
        assert isinstance(out, ev.Diagnostic)
        if self.keep_diagnostics:
            self.diagnostics.append((self.now, name, out))

    def _out_table(self, name: str, out: ev.Output) -> None:
        return


_OUTPUTS: dict[type, Callable[[SimNetwork, str, ev.Output], None]] = {
    ev.Send: SimNetwork._out_send,
    ev.Close: SimNetwork._out_close,
    ev.Connect: SimNetwork._out_connect,
    ev.Diagnostic: SimNetwork._out_diag,
    ev.TableChanged: SimNetwork._out_table,
}
