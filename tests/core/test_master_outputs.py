"""linkstate.core.master, output by output: what a master logs (each event's exact fields), sends (the exact
messages, to whom), closes (the reason), and how its version moves, driven through MasterRole's own API with a
recording outbox — its start, settle period and deadlines, its status and quorum at the boundaries, ATTACH
accepted and refused (with and without the delta capability), messages from connections that never attached,
polls and replies, service and bridgehead reports and their oscillation windows, members leaving and coming
back, versions of its own group from other epochs and rival masters (R80, G28, G31), the rebuild at its first
publication (R130), directory changes, quorum probes and being outvoted, stopping.

Redmond (one_group): RED-1 is master, RED-2 and RED-3 members (`FOUR` adds RED-4); Hub (the failover example):
HUB-M is master, HUB-A and HUB-B members, BR-1 the master of Branch.
"""

from __future__ import annotations

from dataclasses import replace

from linkstate.core import events as ev
from linkstate.core.catalog import Ev
from linkstate.core.events import Instant
from linkstate.core.facts import JoinedGroup, Outvoted
from linkstate.core.master import MasterRole, _earliest
from linkstate.core.role import RoleName, RoleStatus
from linkstate.core.topology import Topology
from proto import rg691
from proto.model import OrgInfo, Version
from tests.core.failure_helpers import failover
from tests.core.group_fixtures import one_group
from tests.core.role_helpers import RecordingOutbox, context
from tests.core.test_master_role import FOUR, attach, foreign, master, published


def fresh(topo: Topology, me: str = "RED-1", now: float = 10.0) -> tuple[MasterRole, RecordingOutbox]:
    """A master built at `now`, not started yet."""
    ctx = context(topo, me)
    out = RecordingOutbox(ctx)
    return MasterRole(ctx, out, now), out


ZERO = Version()


def attach_msg(
    role: MasterRole,
    member: str,
    *,
    rg: str | None = None,
    master: str | None = None,
    digest: str | None = None,
    version: Version = ZERO,
    caps: tuple[str, ...] = (),
) -> rg691.Attach:
    """`member`'s ATTACH (a GUID, or a server's name), to this master, naming its group, with the master's digest."""
    ctx = role.ctx
    guid = ctx.topology.server(member).guid if len(member) != 32 else member
    return rg691.Attach(guid, rg or ctx.rg.guid, master or ctx.me.guid, digest or ctx.lsdb.digest, version.major,
                        version.minor, version.user, "0" * 32, caps)  # fmt: skip


def closes(out: RecordingOutbox) -> list[tuple[int, str]]:
    return [(c.conn, c.reason) for c in out.taken(ev.Close)]  # type: ignore[attr-defined]


# --- start, settle period, status -------------------------------------------------------------------------


def test_a_started_master_logs_its_settle_period_asks_its_bridgehead_and_holds_its_unavailable_section() -> None:
    role, out = fresh(one_group())
    role.start(10.0)
    assert out.diags() == [(Ev.MASTER_STARTED, {"rg": "Redmond", "settle_s": 60})]
    assert out.take_facts() == [JoinedGroup()]
    own = role.ctx.lsdb.section(role.ctx.rg.guid)
    assert own is not None and own.version == Version() and own.version_guid == "0" * 32
    assert [m.connected for m in own.members] == [True, False, False]  # only the master itself
    assert [b.state.value for b in own.connectors[0].bridgeheads] == ["CONN_NOT_AVAILABLE"] * 2
    assert not role.published and role.version == Version()


def test_a_master_holding_a_version_of_its_group_at_start_keeps_it_and_publishes_above_it() -> None:
    role, _ = fresh(one_group())
    ctx = role.ctx
    held = ctx.lsdb.section(ctx.rg.guid)
    assert held is not None
    ctx.lsdb.put(replace(held, version=Version(3, 2, 1), version_guid="a" * 32))
    role.start(10.0)
    own = ctx.lsdb.section(ctx.rg.guid)
    assert own is not None and own.version == Version(3, 2, 1) and own.version_guid == "a" * 32
    role.on_timer(70.0)
    assert role.version == Version(4, 0, 0)


def test_the_settle_period_ends_exactly_at_its_deadline_with_a_major_publication() -> None:
    role, out = fresh(one_group())
    role.start(10.0)
    assert role.next_deadline() == 70.0
    out.take()
    role.on_timer(69.5)
    assert not role.published and out.take() == []
    role.on_timer(70.0)
    assert role.published and role.version == Version(1, 0, 0) and role.settle_deadline is None
    outputs = out.take()
    published = [o.fields for o in outputs if isinstance(o, ev.Diagnostic) and o.event == Ev.MASTER_PUBLISHED]
    assert published == [{"version": "1.0.0", "reason": "settle period over", "attached": 0}]
    changes = [(c.kind, c.groups, c.resets_routes) for c in outputs if isinstance(c, ev.TableChanged)]
    assert changes == [(ev.ChangeKind.MAJOR, (role.ctx.rg.guid,), True)]
    own = role.ctx.lsdb.section(role.ctx.rg.guid)
    assert own is not None and own.version == Version(1, 0, 0) and own.version_guid == role.epoch
    assert [m.connected for m in own.members] == [True, False, False]  # alone: the master acknowledges itself


