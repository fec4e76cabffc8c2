"""NodeCore's one-way flow: the public view, the silent TableSeeded input, and the order in which facts are drained."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import replace

import pytest

from linkstate.core import events as ev
from linkstate.core import facts
from linkstate.core import node as node_module
from linkstate.core.node import NodeCore
from linkstate.core.role import RoleName
from linkstate.sim.network import SimNetwork
from proto.model import OrgInfo, Version
from tests.core.group_fixtures import one_group
from tests.core.topology_helpers import example


def _group() -> SimNetwork:
    net = SimNetwork(one_group())
    net.start_all()
    net.run_for(5)
    return net


def test_the_view_tells_where_each_node_stands() -> None:
    net = _group()
    master, member = net.nodes["RED-1"].view(), net.nodes["RED-2"].view()
    assert (master.role, master.is_master, master.master, master.attached) == (RoleName.MASTER, True, "RED-1", True)
    assert set(master.attached_members) == {"RED-2", "RED-3"} and master.quorum and master.published
    assert master.version == Version(1, 0, 0) and master.digest == net.nodes["RED-1"].lsdb.digest
    assert (member.role, member.master, member.attached) == (RoleName.MEMBER, "RED-1", True)
    assert member.attached_members == ()
    assert member.digest == master.digest and not member.orphaned and not member.published
    assert len(member.authenticated) == 1  # its connection to the master
    assert member.table_changes.get("push", 0) >= 1 and master.table_changes.get("major", 0) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        master.attached = False  # type: ignore[misc]


def test_an_orphaned_group_shows_in_the_view() -> None:
    net = _group()
    for name in net.nodes:
        net.inject(name, ev.MasterUnknown("RED-9"))
    for name in net.nodes:
        view = net.nodes[name].view()
        assert view.orphaned and view.master is None and view.role is RoleName.MEMBER and not view.attached


def test_a_seeded_table_is_merged_silently_and_a_master_keeps_its_own_section() -> None:
    counter = itertools.count()
    topo = example("seattle.toml")
    seattle = topo.routing_group("Seattle")
    member = next(s.name for s in topo.servers_in("Seattle") if s.name != seattle.master)
    nonce = lambda: f"{next(counter):032x}"  # noqa: E731
    nodes = {n: NodeCore(topo, n, nonce=nonce, rand=lambda: 0.5) for n in (seattle.master, member)}
    for core in nodes.values():
        core.start(0.0)
    london = topo.routing_group("London").guid
    newer = OrgInfo(tuple(replace(s, version=Version(7, 0, 0)) for s in nodes[member].lsdb.snapshot().routing_groups))
    for name, core in nodes.items():
        before, own = core.lsdb.digest, core.lsdb.version_of(seattle.guid)
        assert core.handle(ev.TableSeeded(newer), 1.0) == []  # no table change reported, no exchange started
        assert core.lsdb.digest != before and core.lsdb.version_of(london) == Version(7, 0, 0)
        kept = name == seattle.master  # a master's own section is its own to write
        assert core.lsdb.version_of(seattle.guid) == (own if kept else Version(7, 0, 0))


def test_facts_raised_while_one_is_handled_go_before_the_waiting_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Depth first: the order in which the parts would have called each other (a link's rerun waits for the
    consequences of its own observation)."""
    core = NodeCore(one_group(), "RED-1", nonce=lambda: "0" * 32, rand=lambda: 0.5)
    seen: list[str] = []

    def learned(node: NodeCore, fact: facts.Fact, now: float) -> None:
        assert isinstance(fact, facts.Learned)
        seen.append(fact.source)
        if fact.source.count(".") < 2:
            node.out.post(facts.Learned(OrgInfo(()), fact.source + ".1"))
            node.out.post(facts.Learned(OrgInfo(()), fact.source + ".2"))

    monkeypatch.setitem(node_module._FACTS, facts.Learned, learned)
    core.out.post(facts.Learned(OrgInfo(()), "a"))
    core.out.post(facts.Learned(OrgInfo(()), "b"))
    core._settle(0.0)
    assert seen[:8] == ["a", "a.1", "a.1.1", "a.1.2", "a.2", "a.2.1", "a.2.2", "b"]
