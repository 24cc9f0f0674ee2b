"""Multi-objective search for large spaces (``wslab sweep --search optuna``).

What lives here: :func:`run_optimise`, which asks optuna's NSGA-III sampler for points,
simulates them on both cores with the same worker functions as the grid sweep, tells it the
four objectives (bytes per message, p99 latency, CPU per message, memory per connection,
all minimised), and writes the same tidy table, resumable the same way. Trials whose
canonical config (``canonical.py``) was simulated already are told that row's values
without simulating again, and every distinct config is one row, its ``requested`` column
listing the trials that asked for it.

Why NSGA-III: the spaces mix categorical fields (strategy, algorithm, policy) with integer
and continuous ones, and there are four objectives to trade off, not one to minimise. A
genetic algorithm handles categorical fields natively and makes no smoothness assumption;
NSGA-III keeps a spread of reference directions, which suits four objectives better than
NSGA-II's crowding distance. The result feeds the same Pareto frontier as a grid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from wslab.config import TuningConfig
from wslab.harness.lifeline import process_pool
from wslab.tables import write_tables
from wslab.tune.canonical import (
    PlannedPoint,
    canonical,
    canonical_point,
    config_key,
    overrides_from,
)
from wslab.tune.policy import add_policy_columns
from wslab.tune.space import Space, point_key
from wslab.tune.sweep import (
    Progress,
    init_worker,
    listed_row,
    load_partial,
    partial_path,
    row_key,
    run_point,
)

OBJECTIVES = ("ws_bytes_per_msg", "latency_p99_ms", "cpu_us_per_msg", "mem_kib_per_conn")


def _distributions(space: Space) -> dict[str, Any]:
    import optuna.distributions as d

    out: dict[str, Any] = {}
    for dim in space.dimensions:
        if dim.values is not None:
            out[dim.field] = d.CategoricalDistribution(list(dim.values))
        else:
            out[dim.field] = d.FloatDistribution(dim.low, dim.high, log=dim.kind == "loguniform")
    return out


def _values(row: dict[str, Any]) -> list[float]:
    return [float(row[k]) if row.get(k) is not None else float("inf") for k in OBJECTIVES]


def _asked_before(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The trial parameters a partial row was simulated for."""
    text = row.get("requested")
    if isinstance(text, str) and text:
        data = json.loads(text)
        return [dict(p) for p in data] if isinstance(data, list) else []
    return [json.loads(row["point"])] if isinstance(row.get("point"), str) else []


def run_optimise(trace_path: str | Path, space: Space, out: str | Path, *, trials: int,
                 base: TuningConfig | None = None, seed: int = 0, workers: int | None = None,
                 progress: Progress | None = None) -> pd.DataFrame:
    """Search ``space`` until ``trials`` distinct configs are simulated (or the asking budget,
    five trials per wanted config, runs out); write and return the results table."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    out = Path(out)
    base_config = base or TuningConfig()
    base_dict = base_config.to_dict()
    dists = _distributions(space)
    sampler = optuna.samplers.NSGAIIISampler(seed=seed, population_size=min(24, trials))
    study = optuna.create_study(directions=["minimize"] * len(OBJECTIVES), sampler=sampler)
    partial = partial_path(out)
    done: dict[str, dict[str, Any]] = {}
    first: dict[str, dict[str, Any]] = {}
    asked_for: dict[str, list[dict[str, Any]]] = {}
    for row in load_partial(partial):  # resume: earlier trials teach the sampler too
        key = row_key(row)
        if key is None:
            continue
        done[key] = row
        first[key] = json.loads(row["point"])
        for params in _asked_before(row):
            if set(params) == set(dists):
                study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                          values=_values(row)))
                asked_for.setdefault(key, []).append(params)
    workers = max(1, workers or os.cpu_count() or 1)
    if progress:
        progress(len(done), trials)
    with open(partial, "a", encoding="utf-8") as sink, process_pool(  # see lifeline.py
        workers, init_worker, (str(trace_path), _may_use_dictionaries(space, base_dict))
    ) as pool:
        budget = trials * 5  # a small space repeats configs; do not ask for ever
        while len(done) < trials and budget > 0:
            asked = [study.ask(dists) for _ in range(min(workers, trials - len(done)))]
            budget -= len(asked)
            keys = []
            futures = {}
            for trial in asked:
                params = dict(trial.params)
                config = base_config.updated(params)
                canon = canonical(config)
                key = config_key(canon)
                keys.append(key)
                if key not in done and key not in futures:
                    first[key] = canonical_point(params, config)
                    futures[key] = pool.submit(run_point, overrides_from(base_config, canon),
                                               base_dict, seed)
            for key, future in futures.items():
                row = future.result()
                row["requested"] = json.dumps([dict(t.params) for t, k in zip(asked, keys,
                                                                             strict=True)
                                               if k == key][:1], sort_keys=True)
                done[key] = row
                sink.write(json.dumps(row, default=str) + "\n")
                sink.flush()
            for trial, key in zip(asked, keys, strict=True):
                study.tell(trial, _values(done[key]))
                asked_for.setdefault(key, []).append(dict(trial.params))
            if progress:
                progress(len(done), trials)
    rows = [listed_row(row, PlannedPoint(first[key], key, tuple(asked_for.get(key, []))))
            for key, row in done.items()]
    table = add_policy_columns(pd.DataFrame(rows))
    table["search"] = "optuna-nsga3"
    write_tables(table, out)
    partial.unlink(missing_ok=True)
    return table


__all__ = ["OBJECTIVES", "point_key", "run_optimise"]


def _may_use_dictionaries(space: Space, base: dict[str, Any]) -> bool:
    """Whether a trial can be ``zstd-dict`` (then every trial is scored held out)."""
    if base.get("compression", {}).get("algorithm") == "zstd-dict":
        return True
    return any(d.field == "compression.algorithm" and "zstd-dict" in (d.values or ())
               for d in space.dimensions)
