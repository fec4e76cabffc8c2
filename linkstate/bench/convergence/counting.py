"""Write counters for the real services: a Transport wrapper that counts every write as 691 or SMTP.

Owns: `counting_transport` (wrap a Transport; the port tells the protocol), `counting_stream`, and the shared
per-protocol `Traffic` they add to (`Counted`). Used by the memory driver and by the tcp driver's child processes.
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

from typing import Any

import trio

from linkstate.sim.network import Traffic


class Counted:
    """Per-protocol write counters shared by the counting streams of one transport."""

    def __init__(self) -> None:
        self.traffic = Traffic()


def counting_stream(inner: Any, proto: str, counted: Counted, latency: float = 0.0) -> Any:

    class CountingStream(trio.abc.HalfCloseableStream):
        def __init__(self) -> None:
            self.inner = inner
            self.socket = getattr(inner, "socket", None)

        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            counted.traffic.count(proto, len(data))
            if latency:  # a one-way delay per write (in-memory streams have none; virtual time under MockClock)
                await trio.sleep(latency)
            await self.inner.send_all(data)

        async def wait_send_all_might_not_block(self) -> None:
            await self.inner.wait_send_all_might_not_block()

        async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
            return await self.inner.receive_some(max_bytes)  # type: ignore[no-any-return]

        async def send_eof(self) -> None:
            if hasattr(self.inner, "send_eof"):
                await self.inner.send_eof()

        async def aclose(self) -> None:
            await self.inner.aclose()

    return CountingStream()


def counting_transport(base: Any, smtp_port: int, latency: float = 0.0) -> tuple[Any, Counted]:
    """Wrap a Transport so that every write is counted as 691 or SMTP (by the port it belongs to)."""
    counted = Counted()

    class Counting:
        async def connect(self, host: str, port: int, *, local_address: str | None = None) -> Any:
            stream = await base.connect(host, port, local_address=local_address)
            return counting_stream(stream, "smtp" if port == smtp_port else "691", counted, latency)

        async def serve(self, host: str, port: int, handler: Any, *, task_status: Any = None) -> None:
            proto = "smtp" if port == smtp_port else "691"

            async def wrapped(stream: Any) -> None:
                await handler(counting_stream(stream, proto, counted, latency))


            await base.serve(host, port, wrapped, task_status=task_status or trio.TASK_STATUS_IGNORED)

    return Counting(), counted


