"""linkstate.core.bridgehead: what it makes of its SMTP sessions' events (Bridgehead.on_session_event) and of a stop —
an authentication failure on either side, a rejected X-LINK2STATE dialogue, a (simulated) message, shutting down.

HUB-A (the failover example) answers inbound sessions; the events are the ones its sessions emit
(linkstate.core.link2state_session), handed over as the node does, one by one.
"""

from __future__ import annotations

import pytest

from linkstate.core import events as ev
from linkstate.core.bridgehead import PUSH_MAX, Bridgehead, Target
from linkstate.core.catalog import Ev
from linkstate.core.facts import Observed
from linkstate.core.link2state_session import AuthFailed, AuthSucceeded, MailReceived, OrgInfoReceived, SessionFailed
from linkstate.core.topology import Topology, parse_topology
from proto.codec import decode_strict
from proto.errors import DecodeError
from proto.model import OrgInfo
from tests.core.failure_helpers import FAILOVER, failover
from tests.core.role_helpers import RecordingOutbox, context
from tests.core.test_address_space_state import corp
from tests.core.test_bridgehead_links import (
    FAILED,
    HB,
    INTERNET,
    NOT_AVAILABLE,
    PROBE,
    SETTLE,
    TOPO,
    bridgehead,
    connects,
    failures,
)
from tests.core.test_lsdb_limits import fake

BR1 = TOPO.server("BR-1").guid


def test_an_authentication_failure_is_reported_by_its_side_with_the_peer_named() -> None:
    bh, out = bridgehead()
    bh.on_inbound(7, 1.0)
    bh.on_session_event(7, AuthFailed(BR1, "bad proof", 961), 1.0)  # as the answering server
    bh.on_session_event(7, AuthFailed("", "closed before AUTH", 962), 1.0)  # as the initiator, no peer known
    assert out.diags() == [
        (Ev.AUTH_FAILED, {"protocol": "smtp", "conn": 7, "reason": "bad proof", "cause": "auth", "peer": "BR-1"}),
        (Ev.CLIENT_AUTH_FAILED,
         {"protocol": "smtp", "conn": 7, "reason": "closed before AUTH", "cause": "auth", "peer": ""}),
    ]  # fmt: skip


def test_rejected_dialogues_are_counted_per_reason_and_reported_with_their_connection() -> None:
    bh, out = bridgehead()
    bh.on_inbound(7, 1.0)
    bh.on_inbound(8, 1.0)
    bh.on_session_event(7, SessionFailed("X-LINK2STATE: chunk out of order", fatal=False), 1.0)
    bh.on_session_event(8, SessionFailed("X-LINK2STATE: chunk out of order"), 2.0)
    bh.on_session_event(8, SessionFailed("line too long: no LF within the bound"), 3.0)
    assert bh.counters.rejected == 3
    assert bh.counters.by_reason == {"X-LINK2STATE: chunk out of order": 2, "line too long: no LF within the bound": 1}
    assert out.diags() == [
        (Ev.LINK2STATE_REJECTED, {"conn": 7, "reason": "X-LINK2STATE: chunk out of order", "fatal": False}),
        (Ev.LINK2STATE_REJECTED, {"conn": 8, "reason": "X-LINK2STATE: chunk out of order", "fatal": True}),
        (Ev.LINK2STATE_REJECTED, {"conn": 8, "reason": "line too long: no LF within the bound", "fatal": True}),
    ]


def test_a_message_is_counted_and_logged_with_its_sender_recipients_and_size() -> None:
    bh, out = bridgehead()
    bh.on_inbound(7, 1.0)
    bh.on_session_event(7, MailReceived("a@example.com", ("b@example.com", "c@example.com"), b"Hi\r\n"), 1.0)
    bh.on_session_event(7, MailReceived("d@example.com", ("e@example.com",), b""), 2.0)
    assert bh.counters.mail_received == 2
    assert out.diags() == [
        (Ev.MAIL_QUEUED, {"sender": "a@example.com", "recipients": 2, "size": 4}),
        (Ev.MAIL_QUEUED, {"sender": "d@example.com", "recipients": 1, "size": 0}),
    ]


