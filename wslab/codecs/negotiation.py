"""permessage-deflate negotiation (RFC 7692 section 7.1), sans-I/O.

What lives here: what a server configured with given limits answers to a client's offers
(:func:`server_accept`), how a client checks that answer (:func:`client_check_response`),
and the mapping from ``CompressionConfig``. A rule that refuses raises an exception naming
the parameter (:class:`OfferDeclined` on the server, :class:`ResponseRejected` on the
client, both :class:`DeflateParamError`, a :class:`wslab.errors.NegotiationError`). The
parameter, limit and agreement types live in ``deflate_params.py`` (re-exported here); the
header grammar in ``extheader.py``; compressing in ``deflate.py``. No sockets, no HTTP
objects here: callers pass header text or parsed offers in and get parameters out.

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
    DeflateParamError,
    DeflateParams,
    OfferDeclined,
    ResponseRejected,
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
    "DeflateParamError",
    "DeflateParams",
    "OfferDeclined",
    "ResponseRejected",
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


def _server_window(offered: int | None, limit: int | None) -> tuple[int | None, int]:
    """(response value, effective bits) for server_max_window_bits.

    Raises:
        OfferDeclined: The offer demands a window zlib cannot compress with.
    """
    if offered is None:
        return (limit, 15 if limit is None else limit)
    if offered < MIN_ENCODER_WINDOW_BITS:
        raise OfferDeclined("server_max_window_bits", "the offer demands "
                            "server_max_window_bits=8 and zlib cannot compress with 8")
    bits = offered if limit is None else min(offered, limit)
    return (bits, bits)


def _client_window(offered: WindowParam, limits: ServerDeflateLimits) -> tuple[int | None, int]:
    """(response value, effective bits) for client_max_window_bits.

    Raises:
        OfferDeclined: The server requires a client window the offer cannot honour.
    """
    limit = limits.client_max_window_bits
    if offered is None:
        if limit is not None and limits.require_client_max_window_bits:
            raise OfferDeclined("client_max_window_bits", "the offer cannot honour "
                                "client_max_window_bits and the server requires it")
        return (None, 15)
    if offered is True:
        return (None, 15) if limit is None else (limit, limit)
    bits = offered if limit is None else min(offered, limit)
    return (bits, bits)


def server_try_offer(
    offer: DeflateParams, config_params: ServerDeflateLimits
) -> tuple[DeflateParams, AgreedDeflate]:
    """Apply the tables above to one valid offer: the answer and the agreement.

    Raises:
        OfferDeclined: The server cannot accept this offer; ``parameter`` names why.
    """
    server = _server_window(offer.server_max_window_bits, config_params.server_max_window_bits)
    client = _client_window(offer.client_max_window_bits, config_params)
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
            return server_try_offer(DeflateParams.from_params(element.params), config_params)
        except DeflateParamError as exc:  # a bad or unacceptable offer is declined
            if declined is not None:
                declined.append(f"offer {index + 1}: {exc}")
    return None


# --- client side -------------------------------------------------------------------------
#
# The client checks the answer against what it offered; anything it did not allow fails
# the connection (RFC 7692 section 5.1 / 7.1): ResponseRejected, naming the parameter.
#   parameter                   offer   response       -> client concludes
#   server_no_context_takeover  yes     -              error: the server MUST echo it
#                               any     yes            server resets per message
#   client_no_context_takeover  any     yes            client resets per message
#                               yes     -              client still resets (its own hint)
#   either window agreed as 8 for the client           error: zlib cannot compress with 8
#
# The windows, one table each: (offer, response) -> the window that side then uses, "15",
# "v" (the offered value) or "w" (the answered one), or the error. Offer "-" absent, "T"
# the value-less client_max_window_bits, "v" a value; response "-" absent, "w" a value
# ("w<=v" / "w>v" against a valued offer). websockets' client follows the same tables.

SERVER_WINDOW_ANSWER: dict[tuple[str, str], str] = {  # server_max_window_bits, 7.1.2.1
    ("-", "-"): "15",
    ("-", "w"): "w",  # the server MAY limit its own window unasked
    ("v", "-"): "error: response lacks server_max_window_bits; the offer asked for <= {v}",
    ("v", "w<=v"): "w",
    ("v", "w>v"): "error: response server_max_window_bits={w} exceeds the offered {v}",
}
CLIENT_WINDOW_ANSWER: dict[tuple[str, str], str] = {  # client_max_window_bits, 7.1.2.2
    ("-", "-"): "15",
    ("-", "w"): "error: response has client_max_window_bits, which was not offered",
    ("T", "-"): "15",
    ("T", "w"): "w",
    ("v", "-"): "v",  # the client keeps the limit it announced
    ("v", "w<=v"): "w",
    ("v", "w>v"): "error: response client_max_window_bits={w} exceeds the offered {v} "
                  "(a server MUST answer the same or a smaller value)",
}


def _window_answer(table: dict[tuple[str, str], str], name: str, offered: WindowParam,
                   answered: int | None) -> int:
    """The window a table row gives for one side. Raises ResponseRejected on an error row."""
    value = None if offered is None or offered is True else offered
    form = "-" if offered is None else "T" if offered is True else "v"
    if answered is None:
        got = "-"
    elif value is not None:
        got = "w<=v" if answered <= value else "w>v"
    else:
        got = "w"
    rule = table[(form, got)]
    if rule.startswith("error: "):
        raise ResponseRejected(name, rule.removeprefix("error: ").format(v=offered, w=answered))
    if rule == "w" and answered is not None:
        return answered
    if rule == "v" and value is not None:
        return value
    return 15


def client_check_response(
    offer: DeflateParams, response: DeflateParams | ExtensionOffer | str
) -> AgreedDeflate:
    """Check a server's answer against the client's offer and return the agreement.

    Args:
        offer: What this client offered.
        response: The server's answer: its parameters, its header element, or header text
            holding exactly one permessage-deflate element.

    Raises:
        DeflateParamError: The answer is malformed (naming the parameter).
        ResponseRejected: The answer uses a parameter the offer did not allow (the tables
            above); ``parameter`` and the message name it.
        NegotiationError: The header text does not parse or holds no single element.
    """
    resp = _response_params(response)
    if offer.server_no_context_takeover and not resp.server_no_context_takeover:
        raise ResponseRejected("server_no_context_takeover", "response drops "
                               "server_no_context_takeover, which was offered")
    server_bits = _window_answer(SERVER_WINDOW_ANSWER, "server_max_window_bits",
                                 offer.server_max_window_bits, resp.server_max_window_bits)
    answered_client = resp.client_max_window_bits
    assert answered_client is not True  # _response_params refuses the value-less form
    client_bits = _window_answer(CLIENT_WINDOW_ANSWER, "client_max_window_bits",
                                 offer.client_max_window_bits, answered_client)
    if client_bits < MIN_ENCODER_WINDOW_BITS:
        raise ResponseRejected(
            "client_max_window_bits", "response sets client_max_window_bits=8, but zlib "
            "cannot compress with an 8-bit window"
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
            raise DeflateParamError(
                "client_max_window_bits",
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
