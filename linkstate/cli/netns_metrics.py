"""The /metrics and /health of a netns cluster's nodes, reachable from the initial namespace: a loopback forwarder.

A node of a netns cluster serves /metrics and /health on its own address inside its namespace (198.18.<g>.<n>),
which the initial namespace has no route to (and must not: from there 198.18.0.0/15 leaves the machine). `cluster up
--netns` therefore opens, for every node, a listener on 127.0.0.1 (a port the kernel picks) and forwards each
connection to the node's metrics address from inside the node's namespace; the URL it prints and `cluster status
--json` reports is that loopback one (`NodeRecord.metrics_local`), with the namespace's own beside it.

Owns: `open_listeners(cluster)` (binds them, before trio runs, and records their ports in the run state) and
`serve(listeners)` (the forwarding, for as long as the supervisor runs).
Invariants: listeners bind 127.0.0.1 only; each forwarded connection is made inside the node's namespace (never
from here) and lives at most FORWARD_TIMEOUT seconds; a node that does not answer closes the client's connection.
May import: anything (CLI layer).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import trio

from linkstate.cli.cluster import Cluster, NodeRecord, locked, save_state
from linkstate.netns.enter import NetnsError, call_in

LOOPBACK = "127.0.0.1"
FORWARD_TIMEOUT = 30.0
CHUNK = 65536

Listeners = list[tuple[socket.socket, NodeRecord]]


def open_listeners(cluster: Cluster) -> Listeners:
    """One loopback listener per node with metrics; their ports are recorded as each node's `metrics_local`."""
    listeners: Listeners = []
    with locked(cluster.run_dir):
        state = cluster.require_state()
        for rec in state.servers.values():
            if rec.metrics_port is None or rec.netns is None:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sock.listen(16)
            rec.metrics_local = sock.getsockname()[1]
            listeners.append((sock, rec))
        save_state(state)
    return listeners


async def serve(listeners: Listeners) -> None:
    """Forward every connection to its node's metrics address, inside the node's namespace, until cancelled."""
    async with trio.open_nursery() as nursery:
        for sock, rec in listeners:
            listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            nursery.start_soon(trio.serve_listeners, _handler(rec), [listener])


def _handler(rec: NodeRecord) -> Callable[[trio.SocketStream], Awaitable[None]]:
    port = rec.metrics_port
    assert port is not None  # open_listeners skips nodes without metrics

    async def handle(client: trio.SocketStream) -> None:
        async with client:
            with trio.move_on_after(FORWARD_TIMEOUT):
                try:
                    upstream = await call_in(rec.netns, trio.open_tcp_stream, rec.host, port)
                except (OSError, NetnsError):
                    return  # the node does not answer: the client sees its connection closed
                async with upstream, trio.open_nursery() as nursery:
                    nursery.start_soon(_pipe, client, upstream, None)
                    nursery.start_soon(_pipe, upstream, client, nursery.cancel_scope)

    return handle


async def _pipe(src: trio.SocketStream, dst: trio.SocketStream, done: trio.CancelScope | None) -> None:
    """Copy until `src` ends; then half-close `dst` (the request side) or end the connection (the response)."""
    try:
        while data := await src.receive_some(CHUNK):
            await dst.send_all(data)
        if done is None:
            await dst.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        if done is not None:
            done.cancel()
