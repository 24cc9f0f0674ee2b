"""Trace reader and HAR importer on arbitrary files: a trace or TraceFormatError."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import zstandard
from fuzz.strategies import bounded_peak, fuzz_settings, json_values, outcome
from hypothesis import example, given
from hypothesis import strategies as st

from wslab.errors import TraceFormatError
from wslab.traces.har import import_har
from wslab.traces.io import iter_messages, read_trace
from wslab.traces.model import DIRECTIONS, PRIORITIES, Trace

FIELDS = ["t", "dir", "type", "priority", "text", "b64", "conn", "wslab_trace", "x"]
GOOD_VALUES = st.sampled_from([0, 0.5, 1e9, -1, "s2c", "c2s", "critical", "background",
                               "AAEC", "a", "", "==", 1])
# Message-shaped lines: known keys with plausible or arbitrary values.
line_objects = st.dictionaries(st.sampled_from(FIELDS), GOOD_VALUES | json_values, max_size=7)


def _check_trace(trace: Trace) -> None:
    prev = 0.0
    for m in trace.messages:
        assert math.isfinite(m.t) and m.t >= prev
        prev = m.t
        assert m.dir in DIRECTIONS and m.priority in PRIORITIES
        assert isinstance(m.payload, bytes) and isinstance(m.type, str)


def _read_both_ways(path: Path) -> None:
    whole = outcome(lambda: read_trace(path), (TraceFormatError,))
    streamed = outcome(lambda: list(iter_messages(path)), (TraceFormatError,))
    if isinstance(whole, Trace):
        _check_trace(whole)
        assert streamed == whole.messages
    else:  # both readers agree on the first bad line
        assert isinstance(streamed, TraceFormatError) and str(streamed) == str(whole)


@pytest.mark.timeout(60)
@fuzz_settings(250)
@given(raw=st.binary(max_size=400)
       | st.lists(st.sampled_from([b'{"t":0,"dir":"s2c","type":"a","text":"x"}', b"\n",
                                   b"\xff", b'{"wslab_trace":1}', b"  ", b"{", b"\r"]),
                  max_size=8).map(b"".join))
@example(raw=b'{"t":0,"dir":"s2c","type":"a","b64":"AAE"}\n')
def test_arbitrary_bytes_as_jsonl_and_jsonl_zst(tmp_path: Path, raw: bytes) -> None:
    plain = tmp_path / "t.jsonl"
    plain.write_bytes(raw)
    _read_both_ways(plain)
    packed = tmp_path / "t.jsonl.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(raw))
    _read_both_ways(packed)
    packed.write_bytes(raw)  # not zstd at all: corrupt data, named as such
    _read_both_ways(packed)


@pytest.mark.timeout(60)
@fuzz_settings(300)
@given(lines=st.lists(line_objects, min_size=1, max_size=5))
@example(lines=[{"t": 0, "dir": ["s2c"], "type": "a", "text": "x"}])
@example(lines=[{"t": 0, "dir": "s2c", "type": "a", "priority": {}, "text": "x"}])
def test_arbitrary_json_objects_per_line(tmp_path: Path, lines: list[dict[str, Any]]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines), "utf-8")
    _read_both_ways(path)


@pytest.mark.timeout(60)
def test_zstd_trace_bomb_does_not_allocate_the_inflated_line(tmp_path: Path) -> None:
    obj = zstandard.ZstdCompressor(level=19).compressobj()
    chunk = b"a" * (1 << 20)
    packed = b"".join(obj.compress(chunk) for _ in range(64)) + obj.flush()
    assert len(packed) < 8 * 1024
    path = tmp_path / "bomb.jsonl.zst"
    path.write_bytes(packed)
    with bounded_peak(16 << 20), pytest.raises(TraceFormatError):
        list(iter_messages(path))


# -- HAR ----------------------------------------------------------------------------------

frame_objects = st.dictionaries(
    st.sampled_from(["type", "time", "opcode", "data", "mask"]),
    st.sampled_from(["send", "receive", 1, 2, 8, 1.5, "QUJD", "x", 10 ** 400]) | json_values,
    max_size=5)
entry_objects = st.fixed_dictionaries(
    {"_webSocketMessages": st.lists(frame_objects, max_size=4) | json_values},
    optional={"request": st.fixed_dictionaries({}, optional={
        "url": st.sampled_from(["ws://h/p", "wss://h:1/p?q=1", "ws://[::1/", "ws://h:99999/",
                                "", "//"]) | st.text(max_size=20)}) | json_values})
har_docs = (json_values
            | st.builds(lambda es: {"log": {"entries": es}},
                        st.lists(entry_objects | json_values, max_size=3)))


@pytest.mark.timeout(60)
@fuzz_settings(200)
@given(doc=json_values)
def test_har_of_arbitrary_json_shape_without_websockets(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "x.har"
    path.write_text(json.dumps(doc), "utf-8")
    with pytest.raises(TraceFormatError):  # none of these holds a WebSocket entry
        import_har(path)


@pytest.mark.timeout(60)
@fuzz_settings(300)
@given(doc=har_docs)
@example(doc={"log": {"entries": [{"_webSocketMessages": [
    {"type": [], "time": 1, "opcode": 1, "data": "x"}]}]}})
@example(doc={"log": {"entries": [{"_webSocketMessages": [
    {"type": "send", "time": 10 ** 400, "opcode": 1, "data": "x"}]}]}})
@example(doc={"log": {"entries": [{"request": {"url": "ws://[::1/"}, "_webSocketMessages": [
    {"type": "send", "time": 1, "opcode": 1, "data": "x"}]}]}})
@example(doc={"log": {"entries": [{"request": {"url": "ws://h:99999/"},
                                   "_webSocketMessages": []}]}})
def test_har_of_arbitrary_shape(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "x.har"
    path.write_text(json.dumps(doc), "utf-8")
    got = outcome(lambda: import_har(path), (TraceFormatError,))
    if not isinstance(got, BaseException):
        assert got.messages == len(got.trace.messages)
        for m in got.trace.messages:
            assert m.t >= 0 and m.dir in DIRECTIONS


@pytest.mark.timeout(60)
@fuzz_settings(150)
@given(raw=st.binary(max_size=300))
def test_har_of_arbitrary_bytes(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "x.har"
    path.write_bytes(raw)
    with pytest.raises(TraceFormatError):
        import_har(path)


@pytest.mark.timeout(30)
def test_deeply_nested_har_is_a_trace_format_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.har"
    path.write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    with pytest.raises(TraceFormatError):
        import_har(path)
