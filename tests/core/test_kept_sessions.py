"""The bridgehead's kept sessions and pushes (docs/PROTOCOL.md §3.11, §4) on the pure network, and NodeCore's cached
next_deadline (issue 13, items 1 and 2)."""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.core.catalog import Ev
from linkstate.sim.network import SimNetwork
from tests.core.test_exchange_modes import DOWN, started, with_exchange
from tests.core.test_organization import seattle


def delta_net(**settings: object) -> SimNetwork:
    return started(with_exchange(seattle(), "delta", state_delay=60, **settings), seconds=90)


def outputs(net: SimNetwork) -> list[tuple[str, ev.Output]]:
    out: list[tuple[str, ev.Output]] = []
    net.on_output = lambda name, o: out.append((name, o))
    return out


def smtp_connects(out: list[tuple[str, ev.Output]]) -> list[ev.Connect]:
    return [o for _, o in out if type(o) is ev.Connect and o.proto is ev.Proto.SMTP]


def london_brussels(net: SimNetwork) -> str:
    return next(c.guid for c in net.topology.connectors if c.name == "London-Brussels")


def test_a_change_goes_out_on_the_kept_sessions_pushed_first() -> None:
    net = delta_net()
    assert all(link.kept is not None for core in net.nodes.values() for link in core.bridgehead.links.values()
               if link.remotes)  # fmt: skip
    out = outputs(net)
    net.inject("LON-BH1", ev.FaultInjected(london_brussels(net), DOWN))
    net.run_for(59.9)  # the state delay: nothing committed yet, no probe due (they ran at 60 and 90... s)
    mark = len(out)
    net.run_for(1.0)  # the commit, and the change crossing the organization
    assert net.converged(), net.digests()
    after = out[mark:]
    assert not smtp_connects(after)  # every exchange went out on a kept session
    pushes = [o.data for _, o in after if type(o) is ev.Send and o.data.startswith(b"X-LINK2STATE PUSH=")]
    assert pushes  # and, the links having agreed before, as a push


def test_a_probe_opens_a_new_connection_and_replaces_the_kept_session() -> None:
    net = delta_net()
    link = next(iter(net.nodes["SEA-BH1"].bridgehead.links.values()))
    kept = link.kept
    out = outputs(net)
    net.run_for(net.topology.settings.bh_probe_interval + 1)
    assert smtp_connects(out)
    assert link.kept is not None and link.kept != kept
    assert not [d for _, _, d in net.diagnostics if d.event == Ev.BRIDGEHEAD_SESSION_FAILED and _ > 90]


def test_a_kept_session_lost_with_its_peer_is_no_failure_and_the_next_change_connects_again() -> None:
    net = delta_net()
    before = len(net.diagnostics)
    net.stop("BRU-BH1")
    net.run_for(1)
    net.start("BRU-BH1")
    net.run_for(20)
    failed = [d for _, n, d in net.diagnostics[before:] if d.event == Ev.BRIDGEHEAD_SESSION_FAILED and n != "BRU-BH1"]
    assert not failed  # the kept sessions to BRU-BH1 closed while idle: nothing failed
    out = outputs(net)
    net.inject("LON-BH1", ev.FaultInjected(london_brussels(net), DOWN))
    net.run_for(61)
    assert net.converged(), net.digests()
    assert any(o.peer == "BRU-BH1" for o in smtp_connects(out))


def test_kept_sessions_get_a_noop_unless_the_next_probe_surely_comes_before_the_servers_timeout() -> None:
    """smtp_command_timeout is 60 s: a probe every 20 s replaces a kept session long before the server would close
    it; a probe every 60 s (the defaults) may come just after, so kept sessions get a NOOP every 30 s."""
    for probe, noops in ((20.0, False), (60.0, True), (200.0, True)):
        net = started(with_exchange(seattle(), "delta", state_delay=60, bh_probe_interval=probe), seconds=90)
        out = outputs(net)
        net.run_for(100)
        sent = [o.data for _, o in out if type(o) is ev.Send and o.data == b"NOOP\r\n"]
        assert bool(sent) is noops, probe
        assert net.converged()


def test_the_cached_deadline_is_always_the_computed_one() -> None:
    """NodeCore keeps next_deadline() while inputs only move bytes; after every input of a busy run it equals a
    fresh computation."""
    net = SimNetwork(with_exchange(seattle(), "delta", state_delay=30), seed=3)
    checked = [0]
    arm = net._arm_timer

    def checking(name: str) -> None:
        core = net.nodes.get(name)
        if core is not None:
            assert core.next_deadline() == core._compute_deadline(), name
            checked[0] += 1
        arm(name)

    net._arm_timer = checking  # type: ignore[method-assign]
    net.start_all()
    net.run_for(90)
    net.inject("LON-BH1", ev.FaultInjected(london_brussels(net), DOWN))
    net.stop("TOK-S2")
    net.run_for(200)
    net.start("TOK-S2")
    net.partition("SEA-BH1", "LON-BH1")
    net.run_for(200)
    assert checked[0] > 1000
