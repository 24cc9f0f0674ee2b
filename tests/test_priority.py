"""The one priority type (``wslab/priority.py``) and the tables that key on it."""

from __future__ import annotations

from pathlib import Path

from wslab import traces
from wslab.batching import Pending
from wslab.config import PriorityIntervals, TuningConfig
from wslab.pipeline import SendPipeline
from wslab.priority import BACKGROUND, CRITICAL, DEFAULT_PRIORITY, NORMAL, PRIORITIES, Priority
from wslab.traces.io import read_trace
from wslab.traces.model import Priority as TracePriority


def test_one_type_most_urgent_first() -> None:
    assert PRIORITIES == (CRITICAL, NORMAL, BACKGROUND) == ("critical", "normal", "background")
    assert TracePriority is Priority and traces.PRIORITIES is PRIORITIES
    assert DEFAULT_PRIORITY == NORMAL  # DESIGN.md section 3: normal is the default


def test_the_config_has_one_interval_per_class() -> None:
    # The batcher reads the hold of class p as the field named p.
    assert tuple(PriorityIntervals.model_fields) == PRIORITIES


def test_a_message_without_priority_gets_the_default(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"t": 0, "dir": "s2c", "type": "x", "text": "a"}\n')
    assert read_trace(path).messages[0].priority == DEFAULT_PRIORITY


def test_each_class_numbers_its_own_messages() -> None:
    pipe = SendPipeline(TuningConfig())
    sent: list[Pending] = []
    for i, prio in enumerate([NORMAL, CRITICAL, NORMAL, BACKGROUND, CRITICAL, NORMAL]):
        for frame in pipe.push(i, float(i), prio, "t", b"{}", True):
            sent += frame.messages
    assert [(m.priority, m.seq) for m in sent] == [
        (NORMAL, 0), (CRITICAL, 0), (NORMAL, 1), (BACKGROUND, 0), (CRITICAL, 1), (NORMAL, 2)]
