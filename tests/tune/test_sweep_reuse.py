"""A sweep with reuse: its rows equal fresh simulations, and its chunks keep shared frames
together while keeping every core busy."""

from __future__ import annotations

from pathlib import Path

import pytest

from wslab.config import TuningConfig
from wslab.sim import simulate
from wslab.traces.io import read_trace, write_trace
from wslab.traces.model import Trace
from wslab.tune.canonical import plan_points
from wslab.tune.space import Space
from wslab.tune.sweep import chunk_plan, run_sweep

DATA = Path(__file__).resolve().parents[2] / "data"
SPACE = {
    "batching.strategy": ["none", "time", "hybrid"],
    "batching.interval_ms": [5, 20],
    "compression.server_max_window_bits": [9, 12],
    "compression.policy": ["always", "adaptive"],
}
# What no clock can move: every byte, frame and integrity figure of a row.
EXACT = ("messages", "frames", "payload_bytes", "compressed_bytes", "ws_bytes", "tcp_bytes",
         "tcp_segments", "lost", "duplicated", "reordered", "dropped", "frames_compressed",
         "frames_plain")


def test_rows_of_a_reusing_sweep_equal_fresh_simulations(tmp_path: Path) -> None:
    full = read_trace(DATA / "mixed.jsonl.zst")
    trace = Trace(full.messages[:3000], full.meta)
    path = tmp_path / "t.jsonl"
    write_trace(trace, path)
    points = Space.from_dict(SPACE).grid()
    base = TuningConfig().updated({"link.profile": "4g"})
    table = run_sweep(path, points, tmp_path / "r.parquet", base=base, workers=2)
    plan = plan_points(points, base)
    assert len(table) == len(plan)
    fresh_trace = read_trace(path)
    for planned, row in zip(plan, table.to_dict("records"), strict=True):
        want = simulate(fresh_trace, base.updated(planned.overrides)).summary
        for name in EXACT:
            assert row[name] == want[name], (planned.point, name)


def test_chunks_hold_every_point_once_and_group_by_the_frames_they_release() -> None:
    points = Space.from_dict(SPACE).grid()
    base = TuningConfig()
    plan = plan_points(points, base)
    chunks = chunk_plan(plan, base, workers=1)
    assert sorted(p.key for c in chunks for p in c) == sorted(p.key for p in plan)

    def batching(p: object) -> str:
        return base.updated(p.overrides).batching.model_dump_json()  # type: ignore[attr-defined]

    # with one worker nothing needs splitting: one chunk per batching config
    assert sorted(len({batching(p) for p in c}) for c in chunks) == [1] * len(chunks)
    assert len(chunks) == len({batching(p) for p in plan})
    assert [len(c) for c in chunks] == sorted((len(c) for c in chunks), reverse=True)


@pytest.mark.parametrize("workers", [2, 8])
def test_too_few_chunks_are_split_so_no_core_idles(workers: int) -> None:
    points = Space.from_dict({"compression.mem_level": [1, 2, 3, 4, 5, 6, 7, 8, 9]}).grid()
    plan = plan_points(points, TuningConfig())
    chunks = chunk_plan(plan, TuningConfig(), workers=workers)
    assert len(chunks) >= min(2 * workers, len(plan))
    assert sorted(p.key for c in chunks for p in c) == sorted(p.key for p in plan)
