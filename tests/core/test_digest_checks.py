"""Digest checks inside a group (issue 10 item 9; G39, R84, R92): the digest a packet carries is checked against
the packet's bytes before anything in it is accepted — by the master on TCP 691 (and by every node, on 691 and
over X-LINK2STATE) — and members compare digests with their master on every poll."""

from __future__ import annotations

from dataclasses import replace

from linkstate.core import events as ev
from linkstate.core.link2state_client import SmtpClientSession
from linkstate.core.node import NodeCore
from proto import rg691
from proto.encode import encode
from proto.model import OrgInfo, Version
from tests.core.failure_helpers import events, failover, started

FORGED = "0" * 32


def newer_branch(net_or_core: NodeCore) -> OrgInfo:
    """The table with Branch's section at a much higher version (what a member would forward after a session)."""
    table = net_or_core.lsdb.snapshot()
    branch = net_or_core.ctx.topology.routing_group("Branch").guid
    return OrgInfo(tuple(replace(s, version=Version(9, 0, 0)) if s.guid == branch else s for s in table.routing_groups))


def _forward(net: object, member: str, frame: bytes) -> None:
    """The member forwards a revised packet to its master, as after a push (REPLY FOLLOWS + ORGINFO)."""
    from linkstate.sim.network import SimNetwork

    assert isinstance(net, SimNetwork)
    core = net.nodes[member]
    (upstream,) = core.view().authenticated
    core.out.send(upstream, rg691.Reply(core.lsdb.digest, True))
    core.out.conns[upstream].session.send_raw(frame)
    net.inject(member, ev.TableSeeded(OrgInfo(())))  # any input: its outputs (the queued frames) go out
    net.run_for(1)


def test_the_master_refuses_a_packet_whose_digest_is_not_its_bytes() -> None:
    net = started(failover())
    master = net.nodes["HUB-M"]
    before, branch = master.lsdb.digest, net.topology.routing_group("Branch").guid
    org = newer_branch(master)
    good = encode(org)
    forged = good.replace(good[19:51], FORGED.encode(), 1)  # `{len8} ORGINFO <md5> ...`: the digest only
    assert forged != good and len(forged) == len(good)
    _forward(net, "HUB-B", forged)
    assert master.lsdb.digest == before and master.lsdb.version_of(branch) != Version(9, 0, 0)
    (rejected,) = events(net, "orginfo_rejected", "HUB-M")
    assert str(rejected["reason"]).startswith(f"the digest it carries ({FORGED}) is not the MD5 of its bytes")
    _forward(net, "HUB-B", good)  # the same packet with its true digest is merged and fanned out; Branch's own
    # master then sees its group at 9.0.0 from another epoch and publishes above it (G31)
    assert len(events(net, "orginfo_rejected", "HUB-M")) == 1
    assert master.lsdb.version_of(branch) == Version(10, 0, 0)
    assert net.converged()


def test_a_bridgehead_session_with_a_forged_digest_merges_nothing() -> None:
    net = started(failover())
    core = net.nodes["BR-1"]
    hub = net.topology.routing_group("Hub").guid
    table = core.lsdb.snapshot()
    newer = OrgInfo(tuple(replace(s, version=Version(9, 0, 0)) if s.guid == hub else s for s in table.routing_groups))
    good = encode(newer)
    forged = good.replace(good[19:51], FORGED.encode(), 1)
    sender = net.topology.server("HUB-A")
    rejected: list[str] = []
    for frame, merged in ((forged, False), (good, True)):
        outputs = core.handle(ev.PeerConnected(900, inbound=True, proto=ev.Proto.SMTP), net.now)
        client = SmtpClientSession(sender.guid, net.topology.secret, sender.fqdn, lambda f=frame: (FORGED, f),
                                   "1" * 32)  # fmt: skip
        for _ in range(200):  # pump both ways until the dialogue is over
            rejected += [str(o.fields["reason"]) for o in outputs
                         if isinstance(o, ev.Diagnostic) and o.event == "orginfo_rejected"]  # fmt: skip
            data = b"".join(o.data for o in outputs if isinstance(o, ev.Send))
            if data:
                client.receive_data(data)
            reply = client.data_to_send()
            if not reply:
                break
            outputs = core.handle(ev.DataReceived(900, reply), net.now)
        assert (core.lsdb.version_of(hub) == Version(9, 0, 0)) is merged
        core.handle(ev.PeerLost(900), net.now)
    assert len(rejected) == 1 and rejected[0].startswith(f"the digest it carries ({FORGED})")


def test_members_compare_digests_with_the_master_on_every_poll() -> None:
    """A member's table changed behind its back is found at the next poll (POLL_RESPONSE DIFFERENT) and fixed."""
    net = started(failover())
    member = net.nodes["HUB-B"]
    good = net.digests()["HUB-M"]
    section = member.lsdb.section(net.topology.routing_group("Branch").guid)
    assert section is not None
    member.lsdb.put(replace(section, members=()))
    net.run_for(310)  # one poll interval
    assert member.lsdb.digest == good
    assert [d for _, n, d in net.diagnostics if n == "HUB-B" and d.event == "poll_different"]