def test_an_event_of_a_connection_the_bridgehead_does_not_hold_is_ignored() -> None:
    bh, out = bridgehead()
    bh.on_session_event(9, MailReceived("a@example.com", ("b@example.com",), b""), 1.0)
    assert bh.counters.mail_received == 0 and out.diags() == []


def test_stopping_closes_every_smtp_connection_and_forgets_them() -> None:
    bh, out = bridgehead()
    bh.on_inbound(7, 1.0)
    bh.on_inbound(8, 1.0)
    out.take()
    bh.stop()
    assert [(c.conn, c.reason) for c in out.taken(ev.Close)] == [(7, "shutting down"), (8, "shutting down")]  # type: ignore[attr-defined]
    assert not bh.owns(7) and not bh.owns(8)


def test_a_lasting_state_is_reported_again_only_past_the_failure_threshold() -> None:
    """Forced NOT_AVAILABLE, the probes fail too: the failure that reaches the threshold changes nothing reported
    (`_observe` without `again`); each later one repeats the lasting state, at most once per probe interval."""
    bh, out = bridgehead()
    assert bh.force(HB, NOT_AVAILABLE, 0.0)
    assert out.take_facts() == [Observed(HB, NOT_AVAILABLE)]
    at = 2 * PROBE
    for n in (1, 2, 3):
        bh.on_timer(max(at, bh.next_deadline() or 0.0))
        bh.on_connect_failed(HB, "connection refused", at + n)
    assert bh.links[HB].failures == 3 and out.take_facts() == []  # the threshold: nothing new to say
    bh.on_timer(bh.next_deadline() or 0.0)
    bh.on_connect_failed(HB, "connection refused", at + 4)
    assert out.take_facts() == [Observed(HB, NOT_AVAILABLE)]  # past it: the lasting state once more
    due = bh.next_deadline() or 0.0
    assert due <= at + 4 + PROBE
    bh.on_timer(due)
    bh.on_connect_failed(HB, "connection refused", at + 4 + PROBE)  # exactly a probe interval after that report
    assert out.take_facts() == [Observed(HB, NOT_AVAILABLE)]


def shuttle(
    a: Bridgehead, a_out: RecordingOutbox, b: Bridgehead, b_out: RecordingOutbox, now: float,
    held: tuple[bytes, ...] = (), log: list[object] | None = None, conns: tuple[int, int] = (1, 2),
) -> None:  # fmt: skip
    """Carry the bytes between HUB-A's connection `conns[0]` and BR-1's `conns[1]` (first what HUB-A sent that the
    test `held` back) until neither side has more to say; HUB-A's other outputs go to `log`."""

    def deliver(dst: Bridgehead, conn: int, chunks: list[bytes]) -> None:
        for data in chunks:
            for event in dst.receive(conn, data):
                dst.on_session_event(conn, event, now)
            dst.flush(conn, now)

    deliver(b, conns[1], list(held))
    while True:
        to_a = [s.data for s in b_out.taken(ev.Send)]  # type: ignore[attr-defined]
        outputs = a_out.take()
        to_b = [o.data for o in outputs if isinstance(o, ev.Send)]
        if log is not None:
            log += [o for o in outputs if not isinstance(o, ev.Send)]
        if not to_a and not to_b:
            return
        deliver(a, conns[0], to_a)
        deliver(b, conns[1], to_b)


def opened(topo: Topology, server: str = "BR-1") -> tuple[Bridgehead, RecordingOutbox, Bridgehead, RecordingOutbox]:
    """HUB-A's first probe at 0 s connected (its connection 1) to `server`'s SMTP side (its connection 2), which
    has sent its greeting; nothing else taken from either outbox."""
    a, a_out = bridgehead(topo)
    b, b_out = bridgehead(topo, me=server)
    a.on_timer(0.0)
    a.on_connected(1, HB, 0.0)
    b.on_inbound(2, 0.0)
    b.flush(2, 0.0)
    return a, a_out, b, b_out


def kept_pair() -> tuple[Bridgehead, RecordingOutbox, Bridgehead, RecordingOutbox]:
    """HUB-A (connection 1) and BR-1 (connection 2) after HUB-A's first session: the tables agreed, the session is
    kept (delta mode; keepalive every 30 s, probes every 200 s)."""
    topo = failover(exchange="delta", bh_probe_interval=200, smtp_command_timeout=60)
    a, a_out, b, b_out = opened(topo)
    assert connects(a_out) == [("BR-1", HB)]
    shuttle(a, a_out, b, b_out, 0.0)
    return a, a_out, b, b_out


