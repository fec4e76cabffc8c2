"""One routing group on the pure simulated network: attach, push, poll, master loss and restart, auth.

Everything runs in virtual time (linkstate.sim.network), so the 300 s poll and 60 s settle cost nothing.
"""

from __future__ import annotations

from dataclasses import replace

from linkstate.core import events as ev
from linkstate.sim.network import SimNetwork
from proto.model import Version
from tests.core.group_fixtures import one_group

MEMBERS = ("RED-2", "RED-3")


def _up(net: SimNetwork, seconds: float = 5) -> None:
    net.start_all()
    net.run_for(seconds)


def own_version(net: SimNetwork, server: str) -> Version:
    core = net.nodes[server]
    section = core.lsdb.section(core.rg.guid)
    assert section is not None
    return section.version


def test_three_servers_attach_and_agree_on_one_digest() -> None:
    net = SimNetwork(one_group())
    _up(net)
    assert net.converged()
    master = net.nodes["RED-1"]
    assert master.view().is_master and master.view().quorum
    assert all(net.nodes[m].view().attached for m in MEMBERS)
    section = master.lsdb.section(master.rg.guid)
    assert section is not None and section.version == Version(1, 0, 0)
    assert all(m.connected for m in section.members)
    assert [d.event_id for _, n, d in net.diagnostics if d.event == "authenticated" and n == "RED-1"] == [995, 995]


def test_directory_change_reaches_members_by_push_before_any_poll() -> None:
    net = SimNetwork(one_group(cost=1))
    _up(net)
    before = net.digests()["RED-2"]
    changed = one_group(cost=7)
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(changed))
    net.run_for(1)  # far less than the 300 s poll interval
    assert net.converged() and net.digests()["RED-2"] != before
    section = net.nodes["RED-3"].lsdb.section(net.nodes["RED-3"].rg.guid)
    assert section is not None and section.version.major == 2
    assert section.connectors[0].address_spaces[0].cost == 7


def test_member_changed_behind_its_back_converges_at_next_poll() -> None:
    net = SimNetwork(one_group())
    _up(net)
    good = net.digests()["RED-1"]
    member = net.nodes["RED-2"]
    section = member.lsdb.section(member.rg.guid)
    assert section is not None
    member.lsdb.put(replace(section, members=section.members[:1]))
    assert member.lsdb.digest != good
    net.run_for(100)
    assert member.lsdb.digest != good  # nothing happens before the poll
    net.run_for(250)  # the poll is due 300 s after attaching
    assert member.lsdb.digest == good


def test_master_killed_members_keep_their_table_and_show_not_connected() -> None:
    net = SimNetwork(one_group())
    _up(net)
    digest = net.digests()["RED-2"]
    net.stop("RED-1")
    net.run_for(120)
    for m in MEMBERS:
        assert net.nodes[m].lsdb.digest == digest
        assert not net.nodes[m].view().attached
    events = [d for _, n, d in net.diagnostics if n == "RED-2" and d.event == "master_unreachable"]
    assert len(events) >= 3  # it kept retrying with backoff


def test_master_restarted_rebuilds_settles_and_publishes_above_old_version() -> None:
    net = SimNetwork(one_group())
    _up(net)
    for name in net.nodes:  # a few user updates so the old version is not trivial
        net.inject(name, ev.ServiceStatusChanged(f"07010000000001{name[-1]}1"))
    net.run_for(5)
    old = own_version(net, "RED-2")
    assert old > Version(1, 0, 0)
    net.stop("RED-1")
    net.run_for(30)
    net.start("RED-1")
    net.run_for(120)
    assert net.converged()
    new = own_version(net, "RED-1")
    assert new > old and new.major == old.major + 1
    assert all(net.nodes[m].view().attached for m in MEMBERS)


def test_member_with_wrong_secret_is_refused_and_changes_nothing() -> None:
    good = one_group()
    net = SimNetwork(good)
    _up(net)
    digest = net.digests()["RED-1"]
    net.stop("RED-3")
    net.run_for(5)
    settled = net.digests()["RED-1"]
    net.start("RED-3", one_group(secret="wrong"))  # a node built from a file with another secret
    net.run_for(10)
    failures = [d for _, n, d in net.diagnostics if n == "RED-1" and d.event == "auth_failed"]
    assert failures and failures[0].event_id == 961 and failures[0].level == "warning"
    assert failures[0].fields["cause"] == "closed"  # the intruder found the master's proof wrong and hung up
    assert net.nodes["RED-1"].lsdb.digest == settled
    assert net.nodes["RED-2"].view().attached and not net.nodes["RED-3"].view().attached
    assert any(d.event_id == 961 and d.fields["cause"] == "auth" for _, n, d in net.diagnostics if n == "RED-3")
    assert digest != settled  # RED-3 going away was a user update; the intruder changed nothing after it


