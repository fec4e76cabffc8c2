"""The WinRoute text and JSON views (linkstate.cli.winroute) on a synthetic DUMP answer: names from the
topology, `object_not_found_in_DS` for unknown GUIDs, `deleted` tombstones, ✗ for members not connected."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from linkstate.cli.winroute import NOT_FOUND, json_view, render
from linkstate.core.directory import build_orginfo, tombstone
from linkstate.core.topology import Topology
from linkstate.service.client import DumpResult
from linkstate.service.topofile import load_topology
from proto import rg691
from proto.codec import decode_strict, encode
from proto.model import BridgeheadState, OrgInfo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _result() -> tuple[DumpResult, Topology]:
    topo = load_topology(EXAMPLES / "seattle.toml")
    org = build_orginfo(topo, down=["TOK-BH1"])
    sea, lon = topo.routing_group("Seattle"), topo.routing_group("London")
    groups = []
    for rg in org.routing_groups:
        if rg.guid == sea.guid:
            sea_s2 = topo.server("SEA-S2").guid
            rg = replace(rg, members=tuple(replace(m, connected=m.guid != sea_s2) for m in rg.members))
        elif rg.guid == lon.guid:
            rg = tombstone(rg)
        groups.append(rg)
    unknown = replace(groups[0], guid="f" * 32, master="e" * 32, members=(), connectors=())
    raw = encode(OrgInfo((*groups, unknown)))
    frame = rg691.OrgInfoFrame(raw, decode_strict(raw))
    s2 = topo.server("SEA-S2")
    view = rg691.Dump(True, s2.guid, sea.guid, "member", topo.server("SEA-BH1").guid, False, False, 0, 2)
    return DumpResult(view, frame, "691 Available SEA-S2.example.com linkstate Routing Engine 0.1.0"), topo


def test_text_view() -> None:
    result, topo = _result()
    text = "\n".join(render(result, topo, "127.0.1.2:691"))
    assert "Am I connected to the Master?: NO" in text
    assert "Local node:   SEA-S2  role member" in text and "Master:       SEA-BH1" in text
    assert f"Digest:       {result.decoded.digest}" in text
    assert "Routing group Seattle {" in text
    assert f"Routing group {NOT_FOUND} {{{'f' * 32}}}" in text
    assert f"Master  {NOT_FOUND} {{{'e' * 32}}}" in text
    london = next(ln for ln in text.splitlines() if ln.startswith("Routing group London"))
    assert london.endswith("deleted")
    assert "✗ SEA-S2" in text and "connected to master: NO" in text
    lines = text.splitlines()
    seattle_tokyo = next(i for i, ln in enumerate(lines) if ln.strip().startswith("Seattle-Tokyo {"))
    assert lines[seattle_tokyo + 1].strip() == "type RGC  STATE DOWN"
    assert "RG:London cost 10" in text
    assert f"bridgehead SEA-BH1 (SEA-BH1.example.com)  {BridgeheadState.CONN_AVAIL.value}" in text
    assert "bridgehead TOK-BH1 (TOK-BH1.example.com)  CONN_NOT_AVAILABLE" in text


def test_json_view_is_orginfo_decode_plus_local() -> None:
    from proto.jsonform import to_json

    result, topo = _result()
    data = json_view(result, topo)
    local = data.pop("local")
    assert data == to_json(result.decoded)
    assert local == {
        "node": "SEA-S2",
        "routing_group": "Seattle",
        "role": "member",
        "master": "SEA-BH1",
        "attached": False,
        "quorum": False,
        "attached_count": 0,
        "servers": 2,
    }