def test_a_master_publishes_before_the_settle_period_once_every_member_attached() -> None:
    role, out = master(one_group())
    attach(role, "RED-2", 5, 1.0)
    assert not role.published
    attach(role, "RED-3", 6, 2.0)
    assert role.published and role.settle_deadline is None and role.version == Version(1, 0, 0)
    published = [f for e, f in out.diags() if e == Ev.MASTER_PUBLISHED]
    assert published == [{"version": "1.0.0", "reason": "every member attached and reported", "attached": 2}]
    assert out.sent[-2:] == [(5, "TABLE"), (6, "TABLE")]  # the publication pushed to both


def test_status_says_who_is_attached_and_whether_the_master_has_quorum() -> None:
    role, _ = master(one_group())
    me = role.ctx.me.guid
    assert role.status() == RoleStatus(name=RoleName.MASTER, attached=True, master=me)
    attach(role, "RED-3", 6, 1.0)
    red3 = role.ctx.topology.server("RED-3").guid
    assert role.status() == RoleStatus(name=RoleName.MASTER, attached=True, master=me, attached_members=(red3,),
                                       attached_count=1, quorum=True)  # fmt: skip
    attach(role, "RED-2", 5, 2.0)
    assert role.status().attached_count == 2 and role.status().published


def test_quorum_is_more_than_half_of_the_group_counting_the_master() -> None:
    role, _ = master(one_group())  # 3 servers: 2 make quorum
    assert not role.quorum
    attach(role, "RED-2", 5, 1.0)
    assert role.quorum
    role4, _ = master(FOUR)  # 4 servers: 3 make quorum
    attach(role4, "RED-2", 5, 1.0)
    assert not role4.quorum
    attach(role4, "RED-3", 6, 1.0)
    assert role4.quorum


def test_the_earliest_of_two_optional_deadlines() -> None:
    assert _earliest(None, None) is None
    assert _earliest(None, 2.0) == 2.0
    assert _earliest(1.0, None) == 1.0
    assert _earliest(3.0, 2.0) == 2.0
    assert _earliest(2.0, 3.0) == 2.0


# --- messages from connections that never attached --------------------------------------------------------


def test_a_message_the_master_has_no_use_for_is_not_taken() -> None:
    role, out = published(one_group())
    assert not role.on_message(5, rg691.Ack(role.ctx.lsdb.digest), 70.0)
    assert out.take() == [] and out.sent == []


def test_a_poll_from_a_connection_that_never_attached_is_logged_and_closed_without_an_answer() -> None:
    role, out = published(one_group())
    assert role.on_message(9, rg691.SimplePoll("ab" * 16), 70.0)
    assert out.sent == []
    outputs = out.take()
    assert [(o.event, o.fields) for o in outputs if isinstance(o, ev.Diagnostic)] == [
        (Ev.UNEXPECTED_MESSAGE, {"conn": 9, "message": "SimplePoll before ATTACH"})
    ]
    assert [(o.conn, o.reason) for o in outputs if isinstance(o, ev.Close)] == [(9, "not an attached member")]
    assert role.status().attached_count == 2 and role.version == Version(1, 0, 0)


def test_a_state_report_from_a_connection_that_never_attached_changes_nothing() -> None:
    role, out = published(one_group())
    red2 = role.ctx.topology.server("RED-2").guid
    assert role.on_message(9, rg691.StateReport("SERVICE", red2, "", "stopped"), 70.0)
    assert role.services == {} and role.version == Version(1, 0, 0)
    assert closes(out) == [(9, "not an attached member")]


# --- ATTACH ------------------------------------------------------------------------------------------------


def test_an_accepted_attach_is_answered_with_the_masters_digest_counts_and_quorum() -> None:
    role, out = master(one_group())
    digest = role.ctx.lsdb.digest
    assert role.on_message(5, attach_msg(role, "RED-2"), 1.0)
    assert out.sent == [(5, rg691.AttachAck(True, digest, 1, 3, True, caps=()))]  # same digest: no table
    assert out.take() == [ev.Diagnostic(Ev.MEMBER_ATTACHED, "info", {"member": "RED-2", "attached": 1, "quorum": True})]
    assert role.attached_members == {role.ctx.topology.server("RED-2").guid: 5}


def test_a_member_attaching_with_another_digest_gets_the_table() -> None:
    role, out = master(FOUR)
    assert role.on_message(5, attach_msg(role, "RED-2", digest="ab" * 16), 1.0)
    ack = rg691.AttachAck(True, role.ctx.lsdb.digest, 1, 4, False, caps=())
    assert out.sent == [(5, ack), (5, "TABLE")]
    assert [f for e, f in out.diags() if e == Ev.MEMBER_ATTACHED] == [
        {"member": "RED-2", "attached": 1, "quorum": False}
    ]


def test_attaching_again_on_the_same_connection_closes_nothing() -> None:
    role, out = master(one_group())
    attach(role, "RED-2", 5, 1.0)
    attach(role, "RED-2", 5, 2.0)
    assert closes(out) == []
    assert role.status().attached_count == 1


def refused(role: MasterRole, out: RecordingOutbox, msg: rg691.Attach, reason: str) -> None:
    """The ATTACH on conn 7 was refused for `reason`: said to the member, logged, closed, nobody attached."""
    out.sent.clear()
    out.take()
    assert role.on_message(7, msg, 1.0)
    assert out.sent == [(7, rg691.AttachAck(False, reason=reason))]
    outputs = out.take()
    assert [(o.event, o.fields) for o in outputs if isinstance(o, ev.Diagnostic)] == [
        (Ev.ATTACH_REFUSED, {"member": msg.member, "reason": reason})
    ]
    assert [(o.conn, o.reason) for o in outputs if isinstance(o, ev.Close)] == [(7, reason)]
    assert role.attached_members == {}


