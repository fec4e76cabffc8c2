"""linkstate.core.bridgehead through its own API (Bridgehead, the node's real context, a recording outbox): the
probe schedule of a link, what failed sessions tell and when they turn into an observed state, which remote
bridgehead each attempt goes to, triggers during a session, the listener, forcing and announcing (G34, G40).

HUB-A is the source bridgehead of Hub-Branch (to Branch's BR-1) and of the DNS-routed Hub-Internet (nothing to
probe) in the failover example; every random draw is 0.5 (backoff jitter 0.75).
"""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.core.bridgehead import Bridgehead, Target
from linkstate.core.catalog import CATALOG, Ev
from linkstate.core.facts import Observed
from linkstate.core.topology import parse_topology
from proto.model import BridgeheadState
from tests.core.failure_helpers import FAILOVER, failover
from tests.core.role_helpers import RecordingOutbox, context

AVAIL, NOT_AVAILABLE, NOT_STARTED = (BridgeheadState.CONN_AVAIL, BridgeheadState.CONN_NOT_AVAILABLE,
                                     BridgeheadState.CONN_NOT_STARTED)  # fmt: skip
TOPO = failover()
HB, INTERNET = TOPO.connector("Hub-Branch").guid, TOPO.connector("Hub-Internet").guid
PROBE, SETTLE = 60.0, 300.0  # bh_probe_interval, master_settle
FAILED = CATALOG[Ev.BRIDGEHEAD_SESSION_FAILED]


def bridgehead(topo: object = TOPO, me: str = "HUB-A", now: float = 0.0) -> tuple[Bridgehead, RecordingOutbox]:
    ctx = context(topo, me)  # type: ignore[arg-type]
    out = RecordingOutbox(ctx)
    return Bridgehead(ctx, out, now, is_master=False), out


def connects(out: RecordingOutbox) -> list[tuple[str, str]]:
    return [(c.peer, c.tag) for c in out.taken(ev.Connect)]  # type: ignore[attr-defined]


def failures(out: RecordingOutbox) -> list[tuple[str, object, object, object]]:
    return [(d.level, d.fields["connector"], d.fields["reason"], d.fields["failures"])  # type: ignore[attr-defined]
            for d in out.taken(ev.Diagnostic) if d.event == Ev.BRIDGEHEAD_SESSION_FAILED]  # type: ignore[attr-defined]  # fmt: skip


def test_links_probe_what_their_connector_reaches_at_once_then_every_probe_interval() -> None:
    bh, out = bridgehead()
    assert {c: link.target for c, link in bh.links.items()} == {HB: Target.REMOTE_BRIDGEHEADS, INTERNET: Target.NOTHING}
    assert bh.next_deadline() == 0.0  # Hub-Internet probes nothing: only Hub-Branch has a deadline
    bh.on_timer(0.0)
    assert connects(out) == [("BR-1", HB)]
    assert bh.next_deadline() is None  # its session is running
    bh.on_timer(1.0)
    assert connects(out) == []  # at most one session per connector


def test_failed_sessions_back_off_and_turn_into_not_available_at_the_threshold() -> None:
    bh, out = bridgehead()
    quiet, loud = FAILED.level_for(True), FAILED.level_for(False)
    bh.on_timer(0.0)
    bh.on_connect_failed(HB, "connection refused", 0.1)  # while the node starts: quiet
    assert failures(out) == [(quiet, "Hub-Branch", "connection refused", 1)]
    assert bh.next_deadline() == 0.1 + 0.75 and out.take_facts() == []
    at = SETTLE  # the start is over at its last instant
    for n, level in ((2, loud), (3, quiet)):  # one warning per run of failures, past the start
        bh.on_timer(bh.next_deadline() or 0.0)
        bh.on_connect_failed(HB, "connection refused", at)
        assert failures(out) == [(level, "Hub-Branch", "connection refused", n)]
        at += 1
    assert bh.next_deadline() == SETTLE + 1 + 3.0  # backoff(2): 4 x reconnect_min x 0.75
    assert out.take_facts() == [Observed(HB, NOT_AVAILABLE)]  # the third failure in a row
    bh.on_timer(bh.next_deadline() or 0.0)
    bh.on_connect_failed(HB, "connection refused", SETTLE + 10)  # past the threshold: info, reported again later
    assert failures(out) == [(quiet, "Hub-Branch", "connection refused", 4)]
    assert out.take_facts() == []  # the same state, reported less than a probe interval ago


def test_attempts_go_round_the_remote_bridgeheads() -> None:
    text = FAILOVER.read_text().replace('remote_bridgeheads = ["BR-1"]\n', 'remote_bridgeheads = ["BR-1", "BR-2"]\n', 1)
    text += '\n[[servers]]\nname = "BR-2"\nrouting_group = "Branch"\n'
    bh, out = bridgehead(parse_topology(text, "failover.toml"))
    peers = []
    for i in range(4):
        bh.on_timer(bh.next_deadline() or 0.0)
        peers += [p for p, _ in connects(out)]
        bh.on_connect_failed(HB, "connection refused", float(i))
    assert peers == ["BR-1", "BR-2", "BR-1", "BR-2"]


def test_a_connection_for_a_connector_no_longer_configured_is_closed() -> None:
    bh, out = bridgehead()
    bh.on_connected(9, "f" * 32, 1.0)
    assert [(c.conn, c.reason) for c in out.taken(ev.Close)] == [(9, "connector no longer configured")]  # type: ignore[attr-defined]
    assert bh.force("f" * 32, NOT_AVAILABLE, 1.0) is False


def test_a_stopped_listener_is_not_started_for_every_link_and_back_as_probed() -> None:
    bh, out = bridgehead()
    bh.listener(False, 5.0)
    assert out.take_facts() == [Observed(HB, NOT_STARTED), Observed(INTERNET, NOT_STARTED)]
    bh.listener(True, 6.0)
    assert out.take_facts() == [Observed(HB, AVAIL), Observed(INTERNET, AVAIL)]


def test_forced_states_win_and_are_announced_again_when_the_server_rejoins() -> None:
    bh, out = bridgehead()
    bh.announce(1.0)
    assert out.take_facts() == []  # nothing observed yet: nothing to tell
    assert bh.force(INTERNET, NOT_AVAILABLE, 2.0)
    assert out.take_facts() == [Observed(INTERNET, NOT_AVAILABLE)]
    bh.announce(3.0)
    assert out.take_facts() == [Observed(INTERNET, NOT_AVAILABLE)]
    assert bh.force(INTERNET, None, 4.0)
    assert out.take_facts() == [Observed(INTERNET, AVAIL)]
    bh.announce(5.0)
    assert out.take_facts() == [Observed(INTERNET, AVAIL)]  # reported once: announced as it stands


def test_a_change_during_a_session_runs_the_link_again_after_it() -> None:
    bh, out = bridgehead()
    bh.on_timer(0.0)
    connects(out)
    bh.trigger(1.0, ev.ChangeKind.MINOR)  # a session is running: remembered
    assert connects(out) == [] and bh.links[HB].again
    bh.rerun(HB, 2.0)
    assert connects(out) == [("BR-1", HB)] and not bh.links[HB].again
    bh.rerun(HB, 3.0)  # nothing new since
    assert connects(out) == []
