"""What a routing group's master knows of its group's connectors (requirements R46–R51, R57, R117–R121, R130;
G40–G42).

Owns: `GroupStates`: which source bridgeheads are live (the master itself, and each attached member), the latest
state each live bridgehead reported for each connector it is a source of, the states derived from both, the
oscillation windows every derived change goes through (linkstate.core.dampening), and the committed states the
master publishes.
Rules (docs/PROTOCOL.md §4, "Connector state"):
  - a source bridgehead is *available* for a connector when it is live and its latest report for that connector
    is CONN_AVAIL; a bridgehead whose server detaches is not available for any connector it is a source of, and
    what it reported before is forgotten. A live bridgehead that has not reported is *unknown* — unless no report
    can come (the connector has nothing to probe, or the server has `suppress_state_changes`): then available;
  - a connector with explicit source bridgeheads is DOWN when none of them is available, UP when one is, unchanged
    while the rest are unknown (R46, R47, seed L1828); the kinds never marked down are always UP, their
    bridgeheads' states still published (R48, R50, G40: "any local server" connectors, DNS-routed SMTP,
    legacy/EDK, and for one state delay a connector whose smart host the directory just changed, L6457); a
    connector with no alternate path is pinned: nothing about it is published (G42, R121);
  - nothing is committed before the master's first publication after a start: it then *rebuilds* (R130,
    DECISIONS §2) from evidence alone — a bridgehead that is not live is unavailable, a reported state is taken
    as reported, and a live bridgehead not heard from yet keeps the state of the previous publication (the
    section the organization holds from before the restart) or, with none, is unavailable; nothing is UP
    without evidence;
  - after that, every derived change (each bridgehead's state, and the connector's) is a report to its own
    oscillation window, like any other (state delay; a window that ends as oscillation leaves the state as it
    was and the current state is reported again at once, so a lasting change opens the next window).
Invariants: pure (no clock: `now` is an argument); only this object changes the committed states; every change
of a committed state is returned to the caller as a `Commit` (a minor update to publish).
May import: the standard library, proto, linkstate.core (never node.py or a role).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from linkstate.core.context import NodeContext
from linkstate.core.dampening import Commit, Dampener, DampenerDiagnostic, OscillationSuppressed
from linkstate.core.directory import never_down
from linkstate.core.routing import PinnedIndex
from linkstate.core.topology import ConnectorSpec
from proto.model import BridgeheadState, ConnectorState, RoutingGroup

AVAIL = BridgeheadState.CONN_AVAIL
NOT_AVAILABLE = BridgeheadState.CONN_NOT_AVAILABLE
UP, DOWN = ConnectorState.UP, ConnectorState.DOWN


class GroupStates:
    """The master's view of its group's connectors and source bridgeheads (module docstring)."""

    def __init__(self, ctx: NodeContext, now: float) -> None:
        self.ctx = ctx
        self.live: set[str] = {ctx.me.vs_guid}  # VS GUIDs of the source bridgeheads that are running
        self.reports: dict[tuple[str, str], BridgeheadState] = {}  # latest (connector, vs) -> reported state
        self.conn_states: dict[str, ConnectorState] = {}  # committed connector -> state
        self.bh_states: dict[tuple[str, str], BridgeheadState] = {}  # published (connector, vs) -> state
        self.rebuilt = False  # the first publication's states are set: changes go through the windows
        self._noted: list[DampenerDiagnostic] = []
        self._hops = {c.guid: c.smart_host for c in ctx.topology.connectors_from(ctx.rg.name)}  # by the directory
        self._new_hop: dict[str, float] = {}  # connector -> until when its changed smart host keeps it UP
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

    def reports_expected(self, spec: ConnectorSpec, vs: str) -> bool:
        """Whether bridgehead `vs` will report on `spec`: it probes something (the connected group's
        bridgeheads, a smart host, a next-hop MTA), and it does not suppress its state changes (G43)."""
        server = self.ctx.topology.server_by_guid(vs)
        probes = spec.connected_routing_group is not None or spec.next_hop is not None
        return probes and server is not None and not server.suppress_state_changes

    def effective(self, connector: str, vs: str) -> BridgeheadState | None:
        """A source bridgehead's state as the master sees it (module docstring); None: live, not heard from."""
        if vs not in self.live:
            return NOT_AVAILABLE
        reported = self.reports.get((connector, vs))
        if reported is not None:
            return reported
        spec = self.ctx.topology.connector_by_guid(connector)
        return None if spec is not None and self.reports_expected(spec, vs) else AVAIL

    def derived(self, spec: ConnectorSpec, now: float) -> ConnectorState | None:
        """The connector's state from its bridgeheads' (module docstring); None while it cannot be told."""
        vs_guids = self.sources(spec)
        if not vs_guids or never_down(self.ctx.topology, spec) or self._new_hop.get(spec.guid, -1.0) > now:
            return UP
        states = [self.effective(spec.guid, vs) for vs in vs_guids]
        if AVAIL in states:
            return UP
        return None if None in states else DOWN

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
        # one connector's search, not the whole table's (G42), from the graph of the table's state: built once for
        # every node holding this table (linkstate.core.lsdb.TableState)
        index = self.ctx.lsdb.state().derived("pinned", lambda state: PinnedIndex(state.snapshot()))
        return index.pinned(connector, settings.leaf_rule)

    def ready(self) -> bool:
        """Every live source bridgehead that will report has reported: a rebuild now guesses nothing."""
        return all(
            (spec.guid, vs) in self.reports
            for spec in self._stateful()
            for vs in self.sources(spec)
            if vs in self.live and self.reports_expected(spec, vs)
        )

    def next_deadline(self) -> float | None:
        return self.dampener.next_deadline()

    def diagnostics(self) -> list[DampenerDiagnostic]:
        """What the oscillation windows did since the last call (opened, ended as oscillation)."""
        out, self._noted = self._noted, []
        return out

    def describe(self, key: str) -> tuple[str, str]:
        """The names in a dampener key: the connector's, and the bridgehead's ("" for the connector's own key)."""
        connector, _, vs = key.partition("/")
        return self.ctx.connector_name(connector), self.ctx.server_name(vs) if vs else ""

    # --- inputs ------------------------------------------------------------------------------------------

    def report(self, spec: ConnectorSpec, vs: str, state: BridgeheadState, now: float) -> list[Commit]:
        """A source bridgehead's report (its own, or a member's STATE)."""
        self.reports[(spec.guid, vs)] = state
        return self._rederive(spec, now)

    def attach(self, vs: str, now: float) -> list[Commit]:
        """A member whose server is `vs`'s came (back): unknown until it reports, unless it cannot report."""
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
        return self._settled(self.dampener.on_timer(now), now)

    def directory_changed(self, now: float) -> None:
        """A connector whose smart host (next hop) the directory changed is never marked down for one state
        delay ("connectors configured with a smart host that has changed very recently", seed L6457, R50)."""
        for spec in self.ctx.topology.connectors_from(self.ctx.rg.name):
            old = self._hops.get(spec.guid, spec.smart_host)
            if old != spec.smart_host:
                self._new_hop[spec.guid] = now + self.dampener.state_delay
            self._hops[spec.guid] = spec.smart_host

    def rebuild(self, previous: RoutingGroup | None, now: float) -> None:
        """The first publication after a start (module docstring): every state from evidence; the windows start
        from them. `previous`: the section of this group the organization holds from before (None if none)."""
        before = {c.guid: c for c in previous.connectors} if previous is not None else {}
        for spec in self._stateful():
            old = before.get(spec.guid)
            old_bhs = {b.guid: b.state for b in old.bridgeheads} if old is not None else {}
            for vs in self.sources(spec):
                state = self.effective(spec.guid, vs) or old_bhs.get(vs, NOT_AVAILABLE)
                self.bh_states[(spec.guid, vs)] = state
                self.dampener.seed(_key(spec.guid, vs), UP if state is AVAIL else DOWN)
            published = [self.bh_states[(spec.guid, vs)] for vs in self.sources(spec)]
            conn = self.derived(spec, now) or (UP if AVAIL in published else DOWN)
            self.conn_states[spec.guid] = conn
            self.dampener.seed(spec.guid, conn)
        self.rebuilt = True

    def commit(self, commit: Commit) -> Committed:
        """Make a committed state the published one; what to log about it."""
        connector, _, vs = commit.connector_guid.partition("/")
        name = self.ctx.connector_name(connector)
        if not vs:
            self.conn_states[connector] = commit.state
            return Committed(name, "", commit.state.value)
        state = AVAIL if commit.state is UP else self._unavailable(connector, vs)
        self.bh_states[(connector, vs)] = state
        return Committed(name, self.ctx.server_name(vs), state.value)

    # --- derivation --------------------------------------------------------------------------------------

    def _stateful(self) -> Iterator[ConnectorSpec]:
        """The group's connectors whose states the master publishes (all but the pinned)."""
        ctx = self.ctx
        return (c for c in ctx.topology.connectors_from(ctx.rg.name) if not self.pinned(c.guid))

    def _unavailable(self, connector: str, vs: str) -> BridgeheadState:
        """How an unavailable bridgehead is published: as it reported (NOT_STARTED, NOT_AVAILABLE), or NOT_AVAILABLE
        when its server is gone."""
        state = self.effective(connector, vs)
        return NOT_AVAILABLE if state is AVAIL or state is None else state

    def _rederive_all(self, vs: str, now: float) -> list[Commit]:
        commits: list[Commit] = []
        for spec in self.sourced_by(vs):
            if not self.pinned(spec.guid):
                commits.extend(self._rederive(spec, now))
        return commits

    def _rederive(self, spec: ConnectorSpec, now: float) -> list[Commit]:
        """Every source bridgehead's state and the connector's, each through its own oscillation window (item 6 of
        issue 10: one bridgehead flapping is damped like a connector flapping). Nothing before the rebuild."""
        if not self.rebuilt:
            return []
        commits: list[Commit] = []
        for vs in self.sources(spec):
            commits.extend(self._offer(_key(spec.guid, vs), now))
        commits.extend(self._offer(spec.guid, now))
        return self._settled(commits, now)

    def _offer(self, key: str, now: float) -> list[Commit]:
        """Report the current state of a dampener key (a connector, or one of its bridgeheads), when it is known."""
        connector, _, vs = key.partition("/")
        if vs:
            bh = self.effective(connector, vs)
            state = None if bh is None else UP if bh is AVAIL or self._new_hop.get(connector, -1.0) > now else DOWN
            if state is DOWN and self.dampener.committed(key) is DOWN and self.bh_states.get((connector, vs)) != bh:
                return [Commit(key, DOWN, DOWN, now)]  # still unavailable, another way: NOT_AVAILABLE <-> NOT_STARTED
        else:
            spec = self.ctx.topology.connector_by_guid(connector)
            state = self.derived(spec, now) if spec is not None else None
        return [] if state is None else self.dampener.report(key, state, now)

    def _settled(self, commits: list[Commit], now: float) -> list[Commit]:
        """After the windows moved: a window that ended as oscillation left the state as it was; what holds now is
        reported again at once (R117, R118: a change lasting into the next window is published after it)."""
        noted = self.dampener.diagnostics()
        while noted:
            self._noted.extend(noted)
            for diag in noted:
                if isinstance(diag, OscillationSuppressed):
                    commits.extend(self._offer(diag.connector_guid, now))
            noted = self.dampener.diagnostics()
        return commits


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed change, as the master logs it (`bridgehead` is "" for a connector's own state)."""

    connector: str
    bridgehead: str
    state: str


def _key(connector: str, vs: str) -> str:
    """The dampener key of one source bridgehead of a connector (a connector's own key is its GUID)."""
    return f"{connector}/{vs}"