def test_a_kept_session_is_kept_alive_by_noops_and_carries_the_next_change() -> None:
    """Both tables agree: HUB-A keeps its session to BR-1 open, sends a NOOP every half command timeout (answered
    or not yet), and the next change goes out on that session (no new connection)."""
    a, a_out, b, b_out = kept_pair()
    assert a.links[HB].kept == 1 and a.next_deadline() == 30.0  # the digests agreed: kept, a NOOP due at 30 s
    a.on_timer(29.9)
    assert a_out.taken(ev.Send) == []  # not yet
    a.on_timer(30.0)
    first = [s.data for s in a_out.taken(ev.Send)]  # type: ignore[attr-defined]
    a.on_timer(60.0)  # BR-1 has not answered yet: another one
    second = [s.data for s in a_out.taken(ev.Send)]  # type: ignore[attr-defined]
    assert first == second == [b"NOOP\r\n"] and a.links[HB].kept == 1
    shuttle(a, a_out, b, b_out, 60.0, held=(*first, *second))  # both answered now
    a.trigger(61.0, ev.ChangeKind.MINOR)
    assert connects(a_out) == [] and a.links[HB].in_flight == 1  # on the kept session


def test_a_session_lost_before_its_exchange_is_a_failure_of_its_link_and_other_losses_are_ignored() -> None:
    bh, out = bridgehead()
    bh.on_lost(99, 1.0)  # a connection it does not hold: nothing happens
    assert out.take() == []
    bh.on_timer(0.0)
    bh.on_connected(1, HB, 0.5)
    out.take()
    bh.on_lost(1, 5.0)
    assert failures(out) == [
        (FAILED.level_for(True), "Hub-Branch", "SMTP session ended before the exchange completed", 1)
    ]  # quiet: the node is still starting
    assert not bh.owns(1) and bh.links[HB].in_flight is None and bh.next_deadline() == 5.0 + 0.75
    bh.on_timer(5.75)  # the next attempt: no session was kept, nothing to close
    assert [type(o) for o in bh.out.take()] == [ev.Connect]


def test_after_a_stop_a_kept_session_due_a_keepalive_is_forgotten_and_a_change_connects_anew() -> None:
    a, a_out, _, _ = kept_pair()
    assert a.links[HB].kept == 1
    a.stop()
    assert [c.conn for c in a_out.taken(ev.Close)] == [1]  # type: ignore[attr-defined]
    a.on_timer(30.0)  # its keepalive was due: the session is gone, nothing is sent on it
    assert a_out.take() == [] and a.links[HB].kept is None
    a.trigger(31.0, ev.ChangeKind.MINOR)
    assert connects(a_out) == [("BR-1", HB)]


def test_a_kept_session_lost_while_carrying_a_change_is_no_failure_and_a_new_connection_carries_it() -> None:
    a, a_out, _, _ = kept_pair()
    a.trigger(5.0, ev.ChangeKind.MINOR)
    assert connects(a_out) == [] and a.links[HB].in_flight == 1 and a.links[HB].reused  # on the kept session
    a.on_lost(1, 6.0)  # BR-1 restarted before it answered
    assert connects(a_out) == [("BR-1", HB)]  # at once, on a new connection
    assert failures(a_out) == [] and a.links[HB].failures == 0 and not a.links[HB].reused


def test_a_successful_authentication_is_reported_by_its_side_with_the_peer_named() -> None:
    bh, out = bridgehead()
    bh.on_inbound(7, 1.0)
    bh.on_session_event(7, AuthSucceeded(BR1, 995), 1.0)
    bh.on_session_event(7, AuthSucceeded(BR1, 996), 1.0)
    fields = {"protocol": "smtp", "peer": "BR-1", "peer_kind": "BRIDGEHEAD"}
    assert out.diags() == [(Ev.AUTHENTICATED, fields), (Ev.CLIENT_AUTHENTICATED, fields)]