def test_an_attach_naming_another_routing_group_is_refused() -> None:
    role, out = master(one_group())
    refused(role, out, attach_msg(role, "RED-2", rg="c" * 32), "not a member of this routing group")


def test_an_attach_from_an_unknown_server_is_refused() -> None:
    role, out = master(one_group())
    refused(role, out, attach_msg(role, "f" * 32), "not a member of this routing group")


def test_an_attach_from_a_server_of_another_group_is_refused() -> None:
    role, out = fresh(failover(), "HUB-M")
    role.start(0.0)
    refused(role, out, attach_msg(role, "BR-1"), "not a member of this routing group")


def test_an_attach_naming_another_master_is_refused() -> None:
    role, out = master(one_group())
    other = role.ctx.topology.server("RED-3").guid
    refused(role, out, attach_msg(role, "RED-2", master=other), "this server is not the master you named")


def test_a_server_attaching_to_itself_is_refused() -> None:
    role, out = master(one_group())
    refused(role, out, attach_msg(role, "RED-1"), "a server cannot attach to itself")


# --- the delta capability at ATTACH, and pushes ------------------------------------------------------------


def service(role: MasterRole, member: str, status: str) -> rg691.StateReport:
    return rg691.StateReport("SERVICE", role.ctx.topology.server(member).guid, "", status)


def test_a_delta_member_holding_an_earlier_table_gets_only_what_changed_since_then_each_push_as_a_delta() -> None:
    role, out = published(one_group())
    lsdb, own = role.ctx.lsdb, role.ctx.rg.guid
    earlier = lsdb.digest
    assert role.on_message(5, service(role, "RED-2", "stopped"), 70.0)  # one more store: the section moved
    out.sent.clear()
    ack = rg691.AttachAck(True, lsdb.digest, 2, 3, True, caps=(rg691.CAP_DELTA,))  # the table before the update
    assert role.on_message(7, attach_msg(role, "RED-3", digest=earlier, caps=(rg691.CAP_DELTA,)), 71.0)
    assert out.sent[:2] == [(7, ack), (7, ("DELTA", (own,)))]
    # then the re-attachment, a user update, is pushed: the whole table to RED-2, only the section to RED-3
    assert out.sent[2:] == [(5, "TABLE"), (7, ("DELTA", (own,)))]
    assert role.version == Version(1, 0, 2) and role.delta_members == {7: lsdb.seq}


def test_a_delta_member_holding_a_table_the_master_never_had_gets_the_whole_table() -> None:
    role, out = published(one_group())
    ack = rg691.AttachAck(True, role.ctx.lsdb.digest, 2, 3, True, caps=(rg691.CAP_DELTA,))
    assert role.on_message(7, attach_msg(role, "RED-3", digest="ab" * 16, caps=(rg691.CAP_DELTA,)), 70.0)
    assert out.sent[:2] == [(7, ack), (7, "TABLE")]


def test_a_delta_member_holding_the_masters_table_is_sent_nothing_until_it_changes() -> None:
    role, out = master(one_group())
    assert role.on_message(7, attach_msg(role, "RED-3", caps=(rg691.CAP_DELTA,)), 1.0)
    ack = rg691.AttachAck(True, role.ctx.lsdb.digest, 1, 3, True, caps=(rg691.CAP_DELTA,))
    assert out.sent == [(7, ack)] and role.delta_members == {7: role.ctx.lsdb.seq}


def test_a_member_offering_delta_to_a_master_that_exchanges_in_full_is_treated_as_a_full_member() -> None:
    role, out = master(one_group(exchange='"full"'))
    assert role.on_message(7, attach_msg(role, "RED-3", digest="ab" * 16, caps=(rg691.CAP_DELTA,)), 1.0)
    ack = rg691.AttachAck(True, role.ctx.lsdb.digest, 1, 3, True, caps=())
    assert out.sent == [(7, ack), (7, "TABLE")] and role.delta_members == {}


def test_a_delta_member_whose_mark_the_change_log_no_longer_reaches_gets_the_whole_table() -> None:
    role, out = published(one_group())
    assert role.on_message(7, attach_msg(role, "RED-3", caps=(rg691.CAP_DELTA,)), 70.0)
    role.delta_members[7] = -1000  # far behind the change log
    out.sent.clear()
    assert role.on_message(5, service(role, "RED-2", "stopped"), 71.0)
    assert out.sent == [(5, "TABLE"), (7, "TABLE")] and role.delta_members == {7: role.ctx.lsdb.seq}


# --- polls, replies ----------------------------------------------------------------------------------------


def test_a_master_that_has_not_published_answers_a_differing_poll_without_its_table() -> None:
    role, out = master(one_group())
    attach(role, "RED-2", 5, 1.0)
    out.sent.clear()
    assert role.on_message(5, rg691.SimplePoll("ab" * 16), 2.0)
    assert out.sent == [(5, rg691.PollResponse(False, role.ctx.lsdb.digest))]


