"""Compression codecs: permessage-deflate (RFC 7692) and zstd, sans-I/O.

What lives here: the codec interfaces (``base``), the deflate and zstd codecs, the
``Sec-WebSocket-Extensions`` grammar (``extheader``), permessage-deflate negotiation
(``negotiation``), ``x-wslab-zstd`` negotiation (``zstd_negotiation``) and the
config-to-codec factory (``factory``). No I/O, no clocks, no
imports from layers above the core.
"""

from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.codecs.deflate import DeflateDecoder, DeflateEncoder, deflate_memory_bytes
from wslab.codecs.extheader import ExtensionOffer, format_extensions, parse_extensions
from wslab.codecs.factory import make_decoder, make_encoder
from wslab.codecs.negotiation import (
    AgreedDeflate,
    DeflateParams,
    ServerDeflateLimits,
    client_check_response,
    offer_from_config,
    server_accept,
    server_params_from_config,
)

_ZSTD_NAMES = ("ZstdDecoder", "ZstdEncoder", "train_dictionary")


def __getattr__(name: str) -> object:
    # zstd lives behind an attribute look-up so that deflate users (every live server,
    # the pipeline) never import zstandard.
    if name in _ZSTD_NAMES:
        from wslab.codecs import zstd

        return getattr(zstd, name)
    raise AttributeError(f"module 'wslab.codecs' has no attribute {name!r}")


__all__ = [
    "AgreedDeflate",
    "DeflateDecoder",
    "DeflateEncoder",
    "DeflateParams",
    "ExtensionOffer",
    "MessageDecoder",
    "MessageEncoder",
    "ServerDeflateLimits",
    "ZstdDecoder",
    "ZstdEncoder",
    "client_check_response",
    "deflate_memory_bytes",
    "format_extensions",
    "make_decoder",
    "make_encoder",
    "offer_from_config",
    "parse_extensions",
    "server_accept",
    "server_params_from_config",
    "train_dictionary",
]
