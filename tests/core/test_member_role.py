"""linkstate.core.member through the role's own API (MemberRole, the node's real context, a recording outbox):
what a member tells and sends when its master cannot be reached or detaches, when it learns a packet from outside,
when it reports states before and after attaching, when its master pushes a table or a delta, and when it stops
(R57, R84–R86, R109, R128; docs/PROTOCOL.md §2.5).

HUB-A is a member of Hub (master HUB-M) in the failover example; every random draw is 0.5, so each backoff is
0.75 × reconnect_min × 2^attempt.
"""

from __future__ import annotations

from dataclasses import replace

from linkstate.core import events as ev
from linkstate.core.catalog import CATALOG, Ev
from linkstate.core.directory import build_orginfo
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.member import MemberRole
from linkstate.core.role import RoleName
from proto import rg691
from proto.codec import DEFAULT_LIMITS
from proto.encode import encode
from proto.model import OrgInfo, Version
from proto.sectioncache import SectionCache, decode_strict_cached
from tests.core.failure_helpers import failover
from tests.core.role_helpers import RecordingOutbox, context

TOPO = failover()
DELTA_TOPO = failover(exchange="delta")  # whatever exchange the suite runs with (tests/conftest.py)
HUB, BRANCH = TOPO.routing_group("Hub").guid, TOPO.routing_group("Branch").guid
SETTLE = 300.0  # master_settle: failures are quiet for that long after the start, until the first attachment
UNREACHABLE = CATALOG[Ev.MASTER_UNREACHABLE]


def member(now: float = 0.0, draw: float = 0.5) -> tuple[MemberRole, RecordingOutbox]:
    ctx = context(TOPO, "HUB-A", draw=draw)
    out = RecordingOutbox(ctx)
    role = MemberRole(ctx, out, now)
    role.start(now)
    assert [(c.peer, c.proto) for c in out.taken(ev.Connect)] == [("HUB-M", ev.Proto.RG691)]  # type: ignore[attr-defined]
    return role, out


def attached(role: MemberRole, out: RecordingOutbox, conn: int = 7, now: float = 1.0) -> None:
    role.on_connected(conn, now)
    role.on_authenticated(conn, now)
    assert role.on_message(conn, rg691.AttachAck(True, role.ctx.lsdb.digest, 2, 3, True), now)
    assert role.status().attached
    out.take()
    out.sent.clear()


def unreachable(out: RecordingOutbox) -> list[tuple[str, object, object, object, object]]:
    return [(d.level, d.fields["master"], d.fields["reason"], d.fields["attempt"], d.fields["retry_in_s"])  # type: ignore[attr-defined]
            for d in out.taken(ev.Diagnostic) if d.event == Ev.MASTER_UNREACHABLE]  # type: ignore[attr-defined]  # fmt: skip


def test_failures_to_reach_the_master_back_off_and_are_quiet_while_the_node_starts() -> None:
    role, out = member()
    quiet, loud = UNREACHABLE.level_for(True), UNREACHABLE.level_for(False)
    assert quiet != loud
    role.on_connect_failed("connection refused", 1.0)
    assert unreachable(out) == [(quiet, "HUB-M", "connection refused", 1, 0.75)]
    assert role.next_deadline() == 1.75
    role.on_timer(1.75)
    assert len(out.taken(ev.Connect)) == 1  # retried: no longer connecting
    role.on_connect_failed("connection refused", 2.0)
    assert unreachable(out) == [(quiet, "HUB-M", "connection refused", 2, 1.5)]
    assert role.next_deadline() == 3.5
    role.on_timer(3.5)
    role.on_connect_failed("connection reset", SETTLE)  # the settle period is over at its last instant
    assert unreachable(out) == [(loud, "HUB-M", "connection reset", 3, 3.0)]
    role.on_timer(SETTLE + 3.0)
    role.on_connect_failed("connection reset", SETTLE + 4)  # warned once this streak: quiet again
    assert unreachable(out) == [(quiet, "HUB-M", "connection reset", 4, 6.0)]


