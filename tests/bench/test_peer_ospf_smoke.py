"""bench/peer_ospf.py without running a network: the install hint when FRR is missing, the shortest paths it
expects from OSPF equal linkstate's own route costs (link costs = connector costs), and its vty client against a
stand-in daemon. The full side-by-side run needs root and FRR and takes minutes: it is the benchmark's own."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import ModuleType

import pytest

from linkstate.core.directory import build_orginfo
from linkstate.core.routing import Router
from tests.bench import scripts


@pytest.fixture(scope="module")
def peer() -> ModuleType:
    return scripts.load("peer_ospf")


def test_a_missing_frr_is_named_with_how_to_install_it(
    peer: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(peer, "FRR_DIR", tmp_path)
    reason = peer.frr_missing()
    assert "zebra and ospfd not found" in reason and "apt-get install frr" in reason
    assert "does not install it" in reason
    assert peer.main(["run", "--quiet", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("shape, groups", [("ring", 6), ("grid", 9)])
def test_expected_ospf_costs_are_linkstate_route_costs(peer: ModuleType, shape: str, groups: int) -> None:
    plan = peer.make_plan(shape, groups, 1, 1, {})
    costs = peer.directed_costs(plan.data)
    cut = {("G000", "G001"), ("G001", "G000")}
    after = {k: v for k, v in costs.items() if k not in cut}
    router = Router(plan.topology)
    for table, graph in ((build_orginfo(plan.topology, ()), costs),
                         (build_orginfo(plan.topology, ("G000-G001", "G001-G000")), after)):  # fmt: skip
        for g in range(groups):
            dist = peer.shortest(graph, peer.group_name(g))
            for h in range(groups):
                if h == g:
                    continue
                route = router.route(table, peer.server_name(g, 0), to_group=peer.group_name(h))
                assert route.cost == dist[peer.group_name(h)], (g, h)
    assert peer.shortest(after, "G000")["G001"] > costs[("G000", "G001")]  # the cut forces a detour


def test_vty_client_reads_until_the_terminator(peer: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "zebra.vty"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def daemon() -> None:
        conn, _ = server.accept()
        with conn:
            for answer in (b'{"198.18.1.0/24":[{"protocol":"ospf","metric":7}]}', b""):
                assert conn.recv(4096).endswith(b"\0")
                for part in (answer[:5], answer[5:] + b"\0\0", b"\0\0"):  # the terminator split across writes
                    conn.sendall(part)

    t = threading.Thread(target=daemon)
    t.start()
    vty = peer.Vty(path)
    try:
        assert vty.command("show ip route json") == b'{"198.18.1.0/24":[{"protocol":"ospf","metric":7}]}'
        assert vty.command("show ip route json") == b""
    finally:
        vty.close()
        t.join(timeout=5)
        server.close()
