"""The recommend panel's sweep on a Dask LocalCluster: the same table as without it, the
progress bar counting, and the panel linking the cluster's dashboard."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import dask
import pandas as pd
import pytest

from wslab.errors import WslabError
from wslab.lab import RecommendPanel
from wslab.lab.dask_link import DaskLink
from wslab.lab.data import load_trace
from wslab.lab.recommend_jobs import FAST_GRID, grid_points
from wslab.tune.canonical import plan_points
from wslab.tune.sweep import trace_loads

pytest.importorskip("distributed", reason="Dask distributed is a dev dependency")

# Measured CPU time (and the latency the simulator charges it to) differs between any two
# runs; every other column is exact.
MEASURED = ("cpu_us_per_msg", "vs_always_cpu_us_per_msg", "latency_p50_ms", "latency_p90_ms",
            "latency_p95_ms", "latency_p99_ms", "latency_max_ms")


def _exact(table: pd.DataFrame) -> pd.DataFrame:
    out = table.drop(columns=[c for c in MEASURED if c in table.columns])
    return out.sort_values("point").reset_index(drop=True)


def test_the_panel_sweeps_on_a_local_cluster_and_links_its_dashboard(tmp_path: Path) -> None:
    trace = load_trace("chat", messages=400)
    points = grid_points(FAST_GRID)
    here = RecommendPanel(trace, workers=1, points=points, workdir=tmp_path / "here")
    expected = here.sweep()
    panel = RecommendPanel(trace, workers=2, points=points, workdir=tmp_path / "dask",
                           cluster="local")
    assert panel.dask is not None
    assert "connects on the first sweep" in panel.dask_line.value
    seen: list[int] = []

    async def main() -> pd.DataFrame:
        task = panel.start_sweep()
        panel.tasks.progress.listeners.append(lambda pr: seen.append(pr.done))
        return await task

    try:
        table = asyncio.run(main())
        assert panel.dask.connected
        line = panel.dask_line.value
        assert "2 worker(s)" in line
        found = re.search(r'href="([^"]+)"', line)
        assert found is not None and found.group(1).startswith("http://127.0.0.1:")
        with urllib.request.urlopen(found.group(1), timeout=10) as answer:  # the dashboard
            assert answer.status == 200
        client = panel.dask.runner().session.client
        loads = client.run(trace_loads)
        assert sum(loads.values()) >= 1  # the points ran on the cluster's workers
        # the local cluster's workers run without Dask's sampling profiler (it costs a
        # CPU-bound sweep a tenth of its time)
        profiling = client.run(dask.config.get, "distributed.worker.profile.enabled")
        assert set(profiling.values()) == {False}
    finally:
        panel.dask.close()
    configs = len(plan_points(panel.points, panel.config))
    assert seen and seen[-1] == configs and seen == sorted(seen)
    assert len(table) == configs
    pd.testing.assert_frame_equal(_exact(table), _exact(expected))


def test_a_malformed_cluster_address_fails_when_the_panel_is_built() -> None:
    with pytest.raises(WslabError, match="--cluster"):
        DaskLink("localhost:8786")