def test_a_delta_member_polling_with_the_masters_digest_is_marked_as_holding_the_table() -> None:
    role, out = published(one_group())
    assert role.on_message(7, attach_msg(role, "RED-3", caps=(rg691.CAP_DELTA,)), 70.0)
    role.delta_members[7] = 0
    out.sent.clear()
    assert role.on_message(7, rg691.SimplePoll(role.ctx.lsdb.digest), 71.0)
    assert role.delta_members == {7: role.ctx.lsdb.seq}
    assert out.sent == [(7, rg691.PollResponse(True, role.ctx.lsdb.digest))]


def test_a_reply_without_a_table_following_is_acknowledged_with_the_masters_digest() -> None:
    role, out = published(one_group())
    digest = role.ctx.lsdb.digest
    assert role.on_message(5, rg691.Reply(digest, follows=False), 70.0)
    assert role.on_message(5, rg691.Reply("ab" * 16, follows=True), 71.0)  # its ORGINFO follows: ACK after it
    assert role.on_message(5, rg691.Reply("ab" * 16, follows=False, resend=True), 72.0)  # not a delta member
    assert out.sent == [(5, rg691.Ack(digest)), (5, rg691.Ack(digest))]


def test_a_delta_member_asking_for_a_resend_gets_the_whole_table() -> None:
    role, out = published(one_group())
    assert role.on_message(7, attach_msg(role, "RED-3", caps=(rg691.CAP_DELTA,)), 70.0)
    role.delta_members[7] = 0
    out.sent.clear()
    assert role.on_message(7, rg691.Reply("ab" * 16, follows=False, resend=True), 71.0)
    assert role.on_message(7, rg691.Reply(role.ctx.lsdb.digest, follows=False), 72.0)
    assert out.sent == [(7, "TABLE"), (7, rg691.Ack(role.ctx.lsdb.digest))]
    assert role.delta_members == {7: role.ctx.lsdb.seq}


def test_a_delta_member_replying_with_the_masters_digest_is_marked_as_holding_the_table() -> None:
    role, _ = published(one_group())
    assert role.on_message(7, attach_msg(role, "RED-3", caps=(rg691.CAP_DELTA,)), 70.0)
    role.delta_members[7] = 0
    assert role.on_message(7, rg691.Reply(role.ctx.lsdb.digest, follows=True), 71.0)
    assert role.delta_members == {7: role.ctx.lsdb.seq}


# --- service reports ---------------------------------------------------------------------------------------


def test_a_changed_service_status_is_a_user_update_and_the_same_status_again_is_nothing() -> None:
    role, out = published(one_group())
    own = role.ctx.rg.guid
    assert role.on_message(5, service(role, "RED-2", "stopped"), 70.0)
    assert role.version == Version(1, 0, 1)
    changes = [(c.kind, c.groups, c.resets_routes) for c in out.taken(ev.TableChanged)]  # type: ignore[attr-defined]
    assert changes == [(ev.ChangeKind.USER, (own,), False)]
    assert out.sent == [(5, "TABLE"), (6, "TABLE")]
    assert role.on_message(5, service(role, "RED-2", "stopped"), 71.0)
    assert role.version == Version(1, 0, 1) and out.take() == []
    assert role.on_message(5, service(role, "RED-2", "running"), 72.0)
    assert role.version == Version(1, 0, 2)
    section = role.ctx.lsdb.section(own)
    assert section is not None
    assert [m.service_status for m in section.members] == ["0701000000000101", "running", "0701000000000101"]


# --- bridgehead reports, members leaving and coming back ---------------------------------------------------


def hub() -> tuple[MasterRole, RecordingOutbox]:
    """HUB-M published with HUB-A and HUB-B attached, each having reported its routing group connector available."""
    topo = failover()
    role, out = fresh(topo, "HUB-M", 0.0)
    role.start(0.0)
    attach(role, "HUB-A", 5, 1.0)
    attach(role, "HUB-B", 6, 1.0)
    for connector, server in (("Hub-Branch", "HUB-A"), ("Hub-Branch-Backup", "HUB-B")):
        assert role.on_message(5 if server == "HUB-A" else 6, bh(role, connector, server, "CONN_AVAIL"), 2.0)
    assert role.published and role.version == Version(1, 0, 0)
    out.take()
    out.sent.clear()
    return role, out


def bh(role: MasterRole, connector: str, server: str, value: str) -> rg691.StateReport:
    topo = role.ctx.topology
    return rg691.StateReport("BH", topo.connector(connector).guid, topo.server(server).vs_guid, value)


