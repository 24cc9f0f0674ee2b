"""``x-wslab-zstd``: wslab's private WebSocket extension for zstd, as tables. Sans-I/O.

There is no standard WebSocket extension for zstd: RFC 7692 defines permessage-deflate
only, and no IANA-registered extension carries zstd. This one is wslab's own; the ``x-``
prefix of its token marks it private. Only peers that carry an implementation speak it
(wslab's harness, the module ``wslab export --target websockets`` writes); browsers do not,
and a peer that does not know the token ignores the offer and falls through to the next
one (permessage-deflate).

What lives here: the framing and the modes (below), the server's and the client's rules
(:func:`server_try_offer`, :func:`server_accept`, :func:`client_check_response`), the
one-RSV1-extension rule and the mapping from ``CompressionConfig``. The parameter
grammar and its types (:class:`ZstdParams`, :class:`ServerZstdLimits`,
:class:`AgreedZstd`) are in ``zstd_params.py``, re-exported here. What must not live
here: compressing (``zstd.py``, ``zstd_dict.py``), websockets objects, I/O; zstandard is
not imported here.

Framing (what the agreement means on the wire):

| frame                                 | meaning                                        |
|---------------------------------------|------------------------------------------------|
| data frame, RSV1 set, FIN set         | one compressed message (the sender's choice)   |
| data frame, RSV1 clear                | a message sent as it is (a selector's skip);   |
|                                       | it does not touch the compression context      |
| data frame, RSV1 set, FIN clear       | error 1002: a compressed message is one frame  |
| continuation frame with RSV1          | error 1002                                     |
| bytes that do not decompress, or need | error 1002 (as websockets does for deflate)    |
| a window larger than agreed           |                                                |
| output past the receiver's max_size   | error 1009                                     |
| decompressed text that is not UTF-8   | error 1007 (the library's own check)           |

Modes (both directions use the agreed one; each sender picks its own zstd level):

| mode      | a compressed message is                                                  |
|-----------|--------------------------------------------------------------------------|
| stream    | the next blocks of one zstd frame per connection and direction, flushed |
|           | at a block boundary (``FLUSH_BLOCK``) and never ended: later messages   |
|           | reference earlier ones                                                   |
| message   | one complete zstd frame declaring its content size; with ``dict`` it is |
|           | primed with the pre-shared set's dictionary for the message's type (or  |
|           | its fallback), named by the dict id in the frame header                 |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wslab.codecs.extheader import ExtensionOffer, Param, parse_extensions
from wslab.codecs.zstd_params import (
    DICT_ID,
    EXTENSION_NAME,
    MODES,
    RSV1_EXTENSIONS,
    WINDOW_LOG_MAX,
    WINDOW_LOG_MIN,
    AgreedZstd,
    Mode,
    ServerZstdLimits,
    ZstdParams,
)
from wslab.errors import ConfigError, NegotiationError, OfferDeclined

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet
    from wslab.config import CompressionConfig

__all__ = [
    "DICT_ID", "EXTENSION_NAME", "MODES", "RSV1_EXTENSIONS", "WINDOW_LOG_MAX", "WINDOW_LOG_MIN",
    "ZSTD_ALGORITHMS", "AgreedZstd", "Mode", "ServerZstdLimits", "ZstdParams",
    "client_check_response", "rsv1_conflict", "server_accept", "server_params",
    "server_try_offer", "zstd_limits_from_config", "zstd_offer_from_config",
]

# --- one RSV1 extension per connection -------------------------------------------------
#
#   already accepted on this connection            -> this element
#   nothing that uses RSV1                         -> negotiate it as usual
#   permessage-deflate or x-wslab-zstd             -> refused (server) / error (client):
#                                                     RSV1 would mean two things


def rsv1_conflict(name: str, accepted: Sequence[str]) -> str | None:
    """Why ``name`` cannot join the ``accepted`` extensions, or None when it can."""
    if name not in RSV1_EXTENSIONS:
        return None
    taken = [other for other in accepted if other in RSV1_EXTENSIONS]
    if taken:
        return f"{name} cannot join {taken[0]}: both give RSV1 a meaning"
    return None


# --- server side -----------------------------------------------------------------------
#
#   offer (valid)              server holds / accepts        -> answer
#   mode=stream                stream                        -> mode=stream
#   mode=stream                not stream                    -> refuse
#   mode=message (no dict)     message                       -> mode=message
#   mode=message (no dict)     not message                   -> refuse
#   mode=message; dict=X       a set with id X               -> mode=message; dict=X
#   mode=message; dict=X       no set with id X              -> refuse (no fallback to a
#                                                               plain frame: the client
#                                                               asked for X)
#   invalid element            any                           -> refuse
#
#   max_window_log: offer v    server limit c                -> answer and agree min(v, c)
#                   absent     server limit c                -> answer and agree c
# The answer always states the mode and the window, so the client relies on no default.


def server_try_offer(offer: ZstdParams, limits: ServerZstdLimits) -> AgreedZstd:
    """Apply the table above to one valid offer and return the agreement.

    Raises:
        OfferDeclined: The table refuses it; ``parameter`` names why (``mode``, ``dict``).
    """
    offered = offer.max_window_log
    window = limits.max_window_log if offered is None else min(offered, limits.max_window_log)
    if offer.mode == "stream":
        if not limits.stream:
            raise OfferDeclined("mode", "this server does not accept mode=stream")
        return AgreedZstd("stream", window, None, ZstdParams("stream", None, window))
    if offer.dict_id is None:
        if not limits.message:
            raise OfferDeclined("mode", "this server does not accept mode=message without "
                                "a dictionary")
        return AgreedZstd("message", window, None, ZstdParams("message", None, window))
    held = limits.dictionaries.get(offer.dict_id)
    if held is None:
        known = ", ".join(sorted(limits.dictionaries)) or "none"
        raise OfferDeclined("dict", f"dictionary set {offer.dict_id} is not held here "
                            f"(held: {known})")
    return AgreedZstd("message", window, held, ZstdParams("message", offer.dict_id, window))


def server_params(params: Sequence[Param], limits: ServerZstdLimits) -> AgreedZstd:
    """One raw element's parameters through the grammar, then the table.

    Raises:
        NegotiationError: The element breaks the grammar or the table refuses it (both
            mean: refuse this offer, try the next).
    """
    return server_try_offer(ZstdParams.from_params(params), limits)


def server_accept(offers: str | Sequence[ExtensionOffer], limits: ServerZstdLimits,
                  declined: list[str] | None = None) -> AgreedZstd | None:
    """The first of the client's ``x-wslab-zstd`` offers this server accepts, or None.

    Args:
        offers: The client's ``Sec-WebSocket-Extensions`` value or its parsed elements.
        limits: What this server accepts.
        declined: If given, one line per refused offer is appended, saying why.

    Raises:
        NegotiationError: The header text itself does not parse.
    """
    parsed = parse_extensions(offers) if isinstance(offers, str) else list(offers)
    mine = [o for o in parsed if o.name == EXTENSION_NAME]
    for index, element in enumerate(mine):
        try:
            return server_params(element.params, limits)
        except NegotiationError as exc:
            if declined is not None:
                declined.append(f"offer {index + 1}: {exc}")
    return None


# --- client side -----------------------------------------------------------------------
#
#   answer                                  -> client concludes
#   breaks the grammar                      -> error
#   mode differs from the offer's           -> error
#   dict differs from the offer's (incl.    -> error
#   a dict that was not offered, or none
#   where one was offered)
#   no max_window_log                       -> error (the server must state it)
#   max_window_log w > the offered v        -> error
#   max_window_log w (<= v, or none offered)-> agreed, window w
#   same mode and dict as the offer         -> agreed


def client_check_response(offer: ZstdParams, response: Sequence[Param],
                          dictionaries: DictionarySet | None = None) -> AgreedZstd:
    """Check a server's answer against this client's offer.

    Args:
        offer: What this client offered.
        response: The answer's ``(name, value)`` pairs.
        dictionaries: The set the offer named (needed when it named one).

    Raises:
        NegotiationError: The answer is malformed or does not match the offer.
    """
    answer = ZstdParams.from_params(response, response=True)
    if answer.mode != offer.mode:
        raise NegotiationError(f"{EXTENSION_NAME} response: mode={answer.mode}, but the "
                               f"offer was mode={offer.mode}")
    if answer.dict_id != offer.dict_id:
        raise NegotiationError(f"{EXTENSION_NAME} response: dict={answer.dict_id}, but the "
                               f"offer named {offer.dict_id}")
    window = answer.max_window_log
    if window is None:
        raise NegotiationError(f"{EXTENSION_NAME} response: max_window_log is missing")
    if offer.max_window_log is not None and window > offer.max_window_log:
        raise NegotiationError(f"{EXTENSION_NAME} response: max_window_log={window} exceeds "
                               f"the offered {offer.max_window_log}")
    if offer.dict_id is not None and (dictionaries is None or dictionaries.id != offer.dict_id):
        raise ValueError("the client must hold the dictionary set its offer names")
    return AgreedZstd(answer.mode, window, dictionaries if offer.dict_id else None, answer)


# --- from the configuration --------------------------------------------------------------
#
#   algorithm      client offers                 server accepts
#   zstd-stream    mode=stream                   stream
#   zstd-dict      mode=message; dict=<set id>   the given set
#   other          nothing                       nothing
# Both sides state their zstd_window_log as max_window_log.
# A wslab server accepts only its configured mode, so a live run measures what the
# simulator predicts for that config; an exported server may accept more.

ZSTD_ALGORITHMS = ("zstd-stream", "zstd-dict")


def _needs_set(dictionaries: DictionarySet | None, who: str) -> DictionarySet:
    if dictionaries is None or not len(dictionaries):
        raise ConfigError(f"compression.algorithm: zstd-dict needs the pre-shared dictionary "
                          f"set on the {who} (a DictionarySet file, --dictionaries PATH), "
                          "and none was given")
    return dictionaries


def zstd_offer_from_config(compression: CompressionConfig,
                           dictionaries: DictionarySet | None = None) -> ZstdParams | None:
    """What a wslab client offers for ``compression`` (None: no zstd offer).

    Raises:
        ConfigError: ``zstd-dict`` without a dictionary set.
    """
    window = compression.zstd_window_log
    if compression.algorithm == "zstd-stream":
        return ZstdParams("stream", None, window)
    if compression.algorithm == "zstd-dict":
        return ZstdParams("message", _needs_set(dictionaries, "client").id, window)
    return None


def zstd_limits_from_config(compression: CompressionConfig,
                            dictionaries: DictionarySet | None = None,
                            ) -> ServerZstdLimits | None:
    """What a wslab server accepts for ``compression`` (None: no zstd at all).

    Raises:
        ConfigError: ``zstd-dict`` without a dictionary set.
    """
    window = compression.zstd_window_log
    if compression.algorithm == "zstd-stream":
        return ServerZstdLimits(window, stream=True)
    if compression.algorithm == "zstd-dict":
        return ServerZstdLimits.holding(_needs_set(dictionaries, "server"),
                                        max_window_log=window)
    return None
