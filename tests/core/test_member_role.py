"""linkstate.core.member through the role's own API (MemberRole, the node's real context, a recording outbox):
what a member tells and sends when its master cannot be reached, when it learns a packet from outside, when it
reports states before and after attaching, and when it stops (R57, R84–R86, R109, R128).

HUB-A is a member of Hub (master HUB-M) in the failover example; every random draw is 0.5, so each backoff is
0.75 × reconnect_min × 2^attempt.
"""

from __future__ import annotations

from dataclasses import replace

from linkstate.core import events as ev
from linkstate.core.catalog import CATALOG, Ev
from linkstate.core.directory import build_orginfo
from linkstate.core.member import MemberRole
from linkstate.core.role import RoleName
from proto import rg691
from proto.model import OrgInfo, Version
from tests.core.failure_helpers import failover
from tests.core.role_helpers import RecordingOutbox, context

TOPO = failover()
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
