"""NodeService: one server's routing engine on trio — the thin shell around a NodeCore.

Owns: the 691 and SMTP listeners, one reader and one writer task per connection, outbound connects with a
timeout, the pump task that is the only caller of the core (it waits for input until the core's next deadline,
then calls `on_timer`), transport timeouts, connection budgets (linkstate.service.budget), per-connection output
accounting, the directory watcher (file mtime + SIGHUP via `reload()`), its log (`events`,
linkstate.service.eventlog: the core's Diagnostics and its own events, all from the catalog), and, when given a
`MetricsAddress`, the listener of /metrics and /health (linkstate.service.metrics, .http): the pump hands the
metrics every input and every batch of outputs, and they read the core when scraped.
Resource bounds (issue 11, docs/SECURITY.md):
  - a connection must authenticate within `attach_timeout` of opening (an absolute deadline that traffic does
    not extend) and after at most UNAUTHENTICATED_INPUT bytes; after that it is idle-timed (691: 3 poll
    intervals; SMTP: `smtp_command_timeout`);
  - output is accounted in bytes per connection: a Send that would take a connection's unwritten output above
    `max_output_bytes` drops the peer as too slow (a Send into an empty queue is always taken);
  - back-pressure: a connection is read only while its unwritten output is at most its pause mark
    (UNAUTHENTICATED_PAUSE before authentication, half of `max_output_bytes` after), at most READ_SIZE bytes at a
    time, and each read is handed to the core and processed before the next one is read — so a command is not
    processed while its replies cannot be queued; a peer that leaves its output unread for `attach_timeout` is
    dropped;
  - the inbox never drops anything: a connection's open and close always reach the core, in order with its data
    (data is bounded by one unprocessed read per connection, lifecycle events by the connection budgets).
Invariants: the core is touched only by the pump; each connection has a single writer; a slow or hostile peer
costs at most its own bounded buffers, after which it is disconnected; nothing a peer sends can stop the node.
May import: the standard library, trio, structlog, proto, linkstate.core, linkstate.service.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import trio

from linkstate import __version__
from linkstate.core import events as ev
from linkstate.core.catalog import Ev
from linkstate.core.node import NodeCore
from linkstate.core.topology import Settings, Topology, TopologyError, unknown_master
from linkstate.service.budget import ConnBudget
from linkstate.service.eventlog import EventLog
from linkstate.service.http import HttpEndpoint
from linkstate.service.metrics import MetricsAddress, NodeMetrics
from linkstate.service.topofile import load_topology, read_topology_text
from linkstate.service.transport import TcpTransport, Transport

READ_SIZE = 16384  # bytes handed to the core at a time (what one read can make it answer is bounded by this)
UNAUTHENTICATED_PAUSE = 64 * 1024  # unwritten output at which an unauthenticated peer is no longer read
UNAUTHENTICATED_INPUT = 4096  # bytes a peer may send before it has authenticated (a handshake takes < 400)


@dataclass(eq=False)
class _Conn:
    """The shell's side of one connection: its slot, its clocks and its unwritten output."""

    conn: int
    proto: ev.Proto
    inbound: bool
    opened: float
    peer: str = ""
    authenticated: bool = False
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    out: deque[bytes | None] = field(default_factory=deque)  # None: close after what is queued
    queued: int = 0  # bytes in `out` and in the write under way
    closing: bool = False  # closed or dropped: nothing more is queued
    wake_writer: trio.Event = field(default_factory=trio.Event)
    written: trio.Event = field(default_factory=trio.Event)
    processed: trio.Event = field(default_factory=trio.Event)  # the core took the last read
    received: int = 0  # bytes read so far


