"""permessage-deflate message codec, exactly as RFC 7692 defines it.

What lives here: the per-message encoder and decoder and the per-connection memory estimate.
Negotiation (the ``Sec-WebSocket-Extensions`` header) lives in ``negotiation.py``. The rules:

- raw deflate (negative ``wbits``), one ``Z_SYNC_FLUSH`` per message, and the four bytes
  ``00 00 ff ff`` that the flush leaves at the end are removed (RFC 7692 section 7.2.1);
- the LZ77 window is kept across messages unless the side has no context takeover, in which
  case each message starts from a fresh compressor;
- the receiver appends the four bytes back before inflating (section 7.2.2).

zlib cannot build a raw compressor with a 256-byte window (``wbits=-8``), and RFC 7692 lets a
sender use a smaller window than the one agreed but never a larger one, so the encoder
refuses 8 outright. ``negotiation.py`` never agrees 8 for a zlib sender (a server declines
such an offer; a client fails the handshake, as python-websockets does); ``factory.py``,
which builds codecs from the config without negotiating, compresses a configured 8 with 9.
A decoder accepts 8 and inflates with 9, which reads every 8-bit stream.

What must not live here: negotiation, framing, I/O.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from wslab.codecs.base import Clock, Decide, Observe, Step, fuse
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
        # Without context takeover nothing is kept between messages: a compressor lives
        # for one message only, so an idle connection holds no zlib memory (as the
        # websockets library does).
        self._compressor: zlib._Compress | None = None if no_context_takeover else self._new()

    def _new(self) -> zlib._Compress:
        return zlib.compressobj(self.level, zlib.DEFLATED, -self.window_bits, self.mem_level)

    def encode(self, payload: bytes, key: str = "") -> bytes:
        """Compress one message and strip the sync-flush tail.

        An empty message becomes the single byte ``00`` (RFC 7692 section 7.2.3.6).
        """
        c = self._compressor or self._new()
        data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
        if not data.endswith(SYNC_FLUSH_TAIL):  # zlib always ends a sync flush this way
            raise RuntimeError("zlib sync flush did not end with 00 00 ff ff")
        return data[:-4]

    def encode_many(self, payloads: Sequence[bytes], keys: Sequence[str], clock: Clock,
                    decide: Decide | None = None, observe: Observe | None = None,
                    step: Step | None = None) -> tuple[list[bytes | None], list[int]]:
        """The frames of a run in order, with the selector's steps around each (see
        :class:`~wslab.codecs.base.RunEncoder`); no Python call per frame but the
        selector's one ``step`` (the simulator's hot loop)."""
        out: list[bytes | None] = []
        took: list[int] = []
        keep, timed = out.append, took.append
        tail = SYNC_FLUSH_TAIL
        sync = zlib.Z_SYNC_FLUSH
        if step is None:
            step = fuse(decide, observe)
        if step is None and self._compressor is not None:
            squeeze, drain = self._compressor.compress, self._compressor.flush
            for payload in payloads:  # every frame, one kept context: the tightest loop
                started = clock()
                data = squeeze(payload) + drain(sync)
                if data[-4:] != tail:
                    raise RuntimeError("zlib sync flush did not end with 00 00 ff ff")
                data = data[:-4]
                timed(clock() - started)
                keep(data)
            return out, took
        kept = self._compressor  # None: no context takeover, a compressor per frame
        compress, flush = (kept.compress, kept.flush) if kept is not None else (None, None)
        booked, squeezed = -1, 0  # sizes of the frame compressed last, not yet booked
        key = ""
        for payload, key in zip(payloads, keys, strict=True):
            if step is not None and not step(key, payload, booked, squeezed):
                booked = -1
                keep(None)
                timed(0)
                continue
            started = clock()
            if compress is None or flush is None:
                c = self._new()
                data = c.compress(payload) + c.flush(sync)
            else:
                data = compress(payload) + flush(sync)
            if data[-4:] != tail:
                raise RuntimeError("zlib sync flush did not end with 00 00 ff ff")
            data = data[:-4]
            timed(clock() - started)
            keep(data)
            booked, squeezed = len(payload), len(data)
        if step is not None and booked >= 0:
            step(key, None, booked, squeezed)  # the last frame's sizes
        return out, took


class DeflateDecoder:
    """Inflates messages for one direction of one connection.

    Besides what :class:`DeflateEncoder` produces, it reads every form RFC 7692 section
    7.2.3 allows a sender: several blocks per message, stored blocks, and a block with
    ``BFINAL`` set. The last ends zlib's stream; the decoder then starts a new one primed
    with the window's worth of history, so context takeover carries on across it.

    After a message fails (corrupt data or past ``max_size``), a decoder with context
    takeover refuses further messages: its window no longer matches the sender's.

    Args:
        window_bits: The window the peer's encoder may use, 8..15.
        no_context_takeover: The peer starts every message from an empty window.
    """

    algorithm = "permessage-deflate"

    def __init__(self, window_bits: int = 15, no_context_takeover: bool = False, *,
                 zlib_sender: bool = False) -> None:
        if not MIN_WINDOW_BITS <= window_bits <= MAX_WINDOW_BITS:
            raise ValueError(f"window_bits must be 8..15, got {window_bits}")
        # A sender known to be zlib with sync flushes (wslab's own encoder, as in the
        # simulator) never sets BFINAL, so the history kept for restarts is not needed.
        self._keep_history = not no_context_takeover and not zlib_sender
        # A larger inflate window reads everything a smaller one does, and 9 is the
        # smallest raw window every zlib build accepts; 8-bit streams decode with it.
        self.window_bits = max(window_bits, MIN_ENCODER_WINDOW_BITS)
        self.no_context_takeover = no_context_takeover
        # Recent output, kept only to restart after a BFINAL block (rare: zlib never sets
        # it in a sync-flushed stream). Pieces are appended as they come and compacted to
        # one window's worth once they hold two, so the common path copies little.
        self._recent: list[bytes] = []
        self._recent_bytes = 0
        self._broken = False
        self._decompressor = self._fresh()

    @property
    def _history(self) -> bytes:
        """The last ``2**window_bits`` bytes inflated (the window a restart is primed with)."""
        return b"".join(self._recent)[-(1 << self.window_bits):]

    def _remember(self, out: bytes) -> None:
        self._recent.append(out)
        self._recent_bytes += len(out)
        if self._recent_bytes > 2 << self.window_bits:
            kept = self._history
            self._recent = [kept]
            self._recent_bytes = len(kept)

    def _fresh(self) -> zlib._Decompress:
        history = self._history if self._recent else b""
        if history:
            return zlib.decompressobj(-self.window_bits, zdict=history)
        return zlib.decompressobj(-self.window_bits)

    def decode(self, data: bytes, max_size: int | None = None) -> bytes:
        """Inflate one message; refuse to grow past ``max_size`` bytes.

        Raises:
            PayloadTooBig: The message inflates past ``max_size`` (WebSocket close 1009).
            DecodeError: The data is not valid deflate, or the decoder is unusable after
                an earlier failure.
        """
        if self._broken:
            raise DecodeError("permessage-deflate decoder is unusable after a bad message")
        if self.no_context_takeover:
            self._decompressor = zlib.decompressobj(-self.window_bits)
        pending = bytes(data) + SYNC_FLUSH_TAIL
        try:
            if max_size is None and not self._keep_history:
                # The common case (no limit, no history to keep), in one call unless the
                # sender set BFINAL; then the general loop carries on after it.
                d = self._decompressor
                try:
                    out = d.decompress(pending)
                except zlib.error as exc:
                    raise DecodeError(
                        f"permessage-deflate data does not inflate: {exc}") from exc
                if not d.eof:
                    return out
                pending = d.unused_data
                self._decompressor = self._fresh()
                if not pending or pending == SYNC_FLUSH_TAIL:
                    return out
                return self._inflate(pending, None, out)
            return self._inflate(pending, max_size)
        except (DecodeError, PayloadTooBig):
            self._broken = not self.no_context_takeover
            raise

    def decode_many(self, wires: Sequence[bytes],
                    clock: Clock) -> tuple[list[bytes], list[int]]:
        """:meth:`decode` (no ``max_size``) for each message in turn, each timed by
        ``clock``; the common case (nothing to remember) without a Python call per
        message."""
        out: list[bytes] = []
        took: list[int] = []
        keep, timed = out.append, took.append
        if self._keep_history or self.no_context_takeover or self._broken:
            decode = self.decode
            for data in wires:
                started = clock()
                body = decode(data)
                timed(clock() - started)
                keep(body)
            return out, took
        tail = SYNC_FLUSH_TAIL
        d = self._decompressor
        for data in wires:
            started = clock()
            try:
                body = d.decompress(data + tail)
            except zlib.error as exc:
                self._broken = True
                raise DecodeError(f"permessage-deflate data does not inflate: {exc}") from exc
            if d.eof:  # BFINAL: carry on as decode does, with a fresh stream
                pending = d.unused_data
                self._decompressor = self._fresh()
                if pending and pending != tail:
                    try:
                        body = self._inflate(pending, None, body)
                    except DecodeError:
                        self._broken = True
                        raise
                d = self._decompressor
            timed(clock() - started)
            keep(body)
        return out, took

    def _inflate(self, pending: bytes, max_size: int | None, out: bytes = b"") -> bytes:
        keep = self._keep_history
        while True:
            d = self._decompressor
            # One byte past the limit tells "exactly max_size" from "more than max_size".
            budget = 0 if max_size is None else max_size - len(out) + 1
            try:
                chunk = d.decompress(pending, budget)
            except zlib.error as exc:
                raise DecodeError(f"permessage-deflate data does not inflate: {exc}") from exc
            out = out + chunk if out else chunk
            if max_size is not None and (len(out) > max_size or d.unconsumed_tail):
                raise PayloadTooBig(f"message inflates past max_size={max_size} bytes")
            if keep:
                self._remember(chunk)
            if not d.eof:
                return out
            # The sender set BFINAL: zlib's stream is over, what follows starts a new one,
            # primed with the window so far unless every message starts afresh anyway.
            pending = d.unused_data
            self._decompressor = self._fresh()
            if not pending or pending == SYNC_FLUSH_TAIL:  # only our appended tail is left
                return out


def deflate_memory_bytes(window_bits: int, mem_level: int, *, decoder: bool = True) -> int:
    """zlib's documented memory for one compressor (plus one decompressor if asked).

    zlib's ``zconf.h`` gives deflate ``(1 << (windowBits + 2)) + (1 << (memLevel + 9))``
    bytes and inflate ``1 << windowBits`` bytes (plus a few KiB of fixed state, not counted).
    """
    compressor = (1 << (window_bits + 2)) + (1 << (mem_level + 9))
    return compressor + ((1 << window_bits) if decoder else 0)