def test_the_retry_delay_is_logged_in_milliseconds_and_kept_exact() -> None:
    role, out = member(draw=0.123456)  # jitter 0.561728
    role.on_connect_failed("connection refused", 1.0)
    assert [f[4] for f in unreachable(out)] == [0.562] and role.next_deadline() == 1.0 + 0.561728


def test_losing_an_attached_master_is_a_warning_and_says_so() -> None:
    role, out = member()
    attached(role, out, now=SETTLE + 1)
    role.on_lost(7, SETTLE + 2)
    assert unreachable(out) == [(UNREACHABLE.level_for(False), "HUB-M", "connection to the master lost", 1, 0.75)]
    assert not role.status().attached and role.upstream is None


def test_a_poll_answer_that_differs_is_logged_with_both_digests() -> None:
    role, out = member()
    attached(role, out)
    assert role.on_message(7, rg691.PollResponse(False, "ab" * 16), 5.0)
    assert out.diags() == [("poll_different", {"master_digest": "ab" * 16, "digest": role.ctx.lsdb.digest})]
    assert role.on_message(7, rg691.PollResponse(True, role.ctx.lsdb.digest), 6.0)
    assert out.diags() == []


def newer(**versions: Version) -> OrgInfo:
    """The directory's table with some groups' versions raised (by group name)."""
    guids = {TOPO.routing_group(name).guid: v for name, v in versions.items()}
    org = build_orginfo(TOPO)
    return OrgInfo(tuple(replace(rg, version=guids.get(rg.guid, rg.version)) for rg in org.routing_groups))


def test_a_packet_learned_from_outside_never_changes_the_members_own_group() -> None:
    role, out = member()
    role.on_connected(7, 1.0)  # connected, not attached yet: nothing goes upstream
    role.learn(newer(Hub=Version(9), Branch=Version(3)), 2.0, "smtp:BR-1")
    outputs = out.take()
    learned = [o.fields for o in outputs if isinstance(o, ev.Diagnostic) and o.event == Ev.ORGINFO_LEARNED]
    assert learned == [{"source": "smtp:BR-1", "groups": 1, "digest": role.ctx.lsdb.digest}]
    changes = [o for o in outputs if isinstance(o, ev.TableChanged)]
    assert [(c.kind, c.groups, c.resets_routes) for c in changes] == [(ev.ChangeKind.MERGE, (BRANCH,), True)]
    assert role.ctx.lsdb.version_of(BRANCH) == Version(3) and role.ctx.lsdb.version_of(HUB) == Version()
    assert out.sent == []
    role.learn(newer(Branch=Version(3, 0, 1)), 3.0, "smtp:BR-1")  # a user update: no reset of routes
    assert [(c.kind, c.resets_routes) for c in out.taken(ev.TableChanged)] == [(ev.ChangeKind.MERGE, False)]  # type: ignore[attr-defined]
    role.learn(newer(Branch=Version(3, 0, 1)), 4.0, "smtp:BR-1")  # nothing new: nothing at all
    assert out.take() == []


def test_an_attached_member_hands_what_it_learned_to_its_master() -> None:
    role, out = member()
    attached(role, out)
    role.learn(newer(Branch=Version(3)), 2.0, "smtp:BR-1")
    assert out.sent == [(7, rg691.Reply(role.ctx.lsdb.digest, True)), (7, "TABLE")]


def bh(connector: str, value: str) -> rg691.StateReport:
    return rg691.StateReport("BH", TOPO.connector(connector).guid, TOPO.server("HUB-A").vs_guid, value)


def test_reports_wait_for_the_attachment_latest_per_item_then_go_at_once() -> None:
    role, out = member()
    role.on_connected(7, 1.0)  # connected but not attached: reports wait
    role.report_state(bh("Hub-Branch", "CONN_NOT_AVAILABLE"), 1.1)
    role.report_state(bh("Hub-Internet", "CONN_AVAIL"), 1.2)
    role.report_state(bh("Hub-Branch", "CONN_AVAIL"), 1.3)  # replaces the first
    assert out.sent == []
    role.on_authenticated(7, 1.4)
    out.sent.clear()
    role.on_message(7, rg691.AttachAck(True, role.ctx.lsdb.digest, 2, 3, True), 1.5)
    assert out.sent == [(7, bh("Hub-Internet", "CONN_AVAIL")), (7, bh("Hub-Branch", "CONN_AVAIL"))]
    out.sent.clear()
    role.report_state(bh("Hub-Branch", "CONN_NOT_STARTED"), 2.0)
    assert out.sent == [(7, bh("Hub-Branch", "CONN_NOT_STARTED"))]


