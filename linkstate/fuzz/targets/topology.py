"""The `topology` target: the TOML topology loader, and the table a loaded topology builds.

Input: the bytes of a topology file (not UTF-8: the loader's "cannot read" path, nothing to check).
Invariants checked on every input (docs/FUZZING.md):
  - only `TopologyError` escapes `parse_topology`, and each of its problems formats as one line;
  - `unknown_master` on a rejected file raises nothing;
  - a loaded topology builds a table (`build_orginfo`) that encodes, and strict decoding gives back the same
    canonical table and digest.
The text is parsed without a file reader (the core reads no file), so a `secret_file` is reported unreadable.
May import: the standard library, proto.*, linkstate.core.*, linkstate.fuzz.
"""

from __future__ import annotations

from linkstate.core.directory import build_orginfo
from linkstate.core.topology import TopologyError, parse_topology, unknown_master
from linkstate.fuzz.base import expect
from proto.decode import decode_strict
from proto.encode import digest, encode
from proto.model import canonical

SOURCE = "fuzz.toml"


def check(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        topo = parse_topology(text, SOURCE)
    except TopologyError as exc:
        for problem in exc.problems:
            expect("\n" not in problem.format(SOURCE), f"a problem spans lines: {problem.format()[:80]!r}")
        unknown_master(exc, text, "First Routing Group")
        return
    org = build_orginfo(topo)
    wire = encode(org)
    back = decode_strict(wire)
    expect(back.orginfo == canonical(org), "a topology's table does not read back as itself")
    expect(back.computed_digest == digest(org), "a topology's table reads back with another digest")
