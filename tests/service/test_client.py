"""The DUMP client (linkstate.service.client) against real NodeServices and hostile fake servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from linkstate.service.client import ClientError, dump, dump_frame
from linkstate.service.node import NodeService
from linkstate.service.topofile import load_topology
from tests.service.node_cli_helpers import SECRET, free_ports, write_topology

pytestmark = pytest.mark.tcp


async def _attached(svc: NodeService, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while svc.core is None or not svc.core.view().attached:
            await trio.sleep(0.02)


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[tuple[NodeService, NodeService]]:
    ports = free_ports(2)
    path = write_topology(tmp_path / "topology.toml", ["A", "B"], ports)
    topo = load_topology(path)
    async with trio.open_nursery() as nursery:
        master = await nursery.start(NodeService(topo, "A").run)
        member = await nursery.start(NodeService(topo, "B").run)
        await _attached(member)
        yield master, member
        nursery.cancel_scope.cancel()


async def test_dump_returns_view_and_table(group: tuple[NodeService, NodeService]) -> None:
    master, member = group
    assert member.core is not None and master.core is not None
    view, decoded = await dump("127.0.0.1", member.port, SECRET.encode())
    assert view.response and view.role == "member" and view.attached
    assert view.node == member.core.me.guid and view.master == master.core.me.guid
    assert decoded.digest == member.core.lsdb.digest == decoded.computed_digest
    result = await dump_frame("127.0.0.1", master.port, SECRET.encode())
    assert result.view.role == "master"
    assert result.frame.raw == master.core.lsdb.frame()
    assert result.banner.startswith("691 Available A.example.com")


async def test_wrong_secret_is_an_auth_error(group: tuple[NodeService, NodeService]) -> None:
    _, member = group
    with pytest.raises(ClientError) as info:
        await dump("127.0.0.1", member.port, b"not the secret")
    assert info.value.kind == "auth" and info.value.event_id == 962
    assert "\n" not in info.value.reason


async def test_refused() -> None:
    (port,) = free_ports(1)
    with pytest.raises(ClientError) as info:
        await dump("127.0.0.1", port, b"x", timeout=5)
    assert info.value.kind == "refused"
    assert "refused" in info.value.reason.lower()


async def _fake_server(payload: bytes | None, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        if payload is not None:
            await stream.send_all(payload)
            await stream.aclose()
            return
        await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handler, listeners)


async def test_timeout_when_the_server_says_nothing() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_fake_server, None)
        with pytest.raises(ClientError) as info:
            await dump("127.0.0.1", port, b"x", timeout=0.5)
        assert info.value.kind == "timeout"
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "payload",
    [b"220 smtp.example.com ESMTP ready\r\n", b"", b"691 Available x linkstate Routing Engine 0\r\n{zzzzzzzz} AUTH"],
)
async def test_protocol_errors(payload: bytes) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_fake_server, payload)
        with pytest.raises(ClientError) as info:
            await dump("127.0.0.1", port, b"x", timeout=5)
        assert info.value.kind == "protocol", info.value.reason
        nursery.cancel_scope.cancel()
