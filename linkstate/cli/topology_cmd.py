"""`linkstate topology check|show`: validate and list a topology file.

Owns: the operator view of the directory. `check` prints every problem as `FILE:LINE: key.path: message`
(exit 2) or a one-line summary (exit 0); `show` lists groups, servers and connectors (text or --json).
May import: click, the standard library, proto, linkstate.core, linkstate.cli.common.
"""

from __future__ import annotations

from typing import Any

import click

from linkstate.cli.common import EXIT_BAD_INPUT, HelpGroup, fail, print_json
from linkstate.core.directory import never_down
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.topology import ConnectorSpec, Topology, TopologyError, TopologyUnreadable
from linkstate.service.topofile import load_topology


def load_or_fail(path: str) -> Topology:
    """A topology, or one `error:` line (the first problem and a count) and exit 2."""
    try:
        return load_topology(path)
    except TopologyUnreadable as exc:
        fail(exc.message)
    except TopologyError as exc:
        first = exc.problems[0].format(path) if exc.problems else path
        more = f" (and {len(exc.problems) - 1} more; see 'linkstate topology check')" if len(exc.problems) > 1 else ""
        fail(f"invalid topology: {first}{more}")


@click.group("topology", cls=HelpGroup)
def topology_group() -> None:
    """Validate and inspect a topology (directory) file."""


@topology_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """List every problem of FILE, or print a one-line summary."""
    try:
        topo = load_topology(file)
    except TopologyUnreadable as exc:
        fail(exc.message)
    except TopologyError as exc:
        for p in exc.problems:
            click.echo(p.format(file))
        raise SystemExit(EXIT_BAD_INPUT) from None
    digest = LinkStateDB.from_topology(topo).digest
    counts = ", ".join(
        _plural(n, what)
        for n, what in ((len(topo.routing_groups), "routing group"), (len(topo.servers), "server"),
                        (len(topo.connectors), "connector"))
    )  # fmt: skip
    click.echo(f"ok: {counts}, digest {digest}")


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _connector_json(topo: Topology, c: ConnectorSpec) -> dict[str, Any]:
    return {
        "name": c.name,
        "guid": c.guid,
        "type": c.type,
        "routing_group": c.routing_group,
        "connected_routing_group": c.connected_routing_group,
        "cost": c.cost,
        "source_bridgeheads": list(c.source_bridgeheads),
        "remote_bridgeheads": list(c.remote_bridgeheads),
        "address_spaces": [{"type": a.type, "address": a.address, "cost": a.cost} for a in c.address_spaces],
        "scope": c.scope,
        "never_down": never_down(topo, c),
        "dns_routed": c.dns_routed,
        "smart_host": c.smart_host,
    }


def topology_json(topo: Topology) -> dict[str, Any]:
    return {
        "organization": topo.organization,
        "admin_group": topo.admin_group,
        "routing_groups": [
            {
                "name": rg.name,
                "guid": rg.guid,
                "master": rg.master,
                "servers": [s.name for s in topo.servers_in(rg.name)],
            }
            for rg in topo.routing_groups
        ],
        "servers": [
            {
                "name": s.name,
                "guid": s.guid,
                "vs_guid": s.vs_guid,
                "routing_group": s.routing_group,
                "fqdn": s.fqdn,
                "address": s.address,
                "legacy": s.legacy,
                "suppress_state_changes": s.suppress_state_changes,
            }
            for s in topo.servers
        ],
        "connectors": [_connector_json(topo, c) for c in topo.connectors],
    }


def _connector_line(c: ConnectorSpec) -> str:
    target = f"-> {c.connected_routing_group}" if c.connected_routing_group else ""
    spaces = " ".join(f"{a.type}:{a.address}({a.cost})" for a in c.address_spaces)
    bhs = ",".join(c.source_bridgeheads) or "any local server"
    remote = f"  remote {','.join(c.remote_bridgeheads)}" if c.remote_bridgeheads else ""
    via = "  DNS" if c.dns_routed else (f"  smart host {c.smart_host}" if c.smart_host else "")
    return f"    {c.name:<24} {c.type:<13} cost {c.cost:<3} {target}{spaces}  bh {bhs}{remote}{via}  {c.guid}"


@topology_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(file: str, as_json: bool) -> None:
    """List the routing groups, servers and connectors of FILE."""
    topo = load_or_fail(file)
    if as_json:
        print_json(topology_json(topo))
        return
    click.echo(f"organization {topo.organization}  ({topo.admin_group})")
    for rg in topo.routing_groups:
        click.echo(f"routing group {rg.name}  {rg.guid}")
        for s in topo.servers_in(rg.name):
            role = "master" if s.name == rg.master else "member"
            flags = "".join(f" {f}" for f, on in (("legacy", s.legacy), ("suppress", s.suppress_state_changes)) if on)
            addr = f"  {s.address}" if s.address else ""
            click.echo(f"  server {s.name:<12} {role:<6} {s.fqdn}{addr}  {s.guid}  vs {s.vs_guid}{flags}")
        for c in topo.connectors_from(rg.name):
            click.echo(_connector_line(c))


def register(cli: click.Group) -> None:
    cli.add_command(topology_group)
