"""The network made real (root only): what is reachable from where, links cut and restored, a group isolated,
nothing added to the initial namespace, nothing left behind, and entering namespaces from a process, a thread
and a trio task."""

from __future__ import annotations

import errno
import socket
import subprocess
from collections.abc import Iterator

import pytest
import trio

from linkstate.netns import fabric
from linkstate.netns.enter import NetnsError, call_in, child_setup, socket_in
from linkstate.netns.fabric import Fabric
from linkstate.netns.plan import NetPlan, plan_network
from tests.netns.test_plan import connector, org

PORT = 2525


def two_groups(prefix: str) -> NetPlan:
    """A: A1 (master, bridgehead) and A2; B: B1; connectors both ways."""
    topo = org([("A1", "A", None), ("A2", "A", None), ("B1", "B", None)],
               connector("A-B", "A", "B") + connector("B-A", "B", "A"))  # fmt: skip
    return plan_network(topo, prefix)


@pytest.fixture
def net(netns_prefix: str) -> Iterator[tuple[NetPlan, Fabric]]:
    plan = two_groups(netns_prefix)
    fab = Fabric(plan)
    fab.build()
    try:
        yield plan, fab
    finally:
        fab.teardown()


def listen(plan: NetPlan, server: str) -> socket.socket:
    srv = socket_in(plan.host(server).netns)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((plan.host(server).address, PORT))
    srv.listen()
    return srv


def reach(plan: NetPlan, src: str, dst: str) -> int:
    """0 when a TCP connection from `src`'s namespace to `dst`'s address is accepted, else the errno."""
    with socket_in(plan.host(src).netns) as c:
        c.settimeout(2)
        return c.connect_ex((plan.host(dst).address, PORT))


def root_links() -> list[str]:
    import pyroute2

    with pyroute2.IPRoute() as ipr:
        return sorted(str(link.get("ifname")) for link in ipr.get_links())


def test_build_joins_groups_by_bridges_and_bridgeheads_by_links(netns_prefix: str) -> None:
    before = root_links()
    plan = two_groups(netns_prefix)
    fab = Fabric(plan)
    fab.build()
    try:
        assert fabric.leftovers(netns_prefix) == sorted(plan.namespaces())
        with listen(plan, "A1"), listen(plan, "B1"):
            assert reach(plan, "A2", "A1") == 0  # the group's bridge (691 traffic)
            assert reach(plan, "A1", "B1") == 0  # the bridgeheads' link (SMTP traffic)
            assert reach(plan, "B1", "A1") == 0
            assert reach(plan, "A2", "B1") == errno.ENETUNREACH  # members route nowhere: no default route
        assert root_links() == before  # nothing was added to the initial namespace
        assert fab.link_states() == {"A1~B1": True}
    finally:
        removed = fab.teardown()
    assert sorted(removed) == sorted(plan.namespaces())
    assert fabric.leftovers(netns_prefix) == []


def test_a_cut_link_is_unreachable_until_restored(net: tuple[NetPlan, Fabric]) -> None:
    plan, fab = net
    with listen(plan, "B1"), listen(plan, "A1"):
        assert fab.set_links(plan.links_of_connector("A-B"), up=False) == ["A1~B1"]
        assert fab.link_states() == {"A1~B1": False}
        assert reach(plan, "A1", "B1") == errno.ENETUNREACH
        assert reach(plan, "B1", "A1") == errno.ENETUNREACH  # both ends lost the link
        assert reach(plan, "A2", "A1") == 0  # the group's own bridge is untouched
        fab.set_links(plan.links_of_connector("B-A"), up=True)
        assert fab.link_states() == {"A1~B1": True}
        assert reach(plan, "A1", "B1") == 0 and reach(plan, "B1", "A1") == 0


def test_a_partition_isolates_a_group_and_heal_restores_it(net: tuple[NetPlan, Fabric]) -> None:
    plan, fab = net
    with listen(plan, "B1"):
        fab.set_links(plan.links_of_group("B"), up=False)
        assert reach(plan, "A1", "B1") == errno.ENETUNREACH
        fab.set_links(plan.links, up=True)
        assert reach(plan, "A1", "B1") == 0


def test_a_failed_build_removes_everything_it_made(netns_prefix: str) -> None:
    plan = two_groups(netns_prefix)
    fabric.create(plan.switches[-1].netns)  # the last namespace to be made already exists
    with pytest.raises(NetnsError, match="already exists"):
        Fabric(plan).build()
    assert fabric.leftovers(netns_prefix) == []


def test_processes_in_finds_a_child_started_inside(net: tuple[NetPlan, Fabric]) -> None:
    plan, _ = net
    ns = plan.host("A2").netns
    with child_setup(ns) as setup:
        child = subprocess.Popen(["sleep", "30"], preexec_fn=setup)
    try:
        assert fabric.processes_in(plan.namespaces()) == {ns: [child.pid]}
    finally:
        child.kill()
        child.wait(timeout=5)
    assert fabric.processes_in(plan.namespaces()) == {}


def test_entering_a_missing_namespace_is_an_error_not_a_fallback(netns_prefix: str) -> None:
    with pytest.raises(NetnsError, match="no network namespace"):
        socket_in(netns_prefix + "absent")
    with pytest.raises(NetnsError), child_setup(netns_prefix + "absent"):
        pass


async def test_call_in_keeps_concurrent_tasks_in_their_own_namespaces(net: tuple[NetPlan, Fabric]) -> None:
    plan, _ = net
    srv = trio.socket.from_stdlib_socket(listen(plan, "B1"))
    b1 = plan.host("B1").address
    outcomes: dict[str, str] = {}

    async def attempt(server: str) -> None:
        try:
            stream = await call_in(plan.host(server).netns, trio.open_tcp_stream, b1, PORT)
        except OSError as exc:
            causes = getattr(exc.__cause__, "exceptions", [exc])  # trio groups the per-address failures
            outcomes[server] = f"errno {causes[0].errno}"
            return
        await stream.aclose()
        outcomes[server] = "connected"

    with srv:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(attempt, "A1")  # the bridgehead has a link to B1
            nursery.start_soon(attempt, "A2")  # the member has no route out of its group
    assert outcomes == {"A1": "connected", "A2": f"errno {errno.ENETUNREACH}"}


def test_holders_finds_the_namespace_an_address_is_local_to(net: tuple[NetPlan, Fabric]) -> None:
    """What the tools use to reach a node of a netns run without its topology: only the namespace where the
    address is assigned (a link address too), whatever other runs hold; nothing is sent."""
    plan, _ = net

    def ours(address: str) -> list[str]:  # other runs on this machine may hold the same addresses
        return [name for name in fabric.holders(address) if name.startswith(plan.prefix)]

    assert ours(plan.host("A2").address) == [plan.host("A2").netns]
    assert ours(plan.links[0].b.address) == [plan.host("B1").netns]
    assert ours("198.18.255.254") == []
    assert set(fabric.run_namespaces()) >= set(plan.namespaces())
