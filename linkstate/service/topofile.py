"""Reading a topology from the file system: the TOML file, and the files it names (`secret_file`, relative to it).

Owns: `load_topology(path)`, the one place a topology file is read; the core's `parse_topology` takes the text and
this module's reader for the files the text names (the core reads no file).
Invariants: an unreadable or undecodable file raises `TopologyUnreadable` (a `TopologyError` with one problem whose
message names the file), like any invalid one raises `TopologyError`.
May import: the standard library, linkstate.core.topology.
"""

from __future__ import annotations

from pathlib import Path

from linkstate.core.topology import Topology, TopologyUnreadable, file_error, parse_topology


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; raises TopologyError (TopologyUnreadable for an unreadable file)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyUnreadable(f"cannot read {p}: {file_error(exc)}", str(p)) from None
    except UnicodeDecodeError as exc:
        raise TopologyUnreadable(f"cannot read {p}: not UTF-8 text (byte {exc.start})", str(p)) from None
    return parse_topology(text, str(p), read_file=lambda name: (p.parent / name).read_bytes())
