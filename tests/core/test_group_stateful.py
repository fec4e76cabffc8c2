"""Hypothesis stateful test of one routing group on the pure core.

Random attach/detach (stop/start), service and bridgehead state changes, directory changes and master restarts.
Invariants: within a node's lifetime no section's version ever goes backwards; once the group is quiet and
every server runs, all digests are equal and every member is attached.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from linkstate.core import events as ev
from linkstate.sim.network import SimNetwork
from proto.model import BridgeheadState, Version
from tests.core.group_fixtures import one_group

SERVERS = ("RED-1", "RED-2", "RED-3")
BRIDGEHEADS = ("RED-1", "RED-2")


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.topo = one_group()
        self.net = SimNetwork(self.topo, seed=1)
        self.net.start_all()
        self.seen: dict[str, dict[str, Version]] = {name: {} for name in SERVERS}

    @rule(server=st.sampled_from(SERVERS))
    def stop(self, server: str) -> None:
        self.net.stop(server)
        self.seen[server] = {}

    @precondition(lambda self: len(self.net.nodes) < len(SERVERS))
    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        stopped = sorted(set(SERVERS) - set(self.net.nodes))
        server = data.draw(st.sampled_from(stopped))
        self.net.start(server, self.topo)

    @rule(server=st.sampled_from(SERVERS), bit=st.integers(0, 9))
    def service_change(self, server: str, bit: int) -> None:
        self.net.inject(server, ev.ServiceStatusChanged(f"07010000000001{bit:02x}"))

    @rule(server=st.sampled_from(BRIDGEHEADS), state=st.sampled_from(list(BridgeheadState)))
    def bridgehead(self, server: str, state: BridgeheadState) -> None:
        connector = self.topo.connector("Internet").guid
        self.net.inject(server, ev.BridgeheadObserved(connector, state))

    @rule(cost=st.integers(1, 5))
    def directory_change(self, cost: int) -> None:
        self.topo = one_group(cost=cost)
        self.net.topology = self.topo
        for name in list(self.net.nodes):
            self.net.inject(name, ev.TopologyChanged(self.topo))

    @rule(seconds=st.sampled_from([0.01, 0.5, 5, 90, 400]))
    def run(self, seconds: float) -> None:
        self.net.run_for(seconds)

    @invariant()
    def versions_never_go_backwards(self) -> None:
        for name, core in self.net.nodes.items():
            seen = self.seen[name]
            for guid in core.lsdb.guids():
                section = core.lsdb.section(guid)
                assert section is not None
                assert section.version >= seen.get(guid, Version()), (name, guid)
                seen[guid] = section.version

    def teardown(self) -> None:
        for server in SERVERS:
            if server not in self.net.nodes:
                self.net.start(server, self.topo)
        # quiet: longer than the settle period, the reconnect backoff cap and two polls
        self.net.run_for(1500)
        assert self.net.converged(), self.net.digests()
        assert all(self.net.nodes[s].view().attached for s in SERVERS)


GroupMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestGroup = GroupMachine.TestCase