def test_a_member_leaving_opens_the_windows_of_what_it_sources_and_their_end_commits_one_minor_update() -> None:
    role, out = hub()
    role.on_lost(5, 10.0)
    assert role.version == Version(1, 0, 1)  # who is attached: a user update
    end = Instant(610.0)
    assert out.diags() == [
        (Ev.MEMBER_DETACHED, {"member": "HUB-A", "attached": 1}),
        (Ev.OSCILLATION_WINDOW_OPENED, {"connector": "Hub-Branch", "bridgehead": "HUB-A", "state": "DOWN",
                                        "window_end": end}),
        (Ev.OSCILLATION_WINDOW_OPENED, {"connector": "Hub-Branch", "bridgehead": "", "state": "DOWN",
                                        "window_end": end}),
        (Ev.OSCILLATION_WINDOW_OPENED, {"connector": "Hub-Internet", "bridgehead": "HUB-A", "state": "DOWN",
                                        "window_end": end}),
    ]  # fmt: skip
    assert role.next_deadline() == 610.0
    role.on_timer(609.5)
    assert out.take() == [] and role.version == Version(1, 0, 1)
    out.sent.clear()
    role.on_timer(610.0)
    outputs = out.take()
    assert [(o.event, o.fields) for o in outputs if isinstance(o, ev.Diagnostic)] == [
        (Ev.CONNECTOR_STATE_COMMITTED, {"connector": "Hub-Branch", "state": "DOWN"}),
        (Ev.BRIDGEHEAD_STATE_COMMITTED, {"connector": "Hub-Branch", "bridgehead": "HUB-A",
                                         "state": "CONN_NOT_AVAILABLE"}),
        (Ev.BRIDGEHEAD_STATE_COMMITTED, {"connector": "Hub-Internet", "bridgehead": "HUB-A",
                                         "state": "CONN_NOT_AVAILABLE"}),
    ]  # fmt: skip
    assert role.version == Version(1, 1, 0)  # three commits, one minor update
    changes = [(c.kind, c.resets_routes) for c in outputs if isinstance(c, ev.TableChanged)]
    assert changes == [(ev.ChangeKind.MINOR, True)]
    assert out.sent == [(6, "TABLE")] and role.next_deadline() is None


def test_a_member_coming_back_is_live_again_and_its_reports_are_committed() -> None:
    role, out = hub()
    role.on_lost(5, 10.0)
    role.on_timer(610.0)
    out.take()
    attach(role, "HUB-A", 7, 700.0)  # back: what needs no report is available at once; Hub-Branch waits for one
    assert out.diags() == [
        (Ev.MEMBER_ATTACHED, {"member": "HUB-A", "attached": 2, "quorum": True}),
        (Ev.BRIDGEHEAD_STATE_COMMITTED, {"connector": "Hub-Internet", "bridgehead": "HUB-A", "state": "CONN_AVAIL"}),
    ]
    assert role.version == Version(1, 2, 1)  # the commit (minor), then the attachment (user)
    assert role.on_message(7, bh(role, "Hub-Branch", "HUB-A", "VS_CONN_AVAIL"), 701.0)
    assert out.diags() == [
        (Ev.BRIDGEHEAD_STATE_COMMITTED, {"connector": "Hub-Branch", "bridgehead": "HUB-A", "state": "CONN_AVAIL"}),
        (Ev.CONNECTOR_STATE_COMMITTED, {"connector": "Hub-Branch", "state": "UP"}),
    ]
    assert role.version == Version(1, 3, 0)


def test_a_report_on_a_connector_that_is_not_of_the_group_or_in_an_unknown_state_is_ignored_and_logged() -> None:
    role, out = hub()
    foreign_connector = role.ctx.topology.connector("Branch-Hub").guid
    ha = role.ctx.topology.server("HUB-A").vs_guid
    reports = [
        rg691.StateReport("BH", "c" * 32, ha, "CONN_AVAIL"),
        rg691.StateReport("BH", foreign_connector, ha, "CONN_AVAIL"),
        bh(role, "Hub-Branch", "HUB-A", "BOGUS"),
    ]
    for report in reports:
        assert role.on_message(5, report, 3.0)
    not_ours = "not a connector of this group"
    assert out.diags() == [
        (Ev.STATE_IGNORED, {"connector": "c" * 32, "reason": not_ours}),
        (Ev.STATE_IGNORED, {"connector": foreign_connector, "reason": not_ours}),
        (Ev.STATE_IGNORED, {"connector": role.ctx.topology.connector("Hub-Branch").guid,
                            "reason": "unknown state 'BOGUS'"}),
    ]  # fmt: skip
    assert role.version == Version(1, 0, 0) and role.next_deadline() is None


def test_a_pinned_connectors_state_is_logged_once_per_change_and_never_published() -> None:
    topo = failover()
    role, out = fresh(topo, "BR-1", 0.0)  # Branch-Hub is Branch's only way out: pinned
    role.start(0.0)  # alone in its group: published at once
    assert role.version == Version(1, 0, 0)
    out.take()
    for value in ("CONN_NOT_AVAILABLE", "CONN_NOT_AVAILABLE", "VS_CONN_AVAIL"):
        role.report_state(bh(role, "Branch-Hub", "BR-1", value), 1.0)
    assert out.diags() == [
        (Ev.STATE_CHANGE_PINNED, {"connector": "Branch-Hub", "state": "CONN_NOT_AVAILABLE"}),
        (Ev.STATE_CHANGE_PINNED, {"connector": "Branch-Hub", "state": "CONN_AVAIL"}),
    ]
    assert role.states.reports == {} and role.version == Version(1, 0, 0) and role.next_deadline() is None


# --- versions: other epochs, rivals, quorum, saturation, the directory -------------------------------------


def other_epoch(role: MasterRole, version: Version, *connected: str, master: str = "RED-3") -> OrgInfo:
    """Its own group's section as `master` published it in another epoch, `connected` acknowledging it."""
    return foreign(role, connected=set(connected), version=version, master=master)


def test_its_own_version_from_another_epoch_makes_a_master_with_quorum_publish_above_it() -> None:
    role, _ = published(one_group())
    role.merge_foreign(other_epoch(role, Version(1), "RED-3"), 70.0)  # equal version, another version GUID
    assert role.version == Version(2, 0, 0) and role.foreign_top == Version(1, 0, 0)


