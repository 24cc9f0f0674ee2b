"""The Pareto frontier of a results table, and the checks a table must pass first.

What lives here: the column contract a results table must meet before anything is
recommended from it (:func:`check_results`), which rows may be recommended at all
(:func:`eligible_mask`: no lost, duplicated or reordered message, finite objectives), the
vectorised non-dominance test (:func:`pareto_front`), and turning a flattened row back into
a nested config mapping (:func:`unflatten_config`).

What must not live here: choosing one row under constraints or explaining it (that is
``recommend.py``), simulation, printing or file I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from wslab.config import TuningConfig
from wslab.errors import WslabError

Direction = Literal["min", "max"]

DEFAULT_OBJECTIVES: dict[str, Direction] = {
    "ws_bytes_per_msg": "min",
    "latency_p99_ms": "min",
    "cpu_us_per_msg": "min",
    "mem_kib_per_conn": "min",
}
"""The four costs every recommendation trades against each other (all lower is better)."""

INTEGRITY_COLUMNS = ("lost", "duplicated", "reordered")
"""A row with any of these above zero broke the message contract: never recommended."""

CONFIG_COLUMNS = ("batching.strategy", "compression.algorithm", "link.profile")
"""The config columns a results table must have (every sweep row has them all)."""

REQUIRED_COLUMNS = (*DEFAULT_OBJECTIVES, *INTEGRITY_COLUMNS, *CONFIG_COLUMNS)

_SECTIONS = tuple(TuningConfig.model_fields)

# Rows tested at once; bounds the (frontier + chunk) x chunk x k boolean temporaries.
_CHUNK = 512


def check_results(df: pd.DataFrame, extra: Iterable[str] = (), *, where: str = "results") -> None:
    """Raise a one-line error naming every column a results table lacks.

    Args:
        df: The results table.
        extra: Columns needed beyond :data:`REQUIRED_COLUMNS` (objective, constraints).
        where: What to call the table in the message (usually its file name).

    Raises:
        WslabError: If any required column is missing or the table has no rows.
    """
    needed = list(dict.fromkeys((*REQUIRED_COLUMNS, *extra)))
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise WslabError(
            f"{where}: not a wslab results table: missing column(s) {', '.join(missing)}"
        )
    if df.empty:
        raise WslabError(f"{where}: the results table has no rows")
    for column in needed:
        if column in CONFIG_COLUMNS:
            continue
        if not pd.api.types.is_numeric_dtype(df[column]):
            raise WslabError(f"{where}: column {column} must be numeric")


def integrity_ok(df: pd.DataFrame) -> pd.Series:
    """True for rows that lost, duplicated and reordered nothing (missing counts fail)."""
    ok = pd.Series(True, index=df.index)
    for column in INTEGRITY_COLUMNS:
        if column in df.columns:
            values = pd.to_numeric(df[column], errors="coerce")
            ok &= values.fillna(1).to_numpy() == 0
    return ok


def eligible_mask(df: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    """Rows that may be recommended: integrity intact and every given column finite."""
    ok = integrity_ok(df)
    for column in columns:
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
        ok &= np.isfinite(values)
    return ok


def _dominates_any(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of ``b``: does some row of ``a`` dominate it?"""
    if len(a) == 0:
        return np.zeros(len(b), dtype=bool)
    no_worse = (a[:, None, :] <= b[None, :, :]).all(axis=2)
    better = (a[:, None, :] < b[None, :, :]).any(axis=2)
    return np.asarray((no_worse & better).any(axis=0))


def _dominated(costs: np.ndarray) -> np.ndarray:
    """For an ``n x k`` cost matrix (lower is better): which rows some other row dominates.

    Row ``a`` dominates ``b`` when it is no worse in every column and better in one; equal
    rows do not dominate each other, so ties all stay on the frontier. Rows are visited in
    lexicographic order, where a dominating row always comes first, and each block is tested
    only against the frontier found so far and itself: a dominated row is always dominated
    by some frontier row too. Cost O(n x (frontier + block)) instead of O(n^2).
    """
    n = costs.shape[0]
    order = np.lexsort(costs.T[::-1])
    ranked = costs[order]
    keep = np.zeros(n, dtype=bool)
    front = np.empty((0, costs.shape[1]))
    for start in range(0, n, _CHUNK):
        block = ranked[start:start + _CHUNK]
        out = _dominates_any(front, block) | _dominates_any(block, block)
        keep[start:start + len(block)] = ~out
        front = np.vstack([front, block[~out]])
    dominated = np.ones(n, dtype=bool)
    dominated[order[keep]] = False
    return dominated


def pareto_front(
    df: pd.DataFrame, objectives: Mapping[str, Direction] | None = None
) -> pd.DataFrame:
    """The non-dominated rows of a results table.

    Rows with a lost, duplicated or reordered message, or a missing objective value, are
    never on the frontier. Rows with identical objective values are all kept.

    Args:
        df: A results table (one row per point).
        objectives: Column -> ``"min"`` or ``"max"``; default: bytes per message, p99
            latency, CPU per message and memory per connection, all minimised.

    Returns:
        The frontier rows, with their original index, in table order.

    Raises:
        WslabError: If an objective column is missing or a direction is unknown.
    """
    objectives = dict(objectives or DEFAULT_OBJECTIVES)
    missing = [c for c in objectives if c not in df.columns]
    if missing:
        raise WslabError(f"results: missing objective column(s) {', '.join(missing)}")
    bad = {c: d for c, d in objectives.items() if d not in ("min", "max")}
    if bad:
        raise WslabError(f"objective direction must be 'min' or 'max', got {bad}")
    eligible = df[eligible_mask(df, objectives).to_numpy()]
    if eligible.empty:
        return eligible
    costs = np.column_stack([
        pd.to_numeric(eligible[c]).to_numpy(dtype=float) * (1.0 if d == "min" else -1.0)
        for c, d in objectives.items()
    ])
    return eligible[~_dominated(costs)]


def _plain(value: Any) -> Any:
    """A Python value from a table cell: numpy scalars unwrapped, NaN as ``None``."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def json_safe(value: Any) -> Any:
    """Recursively: numpy scalars unwrapped, NaN and inf as ``None``, keys as strings."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plain_row(row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    """A table row as a JSON-safe dict (numpy scalars unwrapped, NaN and inf as ``None``)."""
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        value = _plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[str(key)] = value
    return out


def unflatten_config(row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    """The nested config mapping from a row's ``section.field`` columns (others ignored)."""
    nested: dict[str, Any] = {}
    for key, value in dict(row).items():
        parts = str(key).split(".")
        if len(parts) < 2 or parts[0] not in _SECTIONS:
            continue
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _plain(value)
    return nested


def row_config(row: Mapping[str, Any] | pd.Series, *, where: str = "results row") -> TuningConfig:
    """Rebuild the :class:`TuningConfig` a results row was simulated with."""
    return TuningConfig.from_dict(unflatten_config(row), where=where)
