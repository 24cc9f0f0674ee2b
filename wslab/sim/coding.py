"""Stage 2 of a simulated stream: every frame compressed (or not) and read back by the peer.

What lives here: :func:`code_frames`, which hands a stream's frames, in release order, to
its :class:`~wslab.compressor.FrameCompressor` (decide, compress with CPU timed, feed the
size back: the live extensions' order too), then inflates each compressed frame with the
real decoder (CPU timed) and checks the peer gets the messages back intact; and
:func:`unwrap_checks`, the peer's envelope decoding of the frames as the pipeline released
them (see below). :class:`CodedFrames` is what this stage measured, as arrays.

How intactness is checked, exactly as a peer would see it. A frame's body (decoded, or as
sent) is compared with the payload the pipeline released; without an envelope that payload
*is* the message. With an envelope, the body is unwrapped: when the body equals the
released payload, unwrapping it gives what unwrapping the released payload gives, so that
is computed once per released frame sequence (:func:`unwrap_checks`, which a sweep reuses
across codecs); a body that differs is unwrapped itself, message by message, as the peer
would.

What must not live here: batching (``pipeline.py``), pricing and delivery (``tables.py``),
choosing codecs (``__init__``).
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wslab import envelopes
from wslab.codecs.base import MessageDecoder, RunDecoder
from wslab.compressor import FrameCompressor
from wslab.pipeline import FrameColumns
from wslab.sim.inputs import StreamInput


@dataclass(frozen=True, slots=True)
class StreamCodecs:
    """A stream's sending compressor and its peer's decoder (None: no compression)."""

    compressor: FrameCompressor | None
    decoder: MessageDecoder | None


@dataclass(slots=True)
class CodedFrames:
    """What the codec stage measured.

    Attributes:
        payload_len: Payload bytes of each frame as released (before compression).
        wire_len: Payload bytes of each frame as sent (compressed or not).
        encode_ns: CPU time of each frame's codec call (0 when sent as it was).
        decode_ns: CPU time of inflating each frame at the peer (0 when not decoded).
        compressed: Whether each frame was compressed.
        intact: Per message, in the frames' member order: it came out as it went in.
    """

    payload_len: npt.NDArray[np.int64]
    wire_len: npt.NDArray[np.int64]
    encode_ns: npt.NDArray[np.int64]
    decode_ns: npt.NDArray[np.int64]
    compressed: npt.NDArray[np.bool_]
    intact: npt.NDArray[np.bool_]


def unwrap_checks(frames: FrameColumns, stream: StreamInput,
                  envelope: str | None) -> npt.NDArray[np.bool_] | None:
    """Per message (member order): the peer unwraps it intact from the released payload.

    None without an envelope (a frame's payload is then its one message, nothing to
    unwrap). With one, each frame's payload goes through ``envelopes.decode`` and every
    part is compared with the message (bytes and text flag) the pipeline put there.
    """
    if envelope is None:
        return None
    positions = _positions(frames, stream)
    ok: list[bool] = []
    at = 0
    for payload, count in zip(frames.payload, frames.count, strict=True):
        ok += _compare(envelopes.decode(envelope, payload), positions[at:at + count], stream)
        at += count
    return np.asarray(ok, dtype=bool)


def _positions(frames: FrameColumns, stream: StreamInput) -> list[int]:
    """Each member's position in the stream (the frames list trace indices)."""
    found: list[int] = np.searchsorted(stream.index,
                                       np.asarray(frames.index, dtype=np.int64)).tolist()
    return found


def _compare(parts: list[tuple[bytes, bool]], positions: list[int],
             stream: StreamInput) -> list[bool]:
    """Part ``j`` equals the message at ``positions[j]`` (all False when the part count is
    wrong: a peer cannot tell which part is which)."""
    if len(parts) != len(positions):
        return [False] * len(positions)
    payloads, texts = stream.messages.payload, stream.messages.is_text
    return [part == (payloads[q], texts[q]) for part, q in zip(parts, positions, strict=True)]