def test_its_own_version_from_its_own_epoch_is_no_reason_to_move() -> None:
    role, _ = published(one_group())
    org = other_epoch(role, Version(1), "RED-3")
    role.merge_foreign(OrgInfo((replace(org.routing_groups[0], version_guid=role.epoch),)), 70.0)
    assert role.version == Version(1, 0, 0) and role.foreign_top == Version()


def test_a_section_acknowledged_by_exactly_a_majority_is_a_rival_with_quorum() -> None:
    role, out = published(one_group())
    role.merge_foreign(other_epoch(role, Version(5), "RED-2", "RED-3"), 70.0)  # 2 of 3
    assert role.version == Version(1, 0, 0) and role.foreign_top == Version()
    assert role.ctx.lsdb.version_of(role.ctx.rg.guid) == Version(1, 0, 0)  # once published, its own section stays
    assert [f["other_master"] for e, f in out.diags() if e == Ev.MASTER_CONFLICT] == ["RED-3"]


def test_a_section_naming_this_master_with_quorum_is_no_rival_and_is_published_above() -> None:
    role, out = published(one_group())
    role.merge_foreign(other_epoch(role, Version(5), "RED-1", "RED-2", "RED-3", master="RED-1"), 70.0)
    assert role.version == Version(6, 0, 0)
    assert [e for e, _ in out.diags() if e == Ev.MASTER_CONFLICT] == []


def test_a_master_without_quorum_remembers_a_higher_version_and_moves_above_it_once_quorum_returns() -> None:
    role, _ = master(one_group())
    role.on_timer(60.0)  # alone: published without quorum
    role.merge_foreign(other_epoch(role, Version(5), "RED-3"), 70.0)
    assert role.version == Version(1, 0, 0) and role.foreign_top == Version(5, 0, 0)
    assert role.ctx.lsdb.version_of(role.ctx.rg.guid) == Version(1, 0, 0)
    attach(role, "RED-3", 6, 71.0)  # 2 of 3
    assert role.version == Version(6, 0, 0)


def test_a_remembered_version_equal_to_the_masters_own_is_published_above_once_quorum_returns() -> None:
    role, _ = master(one_group())
    role.on_timer(60.0)
    role.merge_foreign(other_epoch(role, Version(1), "RED-3"), 70.0)
    attach(role, "RED-3", 6, 71.0)  # RED-3 is no source bridgehead: no commit moves the version first
    assert role.version == Version(2, 0, 0)


def test_a_member_attaching_without_restoring_quorum_is_only_a_user_update() -> None:
    role, _ = master(FOUR)
    role.on_timer(60.0)
    role.merge_foreign(other_epoch(role, Version(5), "RED-3"), 70.0)
    attach(role, "RED-3", 6, 71.0)  # 2 of 4: still no quorum
    assert role.version == Version(1, 0, 1)


def test_the_first_publication_goes_above_what_the_organization_held_only_with_quorum() -> None:
    role, _ = master(one_group())
    role.merge_foreign(other_epoch(role, Version(5), "RED-3"), 5.0)  # before publishing: taken newer-wins
    assert role.ctx.lsdb.version_of(role.ctx.rg.guid) == Version(5, 0, 0)
    attach(role, "RED-2", 5, 6.0)
    role.on_timer(60.0)
    assert role.version == Version(6, 0, 0)
    alone, _ = master(one_group())
    alone.merge_foreign(other_epoch(alone, Version(5), "RED-3"), 5.0)
    alone.on_timer(60.0)
    assert alone.version == Version(1, 0, 0)  # R80: no quorum, no outbidding what it did not publish


def test_a_member_reporting_an_implausible_version_is_logged_and_not_followed() -> None:
    role, out = published(one_group(max_version_jump=10))
    attach(role, "RED-3", 7, 70.0, Version(12), "d" * 32)  # 11 above the held 1.0.0
    assert [(e, f) for e, f in out.diags() if e == Ev.VERSION_REFUSED] == [
        (Ev.VERSION_REFUSED, {"member": "RED-3", "version": "12.0.0"})
    ]
    assert role.version == Version(1, 0, 1)


def test_a_version_that_cannot_be_published_above_is_said_loudly() -> None:
    role, out = fresh(one_group())
    held = role.ctx.lsdb.section(role.ctx.rg.guid)
    assert held is not None
    top = Version(2**64 - 1)
    role.ctx.lsdb.put(replace(held, version=top, version_guid="a" * 32))
    role.start(10.0)
    out.take()
    role.on_timer(70.0)
    assert role.version == top
    assert [(e, f) for e, f in out.diags() if e == Ev.VERSION_SATURATED] == [
        (Ev.VERSION_SATURATED, {"version": str(top)})
    ]


def reload(role: MasterRole, topo: Topology, now: float) -> None:
    """A new directory, as NodeCore hands it to a master that stays master."""
    ctx = role.ctx
    ctx.topology, ctx.me = topo, topo.server(ctx.me.name)
    ctx.lsdb.configure(topo)
    role.topology_changed(now)


def test_a_directory_change_is_a_user_update_for_the_servers_and_a_major_one_for_anything_else() -> None:
    role, out = published(one_group())
    reload(role, one_group(), 70.0)
    assert role.version == Version(1, 0, 0)  # nothing changed
    reload(role, FOUR, 71.0)  # a server added
    assert role.version == Version(1, 0, 1)
    kinds = [c.kind for c in out.taken(ev.TableChanged)]  # type: ignore[attr-defined]
    assert kinds == [ev.ChangeKind.USER]
    reload(role, one_group(cost=2), 72.0)  # a server removed, a connector's cost changed
    assert role.version == Version(2, 0, 0)


