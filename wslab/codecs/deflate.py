"""permessage-deflate message codec, exactly as RFC 7692 defines it.

What lives here: the per-message encoder and decoder and the per-connection memory estimate.
Negotiation (the ``Sec-WebSocket-Extensions`` header) lives in ``negotiation.py``. The rules:

- raw deflate (negative ``wbits``), one ``Z_SYNC_FLUSH`` per message, and the four bytes
  ``00 00 ff ff`` that the flush leaves at the end are removed (RFC 7692 section 7.2.1);
- the LZ77 window is kept across messages unless the side has no context takeover, in which
  case each message starts from a fresh compressor;
- the receiver appends the four bytes back before inflating (section 7.2.2).

zlib cannot build a raw compressor with a 256-byte window (``wbits=-8``), so a negotiated
window of 8 bits compresses with 9; RFC 7692 allows a sender to use a smaller window than
the one agreed but not a larger one, hence the encoder refuses 8 outright and callers must
ask for 9 (see ``negotiation.py``). A decoder may always use 8.
"""

from __future__ import annotations

import zlib

from wslab.errors import DecodeError, PayloadTooBig

SYNC_FLUSH_TAIL = b"\x00\x00\xff\xff"

MIN_WINDOW_BITS = 8
MAX_WINDOW_BITS = 15
MIN_ENCODER_WINDOW_BITS = 9


class DeflateEncoder:
    """Compresses messages for one direction of one connection.

    Args:
        window_bits: LZ77 window size in bits, 9..15.
        mem_level: zlib ``memLevel``, 1..9 (memory for the hash table and buffers).
        level: zlib compression level, 0..9 (or -1 for zlib's default, 6).
        no_context_takeover: Start every message from an empty window.
    """

    algorithm = "permessage-deflate"

    def __init__(
        self,
        window_bits: int = 15,
        mem_level: int = 8,
        level: int = -1,
        no_context_takeover: bool = False,
    ) -> None:
        if not MIN_ENCODER_WINDOW_BITS <= window_bits <= MAX_WINDOW_BITS:
            raise ValueError(f"window_bits must be 9..15 for a deflate encoder, got {window_bits}")
        if not 1 <= mem_level <= 9:
            raise ValueError(f"mem_level must be 1..9, got {mem_level}")
        if not -1 <= level <= 9:
            raise ValueError(f"level must be -1..9, got {level}")
        self.window_bits = window_bits
        self.mem_level = mem_level
        self.level = level
        self.no_context_takeover = no_context_takeover
        self._compressor = self._new()

    def _new(self) -> zlib._Compress:
        return zlib.compressobj(self.level, zlib.DEFLATED, -self.window_bits, self.mem_level)

    def encode(self, payload: bytes) -> bytes:
        """Compress one message and strip the sync-flush tail."""
        if self.no_context_takeover:
            self._compressor = self._new()
        c = self._compressor
        data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
        return data[:-4]


class DeflateDecoder:
    """Inflates messages for one direction of one connection.

    Args:
        window_bits: The window the peer's encoder may use, 8..15.
        no_context_takeover: The peer starts every message from an empty window.
    """

    algorithm = "permessage-deflate"

    def __init__(self, window_bits: int = 15, no_context_takeover: bool = False) -> None:
        if not MIN_WINDOW_BITS <= window_bits <= MAX_WINDOW_BITS:
            raise ValueError(f"window_bits must be 8..15, got {window_bits}")
        # zlib's inflate accepts a window at least as large as the sender's; 8 is not a
        # valid raw-inflate value in every zlib build, and 9 reads 8-bit streams too.
        self.window_bits = max(window_bits, MIN_ENCODER_WINDOW_BITS)
        self.no_context_takeover = no_context_takeover
        self._decompressor = zlib.decompressobj(-self.window_bits)

    def decode(self, data: bytes, max_size: int | None = None) -> bytes:
        """Inflate one message; refuse to grow past ``max_size`` bytes."""
        if self.no_context_takeover:
            self._decompressor = zlib.decompressobj(-self.window_bits)
        d = self._decompressor
        limit = 0 if max_size is None else max_size + 1
        try:
            out = d.decompress(data + SYNC_FLUSH_TAIL, limit)
        except zlib.error as exc:
            raise DecodeError(f"permessage-deflate data does not inflate: {exc}") from exc
        if d.unconsumed_tail or (max_size is not None and len(out) > max_size):
            raise PayloadTooBig(f"message inflates past max_size={max_size} bytes")
        return out


def deflate_memory_bytes(window_bits: int, mem_level: int, *, decoder: bool = True) -> int:
    """zlib's documented memory for one compressor (plus one decompressor if asked).

    zlib's ``zconf.h`` gives deflate ``(1 << (windowBits + 2)) + (1 << (memLevel + 9))``
    bytes and inflate ``1 << windowBits`` bytes (plus a few KiB of fixed state, not counted).
    """
    compressor = (1 << (window_bits + 2)) + (1 << (mem_level + 9))
    return compressor + ((1 << window_bits) if decoder else 0)
