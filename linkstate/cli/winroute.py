"""What WinRoute showed (R138, R139, G51), from a node's DUMP answer: a text view and the JSON view.

Owns: `render(result, topo)` (lines for a person) and `json_view(result, topo)` (`proto.jsonform.to_json` of the
table plus a `local` object). GUIDs become names from the topology where it has them; a GUID it does not know
shows as `object_not_found_in_DS` (the GUID follows, so nothing is lost); a tombstone section shows `deleted`.
Members the master does not see attached are marked `✗` and "connected to master: NO".
Invariants: pure functions of their arguments (no I/O); never raise on any decodable table.
May import: anything (CLI layer).
"""

from __future__ import annotations

from typing import Any

from linkstate.core.topology import Topology
from linkstate.service.client import DumpResult
from proto.model import UNLIMITED, Connector, RoutingGroup

NOT_FOUND = "object_not_found_in_DS"
SCOPES = {0: "organization", 1: "routing group"}


class Names:
    """GUID -> name through the topology; unknown GUIDs are `object_not_found_in_DS`."""

    def __init__(self, topo: Topology | None) -> None:
        self.topo = topo

    def server(self, guid: str) -> str | None:
        spec = self.topo.server_by_guid(guid) if self.topo else None
        return spec.name if spec else None

    def group(self, guid: str) -> str | None:
        spec = self.topo.routing_group_by_guid(guid) if self.topo else None
        return spec.name if spec else None

    def connector(self, guid: str) -> str | None:
        spec = self.topo.connector_by_guid(guid) if self.topo else None
        return spec.name if spec else None

    @staticmethod
    def show(name: str | None, guid: str, *, with_guid: bool = False) -> str:
        if name is None:
            return f"{NOT_FOUND} {{{guid}}}"
        return f"{name} {{{guid}}}" if with_guid else name


def _yn(flag: bool) -> str:
    return "YES" if flag else "NO"


def _limit(value: int | None) -> str:
    return "unlimited" if value is None or value == UNLIMITED else f"{value} KB"


def local_view(result: DumpResult, topo: Topology | None) -> dict[str, Any]:
    """The `local` object of `winroute --json` (names where known, else the GUID)."""
    names = Names(topo)
    v = result.view
    return {
        "node": names.server(v.node) or v.node,
        "routing_group": names.group(v.routing_group) or v.routing_group,
        "role": v.role,
        "master": names.server(v.master) or v.master,
        "attached": v.attached,
        "quorum": v.quorum,
        "attached_count": v.attached_count,
        "servers": v.servers,
    }


def json_view(result: DumpResult, topo: Topology | None) -> dict[str, Any]:
    from proto.jsonform import to_json

    data = dict(to_json(result.decoded))
    data["local"] = local_view(result, topo)
    return data


def render(result: DumpResult, topo: Topology | None, where: str) -> list[str]:
    names = Names(topo)
    v = result.view
    decoded = result.decoded
    lines = [f"WinRoute view of {where}" + (f"  ({result.banner})" if result.banner else "")]
    lines.append(f"Local node:   {names.show(names.server(v.node), v.node)}  role {v.role}")
    lines.append(f"Routing group: {names.show(names.group(v.routing_group), v.routing_group)}")
    lines.append(f"Master:       {names.show(names.server(v.master), v.master)}")
    lines.append(f"Am I connected to the Master?: {_yn(v.attached)}")
    quorum = f"Quorum:       {_yn(v.quorum)}"
    if v.role == "master":
        need = v.servers // 2 + 1
        quorum += f"  ({v.attached_count + 1} of {v.servers} servers acknowledge the master; needs {need})"
    lines.append(quorum)
    lines.append(f"Digest:       {decoded.digest}")
    if decoded.computed_digest != decoded.digest:
        lines.append(f"              (computed {decoded.computed_digest}: the table does not match its digest)")
    groups = decoded.orginfo.routing_groups
    lines.append(f"Routing groups: {len(groups)}")
    for rg in groups:
        lines.append("")
        lines.extend(_group(rg, names))
    return lines


def _group(rg: RoutingGroup, names: Names) -> list[str]:
    name = names.group(rg.guid)
    title = names.show(name, rg.guid, with_guid=True)
    if rg.is_tombstone:
        title += "  deleted"
    out = [f"Routing group {title}"]
    out.append(f"  Version {rg.version}  (version GUID {rg.version_guid})")
    out.append(f"  Master  {names.show(names.server(rg.master), rg.master)}")
    out.append(f"  Address SMTP {rg.smtp_address or '-'}")
    out.append(f"  Address X400 {rg.x400_address or '-'}")
    out.append(f"  Address X500 {rg.x500_address or '-'}")
    out.append(f"  Members ({len(rg.members)})")
    width = max((len(names.show(names.server(m.guid), m.guid)) for m in rg.members), default=0)
    for m in rg.members:
        mark = "✓" if m.connected else "✗"
        who = names.show(names.server(m.guid), m.guid)
        role = "  (master)" if m.guid == rg.master else ""
        out.append(
            f"    {mark} {who:<{width}}  connected to master: {_yn(m.connected):<3}  "
            f"service status {m.service_status}{role}"
        )
    out.append(f"  Connectors ({len(rg.connectors)})")
    for c in rg.connectors:
        out.extend(_connector(c, names))
    return out


def _connector(c: Connector, names: Names) -> list[str]:
    out = [f"    {names.show(names.connector(c.guid), c.guid, with_guid=True)}"]
    out.append(f"      type {c.type}  STATE {c.state.value}")
    if c.address_spaces:
        spaces = []
        for a in c.address_spaces:
            addr = a.address
            if a.type == "RG":
                addr = names.show(names.group(a.address), a.address)
            spaces.append(f"{a.type}:{addr} cost {a.cost}")
        out.append("      address spaces: " + "; ".join(spaces))
    else:
        out.append("      address spaces: none")
    if c.bridgeheads:
        for b in c.bridgeheads:
            who = names.show(names.server(b.guid), b.guid)
            out.append(f"      bridgehead {who} ({b.fqdn})  {b.state.value}")
    else:
        out.append("      bridgeheads: any local server")
    if c.target_bridgeheads:
        out.append("      target bridgeheads: " + ", ".join(c.target_bridgeheads))
    details = [f"scope {SCOPES.get(c.scope, str(c.scope))}", f"max size {_limit(c.max_size)}"]
    if c.accept or c.reject or not c.accept_by_default:
        details.append(
            f"accept by default {_yn(bool(c.accept_by_default))}, {len(c.accept)} accepted, {len(c.reject)} rejected"
        )
    out.append("      " + "  ".join(details))
    return out
