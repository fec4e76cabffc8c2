"""Imports run one way: proto <- linkstate.core <- linkstate.service <- linkstate.sim <- linkstate.cli; linkstate.netns
(real network mode) sits beside the CLI: it may use every layer below and the CLI may use it, never the reverse. The
core is pure. linkstate.fuzz is a top layer beside the CLI too: it may import proto, the core and the service, and
only the CLI imports it.

Every module's imports are parsed (not executed) and each arrow is checked against the layer's allow-list; inside
linkstate.core no import cycle exists, counting imports under TYPE_CHECKING and inside functions. The core reads no
file (no open(), no path reads, no os/pathlib/io) and calls no id(); no module of the core or of proto keeps state
for the whole process (a module-level cache, a `global`, a module-level object that changes): a cache belongs to an
object whose lifetime it shares.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)
CORE_FORBIDDEN_STDLIB = {
    "socket", "time", "random", "asyncio", "threading", "selectors", "subprocess",
    "os", "io", "pathlib", "shutil", "tempfile", "glob",
}  # fmt: skip
FILE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "open", "touch", "unlink"}
MUTATORS = {
    "append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear", "add", "discard", "remove",
    "move_to_end", "sort", "reverse",
}  # fmt: skip
EMPTY_CONTAINERS = {"list", "dict", "set", "Counter", "OrderedDict", "defaultdict", "deque"}

# layer -> project/third-party top-level names it may import (stdlib is allowed unless forbidden)
ALLOWED: dict[str, set[str]] = {
    "proto": {"proto", "construct"},
    "linkstate.core": {"proto", "linkstate.core"},
    "linkstate.service": {"proto", "linkstate.core", "linkstate.service", "trio", "structlog", "prometheus_client"},
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


def _from_module(node: ast.ImportFrom, path: Path, module: str | None = None) -> str | None:
    """The absolute module a `from … import` names; a relative one (`from . import x`, `from .m import x`) is
    resolved against the importing module (`module`, else the one `path` is)."""
    if node.level == 0:
        return node.module
    module = module if module is not None else _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base) or None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (module := _from_module(node, path)):
            names.append(module)
    return names


def _imports_anywhere(path: Path, module: str | None = None) -> set[str]:
    """Every module `path` imports, wherever the import is (TYPE_CHECKING blocks and functions included), as full
    module names (a `from package import module` counts as the module; relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (base := _from_module(node, path, module)):
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_layers(path: Path) -> None:
    layer = _layer(_module_name(path))
    if layer is None:  # linkstate.cli, linkstate.bench and the package root may import anything
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


def _core() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.joinpath("linkstate", "core").glob("*.py"))}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, or None (depth-first search, colouring the modules on the current path)."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_core_has_no_import_cycle_not_even_under_type_checking() -> None:
    modules = _core()
    graph = {name: {m for m in _imports_anywhere(path) if m in modules and m != name} for name, path in modules.items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle in linkstate.core: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_relative_imports_count_too(tmp_path: Path) -> None:
    """`from . import node` inside linkstate.core is an arrow to linkstate.core.node like any other."""
    path = tmp_path / "master.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import node\n"
                    "from .role import Role\nfrom ..service import peer\n")  # fmt: skip
    found = _imports_anywhere(path, "linkstate.core.master")
    assert {"linkstate.core.node", "linkstate.core.role", "linkstate.service.peer"} <= found


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


@pytest.mark.parametrize("path", list(_core().values()), ids=lambda p: p.name)
def test_the_core_reads_no_file_and_keys_nothing_by_id(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for call in _calls(tree):
        f = call.func
        if isinstance(f, ast.Name):
            assert f.id not in {"open", "id"}, f"{path.name}:{call.lineno}: the core may not call {f.id}()"
        if isinstance(f, ast.Attribute):
            assert f.attr not in FILE_METHODS, f"{path.name}:{call.lineno}: the core may not call .{f.attr}()"


def _assigned(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, (ast.Assign, ast.Delete)):
        return list(node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def _root(expr: ast.expr) -> str | None:
    """The name an attribute/subscript chain starts from (`a` for `a.b[c]`)."""
    while isinstance(expr, (ast.Subscript, ast.Attribute)):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _state_classes(tree: ast.Module) -> set[str]:
    """Classes of this module whose instances change after __init__ (a method writes an attribute of self)."""
    mutable: set[str] = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
        for fn in (m for m in methods if m.name not in {"__init__", "__post_init__"}):
            if any(_root(t) == "self" for node in ast.walk(fn) for t in _assigned(node) if t is not None):
                mutable.add(cls.name)
    return mutable


def _is_empty(v: ast.expr) -> bool:
    if isinstance(v, ast.List | ast.Set):
        return not v.elts
    if isinstance(v, ast.Dict):
        return not v.keys
    return isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in EMPTY_CONTAINERS and not v.args


def _module_level(path: Path, tree: ast.Module) -> tuple[set[str], list[str]]:
    """The module-level names, and the module-level bindings that are state (empty containers, changing objects)."""
    names: set[str] = set()
    found: list[str] = []
    state_classes = _state_classes(tree)
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
            continue
        names.update(t.id for t in _assigned(node) if isinstance(t, ast.Name))
        v = node.value
        if _is_empty(v):
            found.append(f"{path.name}:{node.lineno}: an empty container at module level")
        if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in state_classes:
            found.append(f"{path.name}:{node.lineno}: a module-level {v.func.id} (its instances change)")
    return names, found


def _mutations(path: Path, node: ast.AST, module_names: set[str]) -> list[str]:
    hits = [
        f"{path.name}:{t.lineno}: writes into module-level {_root(t)}"
        for t in _assigned(node)
        if isinstance(t, ast.Subscript | ast.Attribute) and _root(t) in module_names
    ]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
        owner = _root(node.func.value)
        if owner in module_names:
            hits.append(f"{path.name}:{node.lineno}: {owner}.{node.func.attr}() on module-level state")
    return hits


def _process_state(path: Path) -> list[str]:
    """What in `path` is state of the whole process (module docstring): each with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_names, found = _module_level(path, tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"{path.name}:{node.lineno}: global {', '.join(node.names)}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.extend(hit for inner in ast.walk(node) for hit in _mutations(path, inner, module_names))
            cached = [d for d in node.decorator_list if "cache" in ast.unparse(d)]
            found.extend(f"{path.name}:{d.lineno}: @{ast.unparse(d)}" for d in cached)
    return sorted(set(found))


@pytest.mark.parametrize(
    "path",
    [*_core().values(), *sorted(ROOT.joinpath("proto").glob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_state_for_the_whole_process(path: Path) -> None:
    assert _process_state(path) == []


def test_the_process_state_check_sees_the_old_caches(tmp_path: Path) -> None:
    """The shapes this check exists for: a module-level list a function rewrites (the old initial-table cache),
    a module-level instance of a class that changes (the old decode cache), a module-level dict filled at run
    time, a `global`."""
    code = (
        "_LAST = []\n"
        "def remember(x):\n    _LAST[:] = [x]\n"
        "class Cache:\n    def put(self, k):\n        self.items[k] = 1\n"
        "CACHE = Cache()\n"
        "_SEEN = {1: 2}\n"
        "def see(k):\n    _SEEN[k] = 1\n"
        "def count():\n    global N\n"
    )
    path = tmp_path / "old.py"
    path.write_text(code)
    found = "\n".join(_process_state(path))
    for line in (1, 3, 7, 10, 12):
        assert f"old.py:{line}:" in found, found
