"""Hostile peers on loopback TCP (issue 11): none of them, with or without the secret, breaks the group.

Each test runs one attack against a real group of three services (127.0.0.1, short timers) while honest peers keep
asking, and checks the bound the attack runs into: the service's own byte accounting and the process's RSS for the
memory attacks, the connection budgets for slowloris, the table limits and events for the forged data. Attackers
connect from 127.0.0.3, honest peers from 127.0.0.2 unless a test says otherwise. The `slow` variants run the same
attacks at the issue's sizes.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
import structlog
import trio

from linkstate.core.session691 import PeerKind
from linkstate.core.topology import Topology
from linkstate.service.client import dump
from linkstate.service.node import READ_SIZE, UNAUTHENTICATED_INPUT, NodeService
from linkstate.service.peer import PeerError, bridgehead_exchange, flood, open_691, smtp_login
from linkstate.service.transport import TcpTransport
from proto import rg691
from proto.encode import encode
from proto.model import VERSION_MAX, Member, OrgInfo, RoutingGroup, Version
from tests.service.test_group_service import digests, group, tcp_group, wait_until

pytestmark = pytest.mark.tcp
ATTACKER = "127.0.0.3"
HONEST = "127.0.0.2"
EHLO_REPLY_MAX = 200  # bytes of the longest EHLO answer (8 bytes in): the amplification of one read


def bounded(time_scale: int = 20, **bounds: Any) -> Topology:
    topo = tcp_group(time_scale=time_scale)
    return replace(topo, settings=replace(topo.settings, **bounds))


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Watch:
    """Samples a node's own accounting (and the process RSS) while an attack runs."""

    service: NodeService
    peak_queued: int = 0
    peak_total: int = 0
    peak_unauthenticated: int = 0
    peak_rss: int = 0

    async def run(self) -> None:
        while True:
            queued = [c.queued for c in self.service.conns.values()]
            self.peak_queued = max(self.peak_queued, *queued, 0)
            self.peak_total = max(self.peak_total, sum(queued))
            for proto in ("691", "smtp"):
                self.peak_unauthenticated = max(self.peak_unauthenticated, self.service.budget.unauthenticated(proto))
            self.peak_rss = max(self.peak_rss, rss())
            await trio.sleep(0.01)


@dataclass
class Honest:
    """Honest DUMPs and bridgehead sessions against one node, in a loop, counted."""

    topo: Topology
    server: str
    address: str = HONEST
    ok: int = 0
    failed: list[str] | None = None

    async def run(self) -> None:
        self.failed = []
        spec = self.topo.server(self.server)
        while True:
            try:
                _, decoded = await dump("127.0.0.1", spec.port_691 or 0, self.topo.secret, timeout=3,
                                        local_address=self.address)  # fmt: skip
                table = (decoded.digest, encode(decoded.orginfo, digest=decoded.digest))
                await bridgehead_exchange(
                    "127.0.0.1", spec.port_smtp or 0, self.topo.secret, peer_guid=spec.guid, table=table,
                    local_address=self.address, timeout=3,
                )  # fmt: skip
                self.ok += 2
            except Exception as exc:  # every failure is counted, whatever it is
                self.failed.append(f"{type(exc).__name__}: {exc}")
            await trio.sleep(0.2)  # two connections a round: well within the per-address connection rate


