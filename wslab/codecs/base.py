"""The two small interfaces every compression codec implements.

A codec is a pair: a :class:`MessageEncoder` on the sending side and a
:class:`MessageDecoder` on the receiving side, one pair per connection and direction. Both
work on whole messages (the unit a WebSocket compression extension works on) and keep
whatever state their algorithm carries from message to message. Nothing here does I/O.

Beside them: the optional run interfaces (:class:`RunEncoder`, :class:`RunDecoder`), the
shapes of the selector calls a run encoder is given (:data:`Decide`, :data:`Observe`,
:data:`Step`), and :func:`fuse`, which makes a :data:`Step` of a selector's two calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

Clock = Callable[[], int]
"""A CPU-time reading in nanoseconds (``time.perf_counter_ns``), passed in by the caller."""


@runtime_checkable
class MessageEncoder(Protocol):
    """Compresses one message at a time, keeping the algorithm's context between them."""

    algorithm: str

    def encode(self, payload: bytes, key: str = "") -> bytes:
        """Return the bytes that go on the wire for ``payload``.

        Args:
            payload: The message (or batch envelope) to compress.
            key: The frame's message type (the selector's key); a codec with one
                dictionary per type picks by it, every other codec ignores it.
        """
        ...


@runtime_checkable
class MessageDecoder(Protocol):
    """Inverts a :class:`MessageEncoder`, message by message, in the same order."""

    algorithm: str

    def decode(self, data: bytes, max_size: int | None = None) -> bytes:
        """Return the original message for ``data``.

        Args:
            data: What the encoder produced for one message.
            max_size: Refuse (raise :class:`wslab.errors.PayloadTooBig`) rather than
                inflate beyond this many bytes; ``None`` for no limit.
        """
        ...


Decide = Callable[[str, bytes], bool]
"""A selector's ``decide(key, payload)``: compress this frame?"""
Observe = Callable[[str, int, int], None]
"""A selector's ``observe(key, original, compressed)``: what the frame compressed to."""
Step = Callable[[str, "bytes | None", int, int], bool]
"""A selector's ``observe`` and ``decide`` in one call, ``step(key, payload, original,
compressed)``: book the sizes of the frame compressed last (when ``original >= 0``), then
decide ``payload`` (None: nothing to decide, False). One call per frame of a run."""


def fuse(decide: Decide | None, observe: Observe | None) -> Step | None:
    """A :data:`Step` made of a selector's two calls (None when both are None), for a
    selector that has no ``step`` of its own: each booking goes to ``observe`` under the
    key of the frame decided last, so the calls are those of a frame-by-frame caller."""
    if decide is None and observe is None:
        return None
    last = [""]

    def step(key: str, payload: bytes | None, original: int = -1, compressed: int = 0) -> bool:
        if original >= 0 and observe is not None:
            observe(last[0], original, compressed)
        if payload is None:
            return False
        last[0] = key
        return decide is None or decide(key, payload)

    return step


@runtime_checkable
class RunEncoder(Protocol):
    """An encoder that can also compress a run of frames in one call (the simulator's
    stage 2), each timed by the caller's clock. Optional: callers fall back to
    :meth:`MessageEncoder.encode` per frame."""

    def encode_many(self, payloads: Sequence[bytes], keys: Sequence[str], clock: Clock,
                    decide: Decide | None = None, observe: Observe | None = None,
                    step: Step | None = None) -> tuple[list[bytes | None], list[int]]:
        """Per frame, in order, exactly ``FrameCompressor.encode``'s steps: skip it (None,
        0 ns) unless ``decide(key, payload)``; else :meth:`~MessageEncoder.encode` it,
        timed by ``clock``, then ``observe(key, len(payload), len(wire))``. With ``step``
        (a selector's fused call, see :data:`Step`) the same steps take one call per
        frame, and ``decide``/``observe`` are not used. Returns the wire bytes (None: sent
        as it was) and the nanoseconds of each compression."""
        ...


@runtime_checkable
class RunDecoder(Protocol):
    """A decoder that can also decode a run of messages in one call, without a size limit,
    each timed by the caller's clock (optional, like :class:`RunEncoder`)."""

    def decode_many(self, wires: Sequence[bytes],
                    clock: Clock) -> tuple[list[bytes], list[int]]:
        """Each message as :meth:`~MessageDecoder.decode` would give it in turn (no
        ``max_size``), and the nanoseconds ``clock`` saw pass around each one."""
        ...
