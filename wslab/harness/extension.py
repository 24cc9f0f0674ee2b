"""permessage-deflate for the live harness, with a per-message "do not compress".

What lives here: an extension that plugs into the websockets library's own negotiation
(subclasses of its factories, so the handshake is the library's) but sends with wslab's
:class:`~wslab.codecs.deflate.DeflateEncoder` and obeys the send pipeline's per-frame
decision. A skipped message goes out with RSV1 clear and never touches the compression
context (RFC 7692 section 6 lets a sender leave any message uncompressed). Receiving is the
library's own decoder, with its ``max_size`` guard against decompression bombs.

How a decision reaches a frame: the sender appends one boolean per data message to
:attr:`SelectiveDeflate.decisions` right before handing the message to the connection;
``encode`` takes them in order. The connection serialises sends, so order is enough. With
no decision queued the message is compressed (the library's default behaviour). After each
compressed message ``on_compressed(original, compressed)`` is called, which is how the
adaptive selector learns real sizes.

Compress once, send to many: without context takeover a message's compressed bytes depend
only on the message and the (window bits, memLevel, level) it is compressed with, so a
broadcast can be compressed once and the same frame payload sent to every connection. A
:class:`SharedDeflate` attached to a connection's :class:`SelectiveDeflate` (``shared``)
does that: it keeps the last few results by content and parameters. It is consulted only
for messages the sender decided to compress (RSV1 set) on connections that negotiated
``server_no_context_takeover``; every other message takes the connection's own path.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
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

from wslab.codecs.deflate import DeflateEncoder

SizeHook = Callable[[int, int], None]


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


class SelectiveDeflate(PerMessageDeflate):
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
        # Built on the first compressed message: an idle connection holds no compressor.
        self._codec: DeflateEncoder | None = None
        self.shared: SharedDeflate | None = None
        self.sent_shared = 0
        self.decisions: deque[bool] = deque()
        self.on_compressed: SizeHook | None = None
        self.sent_compressed = 0
        self.sent_plain = 0
        self.bytes_in = 0  # into the compressor
        self.bytes_out = 0  # out of it
        self.encode_ns = 0  # CPU spent compressing (wall time of the codec calls)

    @property
    def codec(self) -> DeflateEncoder:
        """This connection's own compressor."""
        if self._codec is None:
            self._codec = DeflateEncoder(
                window_bits=self.local_max_window_bits or 15,
                mem_level=self.mem_level,
                level=self.level,
                no_context_takeover=self.local_no_context_takeover,
            )
        return self._codec

    def encode(self, frame: Frame) -> Frame:
        """Compress a data frame unless the sender asked to skip it."""
        if frame.opcode in CTRL_OPCODES:
            return frame
        if frame.opcode is CONT or not frame.fin:
            raise ProtocolError("wslab sends every message in one frame; fragments unsupported")
        compress = self.decisions.popleft() if self.decisions else True
        if not compress:
            self.sent_plain += 1
            return frame
        original = bytes(frame.data)
        if self.shared is not None and self.local_no_context_takeover:
            data = self.shared.encode(original, self.local_max_window_bits or 15,
                                      self.mem_level, self.level)
            self.sent_shared += 1
        else:
            started = time.perf_counter_ns()
            data = self.codec.encode(original)
            self.encode_ns += time.perf_counter_ns() - started
        self.sent_compressed += 1
        self.bytes_in += len(original)
        self.bytes_out += len(data)
        if self.on_compressed is not None:
            self.on_compressed(len(original), len(data))
        return Frame(frame.opcode, data, True, True, frame.rsv2, frame.rsv3)


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


def selective_extension(extensions: Sequence[Extension]) -> SelectiveDeflate | None:
    """The selective deflate among a connection's negotiated extensions, if any."""
    for ext in extensions:
        if isinstance(ext, SelectiveDeflate):
            return ext
    return None
