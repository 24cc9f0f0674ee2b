"""SendPipeline and FrameCompressor: one rule for due batches, one order for decisions."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_batching import CLASSES, STRATEGIES, max_hold

from wslab.codecs.deflate import DeflateEncoder
from wslab.compressor import FrameCompressor, make_selector
from wslab.config import CompressionConfig, TuningConfig
from wslab.pipeline import OutFrame, SendPipeline
from wslab.selector import CompressionSelector

HYBRID = TuningConfig().updated({"batching.strategy": "hybrid", "batching.interval_ms": 10,
                                 "batching.max_messages": 5, "batching.envelope": "ndjson"})


def _shape(frames: list[OutFrame]) -> list[tuple[float, str, tuple[int, ...]]]:
    return [(f.flushed_at, f.reason, tuple(m.index for m in f.messages)) for f in frames]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 0.2), min_size=1, max_size=60),
       st.lists(st.floats(0.0, 0.05), min_size=0, max_size=20))
def test_a_late_or_missing_timer_cannot_change_the_frames(gaps: list[float],
                                                          late: list[float]) -> None:
    """Pushes alone (the simulator) and pushes plus timers firing late (a busy live loop)
    release the same frames at the same times."""
    times = []
    t = 0.0
    for g in gaps:
        t += g
        times.append(t)
    only_pushes = SendPipeline(HYBRID)
    with_timers = SendPipeline(HYBRID)
    a: list[OutFrame] = []
    b: list[OutFrame] = []
    for i, now in enumerate(times):
        deadline = with_timers.next_deadline()
        if deadline is not None and i < len(late) and deadline + late[i] < now:
            b += with_timers.poll(deadline + late[i])  # a timer that fired late
        a += only_pushes.push(i, now, "normal", "t", b'{"n":%d}' % i, True)
        b += with_timers.push(i, now, "normal", "t", b'{"n":%d}' % i, True)
    a += only_pushes.finish(times[-1])
    b += with_timers.finish(times[-1])
    assert _shape(a) == _shape(b)
    assert sorted(i for _, _, idx in _shape(a) for i in idx) == list(range(len(times)))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STRATEGIES), st.sampled_from([0, 4, 30]), st.sampled_from([0, 7, 60]),
       st.sampled_from([1, 3, 10**4]), st.sampled_from([50, 10**6]),
       st.lists(st.tuples(st.floats(0.0, 0.08), st.sampled_from(CLASSES),
                          st.integers(0, 120), st.one_of(st.none(), st.floats(0.0, 0.1))),
                min_size=1, max_size=50))
def test_no_message_waits_past_its_maximum_hold_in_the_pipeline(
        strategy: str, interval_ms: float, max_hold_ms: float, max_messages: int,
        max_bytes: int, steps: list[tuple[float, str, int, float | None]]) -> None:
    """Whatever the strategy and limits, and however late (or never) a timer fires, every
    frame carries its messages within their strategy's maximum hold, and after every call
    nothing still held is overdue: a quiet connection never holds a message until close."""
    config = TuningConfig().updated({
        "batching.strategy": strategy, "batching.envelope": "length-prefixed",
        "batching.interval_ms": interval_ms, "batching.max_hold_ms": max_hold_ms,
        "batching.max_messages": max_messages, "batching.max_bytes": max_bytes,
        "batching.priority_interval_ms": {"critical": 0, "normal": interval_ms,
                                          "background": 2 * max_hold_ms}})
    pipe = SendPipeline(config)
    frames: list[OutFrame] = []
    now = 0.0

    def nothing_overdue(at: float) -> None:
        deadline = pipe.next_deadline()
        assert (deadline is None) == (pipe.waiting == 0)
        assert deadline is None or deadline > at

    for i, (gap, prio, size, timer_late) in enumerate(steps):
        deadline = pipe.next_deadline()
        if deadline is not None and timer_late is not None and deadline + timer_late < now + gap:
            frames += pipe.poll(deadline + timer_late)
            nothing_overdue(deadline + timer_late)
        now += gap
        frames += pipe.push(i, now, prio, "t", b"a" * size, True)
        nothing_overdue(now)
    frames += pipe.finish(now)
    sent = [m for f in frames for m in f.messages]
    assert sorted(m.index for m in sent + pipe.dropped) == list(range(len(steps)))
    for f in frames:
        for m in f.messages:
            assert f.flushed_at - m.t <= max_hold(config.batching, m.priority) + 1e-9, (
                f"{strategy}: a {m.priority} message waited {f.flushed_at - m.t:.6f} s")


def test_poll_releases_each_batch_at_its_own_deadline() -> None:
    pipe = SendPipeline(HYBRID)
    pipe.push(0, 0.000, "normal", "t", b"{}", True)
    frames = pipe.push(1, 0.050, "normal", "t", b"{}", True)  # 40 ms past the deadline
    assert [(f.flushed_at, f.reason) for f in frames] == [(0.010, "interval")]
    assert pipe.next_deadline() == pytest.approx(0.060)


class _Script:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.log: list[tuple[str, str, int]] = []

    def decide(self, key: str, payload: bytes) -> bool:
        self.log.append(("decide", key, len(payload)))
        return self.answers.pop(0)

    def observe(self, key: str, original: int, compressed: int) -> None:
        self.log.append(("observe", key, compressed))


def test_frame_compressor_decides_compresses_and_observes_in_that_order() -> None:
    script = _Script([True, False, True])
    built: list[int] = []

    def make() -> DeflateEncoder:
        built.append(1)
        return DeflateEncoder(12, 5, 6)

    comp = FrameCompressor(make, script, log=True)
    payloads = [b"hello hello hello hello", b"skip me", b"hello hello hello hello"]
    out = [comp.encode(p, f"k{n}") for n, p in enumerate(payloads)]
    assert out[1] is None and out[0] is not None and out[2] is not None
    reference = DeflateEncoder(12, 5, 6)
    assert out[0] == reference.encode(payloads[0]) and out[2] == reference.encode(payloads[2])
    assert script.log == [("decide", "k0", 23), ("observe", "k0", len(out[0])),
                          ("decide", "k1", 7),
                          ("decide", "k2", 23), ("observe", "k2", len(out[2]))]
    assert built == [1]  # the codec was built once, on the first compressed frame
    assert comp.frames == [("k0", 23, len(out[0]), True), ("k1", 7, 7, False),
                           ("k2", 23, len(out[2]), True)]
    assert (comp.compressed, comp.plain) == (2, 1)


def test_an_idle_compressor_builds_no_codec() -> None:
    comp = FrameCompressor(lambda: DeflateEncoder(), CompressionSelector("never"))
    assert comp.encode(b"x" * 100, "t") is None
    assert comp.built is None


def test_make_selector_follows_the_policy() -> None:
    assert make_selector(CompressionConfig()) is None  # always: no per-frame work
    never = make_selector(CompressionConfig(policy="never"))
    assert never is not None and not never.decide("t", b"x" * 1000)
    off = make_selector(CompressionConfig(algorithm="none", policy="always"))
    assert off is not None and not off.decide("t", b"x" * 1000)


def test_the_send_path_imports_neither_pandas_nor_zstandard() -> None:
    code = (
        "import sys\n"
        "from wslab.config import TuningConfig\n"
        "from wslab.pipeline import SendPipeline\n"
        "from wslab.compressor import FrameCompressor\n"
        "from wslab.codecs.factory import make_encoder\n"
        "c = TuningConfig().updated({'compression.policy': 'adaptive'})\n"
        "p = SendPipeline(c)\n"
        "fc = FrameCompressor.from_config(c.compression,"
        " lambda: make_encoder(c.compression, 'server'))\n"
        "for f in p.push(0, 0.0, 'normal', 't', b'{\"a\": 1, \"b\": [1, 2, 3]}', True):\n"
        "    assert fc.encode(f.payload, f.key) is not None\n"
        "print(sorted(m for m in ('pandas', 'zstandard', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("envelope", ["json-array", "ndjson", "length-prefixed"])
@pytest.mark.parametrize("strategy", ["time", "size", "hybrid", "priority"])
def test_no_batch_outgrows_the_peers_max_size(strategy: str, envelope: str) -> None:
    """A busy connection under a long hold: every frame stays within scaling.max_size."""
    limit = 4096
    cfg = TuningConfig().updated({
        "batching.strategy": strategy, "batching.interval_ms": 1000,
        "batching.max_bytes": 1 << 20, "batching.max_messages": 100_000,
        "batching.priority_interval_ms": {"critical": 1000, "normal": 1000,
                                          "background": 1000},
        "batching.envelope": envelope, "scaling.max_size": limit})
    pipe = SendPipeline(cfg)
    frames: list[OutFrame] = []
    for i in range(2000):
        doc = b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 90))
        frames += pipe.push(i, i * 1e-4, "normal", "t", doc, True)
    frames += pipe.finish(0.2)
    assert len(frames) > 1
    assert max(len(f.payload) for f in frames) <= limit
    assert sum(len(f.messages) for f in frames) == 2000
    assert any(f.reason == "frame-limit" for f in frames)


# --- whole-stream replay and runs of frames (what the simulator uses) -----------------

def _bundled_stream(name: str, direction: str) -> list[tuple[int, float, str, str, bytes, bool]]:
    from pathlib import Path

    from wslab.traces.io import read_trace

    trace = read_trace(Path(__file__).resolve().parents[1] / "data" / f"{name}.jsonl.zst")
    return [(i, m.t, m.priority, m.type, m.payload, m.is_text)
            for i, m in enumerate(trace.messages) if m.dir == direction][:4000]


@pytest.mark.parametrize("name", ["chat", "game", "market", "telemetry", "sensor", "mixed"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_replay_gives_the_frames_of_pushing_one_message_at_a_time(name: str,
                                                                  strategy: str) -> None:
    from wslab.pipeline import FrameColumns, MessageColumns

    rows = _bundled_stream(name, "s2c" if name != "sensor" else "c2s")
    config = TuningConfig().updated({
        "batching.strategy": strategy, "batching.envelope": "length-prefixed",
        "batching.max_messages": 9, "batching.background_queue_limit": 40})
    one_by_one = SendPipeline(config)
    want = FrameColumns()
    for index, t, priority, type_, payload, is_text in rows:
        want.add(one_by_one.push(index, t, priority, type_, payload, is_text))
    want.add(one_by_one.finish(rows[-1][1]))
    want.dropped = list(one_by_one.dropped)
    got = SendPipeline(config).replay(MessageColumns(*(list(c) for c in zip(*rows, strict=True))))
    assert got == want
    assert len(got) > 0


def test_replay_continues_each_class_numbering_where_the_pipeline_stands() -> None:
    from wslab.pipeline import MessageColumns

    pipe = SendPipeline(TuningConfig())
    pipe.push(0, 0.0, "normal", "a", b"x", True)
    pipe.push(1, 0.0, "critical", "a", b"x", True)
    got = pipe.replay(MessageColumns([2, 3, 4], [1.0, 1.0, 1.0],
                                     ["normal", "critical", "normal"], ["a"] * 3,
                                     [b"y"] * 3, [True] * 3))
    assert got.seq == [1, 1, 2]
    assert pipe.push(5, 2.0, "normal", "a", b"z", True)[0].messages[0].seq == 3


@pytest.mark.parametrize("policy", ["always", "adaptive", "threshold", "never"])
def test_encode_many_takes_the_decisions_and_counts_of_encode_frame_by_frame(
        policy: str) -> None:
    from mixed_blobs import blob_trace

    msgs = blob_trace(5.0).messages
    payloads = [m.payload for m in msgs]
    keys = [m.type for m in msgs]
    compression = CompressionConfig(policy=policy, threshold_bytes=200)  # type: ignore[arg-type]

    def compressor() -> FrameCompressor:
        return FrameCompressor.from_config(compression, lambda: DeflateEncoder(12, 5, 6),
                                           log=True)

    single = compressor()
    want = [single.encode(p, k) for p, k in zip(payloads, keys, strict=True)]
    many = compressor()
    wires, took = many.encode_many(payloads, keys)
    assert wires == want
    assert [t > 0 for t in took] == [w is not None for w in want]
    for name in ("compressed", "plain", "bytes_in", "bytes_out", "last_wire",
                 "last_compressed", "frames"):
        assert getattr(many, name) == getattr(single, name), name
    assert many.encode_ns == sum(took)
    if policy in ("adaptive", "threshold"):
        assert 0 < many.plain < len(payloads)  # the selector did skip some frames


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(CLASSES), st.integers(0, 300)),
                min_size=1, max_size=80),
       st.sampled_from(["none", "hybrid", "priority", "size"]))
def test_push_many_gives_the_frames_of_one_push_per_message(
        items: list[tuple[int, str, int]], strategy: str) -> None:
    """Messages that arrive together (an echoed batch) pushed in one call give the frames,
    sequence numbers and envelopes of pushing them one at a time."""
    cfg = TuningConfig().updated({"batching.strategy": strategy, "batching.interval_ms": 2,
                                  "batching.max_bytes": 700, "batching.max_messages": 7,
                                  "batching.envelope": "ndjson"})
    one, many = SendPipeline(cfg), SendPipeline(cfg)
    got_one: list[OutFrame] = []
    got_many: list[OutFrame] = []
    t = 0.0
    run: list[tuple[int, Any, str, bytes, bool]] = []
    for i, (gap, prio, size) in enumerate(items):
        if gap and run:  # a gap ends the run of messages arriving together
            got_many += many.push_many(t, run)
            run = []
        t += gap * 0.001
        msg = (i, prio, f"k{size % 3}", b"m" * size, bool(size % 2))
        got_one += one.push(msg[0], t, *msg[1:])
        run.append(msg)
    got_many += many.push_many(t, run)
    got_one += one.finish(t)
    got_many += many.finish(t)

    def shape(frames: list[OutFrame]) -> list[tuple[Any, ...]]:
        return [(f.payload, f.opcode, f.key, f.flushed_at, f.reason,
                 [(m.index, m.seq, m.priority) for m in f.messages]) for f in frames]

    assert shape(got_many) == shape(got_one)
    assert len({m.index for f in got_one for m in f.messages}) == len(items) - len(one.dropped)
