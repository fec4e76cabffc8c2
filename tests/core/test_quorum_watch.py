"""linkstate.core.quorum: a master's quorum watch through its own API (QuorumWatch, with a real NodeContext and
Outbox), and on the simulated network two masters that both lack quorum (neither may outvote the other).

Exact outcomes: which servers a probe connects to and when, which connections close and why, what the
`quorum_probe_answered` event says, and which answer makes the master follow whom (seed L6384, R80, G28).
"""

from __future__ import annotations

from linkstate.core import events as ev
from linkstate.core.catalog import Ev
from linkstate.core.context import Outbox
from linkstate.core.quorum import QuorumWatch
from linkstate.core.role import RoleName
from linkstate.core.topology import parse_topology
from linkstate.sim.network import SimNetwork
from proto import rg691
from tests.core.failure_helpers import events
from tests.core.group_fixtures import ONE_GROUP, one_group
from tests.core.role_helpers import context
from tests.core.test_quorum import stale_group

TOPO = one_group()  # Redmond: RED-1 (its master), RED-2, RED-3; master_settle 60 s
GRACE = 60.0
RG = TOPO.routing_group("Redmond").guid
RED1, RED2, RED3 = (TOPO.server(n).guid for n in ("RED-1", "RED-2", "RED-3"))


def watch(*, quorum: bool, now: float = 10.0, me: str = "RED-2") -> tuple[QuorumWatch, Outbox]:
    ctx = context(TOPO, me)
    out = Outbox(ctx)
    return QuorumWatch(ctx, out, now, quorum=quorum), out


def answer(node: str, *, role: RoleName = RoleName.MASTER, master: str | None = None, quorum: bool = True,
           group: str = RG) -> rg691.Dump:  # fmt: skip
    return rg691.Dump(True, node, group, role.value, node if master is None else master, True, quorum)


def closes(out: Outbox) -> list[tuple[int | None, str]]:
    return [(o.conn, o.reason) for o in out.take() if isinstance(o, ev.Close)]


def test_a_master_with_quorum_never_probes() -> None:
    w, out = watch(quorum=True)
    assert w.next_deadline() is None and w.lacking_since is None
    w.on_timer(10_000, set())
    assert out.take() == []


def test_lacking_quorum_probes_every_unattached_server_once_per_grace_period() -> None:
    w, out = watch(quorum=False, now=10, me="RED-1")
    assert w.next_deadline() == 10 + GRACE
    w.on_timer(10 + GRACE - 0.5, set())
    assert out.take() == []
    w.on_timer(10 + GRACE, {RED3})  # RED-3 is attached: only RED-2 is probed, never the master itself
    assert [(o.peer, o.proto) for o in out.take() if isinstance(o, ev.Connect)] == [("RED-2", ev.Proto.RG691)]
    assert w.next_deadline() == 10 + 2 * GRACE
    w.on_timer(10 + 1.5 * GRACE, set())
    assert out.take() == []


def test_quorum_regained_closes_every_open_probe_and_stops_the_clock() -> None:
    w, out = watch(quorum=False)
    w.on_timer(10 + GRACE, set())
    out.take()
    w.opened(5)
    w.opened(6)
    w.lost(6)  # that one is gone already: nothing to close
    w.update(True, 80)
    assert closes(out) == [(5, "quorum regained")]
    assert w.next_deadline() is None and w.lacking_since is None
    w.update(False, 90)  # a new streak starts its own grace period
    assert (w.lacking_since, w.next_deadline()) == (90, 90 + GRACE)


def test_the_clock_runs_from_the_first_moment_without_quorum() -> None:
    w, _ = watch(quorum=False, now=10)
    w.update(False, 40)
    assert (w.lacking_since, w.next_deadline()) == (10, 10 + GRACE)


def test_close_ends_the_watch() -> None:
    w, out = watch(quorum=False)
    w.opened(5)
    w.close()
    assert closes(out) == [(5, "quorum regained")] and w.next_deadline() is None
    w.on_timer(10_000, set())
    assert out.take() == []


