"""The master watches its topology file: a change of its own group is a major update pushed to every member;
an invalid file is rejected (event 929) and the old topology stays. Real services, in memory, MockClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import structlog
import trio
import trio.testing

from linkstate.service.node import NodeService
from linkstate.service.topofile import load_topology
from linkstate.service.transport import MemoryTransport
from tests.core.group_fixtures import ONE_GROUP

SERVERS = ("RED-1", "RED-2", "RED-3")


@asynccontextmanager
async def watched_group(path: Path) -> AsyncIterator[tuple[trio.Nursery, dict[str, NodeService]]]:
    """The three servers of the group, each watching `path`, over in-memory streams."""
    transport = MemoryTransport()
    async with trio.open_nursery() as nursery:
        services: dict[str, NodeService] = {}
        for name in SERVERS:
            svc = NodeService(load_topology(path), name, transport=transport, topology_path=path)
            services[name] = await nursery.start(svc.run)
        yield nursery, services


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_topology_change_is_pushed_and_a_bad_file_is_rejected(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "one-group.toml"
    path.write_text(ONE_GROUP.format(cost=1))
    with structlog.testing.capture_logs() as logs:
        async with watched_group(path) as (nursery, services):

            def digests() -> set[str]:
                return {s.core.lsdb.digest for s in services.values()}

            with trio.fail_after(60):
                while not (len(digests()) == 1 and all(s.core.view().attached for s in services.values())):
                    await trio.sleep(0.1)
            member = services["RED-3"].core
            connector = services["RED-3"].topology.connector("Internet").guid

            def cost() -> int:
                section = member.lsdb.section(member.rg.guid)
                assert section is not None
                conn = next(c for c in section.connectors if c.guid == connector)
                return conn.address_spaces[0].cost

            assert cost() == 1
            path.write_text(ONE_GROUP.format(cost=9))  # the watcher notices within a second
            with trio.fail_after(10):  # far less than a poll interval (300 s)
                while cost() != 9 or len(digests()) != 1:
                    await trio.sleep(0.1)
            major = member.lsdb.section(member.rg.guid).version.major  # type: ignore[union-attr]

            path.write_text("[organization]\nname = 'broken'\n[[servers]]\nname = 1\n")
            services["RED-1"].reload()  # what SIGHUP does
            await trio.sleep(5)
            assert cost() == 9 and len(digests()) == 1
            assert member.lsdb.section(member.rg.guid).version.major == major  # type: ignore[union-attr]
            nursery.cancel_scope.cancel()
    assert any(e["event"] == "topology_rejected" and e.get("event_id") == 929 for e in logs)


async def test_a_master_designation_to_an_unknown_server_makes_the_master_relinquish(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "one-group.toml"
    path.write_text(ONE_GROUP.format(cost=1))
    with structlog.testing.capture_logs() as logs:
        async with watched_group(path) as (nursery, services):
            with trio.fail_after(60):
                while not all(s.core.view().attached for s in services.values()):
                    await trio.sleep(0.1)
            held = services["RED-2"].core.lsdb.digest
            path.write_text(ONE_GROUP.format(cost=1).replace('master = "RED-1"', 'master = "RED-9"'))
            await trio.sleep(30)
            master = services["RED-1"].core
            assert not master.view().is_master
            assert services["RED-2"].core.lsdb.digest == held and not services["RED-2"].core.view().attached
            nursery.cancel_scope.cancel()
    relinquished = [e for e in logs if e["event"] == "master_relinquished"]
    assert relinquished and relinquished[0]["event_id"] == 958
