"""Client data frames built in bursts: many frames, one write.

What lives here: :class:`FrameWriter`, which frames messages the way RFC 6455 section 5.2
says a client must (FIN set, RSV1 for a compressed message, a fresh masking key per frame,
payload masked) into one buffer that the load client hands to the socket once per burst,
instead of one ``send()`` system call per message. What must not live here: what goes in a
frame (the pipeline) or when a burst ends (``loadconn.py``, ``client.py``).

Masking keys come from the operating system's random source (``os.urandom``), fetched
4 KiB at a time: as unpredictable as the RFC asks, without a system call per frame. The
XOR itself is the websockets library's C ``apply_mask`` (``wsadapter.py``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable

from wslab.harness.wsadapter import apply_mask

_KEYS = 1024
"""Masking keys fetched per ``os.urandom`` call."""
_SHORT = [[bytes([0x80 | rsv | op, 0x80 | n]) for n in range(126)]
          for rsv, op in ((0, 0), (0, 1), (0, 2), (0x40, 0), (0x40, 1), (0x40, 2))]
"""Headers of frames under 126 bytes, by (RSV1 and opcode) then length: a table lookup."""


class FrameWriter:
    """A buffer of masked client frames, written out in one piece by :meth:`flush`.

    Args:
        write: Where a burst goes (the socket transport's ``write``).
        burst_bytes: A burst is written as soon as it holds this many bytes.
    """

    __slots__ = ("_buffer", "_keys", "_next", "burst_bytes", "bursts", "write")

    def __init__(self, write: Callable[[bytearray], object], burst_bytes: int = 65536) -> None:
        self.write = write
        self.burst_bytes = burst_bytes
        self._buffer = bytearray()
        self.bursts = 0
        """Bursts written so far."""
        self._keys = b""
        self._next = 0

    def add(self, opcode: int, payload: bytes, rsv1: bool = False) -> None:
        """Frame one whole message (``opcode`` 1 text, 2 binary) into the burst."""
        self.add_all(((opcode, payload, rsv1),))

    def add_all(self, frames: Iterable[tuple[int, bytes, bool]]) -> None:
        """Frame whole messages, each ``(opcode, payload, rsv1)``, into the burst in turn
        (written out whenever it reaches ``burst_bytes``): one call for a run of frames."""
        keys, at, buffer, burst = self._keys, self._next, self._buffer, self.burst_bytes
        for opcode, payload, rsv1 in frames:
            n = len(payload)
            if at + 4 > len(keys):
                keys = self._keys = os.urandom(4 * _KEYS)
                at = 0
            key = keys[at:at + 4]
            at += 4
            if n < 126:
                buffer += _SHORT[opcode + (3 if rsv1 else 0)][n]
            elif n < 65536:
                buffer += struct.pack("!BBH", 0x80 | (0x40 if rsv1 else 0) | opcode, 0xFE, n)
            else:
                buffer += struct.pack("!BBQ", 0x80 | (0x40 if rsv1 else 0) | opcode, 0xFF, n)
            buffer += key
            buffer += apply_mask(payload, key)
            if len(buffer) >= burst:
                self._next = at
                self.flush()
                buffer = self._buffer
        self._next = at

    def flush(self) -> None:
        """Write what the burst holds (nothing if empty)."""
        if self._buffer:
            # The buffer itself goes to the transport, which may keep it until the socket
            # takes it all; a fresh one takes the next burst (no copy of the burst).
            data = self._buffer
            self._buffer = bytearray()
            self.bursts += 1
            self.write(data)

    @property
    def pending(self) -> int:
        """Bytes framed but not yet written."""
        return len(self._buffer)
