"""Full and delta exchange on the pure network (issue 13): the same tables and routes for the same events, mixed
organizations, the 691 delta (pushes, RESEND, a member bridgehead's forward), and the seed's bytes in full mode."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from linkstate.core import events as ev
from linkstate.core.topology import Topology, parse_topology
from linkstate.sim.network import SimNetwork
from proto import rg691
from proto.model import BridgeheadState
from tests.core.test_organization import route, seattle

DOWN = BridgeheadState.CONN_NOT_AVAILABLE
QUERIES = [("SEA-S2", "BRU-S2"), ("TOK-S2", "LON-S2"), ("BRU-BH1", "SEA-S2"), ("LON-S2", "TOK-BH1")]


def with_exchange(topo: Topology, exchange: str, **more: object) -> Topology:
    return replace(topo, settings=replace(topo.settings, exchange=exchange, **more))  # type: ignore[arg-type]


def started(topo: Topology, per_node: dict[str, Topology] | None = None, seconds: float = 60) -> SimNetwork:
    net = SimNetwork(topo, seed=5)
    for server in topo.servers:
        net.start(server.name, (per_node or {}).get(server.name))
    net.run_for(seconds)
    return net


def sent(net: SimNetwork) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    net.on_output = lambda name, o: out.append((name, o.data)) if type(o) is ev.Send else None
    return out


def fault_and_settle(net: SimNetwork, server: str = "LON-BH1", connector: str = "London-Brussels") -> None:
    spec = next(c for c in net.topology.connectors if c.name == connector)
    net.inject(server, ev.FaultInjected(spec.guid, DOWN))
    net.run_for(net.topology.settings.state_delay + 120)


# ------------------------------------------------------------------------------------------------ same tables


def test_full_delta_and_mixed_organizations_reach_the_same_table_and_routes() -> None:
    base = with_exchange(seattle(), "delta", state_delay=60)
    results = []
    for label in ("full", "delta", "mixed"):
        topo = with_exchange(base, "full" if label == "full" else "delta")
        full = with_exchange(base, "full")
        per_node = {s.name: full for i, s in enumerate(base.servers) if label == "mixed" and i % 3 == 0}
        net = started(topo, per_node)
        fault_and_settle(net)
        assert net.converged(), (label, net.digests())
        results.append((next(iter(net.digests().values())), [route(net, a, b) for a, b in QUERIES]))
    assert results[0] == results[1] == results[2]
    assert results[0][1][0][1] == 35  # Seattle to Brussels goes around London-Brussels: through Tokyo


def test_compat_nodes_in_a_delta_organization_converge_on_one_table() -> None:
    base = with_exchange(seattle(), "delta", state_delay=60)
    compat = with_exchange(base, "delta", compat_e2k=True)
    net = started(base, {"TOK-BH1": compat, "LON-S2": compat, "SEA-S2": with_exchange(base, "full")})
    fault_and_settle(net)
    assert net.converged(), net.digests()


def test_a_delta_node_speaks_the_seeds_exchange_to_a_full_peer() -> None:
    """Between a full node and a delta node nothing of the extensions appears on the wire but the EHLO keywords
    and the unanswered capability word; between two delta nodes the delta items do."""
    base = with_exchange(seattle(), "delta", state_delay=60)
    full = with_exchange(base, "full")
    net = SimNetwork(with_exchange(base, "delta"), seed=5)
    out = sent(net)
    for server in base.servers:
        net.start(server.name, full if server.name in ("LON-BH1", "LON-S2") else None)
    net.run_for(60)
    fault_and_settle(net)
    assert net.converged()
    london = {"LON-BH1", "LON-S2"}
    for name, data in out:
        if name in london:
            assert b"X-LINK2STATE DELTA=" not in data and b"X-LINK2STATE WINDOW=" not in data
            assert b"} DELTA " not in data and b" DELTA\r" not in data and not data.endswith(b" DELTA")
    assert any(b"X-LINK2STATE DELTA=" in d for n, d in out if n not in london)


# ------------------------------------------------------------------------------------------------ 691 delta


def test_a_master_pushes_only_what_changed_to_members_that_take_deltas() -> None:
    net = started(with_exchange(seattle(), "delta", state_delay=60))
    out = sent(net)
    fault_and_settle(net)
    frames = [d for n, d in out if n == "SEA-BH1" and d[:1] == b"{"]  # 691 (SMTP lines start with a word)
    pushes = [d for d in frames if b"} DELTA " in d or b"} ORGINFO " in d]
    assert pushes and all(b"} ORGINFO " not in d.split(b"} DELTA ")[0] for d in pushes)
    packet = len(net.nodes["SEA-BH1"].lsdb.frame())
    assert max(len(d) for d in pushes) < packet / 2


def test_a_member_that_misses_a_section_asks_for_the_whole_table() -> None:
    """A member holding what its master lacks (behind its back) answers a DELTA with RESEND; the whole table, then
    its own (REPLY FOLLOWS), settle it: everyone ends on one table."""
    net = started(with_exchange(seattle(), "delta", state_delay=60))
    member, donor = net.nodes["SEA-S2"], net.nodes["TOK-BH1"]
    tokyo = donor.lsdb.section(donor.rg.guid)
    assert tokyo is not None
    member.lsdb.put(replace(tokyo, version=tokyo.version.bump_user()))
    out = sent(net)
    fault_and_settle(net)
    assert any(n == "SEA-S2" and b" REPLY " in d[:20] and d.endswith(b" RESEND") for n, d in out)
    assert net.converged(), net.digests()


TWO_GROUPS = """
[organization]
name = "Fwd"
secret = "fwd-secret"

