"""What a routing group's master knows of its group's connectors (requirements R46–R51, R57, R117–R121; G40–G42).

Owns: `GroupStates`: which source bridgeheads are live (the master itself, and each attached member), the latest
state each live bridgehead reported for each connector it is a source of, the states derived from both, the
oscillation window every derived change goes through (linkstate.core.dampening), and the committed states the
master publishes.
Rules (docs/PROTOCOL.md §4, "Connector state"):
  - a source bridgehead is *available* for a connector when it is live and its latest report for that connector
    is CONN_AVAIL (no report yet counts as available); a bridgehead whose server detaches is not available for
    any connector it is a source of, and what it reported before is forgotten;
  - a connector with explicit source bridgeheads is DOWN when none of them is available, UP otherwise (R46, R47,
    seed L1828); the kinds never marked down are always UP, their bridgeheads' states still published (R48, R50,
    G40: "any local server" connectors, DNS-routed SMTP, legacy/EDK); a connector with no alternate path is
    pinned: nothing about it is published (G42, R121);
  - a derived change is a report to the dampener like any other (state delay, oscillation window); the committed
    state is what the master publishes.
Invariants: pure (no clock: `now` is an argument); only this object changes the committed states; every change
of a committed state is returned to the caller as a `Commit` (a minor update to publish).
May import: the standard library, proto, linkstate.core (never node.py or a role).
"""

from __future__ import annotations

from dataclasses import dataclass

from linkstate.core.context import NodeContext
from linkstate.core.dampening import Commit, Dampener, OscillationSuppressed
from linkstate.core.directory import never_down
from linkstate.core.routing import connector_pinned
from linkstate.core.topology import ConnectorSpec
from proto.model import BridgeheadState, ConnectorState

AVAIL = BridgeheadState.CONN_AVAIL
NOT_AVAILABLE = BridgeheadState.CONN_NOT_AVAILABLE