def test_a_directory_change_before_the_first_publication_publishes_nothing() -> None:
    role, out = master(one_group())
    reload(role, one_group(cost=2), 5.0)
    assert role.version == Version() and out.take() == []
    assert role.ctx.lsdb.version_of(role.ctx.rg.guid) == Version()


# --- the rebuild at the first publication (R130) -----------------------------------------------------------


def hub_branch(role: MasterRole) -> tuple[str, str]:
    """Hub-Branch in the master's own section: (its state, HUB-A's state)."""
    own = role.ctx.lsdb.section(role.ctx.rg.guid)
    assert own is not None
    spec = role.ctx.topology.connector("Hub-Branch")
    connector = next(c for c in own.connectors if c.guid == spec.guid)
    return connector.state.value, connector.bridgeheads[0].state.value


def test_the_first_publication_keeps_the_previous_publications_state_of_a_live_bridgehead_not_heard_from() -> None:
    role, _ = fresh(failover(master_settle=60), "HUB-M", 0.0)
    held = role.ctx.lsdb.section(role.ctx.rg.guid)  # the directory's copy: every bridgehead available
    assert held is not None
    role.ctx.lsdb.put(replace(held, version=Version(3), version_guid="a" * 32))  # published before the restart
    role.start(0.0)
    attach(role, "HUB-A", 5, 1.0)  # attached, no report yet
    role.on_timer(60.0)
    assert role.version == Version(4, 0, 0) and hub_branch(role) == ("UP", "CONN_AVAIL")


def test_a_copy_of_the_group_at_version_zero_is_no_evidence_for_the_first_publication() -> None:
    role, _ = fresh(failover(master_settle=60), "HUB-M", 0.0)
    directory = role.ctx.lsdb.section(role.ctx.rg.guid)  # every bridgehead available, at 0.0.0
    assert directory is not None and directory.version == Version()
    role.start(0.0)
    attach(role, "HUB-A", 5, 1.0)
    role.merge_foreign(OrgInfo((directory,)), 2.0)  # a member's table still holding the directory's copy
    assert role.ctx.lsdb.section(role.ctx.rg.guid) == directory
    role.on_timer(60.0)
    assert role.version == Version(1, 0, 0) and hub_branch(role) == ("DOWN", "CONN_NOT_AVAILABLE")


# --- quorum probes, outvoted, stopping ---------------------------------------------------------------------


def probing(topo: Topology) -> tuple[MasterRole, RecordingOutbox]:
    """RED-1 published alone at the end of its settle period (60 s, from 0): it lacks quorum and probes."""
    role, out = master(topo)
    role.on_timer(60.0)
    assert role.published and not role.quorum
    return role, out


def dump(role: MasterRole, node: str, *, quorum: bool) -> rg691.Dump:
    """A probed server's answer: `node` is master of this group, with or without quorum."""
    guid = role.ctx.topology.server(node).guid
    return rg691.Dump(True, guid, role.ctx.rg.guid, RoleName.MASTER.value, guid, True, quorum)


def test_a_master_lacking_quorum_probes_the_servers_not_attached_once_per_grace_period() -> None:
    role, out = master(FOUR)
    attach(role, "RED-2", 5, 1.0)
    role.on_timer(60.0)  # 2 of 4: published without quorum
    assert sorted(c.peer for c in out.taken(ev.Connect)) == ["RED-3", "RED-4"]  # type: ignore[attr-defined]
    assert role.next_deadline() == 120.0
    role.on_connected(9, 60.5)
    role.on_authenticated(9, 60.6)
    assert out.sent[-1] == (9, rg691.Dump())


def test_a_probe_answered_by_a_master_with_quorum_outvotes_this_one_with_the_reason() -> None:
    role, out = probing(one_group())
    out.take()
    out.take_facts()
    role.on_connected(9, 60.5)
    assert role.on_message(9, dump(role, "RED-2", quorum=True), 61.0)
    why = "it has the acknowledgement of 2 of 3 servers; this server lacked quorum 60 s"
    assert [(e, f) for e, f in out.diags() if e == Ev.MASTER_RELINQUISHED] == [
        (Ev.MASTER_RELINQUISHED, {"new_master": "RED-2", "reason": why})
    ]
    assert out.take_facts() == [Outvoted(role.ctx.topology.server("RED-2").guid)]


def test_a_probe_answered_by_a_master_without_quorum_changes_nothing() -> None:
    role, out = probing(one_group())
    out.take_facts()
    role.on_connected(9, 60.5)
    assert role.on_message(9, dump(role, "RED-2", quorum=False), 61.0)
    assert [e for e, _ in out.diags() if e == Ev.MASTER_RELINQUISHED] == [] and out.take_facts() == []


def test_stopping_forgets_the_delta_members_and_closes_the_probes() -> None:
    role, out = probing(one_group())
    role.on_connected(9, 60.5)
    attach(role, "RED-3", 7, 61.0, role.version, role.epoch)  # quorum: the probe is closed
    assert role.on_message(7, attach_msg(role, "RED-3", caps=(rg691.CAP_DELTA,)), 62.0)
    assert role.delta_members == {7: role.ctx.lsdb.seq}
    out.take()
    role.stop("the routing group master moved")
    assert closes(out) == [(7, "the routing group master moved")]
    assert role.delta_members == {} and role.attached_members == {}


