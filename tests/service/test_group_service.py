"""The real services of one routing group: in-memory streams under MockClock, and hostile peers on loopback TCP.

Every service a test needs is started here, on 127.0.0.0/8 only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import structlog
import trio
import trio.testing

from linkstate.core.topology import Topology
from linkstate.service.node import NodeService
from linkstate.service.transport import MemoryTransport, TcpTransport, Transport
from proto import rg691
from tests.core.group_fixtures import one_group
from tests.service.node_cli_helpers import free_ports

SERVERS = ("RED-1", "RED-2", "RED-3")


@asynccontextmanager
async def group(
    topo: Topology, transport: Transport, servers: tuple[str, ...] = SERVERS
) -> AsyncIterator[tuple[trio.Nursery, dict[str, NodeService], dict[str, trio.CancelScope]]]:
    services: dict[str, NodeService] = {}
    scopes: dict[str, trio.CancelScope] = {}
    async with trio.open_nursery() as nursery:
        for name in servers:
            await start(nursery, topo, transport, name, services, scopes)
        yield nursery, services, scopes
        nursery.cancel_scope.cancel()


async def start(
    nursery: trio.Nursery,
    topo: Topology,
    transport: Transport,
    name: str,
    services: dict[str, NodeService],
    scopes: dict[str, trio.CancelScope],
) -> None:
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[NodeService] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await NodeService(topo, name, transport=transport).run(task_status=task_status)

    services[name] = await nursery.start(run)
    scopes[name] = scope


def digests(services: dict[str, NodeService]) -> set[str]:
    return {s.core.lsdb.digest for s in services.values() if s.core is not None}


def all_attached(services: dict[str, NodeService]) -> bool:
    return all(s.core is not None and s.core.view().attached for s in services.values())


async def wait_until(predicate: object, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.01)


# --- in memory, virtual time -----------------------------------------------------------------------------


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_three_services_converge_in_memory(mock_clock: trio.testing.MockClock) -> None:
    async with group(one_group(), MemoryTransport()) as (_, services, _):
        await wait_until(lambda: len(digests(services)) == 1 and all_attached(services), 30)
        master = services["RED-1"].core
        assert master is not None and master.view().is_master and master.view().quorum


async def test_master_killed_then_restarted_in_memory(mock_clock: trio.testing.MockClock) -> None:
    topo = one_group()
    transport = MemoryTransport()
    async with group(topo, transport) as (nursery, services, scopes):
        await wait_until(lambda: len(digests(services)) == 1 and services["RED-2"].core.view().attached, 30)
        own = services["RED-2"].core.rg.guid
        old = services["RED-2"].core.lsdb.section(own).version
        before = services["RED-2"].core.lsdb.digest
        scopes["RED-1"].cancel()
        await wait_until(lambda: not services["RED-2"].core.view().attached, 30)
        await trio.sleep(120)
        assert services["RED-2"].core.lsdb.digest == before  # members keep their last table
        assert not services["RED-3"].core.view().attached
        await start(nursery, topo, transport, "RED-1", services, scopes)
        await wait_until(lambda: len(digests(services)) == 1 and all_attached(services), 600)
        assert services["RED-3"].core.lsdb.section(own).version > old


async def test_a_stopped_master_detaches_its_members_before_it_goes(mock_clock: trio.testing.MockClock) -> None:
    """A planned stop (`NodeService.stop`, what SIGTERM does in `linkstate serve`): the core's DETACH reaches every
    member before the connections end, so a member knows its master is shutting down rather than lost."""
    async with group(one_group(), MemoryTransport()) as (_, services, scopes):
        await wait_until(lambda: len(digests(services)) == 1 and all_attached(services), 30)
        with structlog.testing.capture_logs() as logs:
            services["RED-1"].stop()
            await wait_until(lambda: not services["RED-2"].core.view().attached, 30)
            await wait_until(lambda: not services["RED-3"].core.view().attached, 30)
        detached = {(e["node"], e["reason"]) for e in logs if e["event"] == "master_detached"}
        assert detached == {("RED-2", "server shutting down"), ("RED-3", "server shutting down")}, logs
        assert scopes["RED-1"].cancelled_caught is False  # it ended by itself, not by being cancelled


# --- loopback TCP, real time, hostile peers ------------------------------------------------------------------


def tcp_group(time_scale: int = 100) -> Topology:
    """The one-group topology on 127.0.0.1 high ports, with short transport timeouts (time_scale 100).

    Every port is one the kernel just handed out as free (`port + i` could be any process's ephemeral port)."""
    from dataclasses import replace

    topo = one_group(time_scale=time_scale)
    ports = free_ports(2 * len(topo.servers))
    servers = tuple(
        replace(s, address="127.0.0.1", port_691=ports[2 * i], port_smtp=ports[2 * i + 1])
        for i, s in enumerate(topo.servers)
    )
    return replace(topo, servers=servers)


async def hostile(host: str, port: int, payload: bytes, *, linger: float = 0.0) -> bytes:
    """Connect, send `payload`, keep the socket open `linger` seconds, return what the node sent."""
    stream = await trio.open_tcp_stream(host, port)
    got = b""
    async with stream:
        if payload:
            await stream.send_all(payload)
        with trio.move_on_after(linger + 2):
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                got += data
    return got


@pytest.mark.tcp
@pytest.mark.parametrize(
    ("name", "payload", "linger"),
    [
        ("random bytes", os.urandom(4096), 0),
        ("half a frame then silence", b"{00000040} AUTH HELLO MEMB", 1.0),
        ("a frame claiming 4 GiB", b"{ffffffff} ORGINFO ", 0),
        ("a verb before authentication", rg691.frame("DUMP"), 0),
    ],
)
async def test_hostile_peer_is_closed_and_the_group_keeps_its_state(name: str, payload: bytes, linger: float) -> None:
    topo = tcp_group()
    with structlog.testing.capture_logs() as logs:
        async with group(topo, TcpTransport()) as (_, services, _):
            await wait_until(lambda: len(digests(services)) == 1 and services["RED-3"].core.view().attached, 10)
            held = digests(services)
            master = topo.server("RED-1")
            got = await hostile("127.0.0.1", master.port_691 or 0, payload, linger=linger)
            assert got.startswith(b"691 Available ")  # the banner, then the node closed the connection
            await trio.sleep(0.2)
            assert digests(services) == held
            assert all(s.core.view().attached for s in services.values())
    failures = [e for e in logs if e["event"] in ("auth_failed", "connection_timeout")]
    assert failures, f"no event logged for {name}"
    assert all(e["event_id"] in (961, 30305) for e in failures)


@pytest.mark.tcp
async def test_500_connections_at_once_are_bounded() -> None:
    topo = tcp_group(time_scale=5)  # unauthenticated connections live 6 s: long enough to pile up
    with structlog.testing.capture_logs() as logs:
        async with group(topo, TcpTransport()) as (_, services, _):
            await wait_until(lambda: len(digests(services)) == 1 and services["RED-3"].core.view().attached, 10)
            held = digests(services)
            port = topo.server("RED-1").port_691 or 0
            streams: list[trio.SocketStream] = []
            with trio.move_on_after(5):
                for _ in range(500):
                    try:
                        streams.append(await trio.open_tcp_stream("127.0.0.1", port))
                    except OSError:
                        break
            await trio.sleep(0.5)
            assert len(streams) == 500
            master = services["RED-1"]
            per_address = topo.settings.max_per_address  # all 500 come from 127.0.0.1
            assert master.budget.unauthenticated("691") <= per_address
            assert len(master.conns) <= per_address + 2 * len(SERVERS)
            for s in streams:
                await s.aclose()
            await trio.sleep(0.5)
            assert digests(services) == held
            assert all(s.core.view().attached for s in services.values())
            assert len(services["RED-1"].conns) <= 2 * len(SERVERS)
    assert any(e["event"] == "connection_evicted" for e in logs)


@pytest.mark.tcp
async def test_member_with_wrong_secret_is_refused_on_tcp() -> None:
    topo = tcp_group()
    from dataclasses import replace

    rogue_topo = replace(topo, secret=b"not-the-secret")
    with structlog.testing.capture_logs() as logs:
        async with group(topo, TcpTransport(), ("RED-1", "RED-2")) as (nursery, services, scopes):
            master = services["RED-1"].core
            await wait_until(lambda: master.view().published and len(digests(services)) == 1, 10)  # type: ignore[union-attr]
            await trio.sleep(0.2)
            held = master.lsdb.digest
            await start(nursery, rogue_topo, TcpTransport(), "RED-3", services, scopes)
            await trio.sleep(1.0)
            assert services["RED-1"].core.lsdb.digest == held
            assert not services["RED-3"].core.view().attached and services["RED-2"].core.view().attached
    ids = {e.get("event_id") for e in logs if e["event"] == "auth_failed"}
    assert 961 in ids
