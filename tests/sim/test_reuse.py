"""Reuse between simulations (``simulate(..., reuse=True)``, ``wslab/sim/cache.py``).

A reused result must equal a fresh simulation of the same config: tables value for value
and the summary. Codec CPU times are the one thing reuse carries over from an earlier run;
with a clock that makes them repeatable (``repeatable_codec_times``) they compare exactly
as well. The configs below differ from each other in every field the two cache keys must
name; the key tests then drop one part of a key at a time and check that the comparison
catches the stale result, so the equality test cannot pass with a key that forgets a field.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from reference_sim import repeatable_codec_times

import wslab.sim.stream as sim_stream
from wslab.config import TuningConfig
from wslab.sim import SimResult, simulate
from wslab.sim.cache import Released, coded_key, release_key, trace_cache
from wslab.sim.inputs import StreamInput
from wslab.traces.io import read_trace
from wslab.traces.model import Trace

DATA = Path(__file__).resolve().parents[2] / "data"

# (changes, link, seed), run in this order on one trace with reuse; each is compared with
# a fresh simulation. Neighbours differ in one thing each.
RUNS: list[tuple[dict[str, Any], str, int]] = [
    ({}, "4g", 0),
    ({}, "lan", 0),  # link only: both stages reused
    ({}, "4g", 3),  # seed only: both stages reused
    ({"compression.server_max_window_bits": 9}, "4g", 0),
    ({"compression.client_max_window_bits": 9}, "4g", 0),
    ({"compression.mem_level": 2}, "4g", 0),
    ({"compression.level": 1}, "4g", 0),
    ({"compression.server_no_context_takeover": True}, "4g", 0),
    ({"compression.client_no_context_takeover": True}, "4g", 0),
    ({"compression.policy": "adaptive"}, "4g", 0),
    ({"compression.policy": "never"}, "4g", 0),
    ({"compression.policy": "threshold", "compression.threshold_bytes": 120}, "4g", 0),
    ({"compression.algorithm": "zstd-stream"}, "4g", 0),
    ({"compression.algorithm": "zstd-stream", "compression.zstd_level": 9}, "4g", 0),
    ({"compression.algorithm": "none"}, "4g", 0),
    ({"batching.strategy": "time", "batching.interval_ms": 20}, "4g", 0),
    ({"batching.strategy": "hybrid", "batching.interval_ms": 20}, "4g", 0),
    ({"batching.strategy": "hybrid", "batching.interval_ms": 20,
      "batching.max_messages": 3}, "4g", 0),
    ({"batching.strategy": "hybrid", "batching.interval_ms": 20,
      "batching.envelope": "length-prefixed"}, "4g", 0),
    ({"batching.strategy": "time", "batching.interval_ms": 5}, "4g", 0),
    ({"batching.strategy": "time"}, "4g", 0),
    ({"batching.strategy": "size"}, "4g", 0),
    ({"batching.strategy": "time", "batching.interval_ms": 60}, "4g", 0),
    ({"batching.strategy": "time", "batching.interval_ms": 60,
      "scaling.max_size": 1500}, "4g", 0),
    ({"batching.strategy": "time", "batching.interval_ms": 5,
      "compression.policy": "adaptive"}, "4g", 0),
]


def _trace() -> Trace:
    full = read_trace(DATA / "game.jsonl.zst")  # both directions busy
    return Trace(full.messages[:2500], full.meta)


def _equal(a: SimResult, b: SimResult) -> bool:
    try:
        pd.testing.assert_frame_equal(a.messages, b.messages, check_exact=True)
        pd.testing.assert_frame_equal(a.frames, b.frames, check_exact=True)
    except AssertionError:
        return False
    return a.summary == b.summary


def stale_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Positions in RUNS whose reused result differs from a fresh simulation."""
    trace = _trace()
    fresh_trace = Trace(list(trace.messages), trace.meta)  # its own memo, never reused
    stale: list[int] = []
    for k, (changes, link, seed) in enumerate(RUNS):
        config = TuningConfig().updated(changes)
        repeatable_codec_times(monkeypatch)
        try:
            reused = simulate(trace, config, link=link, seed=seed, reuse=True)
        except (ValueError, IndexError):  # stale frames of another length
            stale.append(k)
            continue
        repeatable_codec_times(monkeypatch)
        fresh = simulate(fresh_trace, config, link=link, seed=seed)
        if not _equal(reused, fresh):
            stale.append(k)
    cache = trace_cache(trace)
    assert cache.hits["released"] > 0 and cache.hits["coded"] > 0  # reuse did happen
    return stale


def test_a_reused_result_equals_a_fresh_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stale_runs(monkeypatch) == []


def test_time_and_hybrid_batches_that_release_the_same_frames_share_their_coding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Different batching configs, same frames: the coded frames are found by the frames'
    digest, not by the config."""
    trace = _trace()
    repeatable_codec_times(monkeypatch)
    simulate(trace, TuningConfig().updated({"batching.strategy": "time"}), reuse=True)
    before = dict(trace_cache(trace).hits)
    simulate(trace, TuningConfig().updated({"batching.strategy": "hybrid"}), reuse=True)
    after = trace_cache(trace).hits
    assert after["released"] == before["released"]  # another batching config: released anew
    assert after["coded"] == before["coded"] + 2  # both streams' coding found by digest


def test_without_reuse_nothing_is_cached() -> None:
    trace = _trace()
    simulate(trace, TuningConfig())
    simulate(trace, TuningConfig())
    cache = trace_cache(trace)
    assert cache.hits == {"released": 0, "coded": 0}
    assert cache.misses == {"released": 0, "coded": 0}


def _forgetting_coded(drop: str) -> Callable[..., Hashable]:
    def key(released: Released, side: str, config: TuningConfig, dictionaries_id: str | None,
            verify: bool) -> Hashable:
        if drop == "digest":
            released = Released(released.frames, released.unwrapped, "")
        else:
            config = config.updated({drop: TuningConfig().to_dict()["compression"][
                drop.split(".")[1]]})
        return coded_key(released, side, config, dictionaries_id, verify)
    return key


def _forgetting_release(drop: str) -> Callable[..., Hashable]:
    def key(stream: StreamInput, config: TuningConfig, envelope: str | None,
            verify: bool) -> Hashable:
        section, name = drop.split(".", 1)
        default = TuningConfig().to_dict()[section][name]
        if drop == "batching.envelope":  # the field and the envelope it resolved to
            envelope = None
        return release_key(stream, config.updated({drop: default}), envelope, verify)
    return key


# (The side needs no test of its own: the digest names each frame's trace messages, so the
# two directions' streams never share a digest.)
@pytest.mark.parametrize("drop", ["digest", "compression.server_max_window_bits",
                                  "compression.client_max_window_bits",
                                  "compression.mem_level", "compression.level",
                                  "compression.policy", "compression.algorithm",
                                  "compression.zstd_level",
                                  "compression.server_no_context_takeover"])
def test_a_coded_key_that_forgets_a_field_is_caught(
        drop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim_stream, "coded_key", _forgetting_coded(drop))
    assert stale_runs(monkeypatch)


@pytest.mark.parametrize("drop", ["batching.strategy", "batching.interval_ms",
                                  "batching.max_messages", "batching.envelope",
                                  "scaling.max_size"])
def test_a_release_key_that_forgets_a_field_is_caught(
        drop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim_stream, "release_key", _forgetting_release(drop))
    assert stale_runs(monkeypatch)
