"""linkstate.core.master through the role's own API (MasterRole, the node's real context, a recording outbox):
a member detaching, a section of its own group published by another master (with and without quorum), and
members re-attaching at, or above, the master's version (R80, R84, R107, G28, G31).

Redmond (one_group): RED-1 is master, RED-2 and RED-3 members; `FOUR` adds RED-4.
"""

from __future__ import annotations

from dataclasses import replace

from linkstate.core import events as ev
from linkstate.core.master import MasterRole
from linkstate.core.topology import Topology, parse_topology
from proto import rg691
from proto.codec import DEFAULT_LIMITS
from proto.encode import encode
from proto.model import OrgInfo, Version
from proto.sectioncache import SectionCache, decode_strict_cached
from tests.core.failure_helpers import failover
from tests.core.group_fixtures import ONE_GROUP, one_group
from tests.core.role_helpers import RecordingOutbox, context

FOUR = parse_topology(ONE_GROUP.format(cost=1) + '\n[[servers]]\nname = "RED-4"\nrouting_group = "Redmond"\n', "four")


def master(topo: Topology) -> tuple[MasterRole, RecordingOutbox]:
    ctx = context(topo, "RED-1")
    out = RecordingOutbox(ctx)
    role = MasterRole(ctx, out, 0.0)
    role.start(0.0)
    out.take()
    return role, out


ZERO = Version()


def attach(role: MasterRole, name: str, conn: int, now: float, version: Version = ZERO,
           version_guid: str = "0" * 32) -> None:  # fmt: skip
    topo, ctx = role.ctx.topology, role.ctx
    msg = rg691.Attach(topo.server(name).guid, ctx.rg.guid, ctx.me.guid, ctx.lsdb.digest, version.major,
                       version.minor, version.user, version_guid)  # fmt: skip
    assert role.on_message(conn, msg, now)


def published(topo: Topology) -> tuple[MasterRole, RecordingOutbox]:
    role, out = master(topo)
    attach(role, "RED-2", 5, 1.0)
    attach(role, "RED-3", 6, 2.0)
    role.on_timer(60.0)  # the settle period is over (FOUR: RED-4 never attached)
    assert role.published and role.version == Version(1, 0, 0)
    out.take()
    out.sent.clear()
    return role, out


def test_a_member_that_detaches_is_closed_logged_and_a_user_update() -> None:
    role, out = published(one_group())
    assert role.on_message(5, rg691.Detach("shutting down"), 3.0)
    outputs = out.take()
    assert [(o.conn, o.reason) for o in outputs if isinstance(o, ev.Close)] == [(5, "member detached")]
    detached = [o.fields for o in outputs if isinstance(o, ev.Diagnostic) and o.event == "member_detached"]
    assert detached == [{"member": "RED-2", "attached": 1}]
    assert role.version == Version(1, 0, 1)
    assert tuple(role.attached_members) == (role.ctx.topology.server("RED-3").guid,)


def foreign(role: MasterRole, *, connected: set[str], version: Version, master: str = "RED-4") -> OrgInfo:
    """Its own group's section as another master would publish it, `connected` servers acknowledging."""
    topo = role.ctx.topology
    own = role.ctx.lsdb.section(role.ctx.rg.guid)
    assert own is not None
    present = {topo.server(n).guid for n in connected}
    members = tuple(replace(m, connected=m.guid in present) for m in own.members)
    return OrgInfo((replace(own, master=topo.server(master).guid, version=version, version_guid="e" * 32,
                            members=members),))  # fmt: skip


def test_a_master_with_quorum_publishes_above_another_masters_section_without_quorum() -> None:
    role, out = published(FOUR)  # RED-1 with RED-2 and RED-3: 3 of 4
    role.merge_foreign(foreign(role, connected={"RED-4", "RED-2"}, version=Version(5)), 70.0)  # 2 of 4: no quorum
    assert role.version == Version(6, 0, 0)
    assert [e for e, _ in out.diags() if e == "master_conflict"] == []


def test_another_master_with_quorum_is_a_conflict_not_outbid() -> None:
    role, out = published(FOUR)
    role.merge_foreign(foreign(role, connected={"RED-4", "RED-2", "RED-3"}, version=Version(5)), 70.0)
    assert role.version == Version(1, 0, 0)
    conflicts = [f for e, f in out.diags() if e == "master_conflict"]
    assert [f["other_master"] for f in conflicts] == ["RED-4"]


def test_a_member_reattaching_at_the_masters_version_is_a_user_update() -> None:
    role, out = published(one_group())
    attach(role, "RED-3", 7, 70.0, role.version, role.epoch)  # the same version, the same epoch: nothing to move
    assert [(o.conn, o.reason) for o in out.taken(ev.Close)] == [(6, "replaced by a new attachment")]  # type: ignore[attr-defined]
    assert role.version == Version(1, 0, 1)


