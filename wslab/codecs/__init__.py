"""Compression codecs: permessage-deflate (RFC 7692) and zstd, sans-I/O."""

from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.codecs.deflate import DeflateDecoder, DeflateEncoder, deflate_memory_bytes

__all__ = [
    "DeflateDecoder",
    "DeflateEncoder",
    "MessageDecoder",
    "MessageEncoder",
    "deflate_memory_bytes",
]
