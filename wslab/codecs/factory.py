"""Build the codec pair a ``CompressionConfig`` describes, for one side of a connection.

What lives here: :func:`make_encoder` and :func:`make_decoder`, the one place that maps the
``compression`` section of ``TuningConfig`` onto codec objects, so the simulator and the
live harness compress identically. What must not live here: negotiation (a live connection
uses what ``negotiation.py`` agreed, via ``AgreedDeflate.encoder_for``), the selector that
decides which messages to compress (``policy``, ``threshold_bytes``), and any I/O.

Directions: the server sends with the ``server_*`` parameters and the client with the
``client_*`` ones, so ``make_decoder(c, "server")`` reads what the client sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.codecs.deflate import MIN_ENCODER_WINDOW_BITS, DeflateDecoder, DeflateEncoder
from wslab.codecs.deflate_params import Side
from wslab.errors import ConfigError

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet
    from wslab.config import CompressionConfig

_SIDES = ("server", "client")


def _check_side(side: str) -> None:
    if side not in _SIDES:
        raise ValueError(f"side must be 'server' or 'client', got {side!r}")


def _deflate_params(compression: CompressionConfig, sender: Side) -> tuple[int, bool]:
    if sender == "server":
        return compression.server_max_window_bits, compression.server_no_context_takeover
    return compression.client_max_window_bits, compression.client_no_context_takeover


def _need_dictionaries(dictionaries: DictionarySet | None) -> DictionarySet:
    if dictionaries is None or not len(dictionaries):
        raise ConfigError(
            "compression.algorithm: zstd-dict needs dictionaries, and none were given "
            "(train a set with wslab.codecs.zstd_dict.train_dictionary_set on earlier "
            "messages of each type)"
        )
    return dictionaries


def make_encoder(
    compression: CompressionConfig, side: Side, dictionaries: DictionarySet | None = None
) -> MessageEncoder | None:
    """The compressor ``side`` sends with, or ``None`` when ``algorithm`` is ``none``.

    A configured window of 8 bits compresses with 9: zlib cannot build an 8-bit raw
    compressor (the same substitution zlib itself makes for zlib-wrapped streams).

    Args:
        compression: The ``compression`` section of the config.
        side: ``"server"`` or ``"client"``: whose messages this encoder compresses.
        dictionaries: The pre-shared dictionary set, required for ``zstd-dict``.

    Raises:
        ConfigError: ``zstd-dict`` without dictionaries.
    """
    _check_side(side)
    algorithm = compression.algorithm
    if algorithm == "none":
        return None
    if algorithm == "permessage-deflate":
        bits, no_takeover = _deflate_params(compression, side)
        return DeflateEncoder(
            window_bits=max(bits, MIN_ENCODER_WINDOW_BITS),
            mem_level=compression.mem_level,
            level=compression.level,
            no_context_takeover=no_takeover,
        )
    from wslab.codecs.zstd import ZstdEncoder

    if algorithm == "zstd-stream":
        return ZstdEncoder(compression.zstd_level, stream=True,
                           window_log=compression.zstd_window_log)
    if algorithm == "zstd-dict":
        from wslab.codecs.zstd_dict import ZstdDictSetEncoder

        return ZstdDictSetEncoder(_need_dictionaries(dictionaries), compression.zstd_level,
                                  window_log=compression.zstd_window_log)
    raise ConfigError(f"compression.algorithm: unknown algorithm {algorithm!r}")


def make_decoder(
    compression: CompressionConfig, side: Side, dictionaries: DictionarySet | None = None, *,
    zlib_sender: bool = False,
) -> MessageDecoder | None:
    """The decompressor ``side`` reads its peer's messages with, or ``None`` for ``none``.

    Args:
        compression: The ``compression`` section of the config.
        side: ``"server"`` or ``"client"``: who owns this decoder (it reads the other).
        dictionaries: The pre-shared dictionary set, required for ``zstd-dict``.
        zlib_sender: The peer is known to compress with zlib and sync flushes (the
            simulator's own encoder), so the deflate decoder need not prepare for BFINAL.

    Raises:
        ConfigError: ``zstd-dict`` without dictionaries.
    """
    _check_side(side)
    algorithm = compression.algorithm
    if algorithm == "none":
        return None
    if algorithm == "permessage-deflate":
        peer: Side = "client" if side == "server" else "server"
        bits, no_takeover = _deflate_params(compression, peer)
        return DeflateDecoder(window_bits=bits, no_context_takeover=no_takeover,
                              zlib_sender=zlib_sender)
    from wslab.codecs.zstd import ZstdDecoder

    if algorithm == "zstd-stream":
        return ZstdDecoder(stream=True, max_window_log=compression.zstd_window_log)
    if algorithm == "zstd-dict":
        from wslab.codecs.zstd_dict import ZstdDictSetDecoder

        return ZstdDictSetDecoder(_need_dictionaries(dictionaries),
                                  max_window_log=compression.zstd_window_log)
    raise ConfigError(f"compression.algorithm: unknown algorithm {algorithm!r}")
