"""The package's layers (docs/architecture.md): imports only point down, and no module
imports itself back through others.

The import graph is read from the source with ``ast``, so it counts every import: at module
level, inside functions (a late import is still a dependency) and under
``TYPE_CHECKING`` (a type shared both ways is still a cycle). Importing a package's
module does not count as importing the package's ``__init__``.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "wslab"

# Bottom to top; a module may import its own layer and the ones below it.
LAYER_NAMES = ("core", "pipeline", "run", "tune", "face")

# Where each module sits: the longest matching dotted prefix wins. A new top-level module
# or package must be placed here (the package's own __init__ is core).
LAYERS = {
    "wslab": "core",
    **dict.fromkeys([f"wslab.{name}" for name in (
        "traces", "analysis", "codecs", "atomic", "tables", "priority", "batching",
        "selector", "compiled", "envelopes", "wire", "link", "metrics", "config",
        "errors")], "core"),
    "wslab.pipeline": "pipeline",
    "wslab.compressor": "pipeline",
    "wslab.sim": "run",
    "wslab.harness": "run",
    "wslab.tune": "tune",
    "wslab.cli": "face",
    "wslab.lab": "face",
    "wslab.lab_assets": "face",
    "wslab.__main__": "face",
}

# Upward imports that remain, each with the reason; keep this short.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

# Import cycles that remain, each with the reason.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known: Iterable[str]) -> str | None:
    """The module ``name`` refers to: itself, or its longest prefix that is a module."""
    names = set(known)
    while name and name not in names:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """Module -> {module of the same package it imports: first line that does}."""
    mods = modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # ``from pkg import mod`` imports the module; ``from mod import name`` the module
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base
                           for alias in node.names]
            for target in targets:
                found = _resolve(target, mods)
                if found is not None and found != name:
                    edges.setdefault(found, node.lineno)
        graph[name] = edges
    return graph


def layer_of(module: str, layers: dict[str, str]) -> str:
    """The layer of ``module``: its own entry, else its longest listed package (not ``wslab``)."""
    parts = module.split(".")
    if module in layers:
        return layers[module]
    for n in range(len(parts) - 1, 1, -1):  # a package's modules, not the top package's
        prefix = ".".join(parts[:n])
        if prefix in layers:
            return layers[prefix]
    raise KeyError(module)


def upward_imports(graph: dict[str, dict[str, int]],
                   layers: dict[str, str]) -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import of a higher layer (modules without a
    layer are left to ``test_every_module_has_a_layer``)."""
    rank = {name: i for i, name in enumerate(LAYER_NAMES)}

    def level(module: str) -> int | None:
        try:
            return rank[layer_of(module, layers)]
        except KeyError:
            return None

    found = []
    for src, edges in sorted(graph.items()):
        for dst, line in sorted(edges.items()):
            low, high = level(src), level(dst)
            if low is not None and high is not None and high > low:
                found.append((src, dst, line))
    return found


