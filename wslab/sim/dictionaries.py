"""Which messages train the zstd dictionaries, and which are scored. Run layer.

What lives here: :func:`dictionary_plan` and :func:`held_out`, the one rule for
``zstd-dict`` everywhere a trace is simulated or replayed live (``wslab simulate``, sweeps,
``wslab bench``):

| messages of one type (both directions) | train its dictionary | scored              |
|----------------------------------------|----------------------|---------------------|
| fewer than ``DICT_MIN_TRAIN + DICT_MIN_TEST`` (16) | none          | all (fallback dictionary) |
| otherwise                              | the first 20 % (8..256) | every one after them |

The fallback dictionary (for types without their own and batches mixing types) learns from
all training messages together. A deployment ships dictionaries trained on earlier traffic,
so no scored message was ever seen by the trainer: figures are not flattered by messages
the dictionary memorised. A sweep that holds any ``zstd-dict`` point scores *every* point
on :func:`held_out` (the same messages), so rows stay comparable. The split is the one
``wslab analyse`` uses (:func:`wslab.analysis.ratios.dictionary_split`).

What must not live here: training itself (``wslab/codecs/zstd_dict.py``), simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

from wslab.analysis.ratios import DICT_MIN_TEST, DICT_MIN_TRAIN, dictionary_split
from wslab.codecs.zstd_dict import DictionarySet, train_dictionary_set
from wslab.config import CompressionConfig
from wslab.traces.model import Message, Trace


@dataclass(frozen=True)
class DictionaryPlan:
    """Dictionaries trained on a trace's prefix per type, and the messages left to score.

    Attributes:
        dictionaries: The trained set.
        scored: The trace without its training messages (times unchanged).
        trained_on: Number of training messages.
        note: One line saying what trained on what.
    """

    dictionaries: DictionarySet
    scored: Trace
    trained_on: int
    note: str


def training_indices(messages: list[Message]) -> list[int]:
    """Positions of the messages that train the dictionaries (see the module's table)."""
    by_type: dict[str, list[int]] = {}
    for i, m in enumerate(messages):
        by_type.setdefault(m.type, []).append(i)
    out: list[int] = []
    for positions in by_type.values():
        n = len(positions)
        if n >= DICT_MIN_TRAIN + DICT_MIN_TEST:
            out += positions[: dictionary_split(n)]
    return sorted(out)


def held_out(trace: Trace) -> Trace:
    """``trace`` without the messages that train dictionaries (remembered per trace)."""

    def build(t: Trace) -> Trace:
        held = set(training_indices(t.messages))
        return Trace([m for i, m in enumerate(t.messages) if i not in held], t.meta)

    return trace.derived("zstd-dict-held-out", build)


def dictionary_plan(trace: Trace, compression: CompressionConfig) -> DictionaryPlan:
    """Train a dictionary set on ``trace``'s prefix per type (remembered per trace)."""
    size = compression.zstd_dict_bytes

    def build(t: Trace) -> DictionaryPlan:
        train = training_indices(t.messages)
        samples: dict[str, list[bytes]] = {}
        for i in train:
            m = t.messages[i]
            samples.setdefault(m.type, []).append(m.payload)
        dictionaries = train_dictionary_set(samples, size)
        scored = held_out(t)
        note = (f"zstd dictionaries: {len(dictionaries.by_key)} per type"
                f"{' + a fallback' if dictionaries.fallback is not None else ''} "
                f"({dictionaries.nbytes:,} bytes) trained on the first {len(train):,} "
                f"messages of their types; figures cover the {len(scored):,} after them")
        return DictionaryPlan(dictionaries, scored, len(train), note)

    return trace.derived(f"zstd-dict-plan:{size}", build)