def test_stopping_detaches_from_the_master_with_the_reason() -> None:
    role, out = member()
    attached(role, out)
    role.stop("shutting down")
    assert out.sent == [(7, rg691.Detach("shutting down"))]
    assert [(c.conn, c.reason) for c in out.taken(ev.Close)] == [(7, "shutting down")]  # type: ignore[attr-defined]
    status = role.status()
    assert (status.name, status.attached, status.attached_count) == (RoleName.MEMBER, False, 0)
    alone, out = member()
    alone.stop("shutting down")  # never connected: nothing to detach from
    assert out.sent == [] and out.take() == []


# --- pushes from the master (ORGINFO and DELTA), DETACH ---------------------------------------------------------


def pushed(org: OrgInfo) -> rg691.OrgInfoFrame:
    raw = encode(org)
    return rg691.OrgInfoFrame(raw, decode_strict_cached(raw, DEFAULT_LIMITS, SectionCache()))


def delta(org: OrgInfo, target: str) -> rg691.Delta:
    raw = encode(org)
    return rg691.Delta(target, raw, decode_strict_cached(raw, DEFAULT_LIMITS, SectionCache()))


def test_a_push_is_adopted_answered_on_its_connection_and_sent_back_when_the_member_holds_more() -> None:
    role, out = member()
    attached(role, out)
    lsdb = role.ctx.lsdb
    assert role.on_message(7, pushed(newer(Branch=Version(3))), 2.0)  # a minor bump of another group: routes reset
    assert [(c.kind, c.groups, c.resets_routes) for c in out.taken(ev.TableChanged)] == [  # type: ignore[attr-defined]
        (ev.ChangeKind.PUSH, (BRANCH,), True)
    ]
    assert out.sent == [(7, rg691.Reply(lsdb.digest, False))]  # the master's table now: nothing follows
    out.sent.clear()
    assert role.on_message(7, pushed(newer(Branch=Version(3, 0, 1))), 3.0)  # a user update: no reset of routes
    assert [(c.kind, c.resets_routes) for c in out.taken(ev.TableChanged)] == [(ev.ChangeKind.PUSH, False)]  # type: ignore[attr-defined]
    out.sent.clear()
    role.learn(newer(Branch=Version(5)), 4.0, "smtp:BR-1")  # newer than the master's copy
    out.take()
    out.sent.clear()
    assert role.on_message(7, pushed(newer(Branch=Version(3, 0, 1))), 5.0)  # older: kept, and the master is told
    assert out.sent == [(7, rg691.Reply(lsdb.digest, True)), (7, "TABLE")]
    assert out.taken(ev.TableChanged) == [] and lsdb.version_of(BRANCH) == Version(5)


def delta_member() -> tuple[MemberRole, RecordingOutbox]:
    ctx = context(DELTA_TOPO, "HUB-A")
    out = RecordingOutbox(ctx)
    role = MemberRole(ctx, out, 0.0)
    role.start(0.0)
    delta_attach(role, 7)
    out.take()
    out.sent.clear()
    return role, out


def delta_attach(role: MemberRole, conn: int) -> None:
    role.on_connected(conn, 1.0)
    role.on_authenticated(conn, 1.0)
    assert role.on_message(conn, rg691.AttachAck(True, role.ctx.lsdb.digest, 2, 3, True, caps=(rg691.CAP_DELTA,)), 1.0)


def resends(role: MemberRole, out: RecordingOutbox, conn: int, now: float) -> bool:
    """A delta push whose result is not the master's table: does the member ask for the whole table?"""
    out.sent.clear()
    assert role.on_message(conn, delta(OrgInfo(()), "f" * 32), now)
    [(to, reply)] = out.sent
    assert to == conn and isinstance(reply, rg691.Reply) and reply.follows is False
    return reply.resend