[settings]
poll_interval = 300
state_delay = 60
exchange = "{exchange}"

[[routing_groups]]
name = "A"
master = "A1"

[[routing_groups]]
name = "B"
master = "B1"

[[servers]]
name = "A1"
routing_group = "A"

[[servers]]
name = "A2"
routing_group = "A"

[[servers]]
name = "B1"
routing_group = "B"

[[connectors]]
name = "A-B"
type = "routing_group"
routing_group = "A"
connected_routing_group = "B"
cost = 1
source_bridgeheads = ["A2"]
remote_bridgeheads = ["B1"]

[[connectors]]
name = "B-A"
type = "routing_group"
routing_group = "B"
connected_routing_group = "A"
cost = 1
source_bridgeheads = ["B1"]
remote_bridgeheads = ["A2"]
"""


@pytest.mark.parametrize("exchange", ["delta", "full"])
def test_a_member_bridgehead_forwards_what_it_learned(exchange: str) -> None:
    """B's change reaches A's member bridgehead over SMTP; it forwards only what it learned (delta) or its whole
    table (full), and A's master fans it out."""
    net = started(parse_topology(TWO_GROUPS.format(exchange=exchange), "two-groups.toml"), seconds=120)
    assert net.converged()
    out = sent(net)
    net.inject("B1", ev.ServiceStatusChanged("0701000000000102"))
    net.run_for(200)
    assert net.converged(), net.digests()
    stream = b"".join(d for n, d in out if n == "A2" and d[:1] == b"{")  # what A2 wrote on 691, in order
    forwards = stream.split(b" FOLLOWS")[1:]  # each starts with the frame that follows REPLY ... FOLLOWS
    assert forwards
    for after in forwards:
        assert after[11:16] == (b"DELTA" if exchange == "delta" else b"ORGIN")


def test_capability_words_decode_everywhere_delta_frames_only_with_the_extensions() -> None:
    attach = rg691.encode_message(rg691.Attach("1" * 32, "2" * 32, "3" * 32, "4" * 32, 1, 0, 0, "5" * 32,
                                               caps=(rg691.CAP_DELTA,)))  # fmt: skip
    assert rg691.decode_frame(attach).caps == (rg691.CAP_DELTA,)  # type: ignore[union-attr]
    later = rg691.frame("ATTACH", attach[18:] + b" FUTURE-THING")
    assert rg691.decode_frame(later).caps == (rg691.CAP_DELTA,)  # type: ignore[union-attr]
    resend = rg691.encode_message(rg691.Reply("6" * 32, False, resend=True))
    delta = rg691.delta_frame("7" * 32, b"{0000002b} ORGINFO 7215ee9c7d9dc229d2921a40e899ec5f  ")
    for raw in (resend, delta):
        with pytest.raises(rg691.DecodeError):
            rg691.decode_frame(raw)
    assert rg691.decode_frame(resend, extensions=True) == rg691.Reply("6" * 32, False, resend=True)
    decoded = rg691.decode_frame(delta, extensions=True)
    assert isinstance(decoded, rg691.Delta) and decoded.target == "7" * 32
    assert decoded.decoded.orginfo.routing_groups == ()


# ------------------------------------------------------------------------------------------------ the same events


class ModesMachine(RuleBasedStateMachine):
    """The same events on two copies of the seed's organization, one full, one delta: once quiet, each holds one
    table, the same one, and every server answers the same routes."""

    def __init__(self) -> None:
        super().__init__()
        base = with_exchange(seattle(), "delta", state_delay=30)
        self.nets = [started(with_exchange(base, mode), seconds=30) for mode in ("full", "delta")]
        self.links = sorted((c.guid, c.source_bridgeheads[0]) for c in base.connectors if c.source_bridgeheads)
        self.forced: set[tuple[str, str]] = set()
        self.stopped: set[str] = set()

    def _each(self, act: object) -> None:
        for net in self.nets:
            act(net)  # type: ignore[operator]

    @rule(i=st.integers(0, 7), down=st.booleans())
    def fault(self, i: int, down: bool) -> None:
        connector, server = self.links[i % len(self.links)]
        if server in self.stopped:
            return
        self._each(lambda net: net.inject(server, ev.FaultInjected(connector, DOWN if down else None)))
        (self.forced.add if down else self.forced.discard)((connector, server))

    @rule(server=st.sampled_from(["SEA-S2", "LON-S2", "TOK-S2", "BRU-BH1"]))
    def restart(self, server: str) -> None:
        self._each(lambda net: net.stop(server))
        self._each(lambda net: net.run_for(5))
        self._each(lambda net: net.start(server))
        self.forced = {(c, s) for c, s in self.forced if s != server}

    @rule(seconds=st.sampled_from([1, 20, 90]))
    def run(self, seconds: float) -> None:
        self._each(lambda net: net.run_for(seconds))

    def teardown(self) -> None:
        self._each(lambda net: net.run_for(400))
        full, delta = self.nets
        assert full.converged() and delta.converged(), (full.digests(), delta.digests())
        assert full.digests() == delta.digests()
        for a, b in QUERIES:
            assert route(full, a, b) == route(delta, a, b)


ModesMachine.TestCase.settings = settings(max_examples=6, stateful_step_count=6, deadline=None)
TestModes = ModesMachine.TestCase