def cycles(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _path_through(graph: dict[str, dict[str, int]], component: frozenset[str]) -> str:
    """One import loop inside ``component``, for the message."""
    start = min(component)
    seen = [start]
    node = start
    while True:
        node = min(d for d in graph[node] if d in component)
        if node in seen:
            loop = [*seen[seen.index(node):], node]
            return " -> ".join(loop)
        seen.append(node)


# -- the package ---------------------------------------------------------------------------

GRAPH = import_graph(SOURCE)


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for module in GRAPH:
        try:
            layer_of(module, LAYERS)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"give these a layer in LAYERS: {unplaced}"


def test_imports_point_down() -> None:
    found = [(src, dst, line) for src, dst, line in upward_imports(GRAPH, LAYERS)
             if (src, dst) not in ALLOWED_UPWARD]
    assert not found, "imports of a higher layer (docs/architecture.md):\n" + "\n".join(
        f"  {src} ({layer_of(src, LAYERS)}, line {line}) imports {dst} "
        f"({layer_of(dst, LAYERS)})" for src, dst, line in found)


def test_harness_and_sim_do_not_import_tune() -> None:
    """The case that happened: the harness reached up into ``wslab.tune`` for table I/O."""
    found = sorted((src, dst) for src, edges in GRAPH.items() for dst in edges
                   if src.startswith(("wslab.harness", "wslab.sim"))
                   and dst.startswith("wslab.tune") and (src, dst) not in ALLOWED_UPWARD)
    assert not found, f"run-layer modules importing wslab.tune: {found}"


def test_no_import_cycles() -> None:
    found = [c for c in cycles(GRAPH) if c not in ALLOWED_CYCLES]
    assert not found, "import cycles:\n" + "\n".join(
        f"  {_path_through(GRAPH, c)}" for c in found)


def test_tune_has_no_import_cycle() -> None:
    """Named apart so a failure in ``wslab.tune`` reads as such (recommend <-> explain)."""
    tune = {src: {d: n for d, n in edges.items() if d.startswith("wslab.tune")}
            for src, edges in GRAPH.items() if src.startswith("wslab.tune")}
    assert cycles(tune) == []


def test_allowed_upward_imports_still_exist() -> None:
    """An exception that is gone leaves the list, so it cannot hide a new import."""
    gone = [(src, dst) for src, dst in ALLOWED_UPWARD if dst not in GRAPH[src]]
    assert not gone, f"no longer imported, remove from ALLOWED_UPWARD: {gone}"


def test_allowed_cycles_still_exist() -> None:
    """The same for cycles (the list is empty today; a stale entry would fail here)."""
    found = cycles(GRAPH)
    gone = [sorted(cycle) for cycle in ALLOWED_CYCLES if cycle not in found]
    assert not gone, f"no cycle now, remove from ALLOWED_CYCLES: {gone}"


# -- the checker itself, on a small package that breaks every rule -------------------------

def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "wslab"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_checker_finds_every_kind_of_import(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "",
        "atomic.py": "",
        "harness/__init__.py": "",
        "harness/a.py": "from wslab.tune.results import write_table\n",
        "harness/b.py": "def f():\n    from wslab.tune import results\n",
        "harness/c.py": "from typing import TYPE_CHECKING\n"
                        "if TYPE_CHECKING:\n    import wslab.tune.results\n",
        "harness/d.py": "from ..tune import results\n",
        "harness/e.py": "from wslab import tune\n",
        "harness/f.py": "from wslab import atomic\nfrom . import a\n",
        "tune/__init__.py": "",
        "tune/results.py": "from wslab.atomic import x\n",
    })
    graph = import_graph(root)
    up = {(src, dst) for src, dst, _ in upward_imports(graph, LAYERS)}
    assert up == {("wslab.harness.a", "wslab.tune.results"),
                  ("wslab.harness.b", "wslab.tune.results"),
                  ("wslab.harness.c", "wslab.tune.results"),
                  ("wslab.harness.d", "wslab.tune.results"),
                  ("wslab.harness.e", "wslab.tune")}
    assert graph["wslab.harness.f"] == {"wslab.atomic": 1, "wslab.harness.a": 2}
    assert graph["wslab.tune.results"] == {"wslab.atomic": 1}


def test_checker_finds_cycles(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "",
        "tune/__init__.py": "",
        "tune/recommend.py": "from wslab.tune import recommend_explain\n",
        "tune/recommend_explain.py": "from typing import TYPE_CHECKING\n"
                                     "if TYPE_CHECKING:\n"
                                     "    from wslab.tune.recommend import Recommendation\n",
        "tune/x.py": "from wslab.tune import y\n",
        "tune/y.py": "def f():\n    from wslab.tune import z\n",
        "tune/z.py": "import wslab.tune.x\n",
        "tune/leaf.py": "import wslab.tune\n",
    })
    graph = import_graph(root)
    assert sorted(cycles(graph), key=sorted) == [
        frozenset({"wslab.tune.recommend", "wslab.tune.recommend_explain"}),
        frozenset({"wslab.tune.x", "wslab.tune.y", "wslab.tune.z"}),
    ]
    assert _path_through(graph, frozenset({"wslab.tune.x", "wslab.tune.y", "wslab.tune.z"})) \
        == "wslab.tune.x -> wslab.tune.y -> wslab.tune.z -> wslab.tune.x"
