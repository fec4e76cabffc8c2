"""What a failure says, and how loudly (docs/EVENTS.md): a planned goodbye is not an alarm, a run of failures is one
warning, a pinned connector's held-off change is said once; and a master takes a member's messages only once that
member has attached.

Simulated network and virtual time (linkstate.sim); one NodeCore driven by hand for the unattached peer.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from linkstate.core import events as ev
from linkstate.core.node import NodeCore
from linkstate.core.session691 import Session691
from linkstate.core.topology import parse_topology
from linkstate.sim.network import SimNetwork
from proto import rg691
from proto.encode import encode
from proto.model import OrgInfo, Version
from tests.core.failure_helpers import failover, started
from tests.core.group_fixtures import one_group
from tests.core.topology_helpers import EXAMPLES


def _levels(net: SimNetwork, event: str, server: str, since: float = 0.0) -> list[str]:
    return [d.level for t, n, d in net.diagnostics if d.event == event and n == server and t >= since]


def _planned_stop(net: SimNetwork, name: str) -> None:
    """What `serve` does on SIGTERM: the core's DETACH goes out before the connections end (service/node.py)."""
    net.stop(name, planned=True)


# --- a master that says goodbye ------------------------------------------------------------------------------


def test_a_master_that_detaches_its_members_is_not_an_alarm_while_it_restarts() -> None:
    net = SimNetwork(one_group())
    net.start_all()
    net.run_for(30)
    settle = net.topology.settings.scaled("master_settle")
    stopped = net.now
    _planned_stop(net, "RED-1")
    net.run_for(settle - 5)
    assert _levels(net, "master_detached", "RED-2", stopped) == ["info"]
    failures = _levels(net, "master_unreachable", "RED-2", stopped)
    assert len(failures) >= 2 and set(failures) == {"info"}  # it retried, quietly: a restart is expected
    net.run_for(settle)  # the master is still away after master_settle: that is news
    assert _levels(net, "master_unreachable", "RED-2", stopped).count("warning") == 1


def test_a_master_that_dies_without_a_word_is_a_warning_at_once() -> None:
    net = SimNetwork(one_group())
    net.start_all()
    net.run_for(30)
    stopped = net.now
    net.stop("RED-1")
    net.run_for(5)
    assert _levels(net, "master_detached", "RED-2", stopped) == []
    assert _levels(net, "master_unreachable", "RED-2", stopped)[0] == "warning"


def test_a_master_back_within_master_settle_leaves_no_warning_behind() -> None:
    net = SimNetwork(one_group())
    net.start_all()
    net.run_for(30)
    stopped = net.now
    _planned_stop(net, "RED-1")
    net.run_for(20)
    net.start("RED-1")
    net.run_for(60)
    assert net.nodes["RED-2"].view().attached and net.converged()
    for member in ("RED-2", "RED-3"):
        assert "warning" not in _levels(net, "master_unreachable", member, stopped)


# --- a bridgehead whose sessions keep failing ----------------------------------------------------------------


def test_a_run_of_failed_bridgehead_sessions_is_one_warning() -> None:
    net = started(failover(), 60)
    cut = net.now
    net.partition("HUB-A", "BR-1")
    threshold = net.topology.settings.bh_fail_threshold
    net.run_for(net.topology.settings.scaled("bh_probe_interval") * (threshold + 6))
    levels = _levels(net, "bridgehead_session_failed", "HUB-A", cut)
    assert len(levels) > threshold  # the run went past the threshold: the connector was declared unavailable
    assert levels.count("warning") == 1 and levels[0] == "warning"
    net.heal("HUB-A", "BR-1")
    net.run_for(net.topology.settings.scaled("bh_probe_interval") * 3)
    healed = net.now
    net.partition("HUB-A", "BR-1")  # a new run after a success: a new warning
    net.run_for(net.topology.settings.scaled("bh_probe_interval") * 3)
    assert _levels(net, "bridgehead_session_failed", "HUB-A", healed).count("warning") == 1


# --- a pinned connector -------------------------------------------------------------------------------------


