"""Opcodes and priorities by name: no frame opcode compared with a bare number, no priority
class spelled out as a string where the code decides something by it.

Read from the source with ``ast``. What counts as spelled out:

- an ``opcode`` (a name or an attribute) compared with a number or a collection of numbers
  (``wslab.wire.Opcode`` and websockets' ``Opcode`` name them);
- a ``priority`` or ``prio`` compared with a class name string, or ``.get("priority", ...)``
  with a string default (``wslab.priority`` names them, and the default);
- a tuple, list, set or dict literal holding two or more class names: a per-class table
  written out by hand, which goes out of step when a class is added (``PRIORITIES`` is
  the order every per-class table follows).

Type annotations (``Literal[...]``) and docstrings are not code that decides, and
``wslab/priority.py`` is where the names are defined.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from wslab.priority import PRIORITIES

SOURCE = Path(__file__).resolve().parents[1] / "wslab"
DEFINED_HERE = {"priority.py"}

# (file relative to wslab/, kind) -> why it stays.
ALLOWED = {
    ("lab/figures.py", "table"): "a palette: each class's colour beside other roles' colours",
}

_NAMES = frozenset(PRIORITIES)
_PRIORITY_NAMES = {"priority", "prio"}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _ints(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) and all(_ints(e) for e in node.elts)
    return False


def _class_names(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in _NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) and all(_class_names(e) for e in node.elts)
    return False


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside a type annotation or a ``Literal[...]`` subscript."""
    inside: set[int] = set()
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            roots.append(node.returns)
        elif isinstance(node, ast.Subscript) and _name(node.value) == "Literal":
            roots.append(node)
    for root in roots:
        inside.update(id(n) for n in ast.walk(root))
    return inside


def spelled_out(text: str) -> list[tuple[str, int]]:
    """(kind, line) for each opcode or priority spelled out in the module ``text``."""
    tree = ast.parse(text)
    skip = _annotation_nodes(tree)
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            names = {_name(s) for s in sides}
            if "opcode" in names and any(_ints(s) for s in sides):
                found.append(("opcode", node.lineno))
            if names & _PRIORITY_NAMES and any(_class_names(s) for s in sides):
                found.append(("priority", node.lineno))
        elif (isinstance(node, ast.Call) and _name(node.func) == "get" and len(node.args) == 2
              and isinstance(node.args[0], ast.Constant) and node.args[0].value == "priority"
              and _class_names(node.args[1])):
            found.append(("priority", node.lineno))
        elif isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            named = {i.value for i in items if isinstance(i, ast.Constant) and i.value in _NAMES}
            if len(named) >= 2:
                found.append(("table", node.lineno))
    return sorted(found, key=lambda f: (f[1], f[0]))


def _package_findings() -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        rel = path.relative_to(SOURCE).as_posix()
        if rel in DEFINED_HERE:
            continue
        for kind, line in spelled_out(path.read_text(encoding="utf-8")):
            out.setdefault((rel, kind), []).append(line)
    return out


FINDINGS = _package_findings()


def test_no_opcode_or_priority_is_spelled_out() -> None:
    found = {k: v for k, v in FINDINGS.items() if k not in ALLOWED}
    assert not found, "use wslab.wire.Opcode / wslab.priority names:\n" + "\n".join(
        f"  wslab/{rel} lines {lines}: {kind}" for (rel, kind), lines in sorted(found.items()))


@pytest.mark.parametrize("where", sorted(ALLOWED))
def test_allowed_spellings_still_exist(where: tuple[str, str]) -> None:
    assert where in FINDINGS, f"{where} is clean now: remove it from ALLOWED"


def test_the_check_sees_each_kind() -> None:
    text = textwrap.dedent('''
        from typing import Literal
        P = Literal["critical", "normal", "background"]
        def f(frame, priority: Literal["normal"], obj, b0):
            """A "critical" docstring is fine."""
            if frame.opcode == 1: pass
            if opcode in (8, 9, 10): pass
            if frame.opcode is Opcode.TEXT: pass
            if priority == "background": pass
            if prio in ("critical",): pass
            prio = obj.get("priority", "normal")
            slots = {"critical": 0, "normal": 1, "background": 2}
            order = ("critical", "normal")
            colour = COLOURS["critical"]
            reason = "critical" if b0 else "interval"
    ''')
    assert spelled_out(text) == [
        ("opcode", 6), ("opcode", 7), ("priority", 9), ("priority", 10), ("priority", 11),
        ("table", 12), ("table", 13)]