def code_frames(frames: FrameColumns, stream: StreamInput, codecs: StreamCodecs, *,
                verify: bool, unwrapped: npt.NDArray[np.bool_] | None,
                envelope: str | None) -> CodedFrames:
    """Compress and read back every frame of a stream, in release order.

    ``unwrapped`` is :func:`unwrap_checks` of the same frames (None without an envelope).
    Without ``verify`` nothing is decoded and every message counts as intact.
    """
    payloads = frames.payload
    nf = len(payloads)
    compressor, decoder = codecs.compressor, codecs.decoder
    payload_len = np.fromiter(map(len, payloads), dtype=np.int64, count=nf)
    if compressor is None:
        wires: list[bytes | None] = [None] * nf
        took = np.zeros(nf, dtype=np.int64)
        sent = np.zeros(nf, dtype=bool)
        wire_len = payload_len.copy()
    else:
        wired, took_list = compressor.encode_many(payloads, frames.key)
        wires = wired
        took = np.asarray(took_list, dtype=np.int64)
        if None not in wires:  # every frame compressed
            sent = np.ones(nf, dtype=bool)
            wire_len = np.fromiter(map(len, wires), dtype=np.int64, count=nf)  # type: ignore[arg-type]
        else:  # some frames went plain: their wire length is their payload's
            went = list(map(operator.is_not, wires, itertools.repeat(None)))
            sent = np.asarray(went, dtype=bool)
            wire_len = payload_len.copy()
            wire_len[sent] = np.fromiter(map(len, itertools.compress(wires, went)),  # type: ignore[arg-type]
                                         dtype=np.int64)
    back = np.zeros(nf, dtype=np.int64)
    same = np.ones(nf, dtype=bool)  # the body the peer reads equals the released payload
    odd: dict[int, bytes] = {}
    if verify and compressor is not None:
        back, same, odd = _read_back(wires, payloads, sent, decoder)
    members = len(frames.index)
    if not verify:
        intact = np.ones(members, dtype=bool)
    elif unwrapped is None:  # one message per frame: its payload is the frame's
        intact = same
    else:
        intact = unwrapped.copy()
        if odd:
            assert envelope is not None
            _recheck(frames, stream, envelope, odd, intact)
    return CodedFrames(payload_len, wire_len, took, back, sent, intact)


def _read_back(wires: list[bytes | None], payloads: list[bytes], sent: npt.NDArray[np.bool_],
               decoder: MessageDecoder | None
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], dict[int, bytes]]:
    """Inflate every compressed frame (``sent``) at the peer, timed: the CPU times,
    whether each body equals the released payload, and the bodies that do not (by frame
    number)."""
    nf = len(wires)
    back = np.zeros(nf, dtype=np.int64)
    same = np.ones(nf, dtype=bool)
    odd: dict[int, bytes] = {}
    every = bool(sent.all())
    went = sent.tolist()
    where: Sequence[int] = range(nf) if every else np.flatnonzero(sent).tolist()
    squeezed = wires if every else list(itertools.compress(wires, went))
    if decoder is None:  # compressed bytes reach a peer that cannot inflate them
        for k, w in zip(where, squeezed, strict=True):
            if w != payloads[k]:
                same[k] = False
                odd[k] = w  # type: ignore[assignment]
        return back, same, odd
    perf = time.perf_counter_ns
    if isinstance(decoder, RunDecoder):  # every compressed frame in one call
        bodies, took = decoder.decode_many(squeezed, perf)  # type: ignore[arg-type]
    else:
        bodies, took = [], []
        decode = decoder.decode
        for w in squeezed:
            started = perf()
            bodies.append(decode(w))  # type: ignore[arg-type]
            took.append(perf() - started)
    originals = payloads if every else list(itertools.compress(payloads, went))
    matched = np.fromiter(map(operator.eq, bodies, originals), dtype=bool, count=len(where))
    if every:
        back[:] = took
        same = matched
    else:
        back[where] = took
        same[where] = matched
    if not matched.all():
        odd = {k: b for k, b, ok in zip(where, bodies, matched.tolist(), strict=True) if not ok}
    return back, same, odd


def _recheck(frames: FrameColumns, stream: StreamInput, envelope: str,
             odd: dict[int, bytes], intact: npt.NDArray[np.bool_]) -> None:
    """Frames whose body differs from the released payload: unwrap the body itself, as a
    peer would (only a codec that does not give back what it was given gets here)."""
    positions = _positions(frames, stream)
    starts = np.concatenate(([0], np.cumsum(frames.count))).tolist()
    for k, body in odd.items():
        at, end = starts[k], starts[k + 1]
        intact[at:end] = _compare(envelopes.decode(envelope, body), positions[at:end], stream)