def test_a_delta_member_asks_for_the_whole_table_unless_a_packet_it_forwarded_explains_the_difference() -> None:
    role, out = delta_member()
    for n, version in enumerate((Version(3), Version(4)), start=1):  # two packets forwarded, not acknowledged yet
        role.learn(newer(Branch=version), 2.0 + n, "smtp:BR-1")
        assert out.sent[-2:] == [(7, rg691.Reply(role.ctx.lsdb.digest, True)), (7, ("DELTA", (BRANCH,)))]
    assert not resends(role, out, 7, 5.0)
    assert role.on_message(7, rg691.Ack(role.ctx.lsdb.digest), 6.0)
    assert not resends(role, out, 7, 7.0)  # one still on its way
    assert role.on_message(7, rg691.Ack(role.ctx.lsdb.digest), 8.0)
    assert resends(role, out, 7, 9.0)
    role.learn(newer(Branch=Version(6)), 10.0, "smtp:BR-1")
    role.on_lost(7, 11.0)  # what was on its way is lost with the connection
    delta_attach(role, 8)
    assert resends(role, out, 8, 12.0)


def test_a_master_that_detaches_is_info_until_master_settle_is_over() -> None:
    role, out = member()
    attached(role, out, now=SETTLE + 1)  # past the start: a failure would be a warning
    quiet, loud = UNREACHABLE.level_for(True), UNREACHABLE.level_for(False)
    assert role.on_message(7, rg691.Detach("restarting"), 400.0)
    outputs = out.take()
    said = [(o.event, o.fields) for o in outputs if isinstance(o, ev.Diagnostic)]
    detached = [(e, f) for e, f in said if e != Ev.MASTER_UNREACHABLE]
    assert detached == [(Ev.MASTER_DETACHED, {"master": "HUB-M", "reason": "restarting"})]
    assert [(o.conn, o.reason) for o in outputs if isinstance(o, ev.Close)] == [(7, "master detached")]
    assert not role.status().attached and role.upstream is None
    role.on_timer(role.next_deadline() or 0.0)
    role.on_connect_failed("connection refused", 400.0 + SETTLE - 0.5)
    assert [u[0] for u in unreachable(out)] == [quiet]
    role.on_timer(role.next_deadline() or 0.0)
    role.on_connect_failed("connection refused", 400.0 + SETTLE)  # the restart took longer than expected
    assert [u[0] for u in unreachable(out)] == [loud]


def test_a_delta_push_is_adopted_and_answered_with_the_resulting_digest() -> None:
    role, out = delta_member()
    lsdb = role.ctx.lsdb
    branch = newer(Branch=Version(2)).group(BRANCH)
    assert branch is not None
    after = OrgInfo(tuple(branch if rg.guid == BRANCH else rg for rg in lsdb.snapshot().routing_groups))
    target = LinkStateDB(after.routing_groups).digest  # the master's table after the change
    assert role.on_message(7, delta(OrgInfo((branch,)), target), 2.0)
    assert [(c.kind, c.groups, c.resets_routes) for c in out.taken(ev.TableChanged)] == [  # type: ignore[attr-defined]
        (ev.ChangeKind.PUSH, (BRANCH,), True)
    ]
    assert lsdb.digest == target and out.sent == [(7, rg691.Reply(target, False, resend=False))]


def test_an_attached_member_polls_every_poll_interval_and_reattaches_with_the_version_it_holds() -> None:
    role, out = member()
    attached(role, out, now=1.0)
    for n in (1, 2):
        assert role.next_deadline() == 1.0 + 300 * n
        role.on_timer(1.0 + 300 * n)
        assert out.sent == [(7, rg691.SimplePoll(role.ctx.lsdb.digest))]
        out.sent.clear()
    hub = newer(Hub=Version(4, 2, 1)).group(HUB)
    assert hub is not None and role.on_message(7, pushed(newer(Hub=Version(4, 2, 1))), 700.0)
    role.on_lost(7, 701.0)
    assert role.next_deadline() == 701.75 and out.sent == [(7, rg691.Reply(role.ctx.lsdb.digest, False))]
    out.sent.clear()
    role.on_timer(701.75)
    role.on_connected(8, 702.0)
    role.on_authenticated(8, 702.0)
    [(conn, attach)] = out.sent
    assert conn == 8 and isinstance(attach, rg691.Attach)
    assert (attach.major, attach.minor, attach.user, attach.version_guid) == (4, 2, 1, hub.version_guid)
    assert (attach.member, attach.routing_group, attach.master, attach.digest) == (
        TOPO.server("HUB-A").guid, HUB, TOPO.server("HUB-M").guid, role.ctx.lsdb.digest
    )


