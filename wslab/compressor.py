"""Decide, compress, learn: one frame at a time, in that order. Sans-I/O.

What lives here: :class:`FrameCompressor`, the one place where a frame's compress-or-not
decision is taken and the compressed size is fed back to the selector. Per frame it does,
without anything in between:

1. ``selector.decide(key, payload)`` (skip: the frame goes out plain, RSV1 clear, and the
   codec's context is not touched);
2. ``encoder.encode(payload, key)`` (the real codec; its CPU time is measured);
3. ``selector.observe(key, len(payload), len(compressed))``.

The simulator hands it every frame of a stream at once (:meth:`FrameCompressor.encode_many`,
the same three steps per frame, in release order, with one selector call per frame: the
selector's ``step`` books a frame's sizes together with the next frame's decision); the live
extensions (``harness/extension.py`` for permessage-deflate, ``harness/zstd_extension.py``
for ``x-wslab-zstd``) call it from their ``encode``, when the library turns that very frame
into bytes, which is also release order. So one trace and one config give one sequence of
decisions offline and live: the feedback reaches the selector at the same moment (right
after the frame it measures) on both sides.

What must not live here: batching (``pipeline.py``), the rules of a policy
(``selector.py``), negotiation, sockets, clocks other than the codec's CPU timing.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from wslab.codecs.base import RunEncoder, Step, fuse
from wslab.selector import CompressionSelector, Selector

if TYPE_CHECKING:
    from wslab.codecs.base import MessageEncoder
    from wslab.config import CompressionConfig


def make_selector(compression: CompressionConfig) -> Selector | None:
    """The selector a compression config asks for; None means "compress every frame".

    ``always`` needs no selector (no per-frame work at all); ``never`` is a selector that
    says no, so a connection that negotiated compression still sends everything plain.
    """
    if compression.algorithm == "none":
        return CompressionSelector("never")
    if compression.policy == "always":
        return None
    return CompressionSelector.from_config(compression)


class FrameCompressor:
    """A sending side's selector and codec, driven frame by frame.

    Args:
        make_encoder: Builds the codec on the first frame that is compressed (an idle
            live connection then holds no compressor).
        selector: Which frames to compress (None: all of them).
        log: Keep one ``(key, payload bytes, wire bytes, compressed)`` tuple per frame in
            :attr:`frames` (tests and ``wslab bench`` compare them with the simulator's).

    Attributes:
        compressed / plain: Frames compressed and frames sent as they were.
        bytes_in / bytes_out: Bytes into and out of the codec (compressed frames only).
        encode_ns: CPU time of the codec calls, nanoseconds.
        last_ns: CPU time of the latest codec call (0 after a skipped frame).
        last_wire: Payload bytes of the latest frame as sent (compressed or not).
        last_compressed: Whether the latest frame was compressed.
    """

    __slots__ = ("_decide", "_encoder", "_make_encoder", "_observe", "_selector", "_step",
                 "bytes_in", "bytes_out", "compressed", "encode_ns", "frames",
                 "last_compressed", "last_ns", "last_wire", "plain")

    def __init__(self, make_encoder: Callable[[], MessageEncoder],
                 selector: Selector | None = None, *, log: bool = False) -> None:
        self._make_encoder = make_encoder
        self._encoder: MessageEncoder | None = None
        self._decide: Callable[[str, bytes], bool] | None = None
        self._observe: Callable[[str, int, int], None] | None = None
        self._step: Step | None = None
        self.selector = selector
        self.compressed = 0
        self.plain = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.encode_ns = 0
        self.last_ns = 0
        self.last_wire = 0
        self.last_compressed = False
        self.frames: list[tuple[str, int, int, bool]] | None = [] if log else None

    @classmethod
    def from_config(cls, compression: CompressionConfig,
                    make_encoder: Callable[[], MessageEncoder], *,
                    log: bool = False) -> FrameCompressor:
        """The compressor a ``compression`` section asks for, around ``make_encoder``."""
        return cls(make_encoder, make_selector(compression), log=log)

    @property
    def selector(self) -> Selector | None:
        """Which frames to compress (None: all of them); may be replaced between frames."""
        return self._selector

    @selector.setter
    def selector(self, selector: Selector | None) -> None:
        self._selector = selector
        # The selector's calls, bound once: they run for every frame. A run of frames
        # takes one fused call per frame (the selector's own step, else one made of its
        # two calls); CompressionSelector.step with nothing to book is its decide.
        if selector is None:
            self._decide = self._observe = self._step = None
            return
        own = selector.step if isinstance(selector, CompressionSelector) else None
        self._decide = own or selector.decide
        self._observe = selector.observe
        self._step = own or fuse(selector.decide, selector.observe)

    @property
    def encoder(self) -> MessageEncoder:
        """The codec (built now if no frame was compressed yet)."""
        if self._encoder is None:
            self._encoder = self._make_encoder()
        return self._encoder

    @property
    def built(self) -> MessageEncoder | None:
        """The codec if a frame was compressed already, else None (nothing is built)."""
        return self._encoder

    def encode(self, payload: bytes, key: str) -> bytes | None:
        """The frame's compressed payload, or None when it goes out as it is."""
        decide = self._decide
        if decide is not None and not decide(key, payload):
            self.plain += 1
            self.last_ns = 0
            self.last_wire = len(payload)
            self.last_compressed = False
            if self.frames is not None:
                self.frames.append((key, len(payload), len(payload), False))
            return None
        encoder = self._encoder or self.encoder
        started = time.perf_counter_ns()
        data = encoder.encode(payload, key)
        took = time.perf_counter_ns() - started
        self.last_ns = took
        self.last_wire = n = len(data)
        self.last_compressed = True
        self.encode_ns += took
        observe = self._observe
        if observe is not None:
            observe(key, len(payload), n)
        self.compressed += 1
        self.bytes_in += len(payload)
        self.bytes_out += n
        if self.frames is not None:
            self.frames.append((key, len(payload), n, True))
        return data

    def encode_many(self, payloads: Sequence[bytes],
                    keys: Sequence[str]) -> tuple[list[bytes | None], list[int]]:
        """:meth:`encode` for a run of frames in order: each frame's compressed payload (None
        when it goes out as it is) and the CPU time of its codec call (0 when skipped).

        Per frame the same three steps in the same order as :meth:`encode`, so the
        selector sees each size before the next decision; the counters (and the log) end
        as :meth:`encode` would leave them. The selector is driven through one fused call
        per frame (:data:`~wslab.codecs.base.Step`: the previous frame's sizes, then this
        frame's decision). A codec that offers ``encode_many``
        (:class:`~wslab.codecs.base.RunEncoder`, the deflate encoder) runs the steps
        itself, given that call, so no Python call is made per frame but the selector's.
        """
        wires: list[bytes | None] = []
        took: list[int] = []
        if not payloads:
            return wires, took
        perf = time.perf_counter_ns
        step = self._step
        unbuilt = self._encoder is None
        encoder = self.encoder
        if isinstance(encoder, RunEncoder):  # the codec runs the steps, no call per frame
            wires, took = encoder.encode_many(payloads, keys, perf, step=step)
        else:
            keep, timed = wires.append, took.append
            encode = encoder.encode
            booked, squeezed = -1, 0  # sizes of the frame compressed last, not yet booked
            key = ""
            for payload, key in zip(payloads, keys, strict=True):
                if step is not None and not step(key, payload, booked, squeezed):
                    booked = -1
                    keep(None)
                    timed(0)
                    continue
                started = perf()
                data = encode(payload, key)
                timed(perf() - started)
                keep(data)
                booked, squeezed = len(payload), len(data)
            if step is not None and booked >= 0:
                step(key, None, booked, squeezed)  # the last frame's sizes
        if unbuilt and wires.count(None) == len(wires):
            self._encoder = None  # nothing compressed: nothing built, as with encode
        self._count_run(payloads, keys, wires, took)
        return wires, took

    def _count_run(self, payloads: Sequence[bytes], keys: Sequence[str],
                   wires: list[bytes | None], took: list[int]) -> None:
        """Counters and log after :meth:`encode_many`, as per-frame calls leave them."""
        plain = wires.count(None)
        if plain:
            sent = list(map(operator.is_not, wires, itertools.repeat(None)))
            self.bytes_in += sum(map(len, itertools.compress(payloads, sent)))
            self.bytes_out += sum(map(len, itertools.compress(wires, sent)))  # type: ignore[arg-type]
        else:
            self.bytes_in += sum(map(len, payloads))
            self.bytes_out += sum(map(len, wires))  # type: ignore[arg-type]
        self.compressed += len(wires) - plain
        self.plain += plain
        self.encode_ns += sum(took)
        last = wires[-1]
        self.last_ns = took[-1]
        self.last_compressed = last is not None
        self.last_wire = len(last) if last is not None else len(payloads[-1])
        if self.frames is not None:
            self.frames.extend(
                (k, len(p), len(w) if w is not None else len(p), w is not None)
                for k, p, w in zip(keys, payloads, wires, strict=True))