async def attack_while_honest(
    topo: Topology, attack: Callable[[dict[str, NodeService]], Awaitable[None]], *, target: str = "RED-1"
) -> tuple[Watch, Honest, list[dict[str, Any]], str]:
    """Run `attack` against a converged group while Watch and Honest run; returns them, the logs and the digest the
    group held before (the caller checks what must hold after)."""
    with structlog.testing.capture_logs() as logs:
        async with group(topo, TcpTransport()) as (_, services, _):
            await wait_until(lambda: len(digests(services)) == 1 and services["RED-3"].core.view().attached, 10)
            await trio.sleep(0.2)
            held = services[target].core.lsdb.digest  # type: ignore[union-attr]
            watch, honest = Watch(services[target]), Honest(topo, target)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch.run)
                nursery.start_soon(honest.run)
                await wait_until(lambda: honest.ok >= 2, 10)  # a peer the node knows (it authenticated lately)
                before = honest.ok
                await attack(services)
                await wait_until(lambda: honest.ok >= before + 2, 5)  # honest peers are served right after
                nursery.cancel_scope.cancel()
            await wait_until(lambda: len(digests(services)) == 1 and all(attached(s) for s in services.values()), 10)
            assert all(s.core is not None for s in services.values())
            final = services[target].core.lsdb.digest  # type: ignore[union-attr]
    assert honest.failed == [], honest.failed[:5]
    return watch, honest, logs, held if final == held else final


def attached(service: NodeService) -> bool:
    return service.core is not None and service.core.view().attached


async def member_691(topo: Topology, member: str = "RED-3", *, kind: PeerKind = PeerKind.MEMBER,
                     version: Version | None = None) -> Any:
    """An attacker with the secret, authenticated as `member` and ATTACHed to the master in its name (a master takes
    polls, packets and state reports only from attached members): the real member's attachment is replaced."""
    spec, rg = topo.server(member), topo.routing_group("Redmond")
    master = topo.server(rg.master)
    peer = await open_691("127.0.0.1", master.port_691 or 0, topo.secret, kind=kind, guid=spec.guid,
                          local_address=ATTACKER)  # fmt: skip
    v = version or Version()
    await peer.send(rg691.encode_message(rg691.Attach(spec.guid, rg.guid, master.guid, "0" * 32, v.major, v.minor,
                                                      v.user, "f" * 32)))  # fmt: skip
    with trio.fail_after(5):
        while not any(isinstance(a, rg691.AttachAck) and a.ok for a in await peer.receive(0.5)):
            pass
    return peer


async def acked(peer: Any, seconds: float = 3) -> bool:
    """Whether the master answered ACK within `seconds` (pushes of its table may come first)."""
    with trio.move_on_after(seconds):
        while not any(isinstance(a, rg691.Ack) for a in await peer.receive(seconds)):
            pass
        return True
    return False


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


# --- 1. SMTP pipelining without credentials -----------------------------------------------------------------


async def _pipeline_ehlo(topo: Topology, seconds: float, connections: int, login: bool) -> int:
    """`connections` peers that write pipelined EHLOs and never read, each coming back when the node ends it, for
    `seconds`; with `login`, each first logs in with the secret (X-EXPS). How many connections the node ended."""
    port = topo.server("RED-1").port_smtp or 0

    async def dial() -> trio.abc.Stream:
        if login:
            return await smtp_login("127.0.0.1", port, topo.secret, local_address=ATTACKER)
        return await trio.open_tcp_stream("127.0.0.1", port, local_address=ATTACKER)

    _, ended = await flood(dial, b"EHLO a\r\n" * 4096, connections=connections, seconds=seconds)
    return ended


async def _smtp_pipelining(connections: int, seconds: float) -> None:
    topo = bounded(time_scale=10)  # authenticate within 3 s
    before = rss()

    async def attack(services: dict[str, NodeService]) -> None:
        assert await _pipeline_ehlo(topo, seconds, connections, login=False) >= connections

    watch, _, logs, _ = await attack_while_honest(topo, attack)
    # at most UNAUTHENTICATED_INPUT bytes of EHLO are ever processed per connection, so at most this is answered
    assert watch.peak_queued <= UNAUTHENTICATED_INPUT // 8 * EHLO_REPLY_MAX, watch
    assert watch.peak_rss - before < 64 * 1024 * 1024, (watch.peak_rss - before) / 2**20
    dropped = [e for e in events(logs, "connection_dropped") if "before authenticating" in e["reason"]]
    assert len(dropped) >= connections


