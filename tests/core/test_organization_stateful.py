"""Hypothesis stateful test over the pure network of four groups: connector flaps, partitions and heals.

Once quiet (faults cleared, partitions healed, longer than the state delay and a few probe intervals), every
server holds one digest, and each server's route answers equal an offline route query on the final state.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from linkstate.core import events as ev
from linkstate.core.directory import build_orginfo
from linkstate.core.routing import Router
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState
from tests.core.test_organization import seattle

TOPO = seattle()
SERVERS = tuple(s.name for s in TOPO.servers)
LINKS = tuple(
    (c.guid, c.source_bridgeheads[0]) for c in TOPO.connectors if c.connected_routing_group and c.source_bridgeheads
)
PAIRS = [("SEA-S2", "BRU-S2"), ("TOK-S2", "LON-S2"), ("BRU-BH1", "SEA-S2"), ("LON-S2", "TOK-BH1")]


class OrganizationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = SimNetwork(TOPO, seed=7)
        self.net.start_all()
        self.net.run_for(30)
        self.forced: set[tuple[str, str]] = set()

    @rule(
        link=st.sampled_from(LINKS),
        state=st.sampled_from([BridgeheadState.CONN_NOT_AVAILABLE, BridgeheadState.CONN_NOT_STARTED]),
    )
    def fail(self, link: tuple[str, str], state: BridgeheadState) -> None:
        connector, server = link
        self.net.inject(server, ev.FaultInjected(connector, state))
        self.forced.add(link)

    @rule(link=st.sampled_from(LINKS))
    def recover(self, link: tuple[str, str]) -> None:
        connector, server = link
        self.net.inject(server, ev.FaultInjected(connector, None))
        self.forced.discard(link)

    @rule(a=st.sampled_from(SERVERS), b=st.sampled_from(SERVERS))
    def partition(self, a: str, b: str) -> None:
        if a != b:
            self.net.partition(a, b)

    @rule()
    def heal_all(self) -> None:
        for pair in list(self.net.partitions):
            a, b = sorted(pair)
            self.net.heal(a, b)

    @rule(seconds=st.sampled_from([1, 30, 200, 700]))
    def run(self, seconds: float) -> None:
        self.net.run_for(seconds)

    def teardown(self) -> None:
        self.heal_all()
        for connector, server in sorted(self.forced):
            self.net.inject(server, ev.FaultInjected(connector, None))
        self.net.run_for(3000)
        assert self.net.converged(), self.net.digests()
        final = build_orginfo(TOPO)
        router = Router(TOPO)
        for src, dst in PAIRS:
            live = router.route(self.net.nodes[src].lsdb, src, to_server=dst)
            offline = router.route(final, src, to_server=dst)
            assert (live.status, live.cost, live.path) == (offline.status, offline.cost, offline.path), (src, dst)


OrganizationMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=15, deadline=None)
TestOrganization = OrganizationMachine.TestCase
