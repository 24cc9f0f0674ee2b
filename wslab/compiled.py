"""Compiled twins of hot modules, and the rule that keeps them honest. Core.

What lives here: :func:`current_twin`, which a pure-Python module on the simulator's hot
path calls to find its *twin*, the same source compiled with mypyc by
``scripts/build_native.py`` (``make`` runs it; it needs a C compiler) into
``wslab/_<name>_native*.so``, with the SHA-256 of the source it was built from recorded
inside as ``SOURCE_SHA256``; and :data:`IMPLEMENTATIONS`, which says for each such module
whether its compiled twin or the plain Python runs (the benchmarks report it).

The rule: the pure module is the one truth. It swaps in its twin's classes only when the
twin was built from its very bytes, so an edited source never runs stale compiled code,
and without a compiler (or after an edit, until the next ``make``) everything runs as plain
Python: the same decisions, only slower. Today one module has a twin, ``selector.py``:
its per-frame ``decide``/``observe`` are most of what ``policy: adaptive`` adds to a
simulation.

What must not live here: the build (``scripts/build_native.py``), any module's logic.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from types import ModuleType
from typing import Literal

Implementation = Literal["compiled", "python"]

IMPLEMENTATIONS: dict[str, Implementation] = {}
"""Module name (``wslab.selector``) -> what runs: its compiled twin or plain Python."""


def source_digest(path: str | Path) -> str:
    """SHA-256 of a source file's bytes, as the build records it in the twin."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def twin_name(module: str) -> str:
    """The twin's module name: ``wslab.selector`` -> ``wslab._selector_native``."""
    package, _, leaf = module.rpartition(".")
    return f"{package}._{leaf}_native"


def current_twin(module: str, source: str | Path) -> ModuleType | None:
    """The compiled twin of ``module`` (whose source file is ``source``) if it is built and
    was built from the source's present bytes, else None; :data:`IMPLEMENTATIONS` records
    which runs."""
    try:
        twin = importlib.import_module(twin_name(module))
    except ImportError:
        twin = None
    if twin is not None and getattr(twin, "SOURCE_SHA256", None) != source_digest(source):
        twin = None
    IMPLEMENTATIONS[module] = "compiled" if twin is not None else "python"
    return twin
