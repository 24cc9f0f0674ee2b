"""Multi-objective search: every trial a tidy row, resumable, and it finds good points."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from wslab.traces.io import read_trace, write_trace
from wslab.tune.canonical import canonical_key
from wslab.tune.optimise import OBJECTIVES, run_optimise
from wslab.tune.recommend import pareto_front
from wslab.tune.recommend_pareto import row_config
from wslab.tune.space import Space

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("opt") / "chat.jsonl.zst"
    write_trace(read_trace(DATA / "game.jsonl.zst")[:600], path)
    return path


SPACE = Space.from_dict({
    "batching.strategy": ["none", "hybrid"],
    "batching.interval_ms": {"uniform": [1, 60]},
    "compression.algorithm": ["none", "permessage-deflate"],
    "compression.server_max_window_bits": {"int": [9, 15]},
})


def test_trials_are_rows_and_the_search_finds_compressing_points(trace_path: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "opt.parquet"
    table = run_optimise(trace_path, SPACE, out, trials=16, seed=3, workers=1)
    assert len(table) == 16
    assert set(OBJECTIVES) <= set(table.columns)
    assert (tmp_path / "opt.csv").exists() and not (tmp_path / "opt.parquet.partial.jsonl").exists()
    assert len(pd.read_csv(tmp_path / "opt.csv")) == 16
    # Each row is one distinct config: its point keeps only the fields that matter for it,
    # and every trial that asked for it is listed with all the space's fields.
    points = [json.loads(p) for p in table["point"]]
    assert all(set(p) <= set(SPACE.fields) for p in points)
    plain = [p for p in points if p["batching.strategy"] == "none"]
    assert all("batching.interval_ms" not in p for p in plain)
    asked = [q for text in table["requested"] for q in json.loads(text)]
    assert all(set(q) == set(SPACE.fields) for q in asked)
    assert int(table["requested_count"].sum()) == len(asked) >= len(table)
    keys = [canonical_key(row_config(r)) for r in table.to_dict("records")]
    assert len(set(keys)) == len(keys)
    front = pareto_front(table)
    assert len(front) >= 1
    assert (front["compression.algorithm"] == "permessage-deflate").any()


def test_resume_reuses_finished_trials(trace_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "opt.parquet"
    first = run_optimise(trace_path, SPACE, out, trials=6, seed=1, workers=1)
    partial = tmp_path / "opt.parquet.partial.jsonl"
    rows = first.head(4).to_dict("records")
    rows[0]["frames"] = -777  # only a reused row can carry this
    partial.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    again = run_optimise(trace_path, SPACE, out, trials=8, seed=1, workers=1)
    assert len(again) == 8
    assert (again["frames"] == -777).sum() == 1