def test_a_member_reattaching_above_the_master_makes_it_publish_above() -> None:
    role, _ = published(one_group())
    attach(role, "RED-3", 7, 70.0, Version(4, 2, 0), "d" * 32)
    assert role.version == Version(5, 0, 0)


def test_a_conflict_is_logged_once_per_other_epoch_with_its_reason() -> None:
    role, out = published(FOUR)
    rival = foreign(role, connected={"RED-4", "RED-2", "RED-3"}, version=Version(5))
    role.merge_foreign(rival, 70.0)
    role.merge_foreign(rival, 80.0)
    why = "another server publishes this group with quorum: check each server's copy of the directory"
    assert [f for e, f in out.diags() if e == "master_conflict"] == [{"other_master": "RED-4", "reason": why}]


def test_a_member_pushing_a_table_gets_an_ack_and_other_groups_merge_newer_wins() -> None:
    topo = failover()
    ctx = context(topo, "HUB-M")
    out = RecordingOutbox(ctx)
    role = MasterRole(ctx, out, 0.0)
    role.start(0.0)
    attach(role, "HUB-A", 9, 0.5)  # a master takes tables only from attached members
    branch = ctx.lsdb.section(topo.routing_group("Branch").guid)
    assert branch is not None
    for version, resets in ((Version(3), True), (Version(3, 0, 1), False)):  # only Branch: no section of Hub
        out.take()
        raw = encode(OrgInfo((replace(branch, version=version),)))
        frame = rg691.OrgInfoFrame(raw, decode_strict_cached(raw, DEFAULT_LIMITS, SectionCache()))
        assert role.on_message(9, frame, 1.0)
        assert [(c.kind, c.groups, c.resets_routes) for c in out.taken(ev.TableChanged)] == [  # type: ignore[attr-defined]
            (ev.ChangeKind.MERGE, (branch.guid,), resets)
        ]
        assert out.sent[-1] == (9, rg691.Ack(ctx.lsdb.digest))
    assert ctx.lsdb.version_of(branch.guid) == Version(3, 0, 1)


def test_a_version_of_its_own_group_beyond_the_jump_bound_is_no_reason_to_move() -> None:
    role, _ = published(one_group(max_version_jump=10))
    alone = {"connected": {"RED-3"}, "master": "RED-3"}  # RED-3 alone: no quorum, not a rival
    role.merge_foreign(foreign(role, version=Version(12), **alone), 70.0)  # type: ignore[arg-type]  # 11 above 1.0.0
    assert role.version == Version(1, 0, 0)
    role.merge_foreign(foreign(role, version=Version(11), **alone), 71.0)  # type: ignore[arg-type]  # 10 above: believed
    assert role.version == Version(12, 0, 0)


def test_a_lost_member_that_leaves_quorum_intact_starts_no_probes() -> None:
    role, out = published(one_group())
    role.on_lost(5, 70.0)  # RED-2 gone: RED-1 and RED-3 are still 2 of 3
    assert role.quorum
    role.on_timer(70.0 + 61)
    assert out.taken(ev.Connect) == []


def test_a_probe_connection_lost_is_not_closed_again_when_quorum_returns() -> None:
    role, out = master(one_group())
    role.on_timer(60.0)  # alone: published at the end of the settle period, without quorum; probes go out
    assert sorted(c.peer for c in out.taken(ev.Connect)) == ["RED-2", "RED-3"]  # type: ignore[attr-defined]
    role.on_connected(9, 60.1)
    role.on_lost(9, 60.2)
    attach(role, "RED-2", 5, 61.0)  # 2 of 3: quorum again
    assert role.quorum and [c for c in out.taken(ev.Close)] == []


def test_stopping_detaches_every_member_with_the_reason() -> None:
    role, out = published(one_group())
    role.stop("shutting down")
    assert out.sent == [(5, rg691.Detach("shutting down")), (6, rg691.Detach("shutting down"))]
    assert [(c.conn, c.reason) for c in out.taken(ev.Close)] == [(5, "shutting down"), (6, "shutting down")]  # type: ignore[attr-defined]
    assert role.status().attached_count == 0


def test_a_poll_is_answered_with_the_masters_digest_and_the_table_when_they_differ() -> None:
    role, out = published(one_group())
    digest = role.ctx.lsdb.digest
    assert role.on_message(5, rg691.SimplePoll(digest), 70.0)
    assert out.sent == [(5, rg691.PollResponse(True, digest))]
    out.sent.clear()
    assert role.on_message(5, rg691.SimplePoll("ab" * 16), 71.0)
    assert out.sent == [(5, rg691.PollResponse(False, digest)), (5, "TABLE")]
