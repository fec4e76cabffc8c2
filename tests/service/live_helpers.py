"""Test support for the failure-handling tests on real processes (issue 10): topologies with fast timers on free
loopback ports, route questions and DUMPs against running nodes, and smart hosts the test controls.

May import: anything (tests).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import trio

from linkstate.cli.cluster import Cluster, node_alive
from linkstate.cli.route_cmd import query_for, route_from_answer
from linkstate.core.routing import MessageClass, Route
from linkstate.core.topology import Topology
from linkstate.service.client import ClientError, ask_route, dump
from linkstate.service.topofile import load_topology
from proto import rg691
from proto.model import BridgeheadState, ConnectorState, OrgInfo, RoutingGroup
from tests.service.node_cli_helpers import free_ports, kill_quietly

TIME_SCALE = 60
# at time scale 60: poll and settle 1 s, state delay 2 s, probes every 0.25 s, reconnect at most 1 s
FAST = {"poll_interval": 60, "master_settle": 60, "state_delay": 120, "bh_probe_interval": 15, "reconnect_max": 60}
STATE_DELAY = FAST["state_delay"] / TIME_SCALE


def fast_topology(text: str, path: Path, servers: list[str]) -> Path:
    """`text` with the FAST settings and every server on 127.0.0.1 with free ports of its own."""
    settings = "".join(f"{k} = {v}\n" for k, v in FAST.items())
    for key in FAST:
        text = re.sub(rf"^{key} = .*\n", "", text, flags=re.MULTILINE)
    if "[settings]\n" in text:
        text = text.replace("[settings]\n", "[settings]\n" + settings, 1)
    else:
        text = text.replace("[[routing_groups]]", "[settings]\n" + settings + "\n[[routing_groups]]", 1)
    ports = free_ports(2 * len(servers))
    for i, name in enumerate(servers):
        block = f'[[servers]]\nname = "{name}"\n'
        start = text.index(block)
        end = text.find("\n[[", start + len(block))
        end = len(text) if end < 0 else end
        lines = [ln for ln in text[start:end].splitlines() if not ln.startswith("address")]
        lines += ['address = "127.0.0.1"', f"port_691 = {ports[2 * i]}", f"port_smtp = {ports[2 * i + 1]}"]
        text = text[:start] + "\n".join(lines) + "\n" + text[end:]
    path.write_text(text)
    load_topology(path)  # it must be valid
    return path


def ask(cluster: Cluster, topo: Topology, server: str, **dest: str) -> Route | None:
    """`route --node SERVER --from SERVER ...`: the node's own answer; None when it does not answer."""
    state = cluster.state()
    rec = state.servers.get(server) if state else None
    if rec is None:
        return None
    query = query_for(topo, server, dict(dest), MessageClass())
    try:
        answer = trio.run(lambda: ask_route(rec.host, rec.port, topo.secret, query, timeout=3))
    except ClientError:
        return None
    return route_from_answer(answer, topo)


def via(cluster: Cluster, topo: Topology, server: str, **dest: str) -> tuple[str | None, int | None] | None:
    r = ask(cluster, topo, server, **dest)
    return None if r is None else (r.connector.name if r.connector else None, r.cost)


def dumped(cluster: Cluster, topo: Topology, server: str) -> tuple[rg691.Dump, OrgInfo] | None:
    """The node's DUMP: its view and its table (None when it does not answer)."""
    state = cluster.state()
    rec = state.servers.get(server) if state else None
    if rec is None:
        return None
    try:
        view, decoded = trio.run(lambda: dump(rec.host, rec.port, topo.secret, timeout=3))
    except ClientError:
        return None
    return view, decoded.orginfo


def section(cluster: Cluster, topo: Topology, server: str, group: str) -> RoutingGroup | None:
    got = dumped(cluster, topo, server)
    return None if got is None else got[1].group(topo.routing_group(group).guid)


def states(cluster: Cluster, topo: Topology, server: str, connector: str) -> (
    tuple[ConnectorState, dict[str, BridgeheadState]] | None
):
    """The connector's published state and its bridgeheads', by name, in `server`'s table."""
    spec = topo.connector(connector)
    sec = section(cluster, topo, server, spec.routing_group)
    if sec is None:
        return None
    published = next(c for c in sec.connectors if c.guid == spec.guid)
    names = {topo.server(n).vs_guid: n for n in spec.source_bridgeheads}
    return published.state, {names[b.guid]: b.state for b in published.bridgeheads}


def stop_cluster(cluster: Cluster) -> None:
    state = cluster.state()
    for rec in state.servers.values() if state else ():
        if node_alive(rec):
            kill_quietly(rec.pid)


class SmartHost:
    """A smart host on 127.0.0.1 the test turns on and off: it greets `220` and waits for QUIT."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _serve(self, sock: socket.socket) -> None:
        while self._sock is sock:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(OSError), conn:
                conn.settimeout(1)
                conn.sendall(b"220 smart.test ESMTP\r\n")
                conn.recv(64)  # QUIT, or the close


@contextlib.contextmanager
def smart_hosts(*ports: int) -> Iterator[list[SmartHost]]:
    hosts = [SmartHost(p) for p in ports]
    try:
        for h in hosts:
            h.up()
        yield hosts
    finally:
        for h in hosts:
            h.down()


def timed(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until `predicate()` held, or None after `timeout`."""
    import time

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    return None
