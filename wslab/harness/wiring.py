"""How a TuningConfig becomes a connection: the one place servers and clients are wired.

What lives here: the headers wslab's two sides share (:data:`CLIENT_HEADER`, the label
``wslab bench`` joins both sides' logs by, and :data:`ROOM_HEADER`); :data:`OFFERS` (per
``compression.algorithm``, the extensions in preference order); :func:`server_extensions`
and :func:`client_extensions` (the websockets factories for a config: ``x-wslab-zstd``
first for the zstd algorithms, permessage-deflate behind it so peers without x-wslab-zstd
still get deflate); :func:`negotiated_extension` (which one a connection agreed on); and
:func:`serve_kwargs` with :func:`close_timeout`, the one mapping from a config to the
library's ``serve()`` arguments. The server, the load client and the scale holders import
from here, never from each other. zstandard is imported only when a zstd factory is built.

What must not live here: the negotiation rules (``wslab/codecs/negotiation.py``,
``wslab/codecs/zstd_negotiation.py``), the extensions themselves (``extension.py``,
``zstd_extension.py``), connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from websockets.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ServerExtensionFactory,
)

from wslab.codecs.negotiation import offer_from_config, server_params_from_config
from wslab.config import CompressionConfig, ScalingConfig, TuningConfig
from wslab.errors import ConfigError
from wslab.harness.extension import SelectiveClientDeflateFactory, SelectiveServerDeflateFactory

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet

CLIENT_HEADER = "X-Wslab-Client"
"""The header a client names its connection in (``wslab bench`` joins the logs by it)."""
ROOM_HEADER = "X-Wslab-Room"
"""The header a client names its room in (the ``room`` scenario)."""
CLOSE_TIMEOUT_S = 10.0
"""websockets' own ``close_timeout``: the longest wait for a peer's closing handshake."""

OFFERS: dict[str, tuple[str, ...]] = {
    "none": (),
    "permessage-deflate": ("permessage-deflate",),
    "zstd-stream": ("x-wslab-zstd", "permessage-deflate"),
    "zstd-dict": ("x-wslab-zstd", "permessage-deflate"),
}
"""What a wslab server accepts and a wslab client offers per algorithm, in preference
order: with zstd, permessage-deflate stands behind it for peers without x-wslab-zstd."""


def negotiated_extension(extensions: Sequence[Extension]) -> str:
    """Which compression a connection agreed on: an extension name, or ``none``."""
    for ext in extensions:
        if ext.name in ("permessage-deflate", "x-wslab-zstd"):
            return str(ext.name)
    return "none"


def _deflate_kwargs(compression: CompressionConfig) -> dict[str, Any]:
    limits = server_params_from_config(compression)
    return {"mem_level": compression.mem_level, "level": compression.level,
            "server_no_context_takeover": limits.server_no_context_takeover,
            "client_no_context_takeover": limits.client_no_context_takeover,
            "server_max_window_bits": limits.server_max_window_bits,
            "client_max_window_bits": limits.client_max_window_bits}


def server_extensions(compression: CompressionConfig,
                      dictionaries: DictionarySet | None = None,
                      ) -> list[ServerExtensionFactory]:
    """The extension factories a server with this compression config accepts.

    ``zstd-stream`` / ``zstd-dict``: ``x-wslab-zstd`` in the configured mode, and
    permessage-deflate with the config's deflate fields for clients that do not offer it.

    Raises:
        ConfigError: ``zstd-dict`` without ``dictionaries``.
    """
    if compression.algorithm not in OFFERS:
        raise ConfigError(f"compression.algorithm: unknown algorithm {compression.algorithm!r}")
    if compression.algorithm == "none":
        return []
    if compression.algorithm == "permessage-deflate":
        return [SelectiveServerDeflateFactory(**_deflate_kwargs(compression))]
    # zstandard is imported only by servers that speak zstd.
    from wslab.codecs.zstd_negotiation import zstd_limits_from_config
    from wslab.harness.zstd_extension import DeflateFallbackServerFactory, ServerZstdFactory

    limits = zstd_limits_from_config(compression, dictionaries)
    assert limits is not None
    return [ServerZstdFactory(limits, compression.zstd_level),
            DeflateFallbackServerFactory(**_deflate_kwargs(compression))]


def client_extensions(config: TuningConfig, dictionaries: DictionarySet | None = None,
                      ) -> list[ClientExtensionFactory]:
    """What a wslab client offers for this compression config, in preference order.

    ``zstd-stream`` / ``zstd-dict``: ``x-wslab-zstd`` first, then permessage-deflate with the
    config's deflate fields, which a server without x-wslab-zstd accepts instead.

    Raises:
        ConfigError: ``zstd-dict`` without ``dictionaries``.
    """
    c = config.compression
    if c.algorithm not in OFFERS:
        raise ConfigError(f"compression.algorithm: unknown algorithm {c.algorithm!r}")
    if c.algorithm == "none":
        return []
    offer = offer_from_config(c)
    deflate: dict[str, Any] = {"mem_level": c.mem_level, "level": c.level,
                               "server_no_context_takeover": offer.server_no_context_takeover,
                               "client_no_context_takeover": offer.client_no_context_takeover,
                               "server_max_window_bits": offer.server_max_window_bits,
                               "client_max_window_bits": offer.client_max_window_bits}
    if c.algorithm == "permessage-deflate":
        return [SelectiveClientDeflateFactory(**deflate)]
    from wslab.codecs.zstd_negotiation import zstd_offer_from_config
    from wslab.harness.zstd_extension import ClientZstdFactory, DeflateFallbackClientFactory

    zstd_offer = zstd_offer_from_config(c, dictionaries)
    assert zstd_offer is not None
    return [ClientZstdFactory(zstd_offer, c.zstd_level, dictionaries),
            DeflateFallbackClientFactory(**deflate)]


def close_timeout(scaling: ScalingConfig) -> float:
    """How long a closing handshake may take before TCP is cut: the heartbeat timeout, at
    most :data:`CLOSE_TIMEOUT_S` (a peer that let a ping go unanswered that long will not
    answer the close frame that follows either)."""
    return min(CLOSE_TIMEOUT_S, scaling.heartbeat_timeout_s or CLOSE_TIMEOUT_S)


def serve_kwargs(config: TuningConfig,
                 dictionaries: DictionarySet | None = None) -> dict[str, Any]:
    """``websockets.asyncio.server.serve`` keyword arguments for a config.

    Args:
        config: The tuning config.
        dictionaries: The pre-shared zstd dictionary set (``zstd-dict`` only).
    """
    s = config.scaling
    return {
        "extensions": server_extensions(config.compression, dictionaries),
        "compression": None,
        "max_size": s.max_size,
        "max_queue": s.max_queue,
        "write_limit": s.write_limit,
        # The heartbeat is the server's own (one timer for every connection,
        # ``heartbeat.py``): the library's keepalive task per connection stays off.
        "ping_interval": None,
        "ping_timeout": None,
        "close_timeout": close_timeout(s),
    }