def test_a_pinned_connectors_held_off_change_is_said_once_per_change() -> None:
    """SpokeA-Hub is Spoke-A's only way out (pinned, R121): its bridgehead SPA-1 keeps reporting NOT_AVAILABLE at
    every probe while the hub is cut off; the master logs the held-off change once, and once more when it ends."""
    topo = parse_topology((EXAMPLES / "hub-spoke.toml").read_text(), "hub-spoke.toml")
    net = started(topo, 60)
    cut = net.now
    net.partition("SPA-1", "HUB-1")
    probe = topo.settings.scaled("bh_probe_interval")
    net.run_for(probe * (topo.settings.bh_fail_threshold + 8))
    reports = [d for t, n, d in net.diagnostics if n == "SPA-1" and t >= cut and d.event == "state_change_pinned"]
    assert [(d.fields["connector"], d.fields["state"]) for d in reports] == [("SpokeA-Hub", "CONN_NOT_AVAILABLE")]
    net.heal("SPA-1", "HUB-1")
    net.run_for(probe * 4)
    reports = [d for t, n, d in net.diagnostics if n == "SPA-1" and t >= cut and d.event == "state_change_pinned"]
    assert [d.fields["state"] for d in reports] == ["CONN_NOT_AVAILABLE", "CONN_AVAIL"]


# --- a peer that authenticated but never attached ------------------------------------------------------------


def _authenticated_peer(core: NodeCore, member_guid: str, conn: int = 900) -> Session691:
    """An inbound 691 connection that completes mutual authentication with the group's secret as `member_guid`
    and sends nothing else (no ATTACH)."""
    counter = itertools.count(1000)
    peer = Session691(
        initiator=True,
        local_guid=member_guid,
        secret=core.ctx.topology.secret,
        nonce=lambda: f"{next(counter):032x}",
    )
    outputs = core.handle(ev.PeerConnected(conn, inbound=True), 0.0)
    for _ in range(10):
        data = b"".join(o.data for o in outputs if isinstance(o, ev.Send) and o.conn == conn)
        if data:
            peer.receive(data)
        mine = peer.take_pending()
        if not mine:
            break
        outputs = core.handle(ev.DataReceived(conn, mine), 0.0)
    assert peer.authenticated and conn in core.view().authenticated
    return peer


def test_a_master_takes_no_packet_poll_or_state_from_a_peer_that_never_attached() -> None:
    topo = failover()
    core = NodeCore(topo, "HUB-M", nonce=lambda: "0" * 32, rand=lambda: 0.5)
    core.start(0.0)
    branch = topo.routing_group("Branch").guid
    table = core.lsdb.snapshot().routing_groups
    newer = OrgInfo(tuple(replace(s, version=Version(9, 0, 0)) if s.guid == branch else s for s in table))
    member = topo.server("HUB-B").guid  # a member's identity, with the secret: authenticated, but not attached
    for msg in (
        rg691.Reply(core.lsdb.digest, True),
        rg691.SimplePoll(core.lsdb.digest),
        rg691.StateReport("SERVICE", member, "", "STOPPED"),
    ):
        peer = _authenticated_peer(core, member)
        peer.send(msg)
        if isinstance(msg, rg691.Reply):
            peer.send_raw(encode(newer))
        before = (core.lsdb.digest, core.view().table_changes)
        outputs = core.handle(ev.DataReceived(900, peer.take_pending()), 1.0)
        assert (core.lsdb.digest, core.view().table_changes) == before
        assert core.lsdb.version_of(branch) != Version(9, 0, 0)
        assert [o for o in outputs if isinstance(o, ev.Close) and o.conn == 900]
        refused = [o for o in outputs if isinstance(o, ev.Diagnostic) and o.event == "unexpected_message"]
        assert refused and "before ATTACH" in str(refused[0].fields["message"])
        core.handle(ev.PeerLost(900, "closed"), 1.0)
    assert core.view().attached_members == ()


def test_the_view_tells_which_smtp_connections_authenticated() -> None:
    """The shell's connection budget asks the view (service/node.py): an inbound SMTP session counts as
    authenticated once its peer's AUTH succeeded, not before; the node's own outbound sessions always do."""
    from linkstate.core.link2state_client import SmtpClientSession

    net = started(failover())
    core = net.nodes["BR-1"]
    sender = net.topology.server("HUB-A")
    outputs = core.handle(ev.PeerConnected(900, inbound=True, proto=ev.Proto.SMTP), net.now)
    assert 900 not in core.view().smtp_authenticated
    client = SmtpClientSession(sender.guid, net.topology.secret, sender.fqdn,
                               lambda: (core.lsdb.digest, core.lsdb.frame()), "1" * 32)  # fmt: skip
    seen: list[bool] = []
    for _ in range(50):
        data = b"".join(o.data for o in outputs if isinstance(o, ev.Send) and o.conn == 900)
        if data:
            client.receive_data(data)
        reply = client.data_to_send()
        if not reply:
            break
        seen.append(900 in core.view().smtp_authenticated)
        outputs = core.handle(ev.DataReceived(900, reply), net.now)
    assert seen[0] is False and True in seen  # not at EHLO; once AUTH went through
    core.handle(ev.PeerLost(900), net.now)
    assert 900 not in core.view().smtp_authenticated
