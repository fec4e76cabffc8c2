"""The fuzz targets by name: `orginfo`, `rg691`, `smtp`, `topology` (one module each, with its invariants).

Owns: `TARGETS` (name -> one-line summary), `load(name)` (imports the target's module, so the worker can
instrument the code under test before anything imports it) and the coverage scope of each target.
May import: the standard library, linkstate.fuzz.base; the target modules on demand.
"""

from __future__ import annotations

import importlib

from linkstate.fuzz.base import Target

TARGETS: dict[str, str] = {
    "orginfo": "OrgInfo: strict, tolerant, cached and reference decoders against each other and the encoder",
    "rg691": "TCP 691: framer in any split, frame codec round trip, the session as initiator and responder",
    "smtp": "SMTP lines, commands, replies, X-LINK2STATE items and reassembly, both SMTP session machines",
    "topology": "the TOML topology loader, and the table a loaded topology builds",
}
_SCOPE: dict[str, tuple[str, ...]] = {
    "orginfo": ("proto",),
    "rg691": ("proto", "linkstate.core"),
    "smtp": ("proto", "linkstate.core"),
    "topology": ("proto", "linkstate.core"),
}
_MUTATORS = {"orginfo": "orginfo", "rg691": "rg691"}
MAX_LEN = {"orginfo": 16384, "rg691": 16384, "smtp": 8192, "topology": 8192}  # the largest seeds fit


def load(name: str, *, structured: bool = True) -> Target:
    """The target `name`, with its structure-aware mutator unless `structured` is False."""
    if name not in TARGETS:
        raise KeyError(name)
    module = importlib.import_module(f"linkstate.fuzz.targets.{name}")
    mutator = None
    if structured and name in _MUTATORS:
        from linkstate.fuzz import mutate

        mutator = mutate.MUTATORS[_MUTATORS[name]]
    return Target(name, TARGETS[name], module.check, _SCOPE[name], mutator, MAX_LEN[name])


def has_mutator(name: str) -> bool:
    return name in _MUTATORS


def scope(name: str) -> tuple[str, ...]:
    return _SCOPE[name]