def test_a_rival_with_quorum_outvotes_after_the_grace_period() -> None:
    w, out = watch(quorum=False)
    w.opened(5)
    assert w.answered(5, answer(RED1), 10 + GRACE + 0.1) == RED1
    outputs = out.take()
    assert [(o.conn, o.reason) for o in outputs if isinstance(o, ev.Close)] == [(5, "quorum probe answered")]
    (diag,) = [o for o in outputs if isinstance(o, ev.Diagnostic)]
    assert diag.event == Ev.QUORUM_PROBE_ANSWERED
    assert diag.fields == {"server": "RED-1", "role": "master", "master": "RED-1", "quorum": True}
    assert w.answered(5, answer(RED1), 10 + GRACE + 0.2) is None  # answered once: no longer a probe
    w.update(True, 200)
    assert closes(out) == []  # nothing left open


def test_a_rival_outvotes_only_once_the_grace_period_is_over() -> None:
    early, _ = watch(quorum=False, now=10)
    early.opened(5)
    assert early.answered(5, answer(RED1), 10 + GRACE - 1) is None  # lacking quorum for less than the grace period
    exact, _ = watch(quorum=False, now=10)
    exact.opened(5)
    assert exact.answered(5, answer(RED1), 10 + GRACE) == RED1  # the grace period is over at its last instant
    regained, _ = watch(quorum=False, now=10)
    regained.update(True, 20)
    regained.opened(5)
    assert regained.answered(5, answer(RED1), 10 + GRACE + 1) is None  # with quorum, never outvoted


def test_an_answer_on_a_connection_that_is_not_a_probe_is_ignored() -> None:
    w, out = watch(quorum=False)
    assert w.answered(7, answer(RED1), 10 + GRACE + 1) is None
    assert out.take() == []


def test_only_a_master_of_this_group_with_quorum_outvotes() -> None:
    later = 10 + GRACE + 1
    not_rivals = {
        "master without quorum": answer(RED1, quorum=False),
        "member": answer(RED3, role=RoleName.MEMBER, master=RED1),
        "member that names itself": answer(RED3, role=RoleName.MEMBER),
        "follower of another": answer(RED3, master=RED1),
        "master of another group": answer(RED1, group="f" * 32),
        "a server that names this one master": answer(RED2, master=RED2),
    }
    for why, dump in not_rivals.items():
        w, out = watch(quorum=False)
        w.opened(5)
        assert w.answered(5, dump, later) is None, why
        assert closes(out) == [(5, "quorum probe answered")], why


def test_two_masters_without_quorum_never_outvote_each_other() -> None:
    """RED-3 is down: RED-1 (the directory's master) and RED-2 (a stale copy names it master) each have 1 of 3.
    They probe each other every grace period and each hears a master without quorum: both stay masters."""
    net = SimNetwork(one_group())
    net.start("RED-1")
    net.start("RED-2", stale_group())
    net.run_for(5 * GRACE + 30)
    for name in ("RED-1", "RED-2"):
        view = net.nodes[name].view()
        assert (view.is_master, view.quorum) == (True, False), name
    assert events(net, "master_relinquished") == []
    heard = {(n, f["server"], f["role"], f["master"], f["quorum"])
             for n in ("RED-1", "RED-2") for f in events(net, "quorum_probe_answered", n)}  # fmt: skip
    assert heard == {("RED-1", "RED-2", "master", "RED-2", False), ("RED-2", "RED-1", "master", "RED-1", False)}
    net.start("RED-3")  # RED-3's directory names RED-1: it attaches there, RED-1 has quorum and outvotes RED-2
    net.run_for(2 * GRACE + 5)
    assert net.nodes["RED-2"].view().master == "RED-1" and net.nodes["RED-2"].view().attached
    assert [(f["new_master"], f["reason"]) for f in events(net, "master_relinquished", "RED-2")] == [
        ("RED-1", "it has the acknowledgement of 2 of 3 servers; this server lacked quorum 60 s")
    ]


def test_the_outvoted_reason_counts_the_quorum_of_a_four_server_group() -> None:
    four = ONE_GROUP.format(cost=1) + '\n[[servers]]\nname = "RED-4"\nrouting_group = "Redmond"\n'
    net = SimNetwork(parse_topology(four, "four.toml"))
    for name in ("RED-1", "RED-3", "RED-4"):
        net.start(name)
    net.start("RED-2", parse_topology(four.replace('master = "RED-1"', 'master = "RED-2"'), "stale.toml"))
    net.run_for(2 * GRACE + 5)
    assert [(f["new_master"], f["reason"]) for f in events(net, "master_relinquished", "RED-2")] == [
        ("RED-1", "it has the acknowledgement of 3 of 4 servers; this server lacked quorum 60 s")
    ]
