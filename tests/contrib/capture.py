"""Test support: capture real TCP sessions without capture privileges, and write them as a pcap file.

`Recorder.proxy(listen, target)` is a loopback TCP relay: every byte each side sends is forwarded unchanged and
recorded with its time and direction, as the client saw the connection (its own address and port, and the
address and port it connected to). `write_pcap(path, flows)` turns the recorded flows into an Ethernet/IPv4/TCP
capture (handshake, data segments of at most `mss` bytes with consistent sequence numbers, FIN exchange), the
same packets `tcpdump -i lo` would show for those connections, so Wireshark reassembles them as usual.

May import: the standard library and trio (tests).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from socket import inet_aton

import trio

MSS = 1448
SYN, FIN, ACK, PSH = 0x02, 0x01, 0x10, 0x08


@dataclass
class Flow:
    """One TCP connection as its client saw it: ((ip, port) of the client, of the server), timed chunks."""

    client: tuple[str, int]
    server: tuple[str, int]
    opened: float
    chunks: list[tuple[float, bool, bytes]] = field(default_factory=list)  # (time, from client, data)
    closed: float | None = None


class Recorder:
    def __init__(self) -> None:
        self.flows: list[Flow] = []

    async def proxy(
        self, listen: tuple[str, int], target: tuple[str, int], *, task_status: trio.TaskStatus[None]
    ) -> None:
        listeners = await trio.open_tcp_listeners(listen[1], host=listen[0])
        task_status.started()
        await trio.serve_listeners(partial(self._relay, target), listeners)

    async def _relay(self, target: tuple[str, int], client: trio.SocketStream) -> None:
        peer, local = client.socket.getpeername(), client.socket.getsockname()
        flow = Flow((peer[0], peer[1]), (local[0], local[1]), time.time())
        self.flows.append(flow)
        try:
            server = await trio.open_tcp_stream(*target)
        except OSError:
            await client.aclose()
            flow.closed = time.time()
            return
        async with client, server, trio.open_nursery() as nursery:

            async def pump(src: trio.SocketStream, dst: trio.SocketStream, from_client: bool) -> None:
                try:
                    while data := await src.receive_some(65536):
                        flow.chunks.append((time.time(), from_client, bytes(data)))
                        await dst.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                finally:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(pump, client, server, True)
            nursery.start_soon(pump, server, client, False)
        flow.closed = time.time()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _packet(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = inet_aton(src[0]) + inet_aton(dst[0]) + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp + payload)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0,
                     inet_aton(src[0]), inet_aton(dst[0]))  # fmt: skip
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + tcp + payload  # Ethernet with zero MACs, as on `lo`


def _flow_packets(flow: Flow, mss: int) -> list[tuple[float, bytes]]:
    c, s = flow.client, flow.server
    nxt = {True: 1000, False: 500000}  # next sequence number per side (True: the client)
    out: list[tuple[float, bytes]] = []

    def send(t: float, from_client: bool, flags: int, payload: bytes = b"") -> None:
        src, dst = (c, s) if from_client else (s, c)
        ack = nxt[not from_client] if flags & ACK else 0
        out.append((t, _packet(src, dst, nxt[from_client], ack, flags, payload)))
        nxt[from_client] += len(payload) + (1 if flags & (SYN | FIN) else 0)

    send(flow.opened, True, SYN)
    send(flow.opened, False, SYN | ACK)
    send(flow.opened, True, ACK)
    for t, from_client, data in flow.chunks:
        for i in range(0, len(data), mss):
            send(t, from_client, PSH | ACK, data[i : i + mss])
    end = flow.closed or (flow.chunks[-1][0] if flow.chunks else flow.opened)
    send(end, True, FIN | ACK)
    send(end, False, FIN | ACK)
    send(end, True, ACK)
    return out


def write_pcap(path: Path, flows: list[Flow], mss: int = MSS) -> int:
    """Write every flow's packets in time order (libpcap format, LINKTYPE_ETHERNET); returns the packet count."""
    packets = sorted((p for f in flows for p in _flow_packets(f, mss)), key=lambda p: p[0])
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for t, data in packets:
            sec = int(t)
            fh.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(data), len(data)))
            fh.write(data)
    return len(packets)
