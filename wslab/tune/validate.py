"""Live validation of simulated candidates: the bridge from a sweep to ``wslab bench``.

What lives here: picking the best feasible candidates from a results table and running each
live (server, shaper and client in separate processes), returning rows in the sweep's own
shape with ``mode: live``, so reports and recommendations can put measured beside
simulated. No search and no choosing between candidates happens here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from wslab.tune.sweep import point_row

Say = Callable[[str], None]

LIMIT_COLUMNS = {"max_p99_ms": "latency_p99_ms", "max_kib_per_conn": "mem_kib_per_conn",
                 "max_cpu_us_per_msg": "cpu_us_per_msg"}


def best_candidates(table: pd.DataFrame, objective: str, limits: dict[str, float | None],
                    count: int, chosen: str | None = None,
                    clients: str | None = None) -> pd.DataFrame:
    """The chosen point (if given) and the next best simulated points that meet every
    constraint and lost nothing, best ``objective`` first; with ``clients``, only points
    that population can negotiate (``wslab/tune/clients.py``)."""
    from wslab.tune.clients import client_exclusions

    ok = (table["mode"] == "sim") & (table[["lost", "duplicated", "reordered"]].sum(axis=1)
                                     == 0)
    if clients is not None:
        ok &= client_exclusions(table, clients) == ""
    for name, column in LIMIT_COLUMNS.items():
        if limits.get(name) is not None:
            ok &= table[column] <= limits[name]
    feasible = table[ok].sort_values(objective)
    first = feasible[feasible["point"] == chosen]
    rest = feasible[feasible["point"] != chosen]
    picked: pd.DataFrame = pd.concat([first, rest]).drop_duplicates("point").head(count)
    return picked


def validate_live(trace_path: Path, candidates: pd.DataFrame, link: str,
                  say: Say | None = None) -> list[dict[str, Any]]:
    """Run each candidate live on the whole trace (``wslab bench``), one row each with
    ``mode`` ``live`` and the candidate's ``point``, so it pairs with its simulated row.

    Every algorithm runs live (zstd through ``x-wslab-zstd``)."""
    from wslab.harness.bench import BenchOptions, run_bench
    from wslab.tune.recommend_pareto import row_config

    options = BenchOptions(link=link, duration=None, drain_timeout=2.0)
    rows = []
    for _, cand in candidates.iterrows():
        config = row_config(cand)
        if say is not None:
            say(f"live: {cand['point']}")
        bench = run_bench(trace_path, config, options)
        live_row = point_row(config, bench.summary)
        live_row.update({"point": cand["point"], "mode": "live",
                         "cpu_server_s": bench.summary["cpu_server_s"],
                         "rss_server_kib": bench.summary["rss_server_kib"],
                         "negotiated": bench.summary["negotiated"]})
        rows.append(live_row)
    return rows