def test_losing_a_connection_that_is_no_member_changes_nothing() -> None:
    role, out = published(one_group())
    role.on_lost(9, 70.0)
    assert out.take() == [] and role.version == Version(1, 0, 0) and role.status().attached_count == 2


def test_a_packet_from_outside_the_group_is_merged_and_pushed_to_every_member() -> None:
    role, out = published(one_group())
    other = role.ctx.lsdb.section(role.ctx.rg.guid)
    assert other is not None
    stranger = replace(other, guid="c" * 32, version=Version(2), version_guid="c" * 32)
    role.learn(OrgInfo((stranger,)), 70.0, "smtp")
    assert [(c.kind, c.groups) for c in out.taken(ev.TableChanged)] == [(ev.ChangeKind.MERGE, ("c" * 32,))]  # type: ignore[attr-defined]
    assert out.sent == [(5, "TABLE"), (6, "TABLE")] and role.version == Version(1, 0, 0)


def test_a_delta_member_lost_is_forgotten_as_a_delta_member() -> None:
    role, out = published(one_group())
    assert role.on_message(7, attach_msg(role, "RED-3", caps=(rg691.CAP_DELTA,)), 70.0)
    role.on_lost(7, 71.0)
    assert role.delta_members == {} and role.status().attached_count == 1
    assert [f for e, f in out.diags() if e == Ev.MEMBER_DETACHED] == [{"member": "RED-3", "attached": 1}]


def test_a_bridgehead_flapping_within_its_window_is_logged_as_oscillation_and_nothing_is_published() -> None:
    role, out = hub()
    assert role.on_message(5, bh(role, "Hub-Branch", "HUB-A", "CONN_NOT_AVAILABLE"), 10.0)
    assert role.on_message(5, bh(role, "Hub-Branch", "HUB-A", "CONN_AVAIL"), 20.0)
    out.take()
    role.on_timer(610.0)
    window = {"changes": 2, "window_start": Instant(10.0), "window_end": Instant(610.0)}
    assert out.diags() == [
        (Ev.OSCILLATION_SUPPRESSED, {"connector": "Hub-Branch", "bridgehead": "", **window}),
        (Ev.OSCILLATION_SUPPRESSED, {"connector": "Hub-Branch", "bridgehead": "HUB-A", **window}),
    ]
    assert role.version == Version(1, 0, 0) and hub_branch(role) == ("UP", "CONN_AVAIL")


# --- what a member's ATTACH reports of its version ---------------------------------------------------------


def test_a_member_reporting_the_masters_epoch_at_a_lower_user_version_is_only_a_user_update() -> None:
    role, _ = published(one_group())
    for status in ("a", "b", "c"):
        assert role.on_message(5, service(role, "RED-2", status), 70.0)
    assert role.version == Version(1, 0, 3)
    attach(role, "RED-3", 7, 71.0, Version(1, 0, 2), role.epoch)  # behind: each part of its version counts
    assert role.version == Version(1, 0, 4)


def test_a_member_reporting_the_masters_epoch_at_a_higher_user_version_makes_it_publish_above() -> None:
    role, _ = published(one_group())
    for status in ("a", "b", "c"):
        assert role.on_message(5, service(role, "RED-2", status), 70.0)
    attach(role, "RED-3", 7, 71.0, Version(1, 0, 5), role.epoch)  # ahead by its user number alone
    assert role.version == Version(2, 0, 0)


def test_a_member_attaching_before_publication_with_a_higher_version_lifts_the_first_publication() -> None:
    role, _ = master(one_group())
    attach(role, "RED-2", 5, 1.0, Version(3, 1, 2), "d" * 32)
    assert role.acked_top == Version(3, 1, 2)
    attach(role, "RED-3", 6, 2.0)
    assert role.published and role.version == Version(4, 0, 0)


def test_the_settle_deadline_stays_due_when_members_restore_quorum_before_it() -> None:
    role, _ = master(FOUR)  # started at 0: settle period 60 s
    attach(role, "RED-2", 5, 1.0)
    attach(role, "RED-3", 6, 2.0)  # 3 of 4: quorum, no probes; RED-4 never attaches
    assert role.quorum and not role.published
    assert role.next_deadline() == 60.0
    role.on_timer(60.0)
    assert role.published and role.version == Version(1, 0, 0)


def test_the_outvoted_reason_counts_the_quorum_of_a_four_server_group() -> None:
    role, out = probing(FOUR)
    out.take()
    role.on_connected(9, 60.5)
    assert role.on_message(9, dump(role, "RED-2", quorum=True), 61.0)
    why = "it has the acknowledgement of 3 of 4 servers; this server lacked quorum 60 s"
    assert [f["reason"] for e, f in out.diags() if e == Ev.MASTER_RELINQUISHED] == [why]


def test_a_full_member_holding_an_earlier_table_of_the_master_gets_the_whole_table() -> None:
    role, out = published(one_group())
    earlier = role.ctx.lsdb.digest
    assert role.on_message(5, service(role, "RED-2", "stopped"), 70.0)
    out.sent.clear()
    assert role.on_message(7, attach_msg(role, "RED-3", digest=earlier), 71.0)  # no delta offered
    assert [m for c, m in out.sent if c == 7][1:] == ["TABLE", "TABLE"]  # at ATTACH, then the user update's push
    assert role.delta_members == {}
