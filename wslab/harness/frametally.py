"""Counting RFC 6455 frames in a raw byte stream, as they really crossed the socket.

What lives here: :class:`FrameTally`, an incremental reader of frame *headers* (payloads are
skipped, never copied) that sorts what it sees into data frames (text, binary,
continuation) and control frames (close, ping, pong), with their exact wire bytes. Fed the
bytes a connection wrote or read after its opening handshake, it gives the measured
``ws_bytes`` and ``frames`` of DESIGN.md section 4, data apart from control. Sans-I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONTROL_OPCODES = frozenset({0x8, 0x9, 0xA})


@dataclass(slots=True)
class FrameTally:
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
    _header: bytearray = field(default_factory=bytearray, repr=False)
    _skip: int = 0
    _control: bool = False

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Account for the next chunk of the stream."""
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                continue
            need = self._header_size()
            if need is None or len(self._header) < need:
                want = (need or 2) - len(self._header)
                take = min(want, n - i)
                self._header += view[i:i + take]
                i += take
                continue
            self._start_frame()
        if self._skip == 0:
            need = self._header_size()
            if need is not None and len(self._header) >= need:
                self._start_frame()

    def _header_size(self) -> int | None:
        h = self._header
        if len(h) < 2:
            return None
        size = 2 + (4 if h[1] & 0x80 else 0)
        length = h[1] & 0x7F
        return size + (2 if length == 126 else 8 if length == 127 else 0)

    def _start_frame(self) -> None:
        h = bytes(self._header)
        self._header.clear()
        opcode = h[0] & 0x0F
        length = h[1] & 0x7F
        if length == 126:
            length = int.from_bytes(h[2:4], "big")
        elif length == 127:
            length = int.from_bytes(h[2:10], "big")
        total = len(h) + length
        if opcode in CONTROL_OPCODES:
            self.control_frames += 1
            self.control_bytes += total
        else:
            self.data_frames += 1
            self.data_bytes += total
            self.data_payload_bytes += length
            if h[0] & 0x40:
                self.compressed_frames += 1
        self._skip = length

    def as_dict(self) -> dict[str, int]:
        """The public counters."""
        return {
            "data_frames": self.data_frames, "data_bytes": self.data_bytes,
            "data_payload_bytes": self.data_payload_bytes,
            "compressed_frames": self.compressed_frames,
            "control_frames": self.control_frames, "control_bytes": self.control_bytes,
        }
