"""Trace summaries."""

from __future__ import annotations

import json

import pytest

from wslab.traces import Message, Trace, TraceMeta
from wslab.traces.info import BY_TYPE_COLUMNS, describe


def _trace() -> Trace:
    msgs = [
        Message(0.0, "s2c", "a", "normal", b"x" * 10, True),
        Message(1.0, "s2c", "a", "critical", b"x" * 30, True),
        Message(2.0, "c2s", "a", "normal", b"x" * 5, False),
        Message(3.0, "s2c", "a", "normal", b"x" * 20, True),
        Message(4.0, "s2c", "b", "background", b"", False),
    ]
    return Trace(msgs, TraceMeta(name="t"))


def test_describe() -> None:
    info = describe(_trace())
    assert (info.name, info.messages, info.bytes, info.duration_s) == ("t", 5, 65, 4.0)
    assert info.rate_per_s == pytest.approx(1.25)
    assert (info.text_share, info.binary_share) == (0.6, 0.4)
    assert info.by_dir == {"s2c": {"messages": 4, "bytes": 60},
                           "c2s": {"messages": 1, "bytes": 5}}
    table = info.by_type
    assert tuple(table.columns) == BY_TYPE_COLUMNS
    first = table.iloc[0]
    assert (first["type"], first["dir"], first["messages"], first["bytes"]) == ("a", "s2c", 3, 60)
    assert first["mean_size"] == 20.0 and first["p50_size"] == 20.0 and first["max_size"] == 30
    assert first["p95_size"] == pytest.approx(29.0)
    assert first["rate_per_s"] == pytest.approx(0.75)
    assert first["share_critical"] == pytest.approx(1 / 3)
    assert first["share_normal"] == pytest.approx(2 / 3)
    assert table["rate_per_s"].sum() == pytest.approx(info.rate_per_s)
    assert len(table) == 3


def test_to_dict_is_json() -> None:
    d = describe(_trace()).to_dict()
    back = json.loads(json.dumps(d))
    assert back["messages"] == 5
    assert back["by_type"][0]["share_critical"] == pytest.approx(1 / 3)
    assert set(back["by_type"][0]) == set(BY_TYPE_COLUMNS)


def test_empty_and_single() -> None:
    empty = describe(Trace([]))
    assert (empty.messages, empty.rate_per_s, empty.text_share) == (0, 0.0, 0.0)
    assert json.loads(json.dumps(empty.to_dict()))["by_type"] == []
    one = describe(Trace([Message(5.0, "c2s", "z", "normal", b"ab", True)]))
    assert one.duration_s == 0.0 and one.by_type.iloc[0]["rate_per_s"] == 0.0
