"""permessage-deflate for the live harness, with a per-frame "do not compress".

What lives here: :class:`SelectiveSender`, what every wslab sending extension shares (the
frame keys the session queues and the :class:`~wslab.compressor.FrameCompressor` that
decides, compresses and learns per frame), and :class:`SelectiveDeflate`, which plugs into
the websockets library's own negotiation (subclasses of its factories, so the handshake is
the library's) but sends with wslab's :class:`~wslab.codecs.deflate.DeflateEncoder`. A
skipped message goes out with RSV1 clear and never touches the compression context (RFC
7692 section 6 lets a sender leave any message uncompressed). Receiving is the library's
own decoder, with its ``max_size`` guard against decompression bombs. ``x-wslab-zstd`` is
the other :class:`SelectiveSender` (``zstd_extension.py``).

How a frame meets its decision: the session appends the frame's key (its message type) to
:attr:`SelectiveSender.keys` right before handing the frame to the connection; ``encode``
takes them in order (the connection serialises sends, so order is enough) and asks the
compressor, which asks the selector *then*, compresses and reports the real size back
before the next frame. That is the simulator's order too (``wslab/compressor.py``). With no
key queued (a frame the session did not send) the key is ``""``; with no selector set
every frame is compressed, the library's own behaviour.

Compress once, send to many: without context takeover a message's compressed bytes depend
only on the message and the (window bits, memLevel, level) it is compressed with, so a
broadcast can be compressed once and the same frame payload sent to every connection. A
:class:`SharedDeflate` attached to a connection's :class:`SelectiveDeflate` (``shared``,
before its first compressed frame) does that: it keeps the last few results by content and
parameters. It is consulted only for frames the selector chose to compress on connections
that negotiated ``server_no_context_takeover``; every other frame takes the connection's
own path.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from websockets.exceptions import ProtocolError
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CONT, CTRL_OPCODES, Frame
from websockets.typing import ExtensionParameter

from wslab.codecs.base import MessageEncoder
from wslab.codecs.deflate import DeflateEncoder
from wslab.compressor import FrameCompressor


class SharedDeflate:
    """Compressed payloads shared by every connection without context takeover.

    Args:
        capacity: How many distinct (payload, parameters) results to keep.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._done: OrderedDict[tuple[bytes, int, int, int], bytes] = OrderedDict()
        self.compressions = 0  # messages really compressed
        self.reused = 0  # frames that took an already compressed payload
        self.encode_ns = 0

    def encode(self, payload: bytes, window_bits: int, mem_level: int, level: int) -> bytes:
        """The permessage-deflate payload of ``payload`` compressed from an empty window."""
        key = (payload, window_bits, mem_level, level)
        data = self._done.get(key)
        if data is not None:
            self.reused += 1
            self._done.move_to_end(key)
            return data
        started = time.perf_counter_ns()
        data = DeflateEncoder(window_bits=window_bits, mem_level=mem_level, level=level,
                              no_context_takeover=True).encode(payload)
        self.encode_ns += time.perf_counter_ns() - started
        self.compressions += 1
        self._done[key] = data
        if len(self._done) > self.capacity:
            self._done.popitem(last=False)
        return data


class _SharedEncoder:
    """A connection's view of a :class:`SharedDeflate`: the MessageEncoder interface."""

    algorithm = "permessage-deflate"

    def __init__(self, shared: SharedDeflate, window_bits: int, mem_level: int,
                 level: int) -> None:
        self.shared = shared
        self.params = (window_bits, mem_level, level)
        self.frames = 0

    def encode(self, payload: bytes, key: str = "") -> bytes:
        self.frames += 1
        return self.shared.encode(payload, *self.params)


