"""Counting RFC 6455 frames in a raw byte stream, as they really crossed the socket.

What lives here: :class:`FrameCounts`, the counters of one direction (also what the load
client keeps as it parses frames itself), and :class:`FrameTally`, an incremental reader
of frame *headers* (payloads are skipped, never copied) that sorts what it sees into data
frames (text, binary, continuation) and control frames (close, ping, pong), with their
exact wire bytes. Fed the bytes a connection wrote or read after its opening handshake,
it gives the measured ``ws_bytes`` and ``frames`` of DESIGN.md section 4, data apart from
control. Sans-I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from wslab.wire import CONTROL_OPCODES, OPCODE_BITS

_CONTROL: Final = frozenset(map(int, CONTROL_OPCODES))  # plain ints: a lookup per frame


@dataclass(slots=True)
class FrameCounts:
    """Frames and wire bytes in one direction of one connection.

    Attributes:
        data_frames: Text, binary and continuation frames seen complete.
        data_bytes: Their header plus payload bytes.
        data_payload_bytes: Their payload bytes alone (compressed, if compressed).
        compressed_frames: Data frames with RSV1 set (permessage-deflate).
        control_frames: Close, ping and pong frames.
        control_bytes: Their header plus payload bytes.
    """

    data_frames: int = 0
    data_bytes: int = 0
    data_payload_bytes: int = 0
    compressed_frames: int = 0
    control_frames: int = 0
    control_bytes: int = 0

    def as_dict(self, prefix: str = "") -> dict[str, int]:
        """The counters by name, each name prefixed (``in_`` / ``out_``: a bench row's)."""
        return {prefix + name: getattr(self, name) for name in COUNTERS}


COUNTERS: Final = ("data_frames", "data_bytes", "data_payload_bytes", "compressed_frames",
                   "control_frames", "control_bytes")
"""The counters of :class:`FrameCounts`, in their order."""


@dataclass(slots=True)
class FrameTally(FrameCounts):
    """:class:`FrameCounts` read off a raw byte stream (:meth:`feed`)."""

    _header: bytearray = field(default_factory=bytearray, repr=False)
    _skip: int = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Account for the next chunk of the stream."""
        n = len(data)
        i = 0
        if self._skip:
            i = min(self._skip, n)
            self._skip -= i
        if self._header and i < n:
            i = self._finish_header(data, i)
        while i < n:
            if self._skip:
                break
            # Fast path: the whole header is in this chunk (almost always).
            b1 = data[i + 1] if i + 1 < n else None
            if b1 is None:
                self._header += bytes(data[i:])
                return
            length = b1 & 0x7F
            size = 6 if b1 & 0x80 else 2
            if length == 126:
                size += 2
            elif length == 127:
                size += 8
            if i + size > n:
                self._header += bytes(data[i:])
                return
            if length == 126:
                length = int.from_bytes(data[i + 2:i + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[i + 2:i + 10], "big")
            self._account(data[i], size, length)
            i += size + length
            if i > n:
                self._skip = i - n

    def _finish_header(self, data: bytes | bytearray | memoryview, i: int) -> int:
        """Complete a header split across chunks; return where the payload starts."""
        n = len(data)
        while i < n:
            need = self._header_size()
            if need is not None and len(self._header) >= need:
                break
            self._header.append(data[i])
            i += 1
        need = self._header_size()
        if need is None or len(self._header) < need:
            return i
        h = bytes(self._header)
        self._header.clear()
        length = h[1] & 0x7F
        if length == 126:
            length = int.from_bytes(h[2:4], "big")
        elif length == 127:
            length = int.from_bytes(h[2:10], "big")
        self._account(h[0], len(h), length)
        take = min(length, n - i)
        self._skip = length - take
        return i + take

    def _header_size(self) -> int | None:
        h = self._header
        if len(h) < 2:
            return None
        size = 2 + (4 if h[1] & 0x80 else 0)
        length = h[1] & 0x7F
        return size + (2 if length == 126 else 8 if length == 127 else 0)

    def _account(self, b0: int, header: int, length: int) -> None:
        if (b0 & OPCODE_BITS) in _CONTROL:
            self.control_frames += 1
            self.control_bytes += header + length
        else:
            self.data_frames += 1
            self.data_bytes += header + length
            self.data_payload_bytes += length
            if b0 & 0x40:
                self.compressed_frames += 1
