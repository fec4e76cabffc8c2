"""The plan of one scenario: what every transport needs to know, computed once from the generated organization.

Owns: `Plan` (topology, origin group and master, servers, neighbours, depth, minor-update candidates, the member a
user update restarts), the variants after a major update or re-centred on another bridgehead, `minor_connector`,
and `NotApplicable` (an event that cannot happen on this organization: reported, not an error).
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from linkstate.bench.convergence.organizations import (
    connector_data,
    distances,
    group_name,
    org_data,
    server_name,
    topology_of,
)
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.routing import pinned_connectors
from linkstate.core.topology import Topology
from proto.model import BridgeheadState

DOWN = BridgeheadState.CONN_NOT_AVAILABLE  # what a minor update forces on a bridgehead


@dataclass
class Plan:
    """What every transport needs to know about a scenario, computed once from the generated organization."""

    data: dict[str, Any]
    topology: Topology
    origin_group: str
    origin: str  # the origin group's master (and bridgehead)
    servers: list[str]
    neighbours: set[str]  # bridgeheads one group hop from the origin
    depth: int
    candidates: list[str]  # connectors of the origin side usable for a minor update (not pinned), GUIDs
    member: str | None  # the member restarted by a user update

    def major_topology(self, k: int) -> tuple[dict[str, Any], Topology]:
        """The organization with k+1 extra connectors from the origin group (a major update per run)."""
        data = json.loads(json.dumps(self.data))
        groups = len(data["routing_groups"])
        far = max(range(groups), key=lambda i: (distances(self.data, self.origin_group).get(group_name(i), 0), -i))
        for n in range(k + 1):
            dst = far if groups > 1 else 0
            data["connectors"].append(connector_data(0, dst, 1 + (n * 7) % 100, name=f"bench-major-{n}"))
        return data, topology_of(data)


def make_plan(shape: str, groups: int, servers: int, seed: int, settings: dict[str, Any]) -> Plan:
    data = org_data(shape, groups, servers, seed, settings)
    topo = topology_of(data)
    origin_group = group_name(0)
    dist = distances(data, origin_group)
    depth = max(dist.values()) if dist else 0
    neighbours = {server_name(int(g[1:]), 0) for g, d in dist.items() if d == 1}

    pinned = pinned_connectors(LinkStateDB.from_topology(topo).snapshot(), topo.settings.leaf_rule)
    # prefer the origin's own connectors, then the nearest group's: the change starts as close to group 0 as it can
    order = sorted(topo.connectors, key=lambda c: (dist.get(c.routing_group, 1 << 30), c.name))
    candidates = [c.guid for c in order if c.connected_routing_group and c.guid not in pinned]
    member = server_name(0, 1) if servers > 1 else None
    return Plan(data, topo, origin_group, server_name(0, 0), [s.name for s in topo.servers], neighbours, depth,
                candidates, member)  # fmt: skip


def minor_connector(plan: Plan) -> tuple[str, str]:
    """(connector GUID, its source bridgehead) for a minor update, or raise why there is none."""
    if not plan.candidates:
        raise NotApplicable(
            "every connector is pinned (no alternate path, R121/G42): a connector going down publishes no minor "
            "update on this shape; use ring, grid or random"
        )
    guid = plan.candidates[0]
    spec = plan.topology.connector_by_guid(guid)
    assert spec is not None
    return guid, spec.source_bridgeheads[0]


def after_major(plan: Plan, data: dict[str, Any], topo: Topology) -> Plan:
    """The plan measured against the new organization (the added connector shortens the way from the origin)."""
    dist = distances(data, plan.origin_group)
    neighbours = {server_name(int(g[1:]), 0) for g, d in dist.items() if d == 1}
    return replace(plan, data=data, topology=topo, neighbours=neighbours, depth=max(dist.values()))


def origin_of(plan: Plan, bridgehead: str) -> Plan:
    """The plan re-centred on the group whose bridgehead reports the minor update."""
    group = plan.topology.server(bridgehead).routing_group
    if group == plan.origin_group:
        return plan
    dist = distances(plan.data, group)
    neighbours = {server_name(int(g[1:]), 0) for g, d in dist.items() if d == 1}
    return replace(plan, origin_group=group, origin=bridgehead, neighbours=neighbours, depth=max(dist.values()))


class NotApplicable(Exception):
    """The event cannot happen on this organization (reported, not an error)."""


class ScenarioFailed(RuntimeError):
    """A scenario could not be measured (the organization did not converge at start, a node process died): its row
    says why, and the other scenarios of the run go on."""