def test_a_received_packet_is_learned_from_its_peer_unless_it_does_not_decode() -> None:
    bh, out = bridgehead()
    bh.on_inbound(7, 1.0)
    frame = bh.ctx.lsdb.frame()
    bh.on_session_event(7, OrgInfoReceived(frame, BR1), 1.0)
    assert [(len(f.org.routing_groups), f.source) for f in out.take_facts()] == [(len(bh.ctx.lsdb), "smtp:BR-1")]  # type: ignore[attr-defined]
    bh.on_session_event(7, OrgInfoReceived(frame[:-5], BR1), 2.0)  # cut short: it does not decode
    forged = frame[:19] + b"0" * 32 + frame[51:]  # decodes, but the digest it carries is not its bytes' MD5
    bh.on_session_event(7, OrgInfoReceived(forged, BR1), 3.0)
    assert out.take_facts() == []
    [(cut, short), (bad, digest)] = out.diags()
    assert cut == bad == Ev.ORGINFO_REJECTED and short["peer"] == digest["peer"] == "BR-1"
    with pytest.raises(DecodeError) as why:
        decode_strict(frame[:-5])
    assert short["reason"] == str(why.value)
    assert "digest" in str(digest["reason"]), digest


def test_an_inbound_session_lost_before_it_ended_is_forgotten_quietly() -> None:
    bh, out = bridgehead()
    bh.on_inbound(7, 1.0)
    out.take()
    bh.on_lost(7, 2.0)  # the peer went away during the greeting
    assert not bh.owns(7) and out.take() == [] and bh.counters.sessions_out == 0


def test_inbound_sessions_are_counted_and_greet_with_this_servers_name_chunk_size_and_frame_limit() -> None:
    topo = failover(chunk_raw_bytes=200, max_table_bytes=128 * 1024, max_output_bytes=256 * 1024,
                    max_unknown_bytes=32 * 1024)  # fmt: skip
    bh, out = bridgehead(topo)
    bh.on_inbound(7, 1.0)
    bh.on_inbound(8, 1.0)
    assert bh.counters.sessions_in == 2
    bh.flush(7, 1.0)
    [greeting] = out.taken(ev.Send)
    assert greeting.data.startswith(f"220 {topo.server('HUB-A').fqdn} ".encode())  # type: ignore[attr-defined]
    session = bh.smtp[7].session
    assert session.chunk_raw_bytes == 200
    assert session._reassembler.limits.max_frame == 128 * 1024  # type: ignore[union-attr]  # what it may reassemble


def test_up_to_push_max_changed_sections_are_pushed_first_and_more_go_by_a_delta_round() -> None:
    for n, opening in ((PUSH_MAX, b"X-LINK2STATE PUSH="), (PUSH_MAX + 1, b"X-LINK2STATE DELTA=")):
        a, a_out, _, _ = kept_pair()
        a.ctx.lsdb.merge(OrgInfo(tuple(fake(i) for i in range(1, n + 1))))  # n sections since the tables agreed
        a.trigger(5.0, ev.ChangeKind.MINOR)
        sent = [s.data for s in a_out.taken(ev.Send)]  # type: ignore[attr-defined]
        assert connects(a_out) == [] and sent[0].startswith(opening), (n, sent[0][:40])


def test_the_close_of_a_finished_session_after_the_next_one_started_is_no_failure_of_the_link() -> None:
    """The seed's exchange: the session is done (the link idle) but its QUIT is still unanswered when a change starts
    the next session; its close then belongs to a session that is over — not a failure of the running one."""
    topo = failover(exchange="full")
    a, a_out, b, b_out = opened(topo)
    connects(a_out)
    held: list[bytes] = []
    while a.links[HB].in_flight is not None:  # until HUB-A's session is done: one reply at a time
        for send in b_out.taken(ev.Send):
            for event in a.receive(1, send.data):  # type: ignore[attr-defined]
                a.on_session_event(1, event, 1.0)
            a.flush(1, 1.0)
        for send in a_out.taken(ev.Send):
            for event in b.receive(2, send.data):  # type: ignore[attr-defined]
                b.on_session_event(2, event, 1.0)
            b.flush(2, 1.0)
    assert a.owns(1)  # QUIT sent, its 221 not read yet
    a.trigger(2.0, ev.ChangeKind.MINOR)
    assert connects(a_out) == [("BR-1", HB)]
    held = [s.data for s in b_out.taken(ev.Send)]
    for data in held:
        a.receive(1, data)
    a.flush(1, 3.0)
    a.on_lost(1, 3.0)
    assert not a.owns(1) and failures(a_out) == [] and a.links[HB].failures == 0 and a.links[HB].in_flight == -1


