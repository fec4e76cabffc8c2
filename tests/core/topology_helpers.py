"""Test support: a minimal TOML writer for topology dicts, and a loader of the shipped examples.

May import: the standard library and linkstate.core.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from linkstate.core.topology import Topology, parse_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def dump(data: dict[str, Any]) -> str:
    """TOML text: top-level tables become [table], lists of dicts become [[array]] tables."""
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"[{key}]")
            out.extend(f"{k} = {_value(v)}" for k, v in value.items())
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for item in value:
                out.append(f"[[{key}]]")
                out.extend(f"{k} = {_value(v)}" for k, v in item.items())
        else:
            out.insert(0, f"{key} = {_value(value)}")
        out.append("")
    return "\n".join(out)


def example(name: str) -> Topology:
    path = EXAMPLES / name
    return parse_topology(path.read_text(), str(path), read_file=lambda f: (path.parent / f).read_bytes())


def base() -> dict[str, Any]:
    """A small valid organization: two groups, one server each plus one, connectors both ways and an SMTP one."""
    return {
        "organization": {"name": "Org", "secret": "s3cret"},
        "routing_groups": [{"name": "A", "master": "a1"}, {"name": "B", "master": "b1"}],
        "servers": [
            {"name": "a1", "routing_group": "A"},
            {"name": "a2", "routing_group": "A"},
            {"name": "b1", "routing_group": "B"},
        ],
        "connectors": [
            {"name": "A-B", "routing_group": "A", "connected_routing_group": "B", "cost": 10,
             "source_bridgeheads": ["a1"], "remote_bridgeheads": ["b1"]},
            {"name": "B-A", "routing_group": "B", "connected_routing_group": "A", "cost": 10},
            {"name": "Net", "type": "smtp", "routing_group": "B", "cost": 5, "source_bridgeheads": ["b1"],
             "dns_routed": True, "address_spaces": [{"type": "SMTP", "address": "*", "cost": 5}]},
        ],
    }  # fmt: skip