def test_a_member_whose_table_lacks_its_group_attaches_at_version_zero() -> None:
    """A server a directory reload moved into a group its table holds no section of yet."""
    ctx = context(TOPO, "HUB-A")
    ctx = replace(ctx, lsdb=LinkStateDB(rg for rg in build_orginfo(TOPO).routing_groups if rg.guid != HUB))
    out = RecordingOutbox(ctx)
    role = MemberRole(ctx, out, 0.0)
    role.start(0.0)
    role.on_connected(7, 1.0)
    role.on_authenticated(7, 1.0)
    role.on_authenticated(8, 1.0)  # not the connection to its master: nothing
    [(conn, attach)] = out.sent
    assert conn == 7 and isinstance(attach, rg691.Attach)
    assert (attach.major, attach.minor, attach.user, attach.version_guid) == (0, 0, 0, "0" * 32)


def test_messages_not_from_the_master_or_of_no_kind_a_member_takes_are_not_its_own() -> None:
    role, out = member()
    attached(role, out)
    assert not role.on_message(8, rg691.Ack(role.ctx.lsdb.digest), 2.0)  # another connection
    assert not role.on_message(7, rg691.SimplePoll(role.ctx.lsdb.digest), 2.0)  # a master's question
    assert out.take() == [] and out.sent == []


def test_a_refused_attachment_is_said_closed_and_retried() -> None:
    role, out = member()
    role.on_connected(7, 1.0)
    role.on_authenticated(7, 1.0)
    assert role.on_message(7, rg691.AttachAck(False, reason="not a member of this routing group"), 2.0)
    outputs = out.take()
    said = [(o.event, o.fields) for o in outputs if isinstance(o, ev.Diagnostic) and o.event != Ev.MASTER_UNREACHABLE]
    assert said == [(Ev.ATTACH_REFUSED_BY_MASTER, {"master": "HUB-M", "reason": "not a member of this routing group"})]
    closes = [(o.conn, o.reason) for o in outputs if isinstance(o, ev.Close)]
    assert closes == [(7, "attach refused: not a member of this routing group")]
    assert not role.status().attached and role.upstream is None and role.next_deadline() == 2.75


def test_an_attachment_is_said_with_what_the_master_answered() -> None:
    role, out = member()
    role.on_connected(7, 1.0)
    role.on_authenticated(7, 1.0)
    assert role.on_message(7, rg691.AttachAck(True, role.ctx.lsdb.digest, 2, 3, True), 2.0)
    assert out.diags() == [(Ev.ATTACHED, {"master": "HUB-M", "quorum": True, "attached": 2})]


def test_an_attached_members_status_counts_itself_and_its_master_as_quorum() -> None:
    role, out = member()
    attached(role, out)
    status = role.status()
    assert (status.attached, status.attached_count, status.quorum, status.master, status.orphaned) == (
        True, 1, True, TOPO.server("HUB-M").guid, False
    )


def test_losing_the_master_in_the_first_second_after_attaching_is_a_warning() -> None:
    role, out = member()
    attached(role, out, now=0.5)
    role.on_lost(7, 0.9)  # attached once: no longer starting, and no DETACH came
    assert [u[0] for u in unreachable(out)] == [UNREACHABLE.level_for(False)]


def test_an_orphaned_member_connects_to_no_one_and_names_no_master() -> None:
    ctx = context(TOPO, "HUB-A")
    out = RecordingOutbox(ctx)
    role = MemberRole(ctx, out, 0.0, orphan=True)
    role.start(0.0)
    assert out.taken(ev.Connect) == []
    status = role.status()
    assert (status.master, status.orphaned, status.attached) == ("", True, False)
