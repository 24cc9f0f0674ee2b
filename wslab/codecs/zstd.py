"""zstd message codecs: per message, streaming per connection, and with a dictionary.

What lives here: three ways to use zstd for WebSocket messages, each an encoder/decoder pair
following ``wslab.codecs.base``.

- ``per message``: every message is a complete zstd frame; no state between messages.
- ``stream``: one compression context per connection; every message is flushed at a block
  boundary (``COMPRESSOBJ_FLUSH_BLOCK``) so the receiver can decode it at once, and the frame
  is never ended. Later messages reference earlier ones, as with deflate's context takeover
  but with a far larger window. This is how large real-time gateways use zstd.
- ``dictionary``: per-message frames primed with a dictionary trained on samples of the same
  traffic; no per-connection window, but small messages still find their repeats.

Decoders stop at ``max_size`` while inflating (the output goes to a bounded sink), so a
small hostile frame cannot make them allocate without bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import zstandard

from wslab.errors import DecodeError, PayloadTooBig, WslabError

_READ_CHUNK = 16384


class _BoundedSink:
    """A write target that refuses to hold more than ``limit`` bytes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.limit: int | None = None

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise PayloadTooBig(f"message inflates past max_size={self.limit} bytes")
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


class ZstdEncoder:
    """Compress messages with zstd.

    Args:
        level: zstd compression level (negative levels are the fast modes).
        stream: Keep one context for the connection and flush per message.
        dictionary: Raw dictionary bytes (from :func:`train_dictionary`) to prime every
            message; not combined with ``stream``.
    """

    def __init__(self, level: int = 3, *, stream: bool = False,
                 dictionary: bytes | None = None) -> None:
        if stream and dictionary is not None:
            raise ValueError("a zstd stream and a dictionary are separate modes; pick one")
        self.level = level
        self.stream = stream
        self.algorithm = "zstd-stream" if stream else ("zstd-dict" if dictionary else "zstd")
        dict_data = zstandard.ZstdCompressionDict(dictionary) if dictionary else None
        self._cctx = zstandard.ZstdCompressor(level=level, dict_data=dict_data,
                                              write_content_size=True, write_checksum=False)
        self._cobj = self._cctx.compressobj() if stream else None

    def encode(self, payload: bytes) -> bytes:
        """Compress one message."""
        if self._cobj is None:
            return self._cctx.compress(payload)
        return self._cobj.compress(payload) + self._cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


class ZstdDecoder:
    """Decompress what a :class:`ZstdEncoder` with the same mode produced."""

    def __init__(self, *, stream: bool = False, dictionary: bytes | None = None) -> None:
        self.stream = stream
        self.algorithm = "zstd-stream" if stream else ("zstd-dict" if dictionary else "zstd")
        dict_data = zstandard.ZstdCompressionDict(dictionary) if dictionary else None
        self._dctx = zstandard.ZstdDecompressor(dict_data=dict_data)
        self._sink = _BoundedSink()
        self._writer = (
            self._dctx.stream_writer(self._sink, write_size=_READ_CHUNK, write_return_read=True)
            if stream else None
        )

    def decode(self, data: bytes, max_size: int | None = None) -> bytes:
        """Decompress one message, refusing to grow past ``max_size`` bytes."""
        self._sink.limit = max_size
        try:
            if self._writer is not None:
                self._writer.write(data)
                self._writer.flush()
            else:
                with self._dctx.stream_writer(self._sink, write_size=_READ_CHUNK,
                                              closefd=False) as w:
                    w.write(data)
        except PayloadTooBig:
            self._sink.take()
            raise
        except zstandard.ZstdError as exc:
            self._sink.take()
            raise DecodeError(f"zstd data does not decompress: {exc}") from exc
        return self._sink.take()


def train_dictionary(samples: Sequence[bytes], dict_bytes: int = 16384) -> bytes:
    """Train a zstd dictionary on sample messages.

    Raises:
        WslabError: when there are too few samples for zstd to train on.
    """
    if len(samples) < 8:
        raise WslabError(f"a zstd dictionary needs at least 8 sample messages, got {len(samples)}")
    try:
        return zstandard.train_dictionary(dict_bytes, list(samples)).as_bytes()
    except zstandard.ZstdError as exc:
        raise WslabError(f"zstd could not train a dictionary on {len(samples)} samples: "
                         f"{exc}") from exc
