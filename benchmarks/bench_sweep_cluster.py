"""The same simulated sweep on a Dask ``LocalCluster`` of 2 workers and on the local pool.

The space, trace and base config are ``bench_sweep.py``'s: 500 points (100 with
``--quick``) over the 20,000-message ``mixed`` trace on the ``4g`` link. One side is
``run_sweep(..., workers=2)`` (a process pool on this machine, as ``wslab sweep`` runs
without ``--cluster``); the other is ``run_sweep(..., runner=...)`` on
``wslab.tune.sweep_dask.dask_runner("local", 2)``, as ``wslab sweep --cluster local
--workers 2`` runs. Both start from an empty results file every time (a sweep resumes from
its partial file, which would otherwise skip every point).

Rows:

- sweep wall time on the cluster, its start-up not counted, against the local sweep (the
  pool's start-up is counted there: a local sweep starts its pool every time);
- the ``LocalCluster`` start-up alone (scheduler, two worker processes, client), reported
  on its own rather than hidden;
- start-up plus sweep, what a user of ``--cluster local`` waits for, against the local
  sweep.

Each turn starts a fresh cluster, so every turn pays the start-up and the trace's trip to
the workers once. Medians of at least three alternating turns, after one untimed turn of
each; ratios are medians of the per-turn ratios (``common.turn_ratio``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench_sweep import SPACE
from common import main, median, row, spread, turn_ratio, turns

from wslab.config import TuningConfig
from wslab.traces.io import read_trace
from wslab.tune.space import Space
from wslab.tune.sweep import run_sweep
from wslab.tune.sweep_dask import dask_runner

DATA = Path(__file__).resolve().parents[1] / "data"
WORKERS = 2


def run(quick: bool) -> list[dict[str, Any]]:
    n_points = 100 if quick else 500
    trace_file = DATA / "mixed.jsonl.zst"
    points = Space.from_dict(SPACE).sample(n_points, seed=0)
    base = TuningConfig().updated({"link.profile": "4g"})
    startups: list[float] = []
    rows_seen: list[int] = []

    def local() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            table = run_sweep(trace_file, points, Path(tmp) / "r.parquet", base=base,
                              workers=WORKERS)
            wall = time.perf_counter() - started
        rows_seen.append(len(table))
        return wall

    def on_cluster() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            with dask_runner("local", WORKERS) as runner:
                ready = time.perf_counter()
                table = run_sweep(trace_file, points, Path(tmp) / "r.parquet", base=base,
                                  runner=runner)
                wall = time.perf_counter() - ready
            startups.append(ready - started)
        rows_seen.append(len(table))
        return wall

    local_s, dask_s = turns([local, on_cluster])
    start_s = startups[1:]  # the warm-up turn's start-up is not a figure
    total_s = [d + s for d, s in zip(dask_s, start_s, strict=True)]
    what = f"{n_points}-point simulated sweep, {len(read_trace(trace_file))} messages"
    same = len(set(rows_seen)) == 1
    common_extra: dict[str, Any] = {"points": n_points, "distinct_configs": rows_seen[0],
                                    "workers": WORKERS, "turns": len(dask_s)}
    q1, q3 = spread([d / s for d, s in zip(dask_s, local_s, strict=True)])
    return [
        row("sweep_cluster", f"{what} on a LocalCluster of {WORKERS} workers (start-up "
            "not counted)", median(dask_s), "s",
            peer=f"the same sweep on the local process pool (workers={WORKERS})",
            peer_value=median(local_s), ratio=turn_ratio(dask_s, local_s),
            ok=same, target="same rows", turn_ratio_q1=q1, turn_ratio_q3=q3,
            note=f"each side from an empty results file; {rows_seen[0]} distinct configs "
                 "on both sides" if same else "the two sides gave different row counts",
            **common_extra),
        row("sweep_cluster", f"LocalCluster start-up, {WORKERS} workers (scheduler, "
            "workers, client)", median(start_s), "s", **common_extra,
            note="paid once per `wslab sweep --cluster local`; a running scheduler "
                 "(--cluster tcp://...) does not pay it"),
        row("sweep_cluster", f"{what} on a LocalCluster of {WORKERS} workers, start-up "
            "included", median(total_s), "s",
            peer=f"the same sweep on the local process pool (workers={WORKERS})",
            peer_value=median(local_s), ratio=turn_ratio(total_s, local_s), **common_extra),
    ]


if __name__ == "__main__":
    main(run)
