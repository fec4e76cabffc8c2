"""Byte-stream transports the node service runs on: loopback/real TCP, and an in-memory one for tests.

Owns: `Transport` (connect / serve), `TcpTransport`, and `MemoryTransport`, a registry of in-process
listeners joined by trio's in-memory stream pairs (deterministic under MockClock, no sockets).
May import: the standard library and trio.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


class Transport(Protocol):
    async def connect(self, host: str, port: int, *, local_address: str | None = None) -> trio.abc.Stream: ...

    async def serve(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None: ...


class TcpTransport:
    async def connect(self, host: str, port: int, *, local_address: str | None = None) -> trio.abc.Stream:
        """`local_address`: the source address (a node connects from its own address, so a peer's per-address
        connection budget sees servers apart; docs/SECURITY.md)."""
        return await trio.open_tcp_stream(host, port, local_address=local_address)

    async def serve(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        task_status.started(bound)
        await trio.serve_listeners(handler, listeners)


class MemoryTransport:
    """In-process listeners keyed by (host, port); `connect` to an absent one is refused like TCP."""

    def __init__(self) -> None:
        self.listeners: dict[tuple[str, int], tuple[trio.Nursery, Handler]] = {}

    async def connect(self, host: str, port: int, *, local_address: str | None = None) -> trio.abc.Stream:
        entry = self.listeners.get((host, port))
        if entry is None:
            raise OSError(errno.ECONNREFUSED, f"connection refused: {host}:{port}")
        nursery, handler = entry
        import trio.testing  # lazily: it imports pytest-sized machinery a real node never needs

        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(handler, server)
        await trio.sleep(0)
        return client

    async def serve(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            self.listeners[(host, port)] = (nursery, handler)
            try:
                task_status.started(port)
                await trio.sleep_forever()
            finally:
                self.listeners.pop((host, port), None)