def test_service_status_change_is_a_user_update() -> None:
    net = SimNetwork(one_group())
    _up(net)
    before = own_version(net, "RED-1")
    net.inject("RED-3", ev.ServiceStatusChanged("0701000000000100"))
    net.run_for(1)
    after = own_version(net, "RED-1")
    assert (after.major, after.minor, after.user) == (before.major, before.minor, before.user + 1)
    assert net.converged()


def test_master_moved_in_directory_relinquishes_with_958() -> None:
    net = SimNetwork(one_group())
    _up(net)
    moved = one_group()
    rg = moved.routing_group("Redmond")
    from linkstate.core.topology import parse_topology

    text_topo = parse_topology(open_text().replace('master = "RED-1"', 'master = "RED-2"'), "moved.toml")
    assert rg.master == "RED-1"
    old = own_version(net, "RED-3")
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(text_topo))
    net.run_for(120)
    assert net.nodes["RED-2"].view().is_master and not net.nodes["RED-1"].view().is_master
    assert [(d.event, d.event_id) for _, n, d in net.diagnostics if n == "RED-1" and d.event_id == 958] == [
        ("master_relinquished", 958)
    ]
    assert net.converged()
    assert net.nodes["RED-1"].view().attached and net.nodes["RED-3"].view().attached
    section = net.nodes["RED-3"].lsdb.section(net.nodes["RED-3"].rg.guid)
    assert section is not None and section.master == moved.server("RED-2").guid
    assert section.version == Version(old.major + 1, 0, 0)  # a new master is a major update (L8980, G61)


def open_text() -> str:
    from tests.core.group_fixtures import ONE_GROUP

    return ONE_GROUP.format(cost=1)


def test_master_designation_to_a_deleted_server_relinquishes_with_958() -> None:
    net = SimNetwork(one_group())
    _up(net)
    digest = net.digests()["RED-2"]
    for name in net.nodes:  # what a node's shell posts when the directory's master points to a deleted object
        net.inject(name, ev.MasterUnknown("RED-9"))
    net.run_for(600)
    master = net.nodes["RED-1"]
    assert not master.view().is_master and not master.view().attached
    assert any(d.event_id == 958 for _, n, d in net.diagnostics if n == "RED-1")
    assert all(core.lsdb.digest == digest for core in net.nodes.values())  # everyone keeps its last table (R128)
    assert not any(d.event == "attached" for t, n, d in net.diagnostics if t > 5)
    net.topology = one_group()  # the directory names a master again: everything resumes
    for name in net.nodes:
        net.inject(name, ev.TopologyChanged(net.topology))
    net.run_for(120)
    assert net.nodes["RED-1"].view().is_master and net.converged()
    assert all(net.nodes[m].view().attached for m in MEMBERS)


def test_a_member_starting_before_its_master_logs_info_until_the_start_up_period_ends() -> None:
    """docs/EVENTS.md: the servers of a group start in any order, so failing to reach the master within
    `master_settle` (60 s here) of the start, before the first attachment, is info; then the first failure of a
    streak is a warning and its retries are info; a lost attachment is a warning again."""
    net = SimNetwork(one_group())
    net.start("RED-2")
    net.run_for(200)

    def unreachable(since: float = 0.0) -> list[tuple[float, str]]:
        return [(t, d.level) for t, n, d in net.diagnostics if n == "RED-2" and d.event == "master_unreachable"
                and t >= since]  # fmt: skip

    early = [lv for t, lv in unreachable() if t < 60]
    late = [lv for t, lv in unreachable() if t >= 60]
    assert len(early) >= 3 and set(early) == {"info"}
    assert late and late[0] == "warning" and set(late[1:]) == {"info"}
    net.start("RED-1")
    net.run_for(60)
    assert net.nodes["RED-2"].view().attached
    mark = net.now
    net.stop("RED-1")
    net.run_for(30)
    levels = [lv for _, lv in unreachable(mark)]
    assert levels[0] == "warning" and len(levels) >= 2 and set(levels[1:]) == {"info"}
