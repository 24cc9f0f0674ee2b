"""What the rows a client population cannot negotiate would have given, against the choice.

What lives here: :func:`split_clients` (a results pool into the rows that may compete and
the rows left out, each with the rule of ``wslab/tune/clients.py`` that leaves it out) and
:func:`left_out` (per rule: how many rows, how many met the constraints, and the best of
those against the chosen row). Every figure comes from the rows themselves.

What must not live here: the rules (``clients.py``), choosing the row, wording
(``recommend_explain.py``), I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from wslab.tune.clients import client_exclusions, rule
from wslab.tune.recommend_constraints import CONSTRAINTS
from wslab.tune.recommend_pareto import plain_row

LEFT_OUT_COLUMNS = ["rule", "cannot", "rows", "feasible", "best", "objective", "value",
                    "chosen_value", "saving", "saving_pct", "best_any", "value_any",
                    "saving_any_pct"]
"""Columns of :func:`left_out`: ``best`` is the best left-out row that meets the
constraints (a dict, or ``None``), ``value`` its objective, ``chosen_value`` the chosen
row's, ``saving`` and ``saving_pct`` how much lower the left-out row's objective is
(positive: it would have done better; relative to the chosen row); ``best_any``,
``value_any`` and ``saving_any_pct`` the same for the best left-out row ignoring the
constraints."""


def split_clients(pool: pd.DataFrame, clients: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows that may compete, rows left out with a ``client_rule`` column)``."""
    reasons = client_exclusions(pool, clients)
    out = (reasons != "").to_numpy()
    left = pool[out].assign(client_rule=reasons[out].to_numpy())
    return pool[~out], left


def _meets(df: pd.DataFrame, limits: Mapping[str, float]) -> np.ndarray:
    ok = np.ones(len(df), dtype=bool)
    for name, limit in limits.items():
        ok &= df[CONSTRAINTS[name]].to_numpy(dtype=float) <= limit
    return ok


def _best(rows: pd.DataFrame, objective: str) -> tuple[dict[str, Any] | None, float]:
    if rows.empty:
        return None, float("nan")
    top = rows.sort_values(objective, kind="stable").iloc[0]
    return plain_row(top), float(top[objective])


def _pct(part: float, whole: float) -> float:
    return part / whole * 100 if whole and whole == whole else float("nan")


def left_out(excluded: pd.DataFrame, clients: str, limits: Mapping[str, float],
             objective: str, chosen: Mapping[str, Any] | None) -> pd.DataFrame:
    """Per rule that left rows out: the best of them that meets ``limits``, against ``chosen``.

    Args:
        excluded: Eligible rows (integrity intact) left out, with ``client_rule``.
        clients: The population (names the rules).
        limits: The constraints the choice was made under.
        objective: The minimised column.
        chosen: The chosen row, or ``None`` when nothing allowed met the constraints.

    Returns:
        One row per rule, in rule order, with :data:`LEFT_OUT_COLUMNS`.
    """
    records: list[dict[str, Any]] = []
    if excluded.empty:
        return pd.DataFrame.from_records(records, columns=LEFT_OUT_COLUMNS)
    chosen_value = float(chosen[objective]) if chosen is not None else float("nan")
    for name in dict.fromkeys(excluded["client_rule"]):
        part = excluded[(excluded["client_rule"] == name).to_numpy()]
        feasible = part[_meets(part, limits)]
        best, value = _best(feasible, objective)
        best_any, value_any = _best(part, objective)
        saving = chosen_value - value
        records.append({
            "rule": name, "cannot": rule(clients, str(name)).cannot, "rows": len(part),
            "feasible": len(feasible), "best": best, "objective": objective,
            "value": value, "chosen_value": chosen_value, "saving": saving,
            "saving_pct": _pct(saving, chosen_value), "best_any": best_any,
            "value_any": value_any, "saving_any_pct": _pct(chosen_value - value_any,
                                                           chosen_value),
        })
    return pd.DataFrame.from_records(records, columns=LEFT_OUT_COLUMNS)
