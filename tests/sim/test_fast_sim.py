"""The simulator against the reference model of how it was before it was made fast.

``tests/reference_sim.py`` is the per-message simulator (an object per frame, a pandas
table per stream joined by concat and sort, the summary from pandas filters). On every
bundled trace and a spread of configs the fast one must give the very same tables (values,
dtypes, column order) and the very same summary; codec times come from a clock that makes
them repeatable (``repeatable_codec_times``), so latency columns compare exactly too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mixed_blobs import blob_trace
from reference_sim import reference_simulate, repeatable_codec_times

from wslab.config import TuningConfig
from wslab.sim import simulate
from wslab.traces.io import read_trace
from wslab.traces.model import Message, Trace

DATA = Path(__file__).resolve().parents[2] / "data"
TRACES = ("chat", "game", "market", "telemetry", "sensor", "mixed")

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "hybrid-8ms": {"batching.strategy": "hybrid", "batching.interval_ms": 8},
    "adaptive": {"compression.policy": "adaptive"},
    "priority-plain": {"compression.algorithm": "none", "batching.strategy": "priority"},
    "zstd-ndjson-size": {"compression.algorithm": "zstd-stream", "batching.strategy": "size",
                         "batching.max_bytes": 3000, "batching.envelope": "length-prefixed"},
}


def _same(trace: Trace, config: TuningConfig, monkeypatch: pytest.MonkeyPatch, *,
          link: str = "4g", verify: bool = True) -> None:
    repeatable_codec_times(monkeypatch)
    fast = simulate(trace, config, link=link, verify=verify)
    repeatable_codec_times(monkeypatch)
    slow = reference_simulate(trace, config, link=link, verify=verify)
    pd.testing.assert_frame_equal(fast.messages, slow.messages, check_exact=True)
    pd.testing.assert_frame_equal(fast.frames, slow.frames, check_exact=True)
    assert fast.summary == slow.summary


@pytest.mark.parametrize("name", TRACES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_bundled_trace_gives_the_reference_models_tables_and_summary(
        name: str, config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = read_trace(DATA / f"{name}.jsonl.zst")
    _same(trace, TuningConfig().updated(CONFIGS[config]), monkeypatch)


def test_selector_skips_and_unverified_runs_match_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    trace = blob_trace(8.0)  # JSON beside random blobs: adaptive sends some frames plain
    adaptive = TuningConfig().updated({"compression.policy": "adaptive"})
    _same(trace, adaptive, monkeypatch)
    _same(trace, adaptive.updated({"batching.strategy": "time"}), monkeypatch, verify=False)
    threshold = adaptive.updated({"compression.policy": "threshold",
                                  "compression.threshold_bytes": 300})
    _same(trace, threshold, monkeypatch, link="slow-3g")


def test_several_connections_and_a_full_background_queue_match_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = read_trace(DATA / "game.jsonl.zst").messages[:3000]
    msgs = [Message(m.t, m.dir, m.type, "background" if i % 2 else m.priority,
                    m.payload, m.is_text,
                    conn=("b" if i % 3 else "a") if i % 7 else None)
            for i, m in enumerate(base)]
    config = TuningConfig().updated({"batching.strategy": "time",
                                     "batching.interval_ms": 40,
                                     "batching.background_queue_limit": 2})
    _same(Trace(msgs), config, monkeypatch)
    assert simulate(Trace(msgs), config).summary["dropped"] > 0  # the queue did overflow


def test_an_empty_trace_gives_empty_tables() -> None:
    result = simulate(Trace([]), TuningConfig())
    assert len(result.messages) == 0 and len(result.frames) == 0
    assert result.summary["messages"] == 0
