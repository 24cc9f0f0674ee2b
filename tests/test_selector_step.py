"""The selector's fused ``step`` takes the decisions of ``decide`` and ``observe`` called apart.

A run of frames (the simulator's ``FrameCompressor.encode_many``) drives the selector with one
``step`` per frame, which books the previous frame's sizes and decides the next frame; a live
connection calls ``decide`` and ``observe`` around each frame. Here both drive a fresh
adaptive selector over the same frames: every decision, every wire size and what the
selector ends up knowing must agree, on each bundled trace and on blob traces whose content
mix changes under a type's feet (so warm-up, probes and the content check's trust all turn).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mixed_blobs import BLOB_TYPES, blob_trace

from wslab.codecs.deflate import DeflateEncoder
from wslab.compressor import FrameCompressor
from wslab.selector import CompressionSelector
from wslab.traces.io import read_trace

DATA = Path(__file__).resolve().parents[1] / "data"
BUNDLED = sorted(p.name.removesuffix(".jsonl.zst") for p in DATA.glob("*.jsonl.zst"))
Frames = tuple[list[bytes], list[str]]


class _OneByOne:
    """The deflate encoder without ``encode_many``: FrameCompressor's own loop runs."""

    algorithm = "permessage-deflate"

    def __init__(self) -> None:
        self.inner = DeflateEncoder()

    def encode(self, payload: bytes, key: str = "") -> bytes:
        return self.inner.encode(payload, key)


def _state(selector: CompressionSelector) -> list[tuple[object, ...]]:
    """Everything the selector learned, stream by stream."""
    rows: list[tuple[object, ...]] = []
    for key, st in sorted(selector._states.items()):
        rows.append((key, st.binary.content, st.streak, st.trusted))
        for s in (st.plain, st.noisy):
            rows.append((key, s.content, s.orig, s.comp, s.samples, s.skipped, s.interval,
                         s.probing, s.pays, s.steady))
    return rows


def _apart(payloads: list[bytes], keys: list[str],
           ) -> tuple[list[int | None], list[tuple[object, ...]]]:
    """Sizes on the wire (None: sent plain) with decide and observe called per frame."""
    selector = CompressionSelector("adaptive")
    encoder = DeflateEncoder()
    sizes: list[int | None] = []
    for payload, key in zip(payloads, keys, strict=True):
        if not selector.decide(key, payload):
            sizes.append(None)
            continue
        wire = encoder.encode(payload, key)
        selector.observe(key, len(payload), len(wire))
        sizes.append(len(wire))
    return sizes, _state(selector)


def _run(payloads: list[bytes], keys: list[str], make: type[DeflateEncoder] | type[_OneByOne],
         ) -> tuple[list[int | None], list[tuple[object, ...]]]:
    """The same with the fused step, through FrameCompressor.encode_many in two halves
    (a run ends with a frame's sizes booked alone; the next run starts from there)."""
    selector = CompressionSelector("adaptive")
    compressor = FrameCompressor(make, selector)
    cut = len(payloads) // 2
    wires: list[bytes | None] = []
    for part in (slice(0, cut), slice(cut, None)):
        wires += compressor.encode_many(payloads[part], keys[part])[0]
    return [None if w is None else len(w) for w in wires], _state(selector)


def _bundled(name: str) -> list[Frames]:
    msgs = read_trace(DATA / f"{name}.jsonl.zst").messages
    return [([m.payload for m in msgs if m.dir == d], [m.type for m in msgs if m.dir == d])
            for d in ("s2c", "c2s")]


def _shifting() -> Frames:
    """The blob trace with its content mix changing: in the first third the random blobs
    are sent under the JSON ticker's type, in the last third the ticker's JSON under a blob
    type, and one type carries both throughout."""
    msgs = blob_trace(9.0).messages
    third = len(msgs) // 3
    keys: list[str] = []
    for n, m in enumerate(msgs):
        key = m.type
        if n < third and key in BLOB_TYPES:
            key = "ticker"
        elif n >= 2 * third and key == "ticker":
            key = BLOB_TYPES[0]
        elif key in ("chat", BLOB_TYPES[1]):
            key = "both"
        keys.append(key)
    return [m.payload for m in msgs], keys


def _check(frames: Frames) -> None:
    payloads, keys = frames
    want = _apart(payloads, keys)
    assert _run(payloads, keys, DeflateEncoder) == want  # the codec's own loop
    assert _run(payloads, keys, _OneByOne) == want  # FrameCompressor's loop


@pytest.mark.parametrize("name", BUNDLED)
def test_step_decides_as_decide_and_observe_on_bundled_traces(name: str) -> None:
    for frames in _bundled(name):
        _check(frames)


def test_step_decides_as_decide_and_observe_when_the_content_mix_changes() -> None:
    frames = _shifting()
    _check(frames)
    plain = _apart(*frames)[0].count(None)
    assert 0 < plain < len(frames[0])  # the selector did skip, and did compress


def test_step_decides_as_decide_and_observe_on_the_blob_trace() -> None:
    msgs = blob_trace().messages
    _check(([m.payload for m in msgs], [m.type for m in msgs]))
