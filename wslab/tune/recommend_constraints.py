"""Which constraint binds a recommendation, and how far to relax infeasible ones.

What lives here: the constraint names and the columns they bound (:data:`CONSTRAINTS`),
:func:`binding_constraint` (what dropping or loosening each limit would buy) and
:func:`relaxations` (the smallest loosening that makes some row feasible). Every function
works on the *eligible* rows only (integrity intact), so a relaxation never points at a row
that loses messages.

What must not live here: choosing the row, the baselines, wording, I/O.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

CONSTRAINTS = {
    "max_p99_ms": "latency_p99_ms",
    "max_kib_per_conn": "mem_kib_per_conn",
    "max_cpu_us_per_msg": "cpu_us_per_msg",
}
"""Constraint option name -> the results column it bounds from above."""

_TABLE_COLUMNS = ["constraint", "metric", "limit", "value", "headroom", "headroom_pct",
                  "best_objective_without"]


def _meets(df: pd.DataFrame, limits: dict[str, float], skip: str | None = None) -> np.ndarray:
    """Rows meeting every limit except ``skip``."""
    ok = np.ones(len(df), dtype=bool)
    for name, limit in limits.items():
        if name != skip:
            ok &= df[CONSTRAINTS[name]].to_numpy(dtype=float) <= limit
    return ok


def _pct(part: float, whole: float) -> float:
    return part / whole * 100 if whole else (0.0 if part == 0 else math.inf)


def binding_constraint(
    eligible: pd.DataFrame, limits: dict[str, float], objective: str, chosen: pd.Series
) -> tuple[dict[str, Any] | None, pd.DataFrame]:
    """The binding constraint and the per-constraint table.

    For each limit: the best objective with that limit dropped (the others kept). The
    binding one is the limit whose removal gains most; its entry also gives the smallest
    loosening that gains anything (``next_limit``/``next_objective``) and the loosening that
    reaches the best (``best_limit``/``best_objective``). If no removal gains, the binding
    one is the limit with the least relative headroom (``kind`` ``closest``).

    Returns:
        ``(binding or None when no limits were given, one row per limit)``.
    """
    current = float(chosen[objective])
    rows: list[dict[str, Any]] = []
    gains: dict[str, dict[str, Any]] = {}
    for name, limit in limits.items():
        metric = CONSTRAINTS[name]
        value = float(chosen[metric])
        others = eligible[_meets(eligible, limits, skip=name)]
        obj = others[objective].to_numpy(dtype=float)
        best = float(obj.min())
        rows.append({"constraint": name, "metric": metric, "limit": limit, "value": value,
                     "headroom": limit - value, "headroom_pct": _pct(limit - value, limit),
                     "best_objective_without": best})
        if best < current:
            better = others[obj < current]
            at_best = others[obj == best]
            next_limit = float(better[metric].min())
            next_obj = float(others[others[metric].to_numpy(dtype=float) <= next_limit]
                             [objective].min())
            gains[name] = {
                "constraint": name, "metric": metric, "limit": limit, "value": value,
                "kind": "relaxing", "gain": current - best,
                "next_limit": next_limit, "next_objective": next_obj,
                "best_limit": float(at_best[metric].min()), "best_objective": best,
            }
    table = pd.DataFrame.from_records(rows, columns=_TABLE_COLUMNS)
    if not limits:
        return None, table
    if gains:
        return max(gains.values(), key=lambda g: g["gain"]), table
    tight = table.sort_values("headroom_pct", kind="stable").iloc[0]
    return {
        "constraint": str(tight["constraint"]), "metric": str(tight["metric"]),
        "limit": float(tight["limit"]), "value": float(tight["value"]), "kind": "closest",
        "gain": 0.0, "next_limit": None, "next_objective": None,
        "best_limit": None, "best_objective": None,
    }, table


def _step(name: str, limit: float, needed: float) -> dict[str, Any]:
    return {"constraint": name, "metric": CONSTRAINTS[name], "limit": limit,
            "needed": needed, "by": needed - limit, "by_pct": _pct(needed - limit, limit)}


def relaxations(
    eligible: pd.DataFrame, limits: dict[str, float], objective: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What to relax when no eligible row meets every limit.

    For each limit alone: the smallest value that lets some row meeting the other limits
    through (and the best objective it would then give). The suggestion is the option with
    the smallest relative loosening. When no single limit suffices, the suggestion loosens
    several at once, to the row with the least total relative excess.

    Returns:
        ``(suggested steps, to apply together; every sufficient single-limit option)``;
        both empty when there are no eligible rows at all.
    """
    if eligible.empty:
        return [], []
    options: list[dict[str, Any]] = []
    for name, limit in limits.items():
        metric = CONSTRAINTS[name]
        others = eligible[_meets(eligible, limits, skip=name)]
        if others.empty:
            continue
        needed = float(others[metric].min())
        step = _step(name, limit, needed)
        step["objective"] = float(
            others[others[metric].to_numpy(dtype=float) <= needed][objective].min()
        )
        options.append(step)
    options.sort(key=lambda o: (o["by_pct"], o["by"]))
    if options:
        return [options[0]], options
    excess = np.zeros(len(eligible))
    for name, limit in limits.items():
        values = eligible[CONSTRAINTS[name]].to_numpy(dtype=float)
        over = np.maximum(values - limit, 0.0)
        excess += over / limit if limit else np.where(over > 0, np.inf, 0.0)
    row = eligible.iloc[int(np.argmin(excess))]
    steps = [_step(name, limit, float(row[CONSTRAINTS[name]]))
             for name, limit in limits.items() if float(row[CONSTRAINTS[name]]) > limit]
    for step in steps:
        step["objective"] = float(row[objective])
    return steps, []
