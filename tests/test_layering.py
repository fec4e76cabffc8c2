"""Imports run one way: proto <- linkstate.core <- linkstate.service <- linkstate.sim <- linkstate.cli; linkstate.netns
(real network mode) sits beside the CLI: it may use every layer below and the CLI may use it, never the reverse.
linkstate.fuzz is a top layer beside the CLI too: it may import proto, the core and the service, and only the CLI
imports it.

Every module's imports are parsed (not executed) and each arrow is checked against the layer's allow-list.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)
CORE_FORBIDDEN_STDLIB = {"socket", "time", "random", "asyncio", "threading", "selectors", "subprocess"}

# layer -> project/third-party top-level names it may import (stdlib is allowed unless forbidden)
ALLOWED: dict[str, set[str]] = {
    "proto": {"proto", "construct"},
    "linkstate.core": {"proto", "linkstate.core"},
    "linkstate.service": {"proto", "linkstate.core", "linkstate.service", "trio", "structlog"},
    "linkstate.sim": {"proto", "linkstate.core", "linkstate.service", "linkstate.sim", "trio", "structlog"},
    "linkstate.netns": {
        "proto", "linkstate.core", "linkstate.service", "linkstate.sim", "linkstate.netns", "trio", "structlog",
        "pyroute2",
    },
    # a top layer beside linkstate.cli (which alone imports it); the fuzzing engines are optional
    "linkstate.fuzz": {
        "proto", "linkstate.core", "linkstate.service", "linkstate.fuzz", "trio", "atheris", "hypothesis",
    },
}


def _layer(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _modules() -> list[Path]:
    return sorted([*ROOT.joinpath("proto").rglob("*.py"), *ROOT.joinpath("linkstate").rglob("*.py")])


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_layers(path: Path) -> None:
    layer = _layer(_module_name(path))
    if layer is None:  # linkstate.cli and the package root may import anything
        return
    for name in _imports(path):
        top = name.split(".")[0]
        if top in STDLIB and top not in {"linkstate", "proto"}:
            if layer == "linkstate.core":
                assert top not in CORE_FORBIDDEN_STDLIB, f"{path.name}: core may not import {name}"
            continue
        if name == "linkstate":  # the package root holds only metadata (__version__)
            continue
        target = _layer(name) or top
        assert target in ALLOWED[layer], f"{path.name} ({layer}) may not import {name}"


def test_every_module_has_a_docstring() -> None:
    missing = [str(p.relative_to(ROOT)) for p in _modules() if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, f"modules without a docstring: {missing}"
