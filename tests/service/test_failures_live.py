"""Failure handling on real processes over loopback, as a new user would try it (issue 10, "Done when"; items 1–4,
fixtures F5, F7, F12).

Every scenario runs `linkstate cluster up` on a topology with fast timers (live_helpers.FAST at time scale 60:
state delay 2 s, probes every 0.25 s, poll and settle 1 s) and asks the running nodes where they route
(`ROUTE ASK`, what `linkstate route --node` sends).
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from linkstate.cli.cluster import Cluster
from linkstate.service.topofile import load_topology
from proto.model import BridgeheadState, ConnectorState
from tests.core.failure_helpers import FAILOVER
from tests.service.live_helpers import (
    STATE_DELAY,
    TIME_SCALE,
    ask,
    dumped,
    fast_topology,
    section,
    smart_hosts,
    states,
    stop_cluster,
    timed,
    via,
)
from tests.service.node_cli_helpers import free_ports, kill_quietly, reaped, run_cli, spawn_cli, squat, wait_until

pytestmark = pytest.mark.tcp

HUB = ["HUB-M", "HUB-A", "HUB-B", "BR-1"]
BRANCH = {"to_group": "Branch"}


def up(path: Path, out: Path):  # type: ignore[no-untyped-def]
    fh = open(out, "w")  # noqa: SIM115 - closed by the caller's `reaped` exit
    return reaped(spawn_cli("cluster", "up", str(path), "--time-scale", str(TIME_SCALE), "--no-status", stdout=fh))


def test_killing_the_preferred_bridgehead_and_restarting_the_master(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 1, item 3, "Done when": HUB-A (the only source bridgehead of Hub-Branch, cost 1) dies: after the state
    delay Hub's mail for Branch leaves through HUB-B (cost 5). HUB-M restarts while HUB-A is still dead: no
    server ever routes over Hub-Branch again. HUB-A comes back: cost 1 again."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = fast_topology(FAILOVER.read_text(), tmp_path / "failover.toml", HUB)
    topo, cluster = load_topology(path), Cluster(path)
    with up(path, tmp_path / "up.out"):
        try:
            assert wait_until(lambda: via(cluster, topo, "HUB-M", **BRANCH) == ("Hub-Branch", 1), 30), (
                tmp_path / "up.out"
            ).read_text()
            stopping = time.monotonic()  # HUB-A dies during the command, never before it starts
            res = run_cli("cluster", "stop", str(path), "HUB-A")
            assert res.returncode == 0 and "stopped HUB-A" in res.stdout, res.stderr
            assert wait_until(lambda: via(cluster, topo, "HUB-M", **BRANCH) == ("Hub-Branch-Backup", 5), 20)
            assert time.monotonic() - stopping >= STATE_DELAY  # not before the (scaled) state delay
            assert STATE_DELAY * 0.95 <= delay_logged(cluster) <= STATE_DELAY * 2
            assert via(cluster, topo, "BR-1", to_group="Hub") == ("Branch-Hub", 1)
            assert states(cluster, topo, "HUB-B", "Hub-Branch") == (
                ConnectorState.DOWN, {"HUB-A": BridgeheadState.CONN_NOT_AVAILABLE})  # fmt: skip
            old = section(cluster, topo, "HUB-B", "Hub")
            assert old is not None

            # the master restarts while HUB-A is still dead
            cluster.stop("HUB-M")
            cluster.spawn("HUB-M")
            seen: set[tuple[str | None, int | None] | None] = set()
            deadline = time.monotonic() + 3 * STATE_DELAY
            while time.monotonic() < deadline:
                for server in ("HUB-M", "HUB-B"):
                    seen.add(via(cluster, topo, server, **BRANCH))
                time.sleep(0.05)
            assert ("Hub-Branch-Backup", 5) in seen and not any(s and s[0] == "Hub-Branch" for s in seen), seen
            new = section(cluster, topo, "HUB-M", "Hub")
            assert new is not None and new.version.major == old.version.major + 1  # above what it saw (G31)
            assert states(cluster, topo, "BR-1", "Hub-Branch") == (
                ConnectorState.DOWN, {"HUB-A": BridgeheadState.CONN_NOT_AVAILABLE})  # fmt: skip

            res = run_cli("cluster", "start", str(path), "HUB-A")
            assert res.returncode == 0, res.stderr
            assert wait_until(lambda: via(cluster, topo, "HUB-M", **BRANCH) == ("Hub-Branch", 1), 10)
            res = run_cli("route", "--node", "HUB-B", "--topology", str(path), "--from", "HUB-B", "--to-group",
                          "Branch", "--json")  # fmt: skip
            assert res.returncode == 0 and json.loads(res.stdout)["connector"]["name"] == "Hub-Branch", res.stderr
        finally:
            stop_cluster(cluster)


def delay_logged(cluster: Cluster) -> float:
    """From HUB-M's JSON log: seconds from HUB-A's detach to the Hub-Branch DOWN it then committed."""
    log = Path(cluster.require_state().servers["HUB-M"].log).read_text()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    lost = next(e for e in events if e["event"] == "member_detached" and e.get("member") == "HUB-A")
    down = next(e for e in events if e["event"] == "connector_state_committed" and e.get("connector") == "Hub-Branch"
                and e.get("state") == "DOWN" and e["timestamp"] >= lost["timestamp"])  # fmt: skip
    return (datetime.fromisoformat(down["timestamp"]) - datetime.fromisoformat(lost["timestamp"])).total_seconds()


STALE_MASTER = re.compile(r'"event": "master_relinquished".*"event_id": 958|"event_id": 958.*"master_relinquished"')


def test_a_node_started_with_a_stale_directory_naming_itself_master(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 2, F12, "Done when": HUB-B restarts from an old copy of the directory that names it Hub's master. It
    lacks quorum (1 of 3), never publishes above HUB-M, is outvoted (958) and follows HUB-M; Hub's version does
    not climb and routing keeps working."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = fast_topology(FAILOVER.read_text(), tmp_path / "failover.toml", HUB)
    stale = tmp_path / "stale-copy.toml"
    stale.write_text(path.read_text().replace('master = "HUB-M"', 'master = "HUB-B"'))
    topo, cluster = load_topology(path), Cluster(path)
    with up(path, tmp_path / "up.out"):
        rogue = None
        try:
            assert wait_until(lambda: via(cluster, topo, "HUB-M", **BRANCH) == ("Hub-Branch", 1), 30)
            before = section(cluster, topo, "BR-1", "Hub")
            assert before is not None
            res = run_cli("cluster", "stop", str(path), "HUB-B")
            assert res.returncode == 0, res.stderr
            log = tmp_path / "hub-b-stale.log"
            with open(log, "w") as fh:
                rogue = spawn_cli("serve", "--topology", str(stale), "--server", "HUB-B", "--time-scale",
                                  str(TIME_SCALE), "--log-format", "json", stdout=fh)  # fmt: skip
            majors: set[int] = set()

            def followed() -> bool:
                for server in ("HUB-M", "HUB-A", "BR-1"):
                    sec = section(cluster, topo, server, "Hub")
                    if sec is not None:
                        majors.add(sec.version.major)
                hub_b = section(cluster, topo, "HUB-B", "Hub")
                return STALE_MASTER.search(log.read_text()) is not None and hub_b is not None and (
                    hub_b.master == topo.server("HUB-M").guid)  # fmt: skip

            assert wait_until(followed, 15, interval=0.05), log.read_text()[-2000:]
            time.sleep(STATE_DELAY)  # versions stay put
            followed()
            assert max(majors) <= before.version.major + 1, majors
            got = dumped(cluster, topo, "HUB-B")
            assert got is not None
            view = got[0]
            assert (view.role, view.master, view.attached) == ("member", topo.server("HUB-M").guid, True)
            assert via(cluster, topo, "HUB-M", **BRANCH) == ("Hub-Branch", 1)
            assert via(cluster, topo, "BR-1", to_group="Hub") == ("Branch-Hub", 1)
            assert via(cluster, topo, "HUB-B", **BRANCH) == ("Hub-Branch", 1)
        finally:
            if rogue is not None:
                kill_quietly(rogue.pid)
                rogue.wait(timeout=10)
            stop_cluster(cluster)


CORP = """
[organization]
name = "Corp"
domain = "corp.example"
secret = "corp-live-secret"