def test_a_session_done_is_logged_with_its_duration_and_clears_the_links_failures() -> None:
    topo = failover(exchange="delta", bh_probe_interval=200, smtp_command_timeout=60)
    a, a_out = bridgehead(topo)
    b, b_out = bridgehead(topo, me="BR-1")
    a.on_timer(1.0)
    a.on_connect_failed(HB, "connection refused", 1.0)  # one failure first
    assert a.links[HB].failures == 1
    start, end = a.next_deadline() or 0.0, (a.next_deadline() or 0.0) + 0.1234567
    a.on_timer(start)
    a.on_connected(1, HB, start)
    b.on_inbound(2, start)
    b.flush(2, start)
    a_out.take()
    log: list[object] = []
    shuttle(a, a_out, b, b_out, end, log=log)
    done = [d.fields for d in log if isinstance(d, ev.Diagnostic) and d.event == Ev.BRIDGEHEAD_SESSION_DONE]
    assert done == [{"connector": "Hub-Branch", "exchanged": False, "duration_s": 0.123457}]
    assert a.links[HB].failures == 0
    a.on_timer(start + 200)  # the next probe, on a new connection, fails: the first of a new run
    a.on_connect_failed(HB, "connection refused", start + 201)
    assert failures(a_out) == [(FAILED.level_for(False), "Hub-Branch", "connection refused", 1)]


def test_sessions_that_moved_sections_are_counted_per_link_and_in_total() -> None:
    """BR-1 holds a section HUB-A lacks (and HUB-A, with no role to merge it, keeps lacking it): each session
    moves it."""
    topo = failover(exchange="full", bh_probe_interval=200)
    a, a_out = bridgehead(topo)
    b, b_out = bridgehead(topo, me="BR-1")
    b.ctx.lsdb.merge(OrgInfo((fake(1),)))
    log: list[object] = []
    for n, at in enumerate((0.0, 200.0)):
        a.on_timer(at)
        a.on_connected(1 + 2 * n, HB, at)
        b.on_inbound(2 + 2 * n, at)
        b.flush(2 + 2 * n, at)
        shuttle(a, a_out, b, b_out, at + 1, log=log, conns=(1 + 2 * n, 2 + 2 * n))
    done = [d.fields["exchanged"] for d in log
            if isinstance(d, ev.Diagnostic) and d.event == Ev.BRIDGEHEAD_SESSION_DONE]  # fmt: skip
    assert done == [True, True] and a.links[HB].exchanged == 2 and a.counters.exchanges == 2
    assert a.links[HB].sessions == 2 and a.counters.sessions_out == 2  # each probe, one session


def test_a_reachable_next_hop_mta_is_a_session_done_without_an_exchange() -> None:
    topo = corp()
    partner = topo.connector("Partner-X400").guid
    bh, out = bridgehead(topo, me="CORP-B")
    bh.on_timer(0.0)
    assert [(c.host, c.port) for c in out.taken(ev.Connect) if c.tag == partner] == [("mta.partner.example", 102)]  # type: ignore[attr-defined]
    bh.on_connected(5, partner, 0.5)
    outputs = bh.out.take()
    assert [(c.conn, c.reason) for c in outputs if isinstance(c, ev.Close)] == [(5, "next-hop MTA reachable")]
    done = [d.fields for d in outputs if isinstance(d, ev.Diagnostic) and d.event == Ev.BRIDGEHEAD_SESSION_DONE]
    assert done == [{"connector": "Partner-X400", "exchanged": False, "duration_s": 0.5}]
    assert bh.links[partner].exchanged == 0 and bh.counters.exchanges == 0