async def test_smtp_pipelining_without_the_secret_is_cut_off_at_the_pre_auth_bound() -> None:
    await _smtp_pipelining(connections=8, seconds=2.0)


@pytest.mark.slow
async def test_smtp_pipelining_at_the_issues_size() -> None:
    await _smtp_pipelining(connections=20, seconds=30)


async def test_smtp_pipelining_with_the_secret_is_held_back_and_bounded_in_bytes() -> None:
    """An authenticated peer that never reads: the node stops reading it (back-pressure) at half of
    max_output_bytes, and drops it when the output stays unread for attach_timeout."""
    topo = bounded(time_scale=10, max_table_bytes=128 * 1024, max_output_bytes=256 * 1024)
    connections = 4
    before = rss()

    async def attack(services: dict[str, NodeService]) -> None:
        assert await _pipeline_ehlo(topo, 5.0, connections, login=True) >= connections

    watch, _, logs, _ = await attack_while_honest(topo, attack)
    per_read = READ_SIZE // 8 * EHLO_REPLY_MAX  # what one read of EHLOs can make it answer
    assert watch.peak_queued <= topo.settings.max_output_bytes // 2 + per_read, watch
    assert watch.peak_rss - before < 64 * 1024 * 1024, (watch.peak_rss - before) / 2**20
    assert len([e for e in events(logs, "peer_too_slow") if e.get("reason") == "does not read"]) >= connections


# --- 4. slowloris: slots held without credentials -------------------------------------------------------------


