"""permessage-deflate negotiation (RFC 7692 section 7.1), sans-I/O.

What lives here: what a server configured with given limits answers to a client's offers
(:func:`server_accept`), how a client checks that answer (:func:`client_check_response`),
and the mapping from ``CompressionConfig``. The parameter, limit and agreement types live
in ``deflate_params.py`` (re-exported here); the header grammar in ``extheader.py``;
compressing in ``deflate.py``. No sockets, no HTTP objects here: callers pass header text or
parsed offers in and get parameters out.

Every rule is written down as a table next to the code that follows it, so a reader can
check the code against RFC 7692 one row at a time. In the tables "-" means the parameter is
absent, ``v`` the client's value and ``c`` the server's configured limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wslab.codecs.deflate import MIN_ENCODER_WINDOW_BITS
from wslab.codecs.deflate_params import (
    EXTENSION_NAME,
    AgreedDeflate,
    DeflateParams,
    ServerDeflateLimits,
    Side,
    WindowParam,
)
from wslab.codecs.extheader import ExtensionOffer, parse_extensions
from wslab.errors import NegotiationError

if TYPE_CHECKING:
    from wslab.config import CompressionConfig

__all__ = [
    "EXTENSION_NAME",
    "AgreedDeflate",
    "DeflateParams",
    "ServerDeflateLimits",
    "Side",
    "WindowParam",
    "client_check_response",
    "deflate_offers",
    "offer_from_config",
    "server_accept",
    "server_params_from_config",
    "server_try_offer",
]


def deflate_offers(offers: str | Sequence[ExtensionOffer]) -> list[ExtensionOffer]:
    """The permessage-deflate elements of a header (text or parsed), in order."""
    parsed = parse_extensions(offers) if isinstance(offers, str) else list(offers)
    return [o for o in parsed if o.name == EXTENSION_NAME]


# --- server side -------------------------------------------------------------------------
#
# server_no_context_takeover            client_no_context_takeover
#   offer  config -> response             offer  config -> response
#   yes    any       yes (MUST, 7.1.1.1)  any    yes       yes (MAY always, 7.1.1.2)
#   -      yes       yes (MAY add)        yes    no        yes (echo the hint: no window
#   -      no        -                                         is kept for nothing)
#                                         -      no        -
SERVER_NCT_RULE = {(True, True): True, (True, False): True,
                   (False, True): True, (False, False): False}
CLIENT_NCT_RULE = SERVER_NCT_RULE  # same truth table: either side asking is enough
#
# server_max_window_bits (7.1.2.1)                     config c is 9..15 (zlib)
#   offer   config -> response          server uses
#   -       None      -                 15
#   -       c         c  (MAY limit itself)   c
#   v       None      v  (MUST answer <= v)   v
#   v       c         min(v, c)                min(v, c)
#   8       any       decline: the answer must be <= 8 and zlib cannot compress with 8
#
# client_max_window_bits (7.1.2.2)                     "T" is the value-less form
#   offer   config -> response          client uses
#   -       None      -                 15
#   -       c         - (MUST NOT send it)  15, or decline if require_client_max_window_bits
#   T       None      -                 15
#   T       c         c                 c
#   v       None      v  (echo: both sides then know the window)   v
#   v       c         min(v, c)         min(v, c)


def _server_window(offered: int | None, limit: int | None) -> tuple[int | None, int] | str:
    """(response value, effective bits) for server_max_window_bits, or why to decline."""
    if offered is None:
        return (limit, 15 if limit is None else limit)
    if offered < MIN_ENCODER_WINDOW_BITS:
        return "the offer demands server_max_window_bits=8 and zlib cannot compress with 8"
    bits = offered if limit is None else min(offered, limit)
    return (bits, bits)


def _client_window(
    offered: WindowParam, limits: ServerDeflateLimits
) -> tuple[int | None, int] | str:
    """(response value, effective bits) for client_max_window_bits, or why to decline."""
    limit = limits.client_max_window_bits
    if offered is None:
        if limit is not None and limits.require_client_max_window_bits:
            return "the offer cannot honour client_max_window_bits and the server requires it"
        return (None, 15)
    if offered is True:
        return (None, 15) if limit is None else (limit, limit)
    bits = offered if limit is None else min(offered, limit)
    return (bits, bits)


def server_try_offer(
    offer: DeflateParams, config_params: ServerDeflateLimits
) -> tuple[DeflateParams, AgreedDeflate] | str:
    """Apply the tables above to one valid offer: the answer, or the reason to decline."""
    server = _server_window(offer.server_max_window_bits, config_params.server_max_window_bits)
    if isinstance(server, str):
        return server
    client = _client_window(offer.client_max_window_bits, config_params)
    if isinstance(client, str):
        return client
    snct = SERVER_NCT_RULE[(offer.server_no_context_takeover,
                            config_params.server_no_context_takeover)]
    cnct = CLIENT_NCT_RULE[(offer.client_no_context_takeover,
                            config_params.client_no_context_takeover)]
    response = DeflateParams(snct, cnct, server[0], client[0])
    agreed = AgreedDeflate(server[1], client[1], snct, cnct, response)
    return response, agreed


def server_accept(
    offers: str | Sequence[ExtensionOffer],
    config_params: ServerDeflateLimits,
    declined: list[str] | None = None,
) -> tuple[DeflateParams, AgreedDeflate] | None:
    """What a server with ``config_params`` answers to a client's offers.

    The permessage-deflate offers are tried in the client's order of preference; the first
    the server can accept wins. Offers with invalid parameters are declined, as RFC 7692
    section 5.1 requires, not treated as errors.

    Args:
        offers: The client's ``Sec-WebSocket-Extensions`` value, or its parsed elements.
        config_params: The server's limits.
        declined: If given, one line per declined offer is appended, saying why.

    Returns:
        ``(response parameters, agreement)``, or ``None`` when every offer was declined
        (the server then answers without the extension).

    Raises:
        NegotiationError: The header text itself does not parse.
    """
    for index, element in enumerate(deflate_offers(offers)):
        try:
            params = DeflateParams.from_params(element.params)
        except NegotiationError as exc:
            result: tuple[DeflateParams, AgreedDeflate] | str = str(exc)
        else:
            result = server_try_offer(params, config_params)
        if not isinstance(result, str):
            return result
        if declined is not None:
            declined.append(f"offer {index + 1}: {result}")
    return None


# --- client side -------------------------------------------------------------------------
#
# The client checks the answer against what it offered; anything it did not allow fails
# the connection (RFC 7692 section 5.1 / 7.1).
#   parameter                   offer   response       -> client concludes
#   server_no_context_takeover  yes     -              error: the server MUST echo it
#                               any     yes            server resets per message
#   client_no_context_takeover  any     yes            client resets per message
#                               yes     -              client still resets (its own hint)
#   server_max_window_bits      -       -  / w         15 / w
#                               v       -              error: the server MUST answer <= v
#                               v       w > v          error
#                               v       w <= v         w
#   client_max_window_bits      -       w              error: not offered
#                               - / T   -              15
#                               T       w              w
#                               v       - / w          min(v, w)  (v alone if absent)
#   either window agreed as 8 for the client           error: zlib cannot compress with 8


def client_check_response(
    offer: DeflateParams, response: DeflateParams | ExtensionOffer | str
) -> AgreedDeflate:
    """Check a server's answer against the client's offer and return the agreement.

    Args:
        offer: What this client offered.
        response: The server's answer: its parameters, its header element, or header text
            holding exactly one permessage-deflate element.

    Raises:
        NegotiationError: The answer is malformed or uses a parameter the offer did not
            allow; the message names the parameter.
    """
    resp = _response_params(response)
    if offer.server_no_context_takeover and not resp.server_no_context_takeover:
        raise NegotiationError("response drops server_no_context_takeover, which was offered")
    server_bits = 15 if resp.server_max_window_bits is None else resp.server_max_window_bits
    if offer.server_max_window_bits is not None:
        if resp.server_max_window_bits is None:
            raise NegotiationError(
                f"response lacks server_max_window_bits; the offer asked for "
                f"<= {offer.server_max_window_bits}"
            )
        if server_bits > offer.server_max_window_bits:
            raise NegotiationError(
                f"response server_max_window_bits={server_bits} exceeds the offered "
                f"{offer.server_max_window_bits}"
            )
    offered_client = offer.client_max_window_bits
    answered_client = resp.client_max_window_bits
    if offered_client is None and answered_client is not None:
        raise NegotiationError("response has client_max_window_bits, which was not offered")
    candidates = [b for b in (offered_client, answered_client) if b is not None and b is not True]
    client_bits = min(candidates, default=15)
    if client_bits < MIN_ENCODER_WINDOW_BITS:
        raise NegotiationError(
            "response sets client_max_window_bits=8, but zlib cannot compress with an "
            "8-bit window"
        )
    return AgreedDeflate(
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
        server_no_context_takeover=resp.server_no_context_takeover,
        client_no_context_takeover=(resp.client_no_context_takeover
                                    or offer.client_no_context_takeover),
        response=resp,
    )


def _response_params(response: DeflateParams | ExtensionOffer | str) -> DeflateParams:
    if isinstance(response, DeflateParams):
        if response.client_max_window_bits is True:
            raise NegotiationError(
                f"{EXTENSION_NAME} response: client_max_window_bits needs a value"
            )
        return response
    if isinstance(response, str):
        elements = deflate_offers(response)
        if len(elements) != 1:
            raise NegotiationError(
                f"response must hold exactly one {EXTENSION_NAME}, found {len(elements)}"
            )
        response = elements[0]
    if response.name != EXTENSION_NAME:
        raise NegotiationError(f"response names {response.name!r}, not {EXTENSION_NAME}")
    return DeflateParams.from_params(response.params, response=True)


# --- from the configuration --------------------------------------------------------------
#
# A config window of 8 for the client is carried as 9: every zlib-based client (ours,
# python-websockets, browsers built on zlib) refuses to be held to 8, so asking for it would
# only fail the handshake.


def _client_bits(compression: CompressionConfig) -> int:
    return max(compression.client_max_window_bits, MIN_ENCODER_WINDOW_BITS)


def offer_from_config(compression: CompressionConfig) -> DeflateParams:
    """What a wslab client configured with ``compression`` offers.

    It asks the server for ``server_max_window_bits`` and the context-takeover flags, and
    promises its own ``client_max_window_bits``; a configured 15 for either window is left
    out, since 15 is what an absent parameter means.
    """
    server_bits = compression.server_max_window_bits
    client_bits = _client_bits(compression)
    return DeflateParams(
        server_no_context_takeover=compression.server_no_context_takeover,
        client_no_context_takeover=compression.client_no_context_takeover,
        server_max_window_bits=None if server_bits == 15 else server_bits,
        client_max_window_bits=True if client_bits == 15 else client_bits,
    )


def server_params_from_config(compression: CompressionConfig) -> ServerDeflateLimits:
    """The limits of a wslab server configured with ``compression``."""
    return ServerDeflateLimits(
        server_no_context_takeover=compression.server_no_context_takeover,
        client_no_context_takeover=compression.client_no_context_takeover,
        server_max_window_bits=_unless_15(compression.server_max_window_bits),
        client_max_window_bits=_unless_15(_client_bits(compression)),
    )


def _unless_15(bits: int) -> int | None:
    return None if bits == 15 else bits