def test_the_initiator_refuses_a_server_that_proves_another_identity() -> None:
    """HUB-A connects for BR-1, and the server that answers authenticates as HUB-B (same secret): refused."""
    topo = failover(exchange="delta")
    a, a_out, b, b_out = opened(topo, server="HUB-B")
    log: list[object] = []
    shuttle(a, a_out, b, b_out, 1.0, log=log)
    hub_b = topo.server("HUB-B").guid
    refused = [d.fields for d in log if isinstance(d, ev.Diagnostic) and d.event == Ev.CLIENT_AUTH_FAILED]
    assert refused == [{"protocol": "smtp", "conn": 1, "reason": f"server is {hub_b}, expected {BR1}",
                        "cause": "auth", "peer": "HUB-B"}]  # fmt: skip
    assert a.links[HB].failures == 1 and a.counters.exchanges == 0


def test_a_probe_after_an_agreed_round_pushes_the_changes_first_on_its_new_connection() -> None:
    a, a_out, b, b_out = kept_pair()
    a.ctx.lsdb.merge(OrgInfo((fake(1),)))  # a change since the tables agreed
    a.on_timer(200.0)  # the probe: a new connection, replacing the kept one
    replaced = a_out.take()
    assert [(c.conn, c.reason) for c in replaced if isinstance(c, ev.Close)] == [(1, "kept session replaced")]
    assert [(c.peer, c.tag) for c in replaced if isinstance(c, ev.Connect)] == [("BR-1", HB)] and not a.owns(1)
    a.on_connected(3, HB, 200.0)
    b.on_inbound(4, 200.0)
    b.flush(4, 200.0)
    to_b: list[bytes] = []
    for _ in range(6):  # the greeting, EHLO, AUTH: then the opening
        for send in b_out.taken(ev.Send):
            for event in a.receive(3, send.data):  # type: ignore[attr-defined]
                a.on_session_event(3, event, 200.0)
            a.flush(3, 200.0)
        sent = [s.data for s in a_out.taken(ev.Send)]  # type: ignore[attr-defined]
        to_b += sent
        for data in sent:
            b.receive(4, data)
            b.flush(4, 200.0)
    assert any(line.startswith(b"X-LINK2STATE PUSH=") for line in b"".join(to_b).split(b"\r\n")), to_b


def test_outbound_sessions_take_the_chunk_size_and_count_the_bytes_they_receive() -> None:
    topo = failover(exchange="delta", chunk_raw_bytes=200, max_table_bytes=128 * 1024, max_output_bytes=256 * 1024,
                    max_unknown_bytes=32 * 1024)  # fmt: skip
    a, a_out = bridgehead(topo)
    b, b_out = bridgehead(topo, me="BR-1")
    a.on_timer(0.0)
    a.on_connected(1, HB, 0.0)
    session = a.smtp[1].session
    assert session.chunk_raw_bytes == 200
    assert session._reassembler.limits.max_frame == 128 * 1024  # type: ignore[union-attr]  # what it may reassemble
    b.on_inbound(2, 0.0)
    b.flush(2, 0.0)
    received = 0
    while sends := b_out.taken(ev.Send):
        for send in sends:
            received += len(send.data)  # type: ignore[attr-defined]
            for event in a.receive(1, send.data):  # type: ignore[attr-defined]
                a.on_session_event(1, event, 1.0)
            a.flush(1, 1.0)
        for send in a_out.taken(ev.Send):
            b.receive(2, send.data)  # type: ignore[attr-defined]
            b.flush(2, 1.0)
    assert received > 100 and a.counters.bytes_in == received


def test_a_finished_session_is_closed_as_over_and_every_byte_sent_is_counted() -> None:
    topo = failover(exchange="full")
    a, a_out, b, b_out = opened(topo)
    sent, closes = 0, []
    while True:
        for send in b_out.taken(ev.Send):
            for event in a.receive(1, send.data):  # type: ignore[attr-defined]
                a.on_session_event(1, event, 1.0)
            a.flush(1, 1.0)
        outputs = a_out.take()
        closes += [(o.conn, o.reason) for o in outputs if isinstance(o, ev.Close)]
        to_b = [o.data for o in outputs if isinstance(o, ev.Send)]
        if not to_b:
            break
        sent += sum(map(len, to_b))
        for data in to_b:
            b.receive(2, data)
            b.flush(2, 1.0)
    assert closes == [(1, "SMTP session over")] and not a.owns(1)
    assert sent > 100 and a.counters.bytes_out == sent


