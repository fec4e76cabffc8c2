"""Reading a topology from the file system: the TOML file, and the files it names (`secret_file`, relative to it).

Owns: `load_topology(path)`, the one place a topology file is read; the core's `parse_topology` takes the text and
this module's reader for the files the text names (the core reads no file); `read_bounded`, how every file an
operator names (the topology, its secret file, a tool's `--secret-file`) is read: never more than a bound.
Invariants: an unreadable or undecodable file raises `TopologyUnreadable` (a `TopologyError` with one problem whose
message names the file), like any invalid one raises `TopologyError`; no file is read past its bound
(`MAX_TOPOLOGY_CHARS`, `MAX_SECRET_BYTES`), so `secret_file = "/dev/zero"` or a runaway file is a one-line error,
not a process that fills its memory.
May import: the standard library, linkstate.core.topology, linkstate.core.lsdb (the table's size check).
"""

from __future__ import annotations

import errno
from pathlib import Path

from linkstate.core.lsdb import size_problem
from linkstate.core.topology import Topology, TopologyError, TopologyUnreadable, file_error, parse_topology

MAX_TOPOLOGY_CHARS = 16 * 1024 * 1024  # a topology of thousands of servers is well under 1 MiB
MAX_SECRET_BYTES = 64 * 1024  # a secret is one line


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of the file at `path`, reading at most `limit` + 1 of them; OSError (EFBIG, `larger than …`)
    when there are more. `what` says what the file should be, for the message."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {_size(limit)} ({what})", str(path))
    return data


def read_topology_text(path: str | Path) -> str:
    """The text of a topology file (universal newlines, like `Path.read_text`), at most MAX_TOPOLOGY_CHARS;
    raises TopologyUnreadable with the one-line reason."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as fh:
            text = fh.read(MAX_TOPOLOGY_CHARS + 1)
    except OSError as exc:
        raise TopologyUnreadable(f"cannot read {p}: {file_error(exc)}", str(p)) from None
    except UnicodeDecodeError as exc:
        raise TopologyUnreadable(f"cannot read {p}: not UTF-8 text (byte {exc.start})", str(p)) from None
    if len(text) > MAX_TOPOLOGY_CHARS:
        reason = f"larger than {_size(MAX_TOPOLOGY_CHARS)} (a topology file is TOML text)"
        raise TopologyUnreadable(f"cannot read {p}: {reason}", str(p))
    return text


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; raises TopologyError (TopologyUnreadable for an unreadable file)."""
    p = Path(path)
    text = read_topology_text(p)
    topo = parse_topology(text, str(p), read_file=lambda name: read_secret(p.parent / name))
    problem = size_problem(topo)
    if problem is not None:
        raise TopologyError([problem], str(p))
    return topo


def read_secret(path: str | Path) -> bytes:
    """The bytes of a secret file (the caller strips them), at most MAX_SECRET_BYTES; OSError otherwise."""
    return read_bounded(path, MAX_SECRET_BYTES, "a secret is one line")


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n:,} bytes"  # survives file_error's lower()
