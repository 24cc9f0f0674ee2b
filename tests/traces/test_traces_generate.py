"""The synthetic generators: determinism, ordering, and the shape each kind promises."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wslab.errors import WslabError
from wslab.traces.generate import GENERATOR_KINDS, generate
from wslab.traces.generators.sensor import parse_frame
from wslab.traces.io import write_trace

N = 3000


def test_kinds() -> None:
    assert GENERATOR_KINDS == ("chat", "game", "market", "telemetry", "sensor", "mixed")


@pytest.mark.parametrize("kind", GENERATOR_KINDS)
def test_count_order_and_validity(kind: str) -> None:
    trace = generate(kind, N, seed=3)
    assert len(trace) == N
    times = [m.t for m in trace]
    assert times == sorted(times) and times[0] >= 0
    assert trace.duration > 0
    assert trace.meta.name == kind and "seed=3" in trace.meta.source
    for m in trace:
        if m.is_text:
            json.loads(m.payload)  # every text payload is a JSON document
        assert m.type.split(".")[0] in {kind, "chat", "market", "telemetry", "order"}


@pytest.mark.parametrize("kind", GENERATOR_KINDS)
def test_same_seed_same_file_other_seed_differs(kind: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_trace(generate(kind, 500, seed=11), a)
    write_trace(generate(kind, 500, seed=11), b)
    assert a.read_bytes() == b.read_bytes()
    assert generate(kind, 500, seed=12).messages != generate(kind, 500, seed=11).messages
    assert generate(kind, 200, seed=11).messages == generate(kind, 500, seed=11).messages[:200]


def test_unknown_kind_and_bad_counts() -> None:
    with pytest.raises(WslabError, match="unknown trace kind 'chatt'; known kinds: chat, game"):
        generate("chatt", 10)
    with pytest.raises(WslabError, match="non-negative"):
        generate("chat", -1)
    assert len(generate("chat", 0)) == 0


def test_chat_is_unicode_rich() -> None:
    trace = generate("chat", N, seed=7)
    types = Counter(m.type for m in trace)
    for t in ("chat.message", "chat.typing", "chat.receipt", "chat.presence", "chat.send"):
        assert types[t] > 0, t
    texts = [json.loads(m.payload).get("text", "") for m in trace if m.type == "chat.message"]
    assert any(any(ord(c) > 0xFFFF for c in s) for s in texts)  # emoji beyond the BMP
    assert any("\n" in s for s in texts)
    assert {m.priority for m in trace if m.type == "chat.typing"} == {"background"}


def test_game_ticks_and_critical_inputs() -> None:
    trace = generate("game", N, seed=7)
    hz = json.loads(trace[0].payload)["hz"]
    assert hz in (20, 30, 60)
    ticks = [m.t for m in trace if m.type in ("game.delta", "game.snapshot")]
    gaps = np.diff(ticks)
    assert abs(float(np.median(gaps)) - 1 / hz) < 0.003
    inputs = trace.select(type="game.input")
    assert len(inputs) > N / 5
    assert {(m.dir, m.priority) for m in inputs} == {("c2s", "critical")}


def test_market_is_bursty_server_traffic() -> None:
    trace = generate("market", 20_000, seed=7)
    s2c = sum(m.dir == "s2c" for m in trace)
    assert s2c / len(trace) > 0.98
    assert {"market.trade", "market.depth", "market.ticker"} <= set(trace.types())
    gaps = np.diff([m.t for m in trace.select(type="market.trade")])
    # bursts: the coefficient of variation of inter-arrival gaps exceeds Poisson's 1
    assert float(np.std(gaps) / np.mean(gaps)) > 1.5


def test_telemetry_is_background_upload() -> None:
    trace = generate("telemetry", N, seed=7)
    up = sum(m.size for m in trace if m.dir == "c2s")
    assert up / trace.payload_bytes > 0.9
    assert Counter(m.priority for m in trace)["background"] / N > 0.9


def test_sensor_frames_parse_and_partly_compress() -> None:
    trace = generate("sensor", N, seed=7)
    frames = [m for m in trace if m.type == "sensor.frame"]
    assert len(frames) > N * 0.9 and not any(m.is_text for m in frames)
    seqs = []
    for m in frames[:200]:
        header, samples = parse_frame(m.payload)
        seqs.append(header["seq"])
        assert samples.shape == (header["samples"], header["channels"])
    assert seqs == list(range(1, 201))
    blob = b"".join(m.payload for m in frames)
    ratio = len(zlib.compress(blob, 9)) / len(blob)
    assert 0.3 < ratio < 0.95
    bad = bytearray(frames[0].payload)
    bad[30] ^= 1
    with pytest.raises(ValueError, match="CRC"):
        parse_frame(bytes(bad))


def test_mixed_has_all_priorities() -> None:
    trace = generate("mixed", 20_000, seed=0)
    assert Counter(m.priority for m in trace).keys() == {"critical", "normal", "background"}
    prefixes = {m.type.split(".")[0] for m in trace}
    assert prefixes == {"chat", "market", "telemetry", "order"}