[[routing_groups]]
name = "Corp"
master = "CORP-M"

[[servers]]
name = "CORP-M"
routing_group = "Corp"

[[servers]]
name = "CORP-A"
routing_group = "Corp"

[[servers]]
name = "CORP-B"
routing_group = "Corp"

[[servers]]
name = "CORP-C"
routing_group = "Corp"

[[connectors]]
name = "Primary"
type = "smtp"
routing_group = "Corp"
cost = 1
source_bridgeheads = ["CORP-A", "CORP-B", "CORP-C"]
smart_host = "[127.0.0.1]:{primary}"
address_spaces = [{{ type = "SMTP", address = "*", cost = 1 }}]

[[connectors]]
name = "Backup"
type = "smtp"
routing_group = "Corp"
cost = 5
source_bridgeheads = ["CORP-M"]
smart_host = "[127.0.0.1]:{backup}"
address_spaces = [{{ type = "SMTP", address = "*", cost = 5 }}]
"""
INTERNET = {"to": "someone@contoso.com"}
AVAIL, NOT_AVAILABLE, NOT_STARTED = (BridgeheadState.CONN_AVAIL, BridgeheadState.CONN_NOT_AVAILABLE,
                                     BridgeheadState.CONN_NOT_STARTED)  # fmt: skip


def test_smart_hosts_bridgeheads_and_a_listener_that_cannot_start(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 4 and fixtures F5, F7 live. Primary (cost 1, three source bridgeheads) and Backup (cost 5) send
    Internet mail through smart hosts this test runs on loopback. Primary's smart host stops: Backup after the
    state delay, Primary again when it is back (F5). Two of Primary's three bridgeheads die: Primary stays UP
    through the third; the third dies too: Backup (F7). The third restarts while its SMTP port is taken: it starts
    anyway, says so, and reports CONN_NOT_STARTED; the port frees: Primary again."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    hosts_ports = free_ports(2)
    text = CORP.format(primary=hosts_ports[0], backup=hosts_ports[1])
    path = fast_topology(text, tmp_path / "corp.toml", ["CORP-M", "CORP-A", "CORP-B", "CORP-C"])
    topo, cluster = load_topology(path), Cluster(path)
    with smart_hosts(*hosts_ports) as (primary, _), up(path, tmp_path / "up.out"):
        try:
            assert wait_until(lambda: via(cluster, topo, "CORP-M", **INTERNET) == ("Primary", 1), 30), (
                tmp_path / "up.out").read_text()  # fmt: skip

            primary.down()  # F5: its smart host is gone
            took = timed(lambda: via(cluster, topo, "CORP-M", **INTERNET) == ("Backup", 5), 20)
            assert took is not None and took >= STATE_DELAY * 0.75
            assert states(cluster, topo, "CORP-M", "Primary") == (
                ConnectorState.DOWN, {"CORP-A": NOT_AVAILABLE, "CORP-B": NOT_AVAILABLE, "CORP-C": NOT_AVAILABLE})
            primary.up()
            assert wait_until(lambda: via(cluster, topo, "CORP-M", **INTERNET) == ("Primary", 1), 10)

            for name in ("CORP-A", "CORP-B"):  # F7: two of three bridgeheads die
                cluster.stop(name)
            assert wait_until(lambda: states(cluster, topo, "CORP-M", "Primary") == (
                ConnectorState.UP, {"CORP-A": NOT_AVAILABLE, "CORP-B": NOT_AVAILABLE, "CORP-C": AVAIL}), 15)
            route = ask(cluster, topo, "CORP-M", **INTERNET)
            assert route is not None and (route.connector.name, route.next_hop) == ("Primary", "CORP-C")  # type: ignore[union-attr]
            cluster.stop("CORP-C")
            assert wait_until(lambda: via(cluster, topo, "CORP-M", **INTERNET) == ("Backup", 5), 15)

            smtp_port = cluster.require_state().servers["CORP-C"].port_smtp
            with squat(smtp_port):  # CORP-C's SMTP port is taken: it starts anyway
                res = run_cli("cluster", "start", str(path), "CORP-C")
                assert res.returncode == 0, res.stdout + res.stderr
                assert wait_until(lambda: states(cluster, topo, "CORP-M", "Primary") == (
                    ConnectorState.DOWN, {"CORP-A": NOT_AVAILABLE, "CORP-B": NOT_AVAILABLE, "CORP-C": NOT_STARTED}),
                    15)  # fmt: skip
                assert via(cluster, topo, "CORP-M", **INTERNET) == ("Backup", 5)
                log = Path(cluster.require_state().servers["CORP-C"].log).read_text()
                assert '"event": "smtp_listener_failed"' in log and "address already in use" in log.lower()
            assert wait_until(lambda: via(cluster, topo, "CORP-M", **INTERNET) == ("Primary", 1), 15)
            assert '"event": "smtp_listening"' in Path(cluster.require_state().servers["CORP-C"].log).read_text()
        finally:
            stop_cluster(cluster)