class GroupStates:
    """The master's view of its group's connectors and source bridgeheads (module docstring)."""

    def __init__(self, ctx: NodeContext, now: float) -> None:
        self.ctx = ctx
        self.live: set[str] = {ctx.me.vs_guid}  # VS GUIDs of the source bridgeheads that are running
        self.reports: dict[tuple[str, str], BridgeheadState] = {}  # latest (connector, vs) -> reported state
        self.conn_states: dict[str, ConnectorState] = {}  # committed connector -> state
        self.bh_states: dict[tuple[str, str], BridgeheadState] = {}  # published (connector, vs) -> state
        self._pinned_cache: tuple[str, dict[str, bool]] | None = None  # digest -> connector -> pinned?
        settings = ctx.settings
        self.dampener = Dampener(
            settings.scaled("state_delay"),
            compat_e2k=settings.compat_e2k,
            batch_interval=settings.scaled("poll_interval"),
            epoch=now,
        )

    # --- reading -----------------------------------------------------------------------------------------

    def sources(self, spec: ConnectorSpec) -> list[str]:
        """The VS GUIDs of a connector's explicit source bridgeheads (empty: any local server)."""
        topo = self.ctx.topology
        return [topo.bridgehead_of(name) for name in spec.source_bridgeheads]

    def effective(self, connector: str, vs: str) -> BridgeheadState:
        """A source bridgehead's state as the master sees it: not available when its server is not live."""
        if vs not in self.live:
            return NOT_AVAILABLE
        return self.reports.get((connector, vs), AVAIL)

    def derived(self, spec: ConnectorSpec) -> ConnectorState:
        """DOWN when no explicit source bridgehead is available; UP otherwise, and always for a kind of connector
        that is never marked down (R46–R50)."""
        vs_guids = self.sources(spec)
        if never_down(self.ctx.topology, spec):
            return ConnectorState.UP
        if not vs_guids or any(self.effective(spec.guid, vs) is AVAIL for vs in vs_guids):
            return ConnectorState.UP
        return ConnectorState.DOWN

    def sourced_by(self, vs: str) -> list[ConnectorSpec]:
        """The connectors of this group that list `vs`'s server as a source bridgehead."""
        ctx = self.ctx
        server = ctx.topology.server_by_guid(vs)
        if server is None:
            return []
        return [c for c in ctx.topology.connectors_from(ctx.rg.name) if server.name in c.source_bridgeheads]

    def pinned(self, connector: str) -> bool:
        """No alternate path between the connector's groups in the current table (G42, R121): it stays UP and
        nothing about it is published. Never with `compat_e2k` (G65)."""
        settings = self.ctx.settings
        if settings.compat_e2k:
            return False
        lsdb = self.ctx.lsdb
        if self._pinned_cache is None or self._pinned_cache[0] != lsdb.digest:
            self._pinned_cache = (lsdb.digest, {})
        known = self._pinned_cache[1]
        if connector not in known:  # one connector's search, not the whole table's (G42)
            known[connector] = connector_pinned(lsdb.snapshot(), connector, settings.leaf_rule)
        return known[connector]

    def next_deadline(self) -> float | None:
        return self.dampener.next_deadline()

    def diagnostics(self) -> list[OscillationSuppressed]:
        return self.dampener.diagnostics()

    # --- inputs ------------------------------------------------------------------------------------------

    def report(self, spec: ConnectorSpec, vs: str, state: BridgeheadState, now: float) -> list[Commit]:
        """A source bridgehead's report (its own, or a member's STATE)."""
        self.reports[(spec.guid, vs)] = state
        return self._rederive(spec, now)

    def attach(self, vs: str, now: float) -> list[Commit]:
        """A member whose server is `vs`'s came (back): its connectors may be available again."""
        if vs in self.live:
            return []
        self.live.add(vs)
        return self._rederive_all(vs, now)

    def detach(self, vs: str, now: float) -> list[Commit]:
        """A member left: not available for any connector it is a source of (item 1 of issue 10)."""
        if vs not in self.live:
            return []
        self.live.discard(vs)
        for key in [k for k in self.reports if k[1] == vs]:
            del self.reports[key]
        return self._rederive_all(vs, now)

    def on_timer(self, now: float) -> list[Commit]:
        return self.dampener.on_timer(now)

    def commit(self, commit: Commit) -> Committed:
        """Make a committed state the published one; what to log about it."""
        connector, _, vs = commit.connector_guid.partition("/")
        name = self.ctx.connector_name(connector)
        if not vs:
            self.conn_states[connector] = commit.state
            return Committed("connector_state_committed", name, "", commit.state.value, 4005)
        state = AVAIL if commit.state is ConnectorState.UP else self._unavailable(connector, vs)
        self.bh_states[(connector, vs)] = state
        return Committed("bridgehead_state_committed", name, self.ctx.server_name(vs), state.value)

    def describe(self, key: str) -> dict[str, object]:
        """The names in a dampener key: the connector's, and the bridgehead's for a bridgehead's key."""
        connector, _, vs = key.partition("/")
        named: dict[str, object] = {"connector": self.ctx.connector_name(connector)}
        if vs:
            named["bridgehead"] = self.ctx.server_name(vs)
        return named

    # --- derivation --------------------------------------------------------------------------------------

    def _unavailable(self, connector: str, vs: str) -> BridgeheadState:
        """How an unavailable bridgehead is published: as it reported (NOT_STARTED, NOT_AVAILABLE), or NOT_AVAILABLE
        when its server is gone."""
        state = self.effective(connector, vs)
        return NOT_AVAILABLE if state is AVAIL else state

    def _rederive_all(self, vs: str, now: float) -> list[Commit]:
        commits: list[Commit] = []
        for spec in self.sourced_by(vs):
            if not self.pinned(spec.guid):
                commits.extend(self._rederive(spec, now))
        return commits

    def _rederive(self, spec: ConnectorSpec, now: float) -> list[Commit]:
        """Every source bridgehead's state and the connector's, each through its own oscillation window (item 6 of
        issue 10: one bridgehead flapping is damped like a connector flapping)."""
        commits: list[Commit] = []
        dampener = self.dampener
        for vs in self.sources(spec):
            up = self.effective(spec.guid, vs) is AVAIL
            commits.extend(dampener.report(_key(spec.guid, vs), ConnectorState.UP if up else ConnectorState.DOWN, now))
        commits.extend(dampener.report(spec.guid, self.derived(spec), now))
        return commits


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed change, as the master logs it (`bridgehead` is "" for a connector's own state)."""

    event: str
    connector: str
    bridgehead: str
    state: str
    event_id: int | None = None

    def fields(self) -> dict[str, object]:
        named: dict[str, object] = {"connector": self.connector}
        if self.bridgehead:
            named["bridgehead"] = self.bridgehead
        return named | {"state": self.state}


def _key(connector: str, vs: str) -> str:
    """The dampener key of one source bridgehead of a connector (a connector's own key is its GUID)."""
    return f"{connector}/{vs}"
