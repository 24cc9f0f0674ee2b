"""Trace format v1: round trips, validation messages, streaming and atomic writes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wslab.errors import TraceFormatError, WslabError
from wslab.traces import Message, Trace, TraceMeta
from wslab.traces.io import iter_messages, read_meta, read_trace, write_trace

SUFFIXES = (".jsonl", ".jsonl.zst")


def _msgs() -> list[Message]:
    return [
        Message(0.0, "s2c", "chat.message", "normal", '{"a":"héllo 👋"}'.encode(), True),
        Message(0.5, "c2s", "sensor.frame", "critical", bytes(range(256)), False, "ws1"),
        Message(0.5, "s2c", "x", "background", b"", True),
        Message(2.25, "c2s", "y", "normal", b"", False),
    ]


def _write_raw(path: Path, lines: list[str]) -> None:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_with_meta(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    meta = TraceMeta("n", "d ✓", "s")
    assert write_trace(Trace(_msgs(), meta), path) == 4
    back = read_trace(path)
    assert back.messages == _msgs()
    assert back.meta == meta
    assert read_meta(path) == meta
    assert list(iter_messages(path)) == _msgs()
    assert not (tmp_path / f"t{suffix}.part").exists()


def test_written_lines_follow_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_trace(_msgs(), path)
    lines = path.read_text("utf-8").splitlines()
    assert json.loads(lines[0])["wslab_trace"] == 1
    first, second = json.loads(lines[1]), json.loads(lines[2])
    assert first == {"t": 0.0, "dir": "s2c", "type": "chat.message", "priority": "normal",
                     "text": '{"a":"héllo 👋"}'}
    assert second["b64"] == base64.b64encode(bytes(range(256))).decode()
    assert second["conn"] == "ws1" and "text" not in second


def test_zst_file_is_zstd(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.zst"
    write_trace(_msgs(), path)
    text = zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read().decode()
    assert text.count("\n") == 5


def test_reads_files_without_header_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    _write_raw(path, ['{"t": 1, "dir": "c2s", "type": "a", "text": "x"}', "",
                      '{"t": 1.5, "dir": "s2c", "type": "b", "b64": "AAEC", "conn": "c"}'])
    trace = read_trace(path)
    assert trace.meta == TraceMeta()
    assert read_meta(path) == TraceMeta()
    a, b = trace.messages
    assert (a.t, a.priority, a.payload, a.is_text, a.conn) == (1.0, "normal", b"x", True, None)
    assert isinstance(a.t, float)
    assert (b.payload, b.is_text, b.conn) == (b"\x00\x01\x02", False, "c")


def test_iter_messages_is_lazy(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    good = '{"t": 0, "dir": "c2s", "type": "a", "text": "x"}'
    _write_raw(path, [good, good, "not json"])
    it = iter_messages(path)
    assert next(it).payload == b"x"
    assert next(it).payload == b"x"
    with pytest.raises(TraceFormatError, match=":3: line is not valid JSON"):
        next(it)


OK = '"dir": "s2c", "type": "a"'
BAD_LINES = [
    ("not json", "line is not valid JSON"),
    ('[1, 2]', "expected a JSON object"),
    ('{"t": 0, "dir": "s2c", "type": "a", "text": "x", "extra": 1}', "field 'extra': unknown"),
    ('{"dir": "s2c", "type": "a", "text": "x"}', "field 't': missing"),
    ('{"t": 0, "type": "a", "text": "x"}', "field 'dir': missing"),
    ('{"t": 0, "dir": "s2c", "text": "x"}', "field 'type': missing"),
    ('{"t": "1", ' + OK + ', "text": "x"}', "field 't': must be a number"),
    ('{"t": true, ' + OK + ', "text": "x"}', "field 't': must be a number"),
    ('{"t": -1, ' + OK + ', "text": "x"}', "field 't': must not be negative"),
    ('{"t": 0.5, ' + OK + ', "text": "x"}', "field 't': decreasing (0.5 after 1.0)"),
    ('{"t": 1, "dir": "up", "type": "a", "text": "x"}', "field 'dir': must be 's2c' or 'c2s'"),
    ('{"t": 1, "dir": "s2c", "type": 3, "text": "x"}', "field 'type': must be a string"),
    ('{"t": 1, ' + OK + ', "priority": "urgent", "text": "x"}', "field 'priority'"),
    ('{"t": 1, ' + OK + ', "text": "x", "b64": "AA=="}', "exactly one is required, got both"),
    ('{"t": 1, ' + OK + '}', "exactly one is required, got neither"),
    ('{"t": 1, ' + OK + ', "b64": "AA=!"}', "field 'b64': invalid base64"),
    ('{"t": 1, ' + OK + ', "b64": "AAE"}', "field 'b64': invalid base64"),
    ('{"t": 1, ' + OK + ', "b64": 5}', "field 'b64': must be a string"),
    ('{"t": 1, ' + OK + ', "text": 5}', "field 'text': must be a string"),
    ('{"t": 1, ' + OK + ', "text": "\\ud800"}', "surrogate"),
    ('{"t": 1, ' + OK + ', "text": "x", "conn": 7}', "field 'conn': must be a string"),
    ('{"wslab_trace": 1}', "field 'wslab_trace': header line is only allowed as the first"),
]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(("line", "expected"), BAD_LINES)
def test_bad_line_names_file_line_and_field(
    tmp_path: Path, suffix: str, line: str, expected: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    _write_raw(path, ['{"wslab_trace": 1, "name": "n"}',
                      '{"t": 1.0, "dir": "c2s", "type": "a", "text": "ok"}', line])
    with pytest.raises(TraceFormatError) as info:
        read_trace(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('{"wslab_trace": 2}', "field 'wslab_trace': unsupported version 2"),
        ('{"wslab_trace": "1"}', "field 'wslab_trace': unsupported version '1'"),
        ('{"wslab_trace": 1, "owner": "x"}', "field 'owner': unknown header field"),
        ('{"wslab_trace": 1, "name": 5}', "field 'name': must be a string"),
    ],
)
def test_bad_header(tmp_path: Path, header: str, expected: str) -> None:
    path = tmp_path / "h.jsonl"
    _write_raw(path, ["", header])
    for reader in (read_trace, read_meta):
        with pytest.raises(TraceFormatError, match=f"^{path}:2: ") as info:
            reader(path)
        assert expected in str(info.value)


def test_non_utf8_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"t": 0, "dir": "c2s", "type": "a", "text": "x"}\n'
                     b'{"t": 0, "dir": "c2s", "type": "a", "text": "\xff"}\n')
    with pytest.raises(TraceFormatError, match=r":2: line is not valid UTF-8"):
        read_trace(path)


def test_corrupt_zstd_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd garbage garbage")
    with pytest.raises(TraceFormatError, match="corrupt zstd"):
        read_trace(path)
    with pytest.raises(WslabError, match="cannot open trace"):
        read_trace(tmp_path / "missing.jsonl")
    with pytest.raises(WslabError, match=r"must end in \.jsonl or \.jsonl\.zst"):
        read_trace(tmp_path / "t.json")
    with pytest.raises(WslabError, match=r"must end in \.jsonl"):
        write_trace([], tmp_path / "t.txt")


def _crashing_messages() -> object:
    yield from _msgs()[:2]
    raise RuntimeError("boom")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_atomic_write_leaves_nothing_on_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    with pytest.raises(RuntimeError, match="boom"):
        write_trace(_crashing_messages(), path)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (Message(0.1, "s2c", "a", "normal", b"\xff\xfe", True), "message 1: field 'text'"),
        (Message(0.0, "s2c", "a", "normal", b"", True), "message 1: field 't'"),
        (Message(float("nan"), "s2c", "a", "normal", b"", True), "message 1: field 't'"),
        (Message(1.0, "up", "a", "normal", b"", True), "message 1: field 'dir'"),  # type: ignore[arg-type]
        (Message(1.0, "s2c", "a", "asap", b"", True), "message 1: field 'priority'"),  # type: ignore[arg-type]
        (Message(1.0, "s2c", "a", "normal", b"", True, 3), "message 1: field 'conn'"),  # type: ignore[arg-type]
    ],
)
def test_invalid_message_keeps_existing_file(tmp_path: Path, bad: Message, expected: str) -> None:
    path = tmp_path / "out.jsonl.zst"
    write_trace(_msgs()[:1], path)
    before = path.read_bytes()
    first = Message(0.05, "s2c", "a", "normal", b"", True)
    with pytest.raises(WslabError, match=expected):
        write_trace([first, bad], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl.zst"]


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "\n", "a\r\nb", "👨‍👩‍👧‍👦🇩🇪", '{"x": "\\u0000"}', "\u2028\u2029", "\x00\x7f"]
)
message_parts = st.tuples(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.sampled_from(["s2c", "c2s"]),
    st.text(max_size=12),
    st.sampled_from(["critical", "normal", "background"]),
    st.one_of(texts.map(lambda s: (s.encode("utf-8"), True)),
              st.binary(max_size=64).map(lambda b: (b, False))),
    st.none() | st.text(max_size=8),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(message_parts, max_size=20),
       meta=st.builds(TraceMeta, st.text(max_size=10), st.text(max_size=10), st.text(max_size=10)))
def test_round_trip_property(tmp_path: Path, parts: list, meta: TraceMeta) -> None:  # type: ignore[type-arg]
    times = sorted(p[0] for p in parts)
    msgs = [Message(t, d, k, pr, pl[0], pl[1], c)
            for t, (_, d, k, pr, pl, c) in zip(times, parts, strict=True)]
    for suffix in SUFFIXES:
        path = tmp_path / f"prop{suffix}"
        write_trace(Trace(msgs, meta), path)
        back = read_trace(path)
        assert back.messages == msgs
        assert back.meta == meta


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_iter_messages_streams_in_small_memory(tmp_path: Path, suffix: str) -> None:
    import tracemalloc

    from wslab.traces.generate import generate

    path = tmp_path / f"big{suffix}"
    trace = generate("telemetry", 6000, seed=1)
    write_trace(trace, path)
    raw_size = trace.payload_bytes
    assert raw_size > 5_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_messages(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 6000
    assert peak < raw_size / 10