class NodeService:
    def __init__(
        self,
        topology: Topology,
        server: str,
        *,
        transport: Transport | None = None,
        host: str | None = None,
        port: int | None = None,
        smtp_port: int | None = None,
        topology_path: Path | None = None,
        metrics: MetricsAddress | None = None,
        rand: Callable[[], float] = random.random,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.topology = topology
        self.server = server
        spec = topology.server(server)
        self.transport = transport or TcpTransport()
        self.host = host or spec.address or "127.0.0.1"
        self.port = port if port is not None else (spec.port_691 or 691)
        self.smtp_port = smtp_port if smtp_port is not None else (spec.port_smtp or 25)
        self.topology_path = topology_path
        self.rand = rand
        self.nonce = nonce
        self.events = EventLog(structlog.get_logger("linkstate").bind(node=server, rg=spec.routing_group))
        self.core: NodeCore | None = None
        self.conns: dict[int, _Conn] = {}
        self.budget = ConnBudget(topology.settings)
        self._ids = itertools.count(1)
        self._refused: dict[ev.Proto, tuple[float, int, str]] = {}  # proto -> (logged at, refused since, reason)
        # unbounded in entries, never dropping: data is bounded by one unprocessed read per connection (module doc)
        self._inbox_send, self._inbox = trio.open_memory_channel[ev.Input](math.inf)
        self._nursery: trio.Nursery | None = None
        self._mtime: float | None = None
        self.bound_port: int | None = None
        self.bound_smtp_port: int | None = None
        self.metrics_address = metrics
        self.metrics: NodeMetrics | None = None
        self.bound_metrics_port: int | None = None
        self.on_table_changed: Callable[[ev.TableChanged], None] | None = None
        self._pump_scope = trio.CancelScope()  # cancelled by `stop`: a planned stop

    # --- running -----------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[NodeService] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.bound_port = await nursery.start(self.transport.serve, self.host, self.port, self._inbound)
            smtp_up = await self._listen_smtp()
            await self._serve_metrics(nursery)
            now = trio.current_time()
            self.core = NodeCore(
                self.topology, self.server, nonce=self.nonce, rand=self.rand, now=now, version=__version__
            )
            self._apply(self.core.start(now))
            if not smtp_up:  # the node runs without its SMTP virtual server: its bridgeheads are CONN_NOT_STARTED
                self._apply(self.core.handle(ev.ListenerChanged(ev.Proto.SMTP, running=False), now))
                nursery.start_soon(self._retry_smtp)
            self.events.emit(
                Ev.LISTENING,
                host=self.host,
                port=self.bound_port,
                smtp_port=self.bound_smtp_port,
                metrics=self.metrics_url or "",
                role=self.core.view().role.value,
            )
            if self.topology_path is not None:
                self._mtime = _mtime(self.topology_path)
                nursery.start_soon(self._watch_topology)
            task_status.started(self)
            try:
                with self._pump_scope:
                    await self._pump()
            finally:
                with trio.CancelScope(shield=True):
                    await self._shutdown()
            nursery.cancel_scope.cancel()  # after a planned stop: the listeners and the watcher go too

    def stop(self) -> None:
        """A planned stop (SIGTERM): the core takes no more input and detaches, its last frames (DETACH) are
        written while the connections still run, then `run` returns. Cancelling `run` instead is a crash: the
        connections end at once and the peers see them lost."""
        self._pump_scope.cancel()

    async def _listen_smtp(self, *, retry: bool = False) -> bool:
        """Start the SMTP listener; a port that cannot be bound is logged (once) and the node starts without it
        (G40)."""
        assert self._nursery is not None
        try:
            self.bound_smtp_port = await self._nursery.start(
                self.transport.serve, self.host, self.smtp_port, self._inbound_smtp
            )
        except OSError as exc:
            if not retry:
                every = self.topology.settings.scaled("bh_probe_interval")
                self.events.emit(Ev.SMTP_LISTENER_FAILED, host=self.host, port=self.smtp_port,
                                 reason=exc.strerror or str(exc), retry_every_s=every)  # fmt: skip
            return False
        return True

    async def _retry_smtp(self) -> None:
        """Try the SMTP port again every probe interval until it binds; then the bridgehead states recover."""
        while True:
            await trio.sleep(self.topology.settings.scaled("bh_probe_interval"))
            if await self._listen_smtp(retry=True):
                self.events.emit(Ev.SMTP_LISTENING, host=self.host, port=self.bound_smtp_port)
                self.post(ev.ListenerChanged(ev.Proto.SMTP, running=True))
                return

    async def _pump(self) -> None:
        assert self.core is not None
        core = self.core
        while True:
            deadline = core.next_deadline()
            with trio.move_on_at(deadline if deadline is not None else math.inf):
                event = await self._inbox.receive()
                if self.metrics is not None:
                    self.metrics.on_input(event)
                self._apply(core.handle(event, trio.current_time()))
                if type(event) is ev.DataReceived:
                    self._processed(event.conn)
                continue
            self._apply(core.on_timer(trio.current_time()))

    def _processed(self, conn: int) -> None:
        """The core took a read: the reader may go on; note when the connection has just authenticated."""
        c = self.conns.get(conn)
        if c is None:
            return
        if not c.authenticated and self._core_authenticated(c):
            c.authenticated = True
            self.budget.authenticated(conn)
        c.processed.set()

    def _core_authenticated(self, c: _Conn) -> bool:
        """Asked after each read until it says yes (a few times per connection)."""
        assert self.core is not None
        view = self.core.view()
        return c.conn in (view.smtp_authenticated if c.proto is ev.Proto.SMTP else view.authenticated)

    async def _shutdown(self) -> None:
        if self.core is None:
            return
        self._apply(self.core.shutdown("server shutting down"))
        with trio.move_on_after(1):
            while self.conns:
                await trio.sleep(0.01)
        self.events.emit(Ev.STOPPED)

    async def _serve_metrics(self, nursery: trio.Nursery) -> None:
        """Listen for /metrics and /health; a default address that cannot be bound leaves the node without."""
        where = self.metrics_address
        if where is None:
            return
        metrics = NodeMetrics(self)
        endpoint = HttpEndpoint(metrics.routes(), on_error=self._page_failed)
        try:
            self.bound_metrics_port = await nursery.start(self.transport.serve, where.host, where.port, endpoint.handle)
        except (OSError, BaseExceptionGroup) as exc:
            if where.required or not _is_os_error(exc):
                raise
            self.events.emit(Ev.METRICS_UNAVAILABLE, host=where.host, port=where.port, reason=str(exc))
            return
        self.metrics = metrics

    @property
    def metrics_url(self) -> str | None:
        """Where /metrics answers (None without metrics)."""
        if self.metrics is None or self.metrics_address is None:
            return None
        return self.metrics_address.url(self.bound_metrics_port)

    def _page_failed(self, path: str, exc: Exception) -> None:
        self.events.emit(Ev.CONNECTION_ERROR, conn=0, peer="http", reason=f"GET {path}: {exc!r}")

    def post(self, event: ev.Input) -> None:
        """Hand an input to the core (from CLI/control code running in the same trio run); never dropped."""
        self._inbox_send.send_nowait(event)

    def reload(self) -> None:
        """Re-read the topology file; an invalid file is rejected and the old topology stays (event 929)."""
        if self.topology_path is None:
            return
        try:
            topo = load_topology(self.topology_path)
        except TopologyError as exc:
            self.events.emit(
                Ev.TOPOLOGY_REJECTED,
                problems=len(exc.problems),
                first=exc.problems[0].format(str(self.topology_path)) if exc.problems else "",
            )
            unknown = self._unknown_master(exc)
            if unknown is not None:
                self.post(ev.MasterUnknown(unknown))
            return
        except OSError as exc:
            self.events.emit(Ev.TOPOLOGY_REJECTED, reason=str(exc))
            return
        topo = _with_time_scale(topo, self.topology.settings.time_scale)
        self.topology = topo
        self.budget.configure(topo.settings)
        self.post(ev.TopologyChanged(topo))

    def _unknown_master(self, exc: TopologyError) -> str | None:
        """The master this server's group is now designated, when the file names a server that does not exist."""
        assert self.topology_path is not None
        try:
            text = read_topology_text(self.topology_path)
        except TopologyError:
            return None
        return unknown_master(exc, text, self.topology.server(self.server).routing_group)

    async def _watch_topology(self) -> None:
        assert self.topology_path is not None
        while True:
            await trio.sleep(1.0)
            m = _mtime(self.topology_path)
            if m != self._mtime:
                self._mtime = m
                self.reload()

    # --- outputs -----------------------------------------------------------------------------------------

    def _apply(self, outputs: list[ev.Output]) -> None:
        if self.metrics is not None:
            self.metrics.on_outputs(outputs)
        for out in outputs:
            _OUTPUTS[type(out)](self, out)

    def _out_send(self, out: ev.Output) -> None:
        assert isinstance(out, ev.Send)
        c = self.conns.get(out.conn)
        if c is None or c.closing:
            return
        limit = self.topology.settings.max_output_bytes
        if c.queued and c.queued + len(out.data) > limit:
            self.events.emit(Ev.PEER_TOO_SLOW, conn=out.conn, peer=c.peer, unwritten=c.queued, limit=limit)
            self._drop(c)
            return
        c.out.append(out.data)
        c.queued += len(out.data)
        c.wake_writer.set()

    def _out_close(self, out: ev.Output) -> None:
        assert isinstance(out, ev.Close)
        c = self.conns.get(out.conn)
        if c is not None and not c.closing:
            c.closing = True
            c.out.append(None)  # the writer flushes what is queued, then closes
            c.wake_writer.set()

    def _out_connect(self, out: ev.Output) -> None:
        assert isinstance(out, ev.Connect) and self._nursery is not None
        self._nursery.start_soon(self._connect, out)

    def _out_diag(self, out: ev.Output) -> None:
        assert isinstance(out, ev.Diagnostic)
        self.events.diagnostic(out)

    def _out_table(self, out: ev.Output) -> None:
        assert isinstance(out, ev.TableChanged)
        self.events.emit(Ev.ORGINFO_APPLIED, digest=out.digest, kind=out.kind.value, groups=len(out.groups))
        if out.resets_routes:
            self.events.emit(Ev.RESET_ROUTES, digest=out.digest, kind=out.kind.value)
        if self.on_table_changed is not None:
            self.on_table_changed(out)

    # --- connections -------------------------------------------------------------------------------------

    async def _inbound(self, stream: trio.abc.Stream) -> None:
        await self._accept(stream, ev.Proto.RG691)

    async def _inbound_smtp(self, stream: trio.abc.Stream) -> None:
        await self._accept(stream, ev.Proto.SMTP)

    async def _accept(self, stream: trio.abc.Stream, proto: ev.Proto) -> None:
        host = _peer_host(stream)
        conn = next(self._ids)
        verdict = self.budget.admit(conn, proto, host, trio.current_time())
        victim = self.conns.get(verdict.evict) if verdict.evict is not None else None
        if victim is not None:
            self.events.emit(
                Ev.CONNECTION_EVICTED, conn=victim.conn, protocol=proto.value, peer_host=host, reason=verdict.reason
            )
            self._drop(victim)
        if not verdict.admitted:
            self._log_refused(proto, verdict.reason)
            await _close(stream)
            return
        hello = ev.PeerConnected(conn, inbound=True, proto=proto, peer_host=host)
        await self._run_conn(_Conn(conn, proto, True, trio.current_time(), peer="inbound"), stream, hello)

    def _log_refused(self, proto: ev.Proto, reason: str) -> None:
        """At most one `connection_refused` line per protocol and second, counting the refusals since the last."""
        now = trio.current_time()
        last, count, _ = self._refused.get(proto, (-math.inf, 0, ""))
        if now - last >= 1.0:
            self.events.emit(Ev.CONNECTION_REFUSED, reason=reason, protocol=proto.value, refused=count + 1)
            self._refused[proto] = (now, 0, reason)
        else:
            self._refused[proto] = (last, count + 1, reason)

    async def _connect(self, out: ev.Connect) -> None:
        timeout = self.topology.settings.scaled("attach_timeout")
        try:
            with trio.fail_after(timeout):
                stream = await self.transport.connect(out.host, out.port, local_address=self.host)
        except (OSError, trio.TooSlowError) as exc:
            reason = "timed out" if isinstance(exc, trio.TooSlowError) else (exc.strerror or str(exc))
            self.post(ev.ConnectFailed(out.peer, f"{out.host}:{out.port}: {reason}", out.proto, out.tag))
            return
        conn = next(self._ids)
        self.budget.outbound(conn, out.proto)
        hello = ev.PeerConnected(conn, inbound=False, peer=out.peer, proto=out.proto, tag=out.tag)
        # an SMTP session we open is timed as an authenticated one: the peer is the bridgehead we chose
        smtp = out.proto is ev.Proto.SMTP
        state = _Conn(conn, out.proto, False, trio.current_time(), peer=out.peer, authenticated=smtp)
        await self._run_conn(state, stream, hello)

    async def _run_conn(self, c: _Conn, stream: trio.abc.Stream, hello: ev.PeerConnected) -> None:
        self.conns[c.conn] = c
        self.post(hello)
        reason = "closed by peer"
        try:
            with c.cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, stream, c, nursery.cancel_scope)
                    reason = await self._reader(c, stream)
                    nursery.cancel_scope.cancel()
            if c.cancel.cancelled_caught:
                reason = "dropped"
        except Exception as exc:  # a connection task must never take the node down
            reason = f"connection error: {exc!r}"
            self.events.emit(Ev.CONNECTION_ERROR, conn=c.conn, peer=c.peer, reason=reason)
        finally:
            self.conns.pop(c.conn, None)
            self.budget.release(c.conn)
            c.out.clear()
            with trio.CancelScope(shield=True):
                await _close(stream)
            self.post(ev.PeerLost(c.conn, reason))  # always reaches the core (the inbox never drops)

    async def _reader(self, c: _Conn, stream: trio.abc.Stream) -> str:
        settings = self.topology.settings
        try:
            while True:
                with trio.move_on_at(self._read_deadline(c, settings)) as scope:
                    if not await self._writable(c, settings):
                        return "timeout: peer does not read"
                    data = await stream.receive_some(READ_SIZE)
                if scope.cancelled_caught:
                    what = "idle" if c.authenticated else "did not authenticate in time"
                    self.events.emit(Ev.CONNECTION_TIMEOUT, conn=c.conn, protocol=c.proto.value, reason=what)
                    return f"timeout: {what}"
                if not data:
                    return "closed by peer"
                c.received += len(data)
                if not c.authenticated and c.received > UNAUTHENTICATED_INPUT:
                    what = f"more than {UNAUTHENTICATED_INPUT} bytes before authenticating"
                    self.events.emit(Ev.CONNECTION_DROPPED, conn=c.conn, protocol=c.proto.value, reason=what)
                    return what
                c.processed = trio.Event()
                self._inbox_send.send_nowait(ev.DataReceived(c.conn, bytes(data)))
                await c.processed.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            return f"transport error: {exc}"

    def _read_deadline(self, c: _Conn, settings: Settings) -> float:
        """Before authentication an absolute deadline from the open; after it, an idle timer from now."""
        if not c.authenticated:
            return c.opened + settings.scaled("attach_timeout")
        if c.proto is ev.Proto.SMTP:
            return trio.current_time() + settings.scaled("smtp_command_timeout")
        return trio.current_time() + settings.scaled("poll_interval") * 3

    async def _writable(self, c: _Conn, settings: Settings) -> bool:
        """Wait until the connection's unwritten output is at most its pause mark (module docstring); False when
        the peer leaves it unread for `attach_timeout`."""
        pause = settings.max_output_bytes // 2 if c.authenticated else UNAUTHENTICATED_PAUSE
        if c.queued <= pause:
            return True
        with trio.move_on_after(settings.scaled("attach_timeout")):
            while c.queued > pause:
                c.written = trio.Event()
                await c.written.wait()
            return True
        self.events.emit(Ev.PEER_TOO_SLOW, conn=c.conn, peer=c.peer, unwritten=c.queued, reason="does not read")
        return False

    async def _writer(self, stream: trio.abc.Stream, c: _Conn, scope: trio.CancelScope) -> None:
        try:
            while True:
                if not c.out:
                    c.wake_writer = trio.Event()
                    await c.wake_writer.wait()
                    continue
                data = c.out.popleft()
                if data is None:
                    break
                await stream.send_all(data)
                c.queued -= len(data)
                c.written.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            scope.cancel()

    def _drop(self, c: _Conn) -> None:
        c.closing = True
        c.cancel.cancel()


_OUTPUTS: dict[type, Callable[[NodeService, ev.Output], None]] = {
    ev.Send: NodeService._out_send,
    ev.Close: NodeService._out_close,
    ev.Connect: NodeService._out_connect,
    ev.Diagnostic: NodeService._out_diag,
    ev.TableChanged: NodeService._out_table,
}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _with_time_scale(topo: Topology, scale: float) -> Topology:
    from dataclasses import replace

    if topo.settings.time_scale == scale:
        return topo
    return replace(topo, settings=replace(topo.settings, time_scale=scale))


def _is_os_error(exc: BaseException) -> bool:
    """An OSError, or an exception group made only of them (as a listener's nursery raises it)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_os_error(e) for e in exc.exceptions)
    return isinstance(exc, OSError)


def _peer_host(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    try:
        return str(sock.getpeername()[0]) if sock is not None else ""
    except OSError:
        return ""


async def _close(stream: trio.abc.Stream) -> None:
    with trio.move_on_after(1):
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
