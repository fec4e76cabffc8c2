"""Reading a topology from the file system: the TOML file, and the files it names (`secret_file`, relative to it).

Owns: `load_topology(path)`, the one place a topology file is read; the core's `parse_topology` takes the text and
this module's reader for the files the text names (the core reads no file).
Invariants: an unreadable or undecodable file raises `TopologyError` (one problem, no line), like any invalid one.
May import: the standard library, linkstate.core.topology.
"""

from __future__ import annotations

from pathlib import Path

from linkstate.core.topology import Problem, Topology, TopologyError, parse_topology


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; raises TopologyError (also for an unreadable file)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError([Problem("", f"cannot read the file: {exc}")], str(p)) from None
    return parse_topology(text, str(p), read_file=lambda name: (p.parent / name).read_bytes())
