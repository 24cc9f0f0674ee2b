"""zstd-dict in the simulator: dictionaries per type, trained on a prefix, scored after it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mixed_blobs import blob_trace

from wslab.analysis.bundled import bundled_traces
from wslab.analysis.ratios import dictionary_split
from wslab.codecs.zstd_dict import (
    DictionarySet,
    ZstdDictSetDecoder,
    ZstdDictSetEncoder,
    train_dictionary_set,
)
from wslab.config import TuningConfig
from wslab.sim import simulate
from wslab.sim.dictionaries import dictionary_plan, held_out, training_indices
from wslab.traces.io import write_trace
from wslab.tune.sweep import run_sweep

DICT = TuningConfig().updated({"compression.algorithm": "zstd-dict"})


def test_training_takes_a_prefix_of_each_type() -> None:
    trace = blob_trace(3.0)
    train = training_indices(trace.messages)
    by_type: dict[str, list[int]] = {}
    for i, m in enumerate(trace.messages):
        by_type.setdefault(m.type, []).append(i)
    for positions in by_type.values():
        mine = [i for i in train if i in set(positions)]
        assert mine == positions[:dictionary_split(len(positions))]
    scored = held_out(trace)
    assert len(scored) == len(trace) - len(train)


def test_simulation_scores_only_messages_the_trainer_never_saw() -> None:
    trace = bundled_traces()["chat"][:3000]
    result = simulate(trace, DICT)
    plan = dictionary_plan(trace, DICT.compression)
    trained = {id(trace.messages[i]) for i in training_indices(trace.messages)}
    assert result.summary["messages"] == len(plan.scored) == len(trace) - plan.trained_on
    assert trained.isdisjoint(id(m) for m in plan.scored.messages)
    assert result.summary["dictionary_training_messages"] == plan.trained_on
    assert result.summary["dictionary_bytes"] == plan.dictionaries.nbytes > 0
    # One dictionary per frequent type, each frame primed by its own type's dictionary.
    counts = pd.Series([m.type for m in trace.messages]).value_counts()
    assert set(plan.dictionaries.by_key) >= set(counts[counts >= 40].index)
    assert (result.summary["lost"], result.summary["duplicated"]) == (0, 0)
    assert any("trained on the first" in n for n in result.notes)
    # Scoring on training messages would flatter the set: the same dictionaries compress
    # the messages they learnt from better than the ones after.
    enc = ZstdDictSetEncoder(plan.dictionaries)
    dec = ZstdDictSetDecoder(plan.dictionaries)

    def ratio(msgs: list[bytes], kinds: list[str]) -> float:
        out = [enc.encode(p, k) for p, k in zip(msgs, kinds, strict=True)]
        assert [dec.decode(o) for o in out] == msgs
        return sum(map(len, out)) / sum(map(len, msgs))

    train_msgs = [trace.messages[i] for i in training_indices(trace.messages)]
    assert ratio([m.payload for m in train_msgs], [m.type for m in train_msgs]) < ratio(
        [m.payload for m in plan.scored.messages], [m.type for m in plan.scored.messages])


def test_a_sweep_with_a_dictionary_point_scores_every_point_on_the_same_messages(
        tmp_path: Path) -> None:
    trace = blob_trace(3.0)
    path = tmp_path / "t.jsonl"
    write_trace(trace, path)
    points = [{"compression.algorithm": a} for a in ("none", "permessage-deflate",
                                                     "zstd-stream", "zstd-dict")]
    table = run_sweep(path, points, tmp_path / "r.parquet", workers=1)
    assert table["messages"].nunique() == 1
    assert int(table["messages"].iloc[0]) == len(held_out(trace)) < len(trace)
    alone = run_sweep(path, points[:2], tmp_path / "r2.parquet", workers=1)
    assert int(alone["messages"].iloc[0]) == len(trace)


def test_zstd_dict_beats_plain_per_message_zstd_on_small_json() -> None:
    trace = bundled_traces()["market"][:3000]
    dict_run = simulate(trace, DICT)
    plain = simulate(held_out(trace), TuningConfig().updated(
        {"compression.algorithm": "zstd-dict"}), dictionaries=_empty_set())
    assert dict_run.summary["compression_ratio"] < plain.summary["compression_ratio"]


def _empty_set() -> DictionarySet:
    """A set whose only dictionary is useless, so frames are compressed nearly alone."""
    filler = [bytes([i]) * 64 + bytes(range(i, i + 32)) for i in range(16)]
    return train_dictionary_set({"(none)": filler}, 256)


@pytest.mark.parametrize("kind", ["chat", "game"])
def test_zstd_dict_frames_decode_back(kind: str) -> None:
    trace = bundled_traces()[kind][:1500]
    result = simulate(trace, DICT)
    assert result.summary["lost"] == 0 and result.summary["messages"] > 0
