"""Pick one config from a results table: Pareto frontier, constraints, objective, reasons.

What lives here: :func:`recommend` and the :class:`Recommendation` it returns. The frontier
itself, the table checks and config rebuilding are in ``recommend_pareto``; the baselines
and the tidy comparison in ``recommend_baseline``; the wording in ``recommend_explain``.

Rules (stated once):

- only rows of the chosen ``mode`` (``sim`` by default, the wide search) compete; live rows
  are validation and go to the report;
- a row that lost, duplicated or reordered a message is never eligible, nor (unless
  ``allow_dropped``) one whose background queue dropped messages;
- constraints are upper bounds: ``max_p99_ms`` on ``latency_p99_ms``, ``max_kib_per_conn``
  on ``mem_kib_per_conn``, ``max_cpu_us_per_msg`` on ``cpu_us_per_msg``;
- rows the client population cannot negotiate (``clients``, default ``browser``: zstd, a
  client window below 15 bits; see ``clients.py``) never compete; the best of them that
  meets the constraints is set beside the choice (``left_out``), so the explanation says
  what they would have saved;
- the chosen row minimises the objective among feasible rows, ties broken by the other
  objectives in order, so it is on the frontier;
- where the table holds the chosen config with another policy, each ``threshold`` or
  ``adaptive`` variant is set beside its ``always`` twin (``policy``): bytes and CPU per
  message, and which frames went uncompressed;
- the binding constraint is the one whose removal improves the objective most, else the one
  the chosen row has least headroom under;
- infeasible constraints are an answer, not an error: the smallest relaxation of one
  constraint that lets some row through (or, failing that, of several together).

What must not live here: printing, file I/O, plotting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.traces.model import Trace
from wslab.tune import recommend_explain as explain
from wslab.tune.clients import check_clients
from wslab.tune.policy import EFFECT_COLUMNS, family_effects
from wslab.tune.recommend_baseline import (
    BASELINES,
    SimulateFn,
    baseline_rows,
    compare,
    trace_simulator,
)
from wslab.tune.recommend_clients import LEFT_OUT_COLUMNS, left_out, split_clients
from wslab.tune.recommend_constraints import CONSTRAINTS, binding_constraint, relaxations
from wslab.tune.recommend_pareto import (
    DEFAULT_OBJECTIVES,
    Direction,
    check_results,
    eligible_mask,
    json_safe,
    pareto_front,
    plain_row,
    row_config,
)

__all__ = ["CONSTRAINTS", "DEFAULT_OBJECTIVES", "Recommendation", "pareto_front", "recommend"]


@dataclass
class Recommendation:
    """One recommended config, or the reason there is none, with its reasoning.

    Attributes:
        feasible: Whether some row met every constraint.
        objective: The minimised column.
        limits: The constraints given, by option name (``max_p99_ms`` ...).
        chosen: The chosen row (config fields flattened, then metrics), JSON-safe.
        frontier: The Pareto frontier of the eligible rows.
        constraints: One row per given constraint: metric, limit, chosen value, headroom,
            best objective without that constraint.
        binding: The binding constraint and what relaxing it would buy (or ``None``).
        relax: For infeasible constraints, what to relax and to what (one item normally;
            several when no single relaxation suffices).
        relax_options: Every single-constraint relaxation that would suffice.
        comparison: One row per (baseline, metric): chosen, base, change, change_pct.
        baseline_sources: Per baseline: ``table``, ``simulated`` or ``missing``.
        counts: Points in the table, competing, eligible, feasible, on the frontier, and
            left out for the client population.
        clients: The client population (``browser`` or ``custom``).
        left_out: Per client rule that left rows out: how many, how many met the
            constraints, the best of those and what it would have saved against the
            chosen row (``recommend_clients.LEFT_OUT_COLUMNS``).
        policy: The chosen config's ``threshold``/``adaptive`` variants against their
            ``always`` twin (``policy.EFFECT_COLUMNS``); empty when the table has none.
        explanation: The reasons in plain words, one sentence a line.
    """

    feasible: bool
    objective: str
    limits: dict[str, float]
    chosen: dict[str, Any] | None
    frontier: pd.DataFrame
    constraints: pd.DataFrame
    binding: dict[str, Any] | None
    relax: list[dict[str, Any]]
    relax_options: list[dict[str, Any]]
    comparison: pd.DataFrame
    baseline_sources: dict[str, str]
    counts: dict[str, int]
    clients: str = "browser"
    left_out: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=LEFT_OUT_COLUMNS))
    policy: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EFFECT_COLUMNS))
    explanation: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The explanation as one paragraph per line."""
        return "\n".join(self.explanation)

    @property
    def config(self) -> TuningConfig:
        """The chosen config, rebuilt from the row's flattened fields.

        Raises:
            WslabError: If no row met the constraints.
        """
        if self.chosen is None:
            raise WslabError("no config meets the constraints: " + self.text)
        return row_config(self.chosen, where="chosen row")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe mapping (no NaN, no numpy scalars)."""
        return dict(json_safe({
            "feasible": self.feasible,
            "objective": self.objective,
            "limits": self.limits,
            "chosen": self.chosen,
            "config": self.config.to_dict() if self.chosen is not None else None,
            "binding": self.binding,
            "relax": self.relax,
            "relax_options": self.relax_options,
            "constraints": self.constraints.to_dict(orient="records"),
            "comparison": self.comparison.to_dict(orient="records"),
            "baseline_sources": self.baseline_sources,
            "counts": self.counts,
            "frontier": [plain_row(r) for _, r in self.frontier.iterrows()],
            "clients": self.clients,
            "left_out": self.left_out.to_dict(orient="records"),
            "policy": self.policy.drop(columns=["family"], errors="ignore")
                      .to_dict(orient="records"),
            "explanation": self.explanation,
        }))


def _limits(max_p99_ms: float | None, max_kib_per_conn: float | None,
            max_cpu_us_per_msg: float | None) -> dict[str, float]:
    given = {"max_p99_ms": max_p99_ms, "max_kib_per_conn": max_kib_per_conn,
             "max_cpu_us_per_msg": max_cpu_us_per_msg}
    return {k: float(v) for k, v in given.items() if v is not None}


def recommend(
    df: pd.DataFrame,
    *,
    max_p99_ms: float | None = None,
    max_kib_per_conn: float | None = None,
    max_cpu_us_per_msg: float | None = None,
    objective: str = "ws_bytes_per_msg",
    baseline_df: pd.DataFrame | None = None,
    trace: Trace | str | Path | None = None,
    simulate_fn: SimulateFn | None = None,
    seed: int = 0,
    mode: str = "sim",
    objectives: dict[str, Direction] | None = None,
    allow_dropped: bool = False,
    clients: str = "browser",
    where: str = "results",
) -> Recommendation:
    """Choose the config that minimises ``objective`` under the given upper bounds.

    Args:
        df: A results table (``run_sweep``'s shape).
        max_p99_ms: Upper bound on p99 latency, ms.
        max_kib_per_conn: Upper bound on memory per connection, KiB.
        max_cpu_us_per_msg: Upper bound on CPU per message, microseconds.
        objective: The numeric column to minimise.
        baseline_df: More rows to look for the baselines in (same columns).
        trace: The trace the sweep ran on: baselines missing from the tables are simulated
            on it (``seed`` as in the sweep).
        simulate_fn: Alternative to ``trace``: config -> results row for a baseline.
        seed: Link seed for simulated baselines.
        mode: Which rows compete (``sim``); all rows if the table has none of that mode.
        objectives: The frontier's objectives (default: bytes, p99, CPU, memory).
        allow_dropped: Let rows that dropped background messages compete.
        clients: Who must negotiate the config: ``browser`` (default; rows browsers
            cannot negotiate are left out, see ``clients.py``) or ``custom`` (no limit).
        where: The table's name in error messages.

    Raises:
        WslabError: If the table lacks a needed column, a limit is negative, ``clients``
            is unknown, or the given trace is not the one the results came from.
    """
    objectives = dict(objectives or DEFAULT_OBJECTIVES)
    population = check_clients(clients)
    limits = _limits(max_p99_ms, max_kib_per_conn, max_cpu_us_per_msg)
    negative = [f"{k}={v:g}" for k, v in limits.items() if not v >= 0]
    if negative:
        raise WslabError(f"constraints must be >= 0: {', '.join(negative)}")
    metrics = [CONSTRAINTS[k] for k in limits]
    check_results(df, [objective, *objectives, *metrics], where=where)
    pool = df
    if "mode" in df.columns and (df["mode"].astype(str) == mode).any():
        pool = df[(df["mode"].astype(str) == mode).to_numpy()]
    pool, excluded = split_clients(pool, population)
    eligible = _eligible(pool, [objective, *objectives, *metrics], allow_dropped)
    excluded = _eligible(excluded, [objective, *objectives, *metrics], allow_dropped)
    frontier = pareto_front(eligible, objectives)
    feasible_mask = np.ones(len(eligible), dtype=bool)
    for name, limit in limits.items():
        feasible_mask &= eligible[CONSTRAINTS[name]].to_numpy(dtype=float) <= limit
    feasible = eligible[feasible_mask]
    counts = {"points": len(df), "competing": len(pool), "eligible": len(eligible),
              "feasible": len(feasible), "frontier": len(frontier),
              "left_out": len(excluded),
              "deflate_competing": int((eligible["compression.algorithm"].astype(str)
                                        == "permessage-deflate").sum())
              if "compression.algorithm" in eligible.columns else 0}
    empty_cmp = compare(pd.Series(dtype=float), {})
    if feasible.empty:
        relax, options = relaxations(eligible, limits, objective)
        rec = Recommendation(False, objective, limits, None, frontier,
                             pd.DataFrame(), None, relax, options, empty_cmp, {}, counts,
                             population, left_out(excluded, population, limits, objective,
                                                  None))
        rec.explanation = explain.infeasible(rec) + explain.left_out_lines(rec)
        return rec
    # Equal on the objective to the byte: the simpler policy wins (adaptive that compressed
    # every frame sent what always sends, and costs a decision per frame); after that the
    # other objectives, whose CPU-timed parts differ by noise between equal runs.
    order = [objective, "_policy_rank", *(c for c in objectives if c != objective)]
    ranked = feasible.assign(_policy_rank=_policy_rank(feasible))
    chosen_row = ranked.sort_values(order, kind="stable").iloc[0].drop("_policy_rank")
    chosen_cfg = row_config(chosen_row, where=f"{where}: chosen row")
    binding, table = binding_constraint(eligible, limits, objective, chosen_row)
    if trace is not None and simulate_fn is None:
        simulate_fn = trace_simulator(trace, seed=seed)
    search = df if baseline_df is None else pd.concat([df, baseline_df], ignore_index=True)
    base_rows, sources = baseline_rows(search, chosen_row, chosen_cfg, simulate_fn)
    chosen = plain_row(chosen_row)
    rec = Recommendation(True, objective, limits, chosen, frontier, table,
                         binding, [], [], compare(chosen_row, base_rows), sources, counts,
                         population, left_out(excluded, population, limits, objective, chosen),
                         family_effects(df, chosen))
    rec.explanation = (explain.feasible(rec, BASELINES) + explain.policy_lines(rec)
                       + explain.left_out_lines(rec))
    return rec


POLICY_RANK = {"never": 0, "always": 1, "threshold": 2, "adaptive": 3}
"""Simplest first: how a tie on the objective is broken."""


def _policy_rank(rows: pd.DataFrame) -> pd.Series:
    if "compression.policy" not in rows.columns:
        return pd.Series(0, index=rows.index)
    return rows["compression.policy"].astype(str).map(POLICY_RANK).fillna(len(POLICY_RANK))


def _eligible(rows: pd.DataFrame, columns: list[str], allow_dropped: bool) -> pd.DataFrame:
    """Rows that may be recommended: intact, finite, and (unless allowed) nothing dropped."""
    ok = eligible_mask(rows, dict.fromkeys(columns))
    if not allow_dropped and "dropped" in rows.columns:
        ok &= pd.to_numeric(rows["dropped"], errors="coerce").fillna(0).to_numpy() == 0
    return rows[ok.to_numpy()]