def test_forcing_or_stopping_the_listener_again_reports_nothing_new() -> None:
    bh, out = bridgehead()
    assert bh.force(INTERNET, NOT_AVAILABLE, 0.0)
    bh.listener(False, 0.0)
    out.take_facts()
    assert bh.force(INTERNET, NOT_AVAILABLE, 2 * PROBE)  # the same state, a probe interval later
    bh.listener(False, 3 * PROBE)
    assert out.take_facts() == []


def test_a_change_reaches_every_remote_link_even_after_a_link_that_probes_a_smart_host() -> None:
    smart = '''[[connectors]]
name = "Hub-Relay"
type = "smtp"
routing_group = "Hub"
cost = 1
source_bridgeheads = ["HUB-A"]
smart_host = "[127.0.0.1]:2525"
address_spaces = [{ type = "SMTP", address = "relay.example", cost = 1 }]

'''
    text = FAILOVER.read_text().replace("[[connectors]]\n", smart + "[[connectors]]\n", 1)  # listed first
    bh, out = bridgehead(parse_topology(text, "relay-first.toml"))
    assert next(link.target for link in bh.links.values()) is Target.SMART_HOST
    bh.trigger(1.0, ev.ChangeKind.MINOR)  # nothing to tell a smart host: Hub-Branch still goes
    assert connects(out) == [("BR-1", HB)]


def test_the_next_deadline_is_the_probe_when_it_comes_before_the_keepalive() -> None:
    """Probe interval = half the command timeout: the probe (30 s after the session started) is due before the
    kept session's keepalive (30 s after it ended)."""
    topo = failover(exchange="delta", bh_probe_interval=30, smtp_command_timeout=60)
    a, a_out, b, b_out = opened(topo)
    shuttle(a, a_out, b, b_out, 1.0)
    assert a.links[HB].kept == 1 and a.next_deadline() == 30.0


def test_a_probe_after_a_stop_finds_no_kept_session_to_close() -> None:
    a, a_out, _, _ = kept_pair()
    a.stop()
    a_out.take()
    a.on_timer(200.0)  # the probe is due (and the keepalive): the kept session went with the stop
    assert [type(o) for o in a_out.take()] == [ev.Connect]


MASTERS_OWN = '''
[[connectors]]
name = "Hub-Branch-Any"
type = "routing_group"
routing_group = "Hub"
connected_routing_group = "Branch"
cost = 3
remote_bridgeheads = ["BR-1"]
'''


def link_names(bh: Bridgehead) -> set[str]:
    return {link.connector.name for link in bh.links.values()}


def test_a_connector_without_source_bridgeheads_is_the_masters_and_only_its() -> None:
    topo = failover(MASTERS_OWN)
    master = Bridgehead(context(topo, "HUB-M"), RecordingOutbox(context(topo, "HUB-M")), 0.0, is_master=True)
    assert link_names(master) == {"Hub-Branch-Any"}  # not the connectors that name their bridgeheads
    member, _ = bridgehead(topo)  # HUB-A, a member
    assert link_names(member) == {"Hub-Branch", "Hub-Internet"}
    member.configure(50.0, is_master=True)  # HUB-A becomes the master: it takes the connector over, probing at once
    assert link_names(member) == {"Hub-Branch", "Hub-Internet", "Hub-Branch-Any"}
    any_link = next(link for link in member.links.values() if link.connector.name == "Hub-Branch-Any")
    assert any_link.next_probe == 50.0 and any_link.starting_until == 50.0 + SETTLE


def test_a_reload_keeps_the_kept_session_of_a_link_that_stays_and_closes_one_that_goes() -> None:
    a, a_out, _, _ = kept_pair()
    a.configure(5.0, is_master=False)  # the same directory again
    assert a.links[HB].kept == 1 and a.owns(1) and a_out.taken(ev.Close) == []
    text = FAILOVER.read_text()
    start = text.index('[[connectors]]\nname = "Hub-Branch"\n')
    gone = text[:start] + text[text.index("[[connectors]]", start + 1):]  # Hub-Branch left the directory
    a.ctx.topology = parse_topology(gone.replace("[settings]\n", "[settings]\nexchange = \"delta\"\n"), "gone.toml")
    a.configure(6.0, is_master=False)
    assert HB not in a.links and not a.owns(1)
    assert [(c.conn, c.reason) for c in a_out.taken(ev.Close)] == [(1, "kept session replaced")]  # type: ignore[attr-defined]