async def _trickle(port: int, every: float, opened: list[float], closed: list[float]) -> None:
    """Open, then send one byte every `every` seconds until the node closes the connection."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=ATTACKER)
    except OSError:
        return
    start = trio.current_time()
    opened.append(start)
    async with stream:
        try:
            while True:
                await stream.send_all(b"{")
                with trio.move_on_after(every):
                    while await stream.receive_some(4096):  # the banner or greeting, then EOF when closed
                        pass
                    closed.append(trio.current_time() - start)
                    return
        except (trio.BrokenResourceError, OSError):
            closed.append(trio.current_time() - start)


async def _slowloris(connections: int, bound: float, time_scale: int, every: float) -> None:
    topo = bounded(time_scale=time_scale)
    spec = topo.server("RED-1")
    deadline = topo.settings.scaled("attach_timeout")
    opened: list[float] = []
    closed: list[float] = []

    async def attack(services: dict[str, NodeService]) -> None:
        # every connection trickles until the node closes it: the attack ends when the last one is closed (not
        # after a fixed time, which a loaded machine spends opening them), and `bound` only catches a node that
        # never closes them
        with trio.fail_after(bound):
            async with trio.open_nursery() as nursery:
                for port in (spec.port_691 or 0, spec.port_smtp or 0):
                    for _ in range(connections):
                        nursery.start_soon(_trickle, port, every, opened, closed)
                        await trio.sleep(0.002)

    watch, _, logs, _ = await attack_while_honest(topo, attack)
    assert watch.peak_unauthenticated <= topo.settings.max_per_address + 2  # + honest handshakes in flight
    assert events(logs, "connection_evicted")
    assert len(opened) == len(closed) == 2 * connections  # the node closed every one of them, evicted or timed out,
    assert max(closed) <= deadline + 1.0, (max(closed), deadline)  # and traffic never extended the deadline


async def test_slowloris_cannot_hold_the_slots_honest_peers_need() -> None:
    await _slowloris(connections=60, bound=30.0, time_scale=15, every=0.25)  # authenticate within 2 s


@pytest.mark.slow
async def test_slowloris_at_the_issues_size() -> None:
    await _slowloris(connections=300, bound=120.0, time_scale=1, every=20.0)  # production timers


# --- 5. DUMP and poll floods with the secret ------------------------------------------------------------------


async def _flood(topo: Topology, message: rg691.Message, count: int, kind: PeerKind, seconds: float) -> int:
    """Authenticated peers, one after the other for `seconds`, each pipelining up to `count` messages and never
    reading; how many the node ended."""
    spec = topo.server("RED-1")
    frame = rg691.encode_message(message)
    ended = 0
    with trio.move_on_after(seconds):
        while True:
            try:
                if kind is PeerKind.MEMBER:  # a member's messages count only once it attached
                    peer = await member_691(topo)
                else:
                    peer = await open_691("127.0.0.1", spec.port_691 or 0, topo.secret, kind=kind,
                                          local_address=ATTACKER)  # fmt: skip
            except PeerError:  # refused: over the per-address connection rate
                await trio.sleep(0.05)
                continue
            try:
                for _ in range(0, count, 1000):
                    await peer.send(frame * 1000)
                await trio.sleep_forever()
            except (trio.BrokenResourceError, OSError):
                ended += 1
            finally:
                await peer.aclose()
    return ended


async def _dump_flood(seconds: float) -> None:
    topo = bounded(time_scale=20)
    before = rss()

    async def attack(services: dict[str, NodeService]) -> None:
        assert await _flood(topo, rg691.Dump(), 100_000, PeerKind.CLIENT, seconds=seconds) >= 2

    watch, _, logs, _ = await attack_while_honest(topo, attack)
    assert watch.peak_queued <= topo.settings.max_output_bytes
    assert watch.peak_rss - before < 64 * 1024 * 1024
    exceeded = events(logs, "dump_rate_exceeded")
    assert exceeded and all(e["peer_host"] == ATTACKER for e in exceeded)


async def test_a_dump_flood_is_rate_limited_and_bounded_in_bytes() -> None:
    await _dump_flood(seconds=2)


@pytest.mark.slow
async def test_a_dump_flood_for_a_minute() -> None:
    await _dump_flood(seconds=60)


async def test_a_poll_flood_that_is_never_read_is_dropped_at_the_byte_bound() -> None:
    topo = bounded(time_scale=20, max_table_bytes=128 * 1024, max_output_bytes=256 * 1024)
    before = rss()

    async def attack(services: dict[str, NodeService]) -> None:
        assert await _flood(topo, rg691.SimplePoll("0" * 32), 100_000, PeerKind.MEMBER, seconds=2) >= 2  # each answered

    watch, _, logs, _ = await attack_while_honest(topo, attack)
    assert watch.peak_queued <= topo.settings.max_output_bytes
    assert events(logs, "peer_too_slow")
    assert watch.peak_rss - before < 64 * 1024 * 1024


# --- 2. versions at 2**64-1 with the secret --------------------------------------------------------------------


def _unknown(i: int, version: Version | None = None) -> RoutingGroup:
    version = version or Version(1)
    guid = f"{0xF0000000 + i:032x}"
    return RoutingGroup(guid=guid, master=guid, version=version, smtp_address=f"*.fake{i}", members=(Member(guid),))


async def test_forged_versions_at_the_top_are_refused_and_the_master_keeps_publishing() -> None:
    topo = bounded(time_scale=20)
    redmond = topo.routing_group("Redmond").guid

    async def attack(services: dict[str, NodeService]) -> None:
        master = services["RED-1"].core
        assert master is not None
        own = master.lsdb.section(redmond)
        assert own is not None
        forged = OrgInfo((replace(own, version=Version(VERSION_MAX), smtp_address="*.forged"),
                          _unknown(1, Version(VERSION_MAX))))  # fmt: skip
        spec = topo.server("RED-1")
        peer = await member_691(topo)
        try:
            await peer.send(encode(forged))
            assert await acked(peer)
            red3 = topo.server("RED-3")  # and an ATTACH again in RED-3's name, reporting the top version
            digest = master.lsdb.digest
            await peer.send(rg691.encode_message(rg691.Attach(red3.guid, redmond, spec.guid, digest, VERSION_MAX,
                                                              0, 0, "f" * 32)))  # fmt: skip
            await peer.receive(2)
        finally:
            await peer.aclose()
        await wait_until(lambda: master.lsdb.section(redmond).version.major < 1000, 5)  # type: ignore[union-attr]

    _, _, logs, _ = await attack_while_honest(topo, attack)
    refused = events(logs, "sections_refused")
    assert refused and all(e["reason"] == "version jump above max_version_jump" for e in refused)
    assert events(logs, "version_refused")
    assert not events(logs, "encode_failed") and not events(logs, "connection_error")
    assert events(logs, "member_attached")  # RED-3 came back and the master committed again


async def test_with_the_secret_but_no_attach_nothing_is_taken() -> None:
    """An authenticated peer that never ATTACHed (any GUID, the secret known) sends a packet, a poll and a state
    report: each is refused with its connection, and the table is what it was."""
    topo = bounded(time_scale=20)
    redmond = topo.routing_group("Redmond").guid

    async def attack(services: dict[str, NodeService]) -> None:
        master = services["RED-1"].core
        assert master is not None
        own = master.lsdb.section(redmond)
        assert own is not None
        before = master.lsdb.digest
        spec = topo.server("RED-1")
        for frame in (encode(OrgInfo((replace(own, version=Version(own.version.major + 5)), _unknown(1)))),
                      rg691.encode_message(rg691.SimplePoll("0" * 32)),
                      rg691.frame("STATE", b"SERVICE " + topo.server("RED-3").guid.encode() + b" {2}ok")):
            peer = await open_691("127.0.0.1", spec.port_691 or 0, topo.secret, local_address=ATTACKER)
            try:
                await peer.send(frame)
                with pytest.raises(PeerError):  # closed: not an attached member
                    for _ in range(20):
                        await peer.receive(0.2)
            finally:
                await peer.aclose()
        assert master.lsdb.digest == before

    _, _, logs, _ = await attack_while_honest(topo, attack)
    refused = [e for e in events(logs, "unexpected_message") if e["node"] == "RED-1"]
    assert [e["message"] for e in refused] == ["OrgInfoFrame before ATTACH", "SimplePoll before ATTACH",
                                                "StateReport before ATTACH"]  # fmt: skip


# --- 3. table bloat with the secret ----------------------------------------------------------------------------


async def test_table_bloat_is_bounded_the_same_on_every_node_and_oversized_frames_are_refused() -> None:
    topo = bounded(time_scale=20, max_unknown_sections=20, max_table_bytes=256 * 1024, max_output_bytes=512 * 1024)

    async def attack(services: dict[str, NodeService]) -> None:
        peer = await member_691(topo)
        try:
            own = services["RED-1"].core.lsdb.snapshot().routing_groups  # type: ignore[union-attr]
            await peer.send(encode(OrgInfo(own + tuple(_unknown(i) for i in range(1000)))))  # ~100 KiB
            assert await acked(peer)
            big = encode(OrgInfo(own + tuple(_unknown(i, Version(2)) for i in range(3000))))  # over 256 KiB
            assert len(big) > 256 * 1024
            with pytest.raises((PeerError, trio.BrokenResourceError)):  # refused at its header, closed
                await peer.send(big)
                for _ in range(20):
                    await peer.receive(0.2)
        finally:
            await peer.aclose()
        await wait_until(lambda: len(digests(services)) == 1, 5)  # the members hold the same bounded table
        assert all(len(s.core.lsdb) == 1 + 20 for s in services.values())  # type: ignore[union-attr]

    _, _, logs, _ = await attack_while_honest(topo, attack)  # honest DUMPs of the bloated node went on working
    refused = [e for e in events(logs, "sections_refused") if e["reason"].startswith("unknown routing group")]
    assert sum(e["count"] for e in refused if e["node"] == "RED-1") == 1000 - 20
    assert any("exceeds" in e["reason"] for e in events(logs, "session_failed"))


# --- 6. open and close always reach the core -------------------------------------------------------------------


async def test_a_connection_flood_leaves_no_connection_the_core_was_not_told_about() -> None:
    topo = bounded(time_scale=5, max_connections=64, max_unauthenticated=48)  # a flood 4x the budget: evictions
    admitted = [0]  # 691 connections the node took (its banner came back)

    async def attack(services: dict[str, NodeService]) -> None:
        spec = topo.server("RED-1")

        async def one(i: int) -> None:
            port = spec.port_691 if i % 2 else spec.port_smtp
            try:  # from 40 addresses: most get past the per-address rates, the strangers' rate bounds them all
                stream = await trio.open_tcp_stream("127.0.0.1", port or 0, local_address=f"127.0.0.{10 + i % 40}")
            except OSError:
                return
            async with stream:
                try:
                    with trio.move_on_after(1):
                        if await stream.receive_some(4096) and port == spec.port_691:
                            admitted[0] += 1
                    for _ in range(8):
                        await stream.send_all(b"EHLO a\r\n" if port == spec.port_smtp else b"{")
                except (trio.BrokenResourceError, OSError):
                    pass

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)
        service = services["RED-1"]
        core = service.core
        assert core is not None

        def settled() -> bool:  # every event handed to the core, and no core state for a connection that is gone
            idle = service._inbox.statistics().current_buffer_used == 0
            live = set(service.conns)
            return idle and set(core.out.conns) <= live and set(core.bridgehead.smtp) <= live

        await wait_until(settled, 10)

    _, _, logs, _ = await attack_while_honest(topo, attack)
    failed = [e for e in events(logs, "auth_failed") if e["node"] == "RED-1"]  # 961: closed (or a bad frame)
    assert admitted[0] > 0 and len(failed) >= admitted[0], (admitted, len(failed))  # every admitted one was told


# --- 7. strings with CR/LF/NUL ---------------------------------------------------------------------------------


async def test_a_state_report_with_a_crlf_string_is_refused_and_commits_go_on() -> None:
    topo = bounded(time_scale=20)

    async def attack(services: dict[str, NodeService]) -> None:
        for value in (b"\r\n", b"ok"):  # the hostile one, then a good one that makes the master commit
            peer = await member_691(topo)
            try:
                payload = b"SERVICE " + topo.server("RED-3").guid.encode() + b" {%x}" % len(value) + value
                await peer.send(rg691.frame("STATE", payload))
                with trio.move_on_after(1):
                    while True:
                        await peer.receive(0.2)
            except PeerError:
                pass
            finally:
                await peer.aclose()

    _, _, logs, _ = await attack_while_honest(topo, attack)
    assert any("CR, LF or NUL" in e["reason"] for e in events(logs, "session_failed"))
    assert not events(logs, "encode_failed")
    assert any(e["kind"] == "user" for e in events(logs, "orginfo_applied") if e["node"] == "RED-1")


# --- 8. the banner bound, whatever the split ---------------------------------------------------------------------


@pytest.mark.parametrize("piece", [math.inf, 100])
async def test_an_overlong_banner_is_refused_in_one_read_and_in_many(piece: float) -> None:
    topo = bounded(time_scale=20)
    master = topo.server("RED-1")
    line = rg691.BANNER_PREFIX + b"x" * 2048 + b"\r\n"

    async def fake_master(stream: trio.SocketStream) -> None:
        async with stream:
            step = len(line) if piece == math.inf else int(piece)
            for i in range(0, len(line), step):
                await stream.send_all(line[i : i + step])
                await trio.sleep(0.01)
            with trio.move_on_after(1):
                await stream.receive_some(4096)

    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(master.port_691 or 0, host="127.0.0.1")
            nursery.start_soon(trio.serve_listeners, fake_master, listeners)
            async with group(topo, TcpTransport(), ("RED-2",)):
                await wait_until(lambda: any("banner" in e.get("reason", "") for e in events(logs, "auth_failed")), 5)
            nursery.cancel_scope.cancel()