class SelectiveSender:
    """What every wslab sending extension has: queued frame keys and a frame compressor.

    Subclasses set :attr:`compressor` (around their own codec) and call
    :meth:`encode_data` from their ``encode`` for data frames.
    """

    keys: deque[str]
    compressor: FrameCompressor

    def encode_data(self, frame: Frame) -> Frame:
        """A data frame as it goes on the wire: compressed (RSV1 set) or as it was."""
        if frame.opcode is CONT or not frame.fin:
            raise ProtocolError("wslab sends every message in one frame; fragments unsupported")
        key = self.keys.popleft() if self.keys else ""
        data = self.compressor.encode(bytes(frame.data), key)
        if data is None:
            return frame
        return Frame(frame.opcode, data, True, True, frame.rsv2, frame.rsv3)

    @property
    def shared_frames(self) -> int:
        """Frames whose payload came from a shared compression (0 for most extensions)."""
        return 0


class SelectiveDeflate(SelectiveSender, PerMessageDeflate):
    """A negotiated permessage-deflate whose sender may skip messages.

    Args:
        negotiated: The library's extension object for the agreed parameters.
        mem_level: zlib memLevel for our compressor.
        level: zlib level for our compressor.
    """

    def __init__(self, negotiated: PerMessageDeflate, mem_level: int, level: int) -> None:
        # The parent builds its own compressor unless told there is no context takeover;
        # we never use it, so ask for none and keep the real flag ourselves.
        super().__init__(
            negotiated.remote_no_context_takeover,
            True,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            {"memLevel": mem_level, "level": level},
        )
        self.local_no_context_takeover = negotiated.local_no_context_takeover
        self.mem_level = mem_level
        self.level = level
        self.shared: SharedDeflate | None = None
        self.keys = deque()
        # The codec is built on the first compressed frame: an idle connection holds none.
        self.compressor = FrameCompressor(self._new_encoder)

    def _new_encoder(self) -> MessageEncoder:
        bits = self.local_max_window_bits or 15
        if self.shared is not None and self.local_no_context_takeover:
            return _SharedEncoder(self.shared, bits, self.mem_level, self.level)
        return DeflateEncoder(window_bits=bits, mem_level=self.mem_level, level=self.level,
                              no_context_takeover=self.local_no_context_takeover)

    @property
    def shared_frames(self) -> int:
        """Frames whose payload came from the shared compressor."""
        enc = self.compressor.built
        return enc.frames if isinstance(enc, _SharedEncoder) else 0

    def encode(self, frame: Frame) -> Frame:
        """Compress a data frame unless the selector says to skip it."""
        if frame.opcode in CTRL_OPCODES:
            return frame
        return self.encode_data(frame)


class SelectiveServerDeflateFactory(ServerPerMessageDeflateFactory):
    """The library's server-side negotiation, answered with a :class:`SelectiveDeflate`."""

    def __init__(self, *, mem_level: int, level: int, **kwargs: Any) -> None:
        super().__init__(compress_settings={"memLevel": mem_level, "level": level}, **kwargs)
        self.mem_level = mem_level
        self.level = level

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        """Negotiate as the library does, then swap in the selective sender."""
        response, negotiated = super().process_request_params(params, accepted_extensions)
        return response, SelectiveDeflate(negotiated, self.mem_level, self.level)


class SelectiveClientDeflateFactory(ClientPerMessageDeflateFactory):
    """The library's client-side negotiation, answered with a :class:`SelectiveDeflate`."""

    def __init__(self, *, mem_level: int, level: int, **kwargs: Any) -> None:
        super().__init__(compress_settings={"memLevel": mem_level, "level": level}, **kwargs)
        self.mem_level = mem_level
        self.level = level

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        """Check the server's answer as the library does, then swap in our sender."""
        negotiated = super().process_response_params(params, accepted_extensions)
        return SelectiveDeflate(negotiated, self.mem_level, self.level)


def selective_extension(extensions: Sequence[Extension]) -> SelectiveSender | None:
    """The wslab sending extension among a connection's negotiated ones, if any."""
    for ext in extensions:
        if isinstance(ext, SelectiveSender):
            return ext
    return None
