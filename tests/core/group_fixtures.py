"""Topologies shared by the routing-group tests (written inline so each test states what it runs on)."""

from __future__ import annotations

from linkstate.core.topology import Topology, parse_topology

ONE_GROUP = """
[organization]
name = "Example"
secret = "s3cret"

[settings]
poll_interval = 300
master_settle = 60
state_delay = 600

[[routing_groups]]
name = "Redmond"
master = "RED-1"

[[servers]]
name = "RED-1"
routing_group = "Redmond"
address = "127.0.9.1"

[[servers]]
name = "RED-2"
routing_group = "Redmond"
address = "127.0.9.2"

[[servers]]
name = "RED-3"
routing_group = "Redmond"
address = "127.0.9.3"

[[connectors]]
name = "Internet"
type = "smtp"
routing_group = "Redmond"
cost = {cost}
source_bridgeheads = ["RED-1", "RED-2"]
address_spaces = [{{ type = "SMTP", address = "*", cost = {cost} }}]
dns_routed = true
"""


def one_group(cost: int = 1, secret: str = "s3cret", **settings: object) -> Topology:
    text = ONE_GROUP.format(cost=cost).replace('"s3cret"', f'"{secret}"')
    for key, value in settings.items():
        text = text.replace("[settings]\n", f"[settings]\n{key} = {value}\n")
    return parse_topology(text, "one-group.toml")
