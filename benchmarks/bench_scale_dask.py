"""Holders on Dask workers against holders started by wslab itself, in the same run.

``wslab scale --cluster`` places the measuring clients (holder processes) on Dask workers;
this measures what that placement costs, side by side with the peer, the same run with its
holders started locally as ``wslab scale`` does without ``--cluster``. Both sides: one
wslab worker, two holders, every connection held through five broadcasts of 256 B, 0.5 s
apart; the Dask side on a ``LocalCluster`` of two worker processes (one holder each), its
start-up outside the figures (reported beside them).

Figures, each the median of alternating turns (3 quick, 5 full; one unrecorded warm-up
each), ratios the median of per-turn ratios:

- **holder throughput per Dask worker**: connections opened per second per holder during
  the ramp (each holder is one Dask worker's), against a local holder's;
- broadcast latency p50 and p99 on both sides (the Dask side's receipt times moved onto
  the coordinator's clock; its uncertainty reported);
- lost + duplicated + reordered over every run (target 0).

On one machine the holders share the two cores with the server either way, so the ratio
shows the relay's overhead (a socket and a Dask task per holder), not what more machines
would add.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from common import main, median, row, turn_ratio, turns

from wslab.config import TuningConfig
from wslab.harness.scale import ScaleOptions, run_scale

HOLDERS = 2


def _one(connections: int, cluster: str | None, faults: list[int],
         seen: dict[str, list[float]]) -> float:
    summary = run_scale(TuningConfig(), ScaleOptions(
        connections=connections, workers=1, broadcasts=5, directs=0, idle_s=0.5,
        holders=HOLDERS, cluster=cluster, timeout_s=120.0), lambda _m: None).summary
    side = "dask" if cluster else "local"
    faults.append(int(summary["lost"] + summary["duplicated"] + summary["reordered"]
                      + (summary["connections"] - summary["opened"])))
    lat = summary["broadcast_latency_ms"]
    seen.setdefault(f"{side}.p50", []).append(float(lat["p50"]))
    seen.setdefault(f"{side}.p99", []).append(float(lat["p99"]))
    if cluster:
        seen.setdefault("uncertainty", []).append(float(summary["clock_uncertainty_ms"]))
    return float(summary["connections_per_s"]) / HOLDERS


def _local_cluster_start_s() -> float:
    from wslab.harness.dask_cluster import dask_session, parse_cluster

    start = time.perf_counter()
    with dask_session(parse_cluster("local"), HOLDERS):
        return time.perf_counter() - start


def run(quick: bool) -> list[dict[str, Any]]:
    connections = 2000 if quick else 4000
    repeats = 3 if quick else 5
    faults: list[int] = []
    seen: dict[str, list[float]] = {}
    fns: list[Callable[[], float]] = [
        lambda: _one(connections, "local", faults, seen),
        lambda: _one(connections, None, faults, seen),
    ]
    dask, local = turns(fns, repeats)
    recorded = slice(1, None)  # the warm-up turn of each side is not a figure
    note = f"median of {repeats} turns, {connections} connections, {HOLDERS} holders"
    rows = [row("scale_dask", "connections opened per second per holder (Dask worker vs local)",
                median(dask), "conn/s", peer="holder started locally", peer_value=median(local),
                ratio=turn_ratio(dask, local), note=note, connections=connections)]
    for pct in ("p50", "p99"):
        d, lo = seen[f"dask.{pct}"][recorded], seen[f"local.{pct}"][recorded]
        rows.append(row("scale_dask", f"broadcast latency {pct}, holders on Dask vs local",
                        median(d), "ms", peer="holders started locally",
                        peer_value=median(lo), ratio=turn_ratio(d, lo), note=note,
                        connections=connections))
    rows.append(row("scale_dask", "clock offset uncertainty, holders on Dask",
                    median(seen["uncertainty"][recorded]), "ms", note=note))
    rows.append(row("scale_dask", "LocalCluster start-up (2 workers), outside the figures",
                    median(_local_cluster_start_s() for _ in range(3)), "s",
                    note="median of 3 starts"))
    rows.append(row("scale_dask", "lost + duplicated + reordered + failed, every run",
                    sum(faults), "count", target="0", ok=sum(faults) == 0,
                    note=f"{len(faults)} runs"))
    return rows


if __name__ == "__main__":
    main(run)
