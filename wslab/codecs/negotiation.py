"""permessage-deflate negotiation (RFC 7692 section 7.1), sans-I/O.

What lives here: the four parameters (:class:`DeflateParams`), what a server configured with
given limits answers to a client's offers (:func:`server_accept`), how a client checks that
answer (:func:`client_check_response`), the outcome (:class:`AgreedDeflate`, which builds
the codecs), and the mapping from ``CompressionConfig``. The header grammar lives in
``extheader.py``; compressing lives in ``deflate.py``. No sockets, no HTTP objects here:
callers pass header text or parsed offers in and get parameters out.

Every rule is written down as a table next to the code that follows it, so a reader can
check the code against RFC 7692 one row at a time. In the tables "-" means the parameter is
absent, ``v`` the client's value and ``c`` the server's configured limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from wslab.codecs.deflate import MIN_ENCODER_WINDOW_BITS, DeflateDecoder, DeflateEncoder
from wslab.codecs.extheader import ExtensionOffer, Param, parse_extensions
from wslab.errors import NegotiationError

if TYPE_CHECKING:
    from wslab.config import CompressionConfig

EXTENSION_NAME = "permessage-deflate"
Side = Literal["server", "client"]
WindowParam = int | Literal[True] | None

_FLAGS = ("server_no_context_takeover", "client_no_context_takeover")
_WINDOWS = ("server_max_window_bits", "client_max_window_bits")


def _check_bits(name: str, value: object, *, allow_true: bool) -> None:
    if value is None or (allow_true and value is True):
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 15:
        raise ValueError(f"{name} must be an int 8..15 or None, got {value!r}")


@dataclass(frozen=True)
class DeflateParams:
    """The four permessage-deflate parameters of one offer or one response.

    Attributes:
        server_no_context_takeover: The server starts every message from an empty window.
        client_no_context_takeover: The client starts every message from an empty window.
        server_max_window_bits: Largest window the server may compress with, 8..15, or
            ``None`` when the parameter is absent.
        client_max_window_bits: Largest window the client may compress with, 8..15,
            ``None`` when absent, or ``True`` (in an offer only) for the value-less form
            that says "the client can honour a limit you choose".
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: WindowParam = None

    def __post_init__(self) -> None:
        _check_bits("server_max_window_bits", self.server_max_window_bits, allow_true=False)
        _check_bits("client_max_window_bits", self.client_max_window_bits, allow_true=True)

    @classmethod
    def from_params(cls, params: Sequence[Param], *, response: bool = False) -> DeflateParams:
        """Validate raw ``(name, value)`` pairs of one offer (or one response).

        Raises:
            NegotiationError: An unknown or repeated parameter, a value where none is
                allowed, a missing value, or a value that is not 8..15 written in decimal
                without leading zeros. The message names the parameter.
        """
        where = "response" if response else "offer"
        seen: dict[str, str | None] = {}
        for name, value in params:
            if name in seen:
                raise NegotiationError(f"{EXTENSION_NAME} {where}: duplicate parameter {name}")
            if name not in _FLAGS and name not in _WINDOWS:
                raise NegotiationError(f"{EXTENSION_NAME} {where}: unknown parameter {name}")
            seen[name] = value
        flags = {}
        for name in _FLAGS:
            if name in seen and seen[name] is not None:
                raise NegotiationError(
                    f"{EXTENSION_NAME} {where}: {name} takes no value, got {seen[name]!r}"
                )
            flags[name] = name in seen
        server_bits = seen.get("server_max_window_bits")
        client_bits = seen.get("client_max_window_bits")
        client: WindowParam = None
        if "client_max_window_bits" in seen:
            if client_bits is None and not response:
                client = True
            else:
                client = _parse_bits("client_max_window_bits", client_bits, where)
        return cls(
            server_no_context_takeover=flags["server_no_context_takeover"],
            client_no_context_takeover=flags["client_no_context_takeover"],
            server_max_window_bits=(
                _parse_bits("server_max_window_bits", server_bits, where)
                if "server_max_window_bits" in seen else None
            ),
            client_max_window_bits=client,
        )

    def to_params(self) -> tuple[Param, ...]:
        """The ``(name, value)`` pairs, in the RFC's order, absent ones left out."""
        out: list[Param] = []
        if self.server_no_context_takeover:
            out.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            out.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            out.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            out.append(("client_max_window_bits", None))
        elif self.client_max_window_bits is not None:
            out.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return tuple(out)

    def to_offer(self) -> ExtensionOffer:
        """This parameter set as one ``permessage-deflate`` header element."""
        return ExtensionOffer(EXTENSION_NAME, self.to_params())

    def header(self) -> str:
        """Header text for this parameter set alone."""
        return self.to_offer().format()


def _parse_bits(name: str, raw: str | None, where: str) -> int:
    if raw is None:
        raise NegotiationError(f"{EXTENSION_NAME} {where}: {name} needs a value")
    if not raw.isascii() or not raw.isdigit() or raw.startswith("0"):
        raise NegotiationError(
            f"{EXTENSION_NAME} {where}: {name}={raw!r} is not a decimal number without "
            f"leading zeros"
        )
    bits = int(raw)
    if not 8 <= bits <= 15:
        raise NegotiationError(f"{EXTENSION_NAME} {where}: {name}={bits} is outside 8..15")
    return bits


@dataclass(frozen=True)
class ServerDeflateLimits:
    """What a server is configured to allow.

    Attributes:
        server_no_context_takeover: Always answer ``server_no_context_takeover``.
        client_no_context_takeover: Always answer ``client_no_context_takeover``.
        server_max_window_bits: The largest window this server compresses with, 9..15
            (``None``: 15, and no parameter unless the client asks for a limit).
        client_max_window_bits: The largest window the server wants clients to use, 8..15
            (``None``: no wish).
        require_client_max_window_bits: Decline offers that cannot honour
            ``client_max_window_bits`` rather than let such clients use 15 bits.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    require_client_max_window_bits: bool = False

    def __post_init__(self) -> None:
        bits = self.server_max_window_bits
        if bits is not None and not MIN_ENCODER_WINDOW_BITS <= bits <= 15:
            raise ValueError(f"server_max_window_bits must be 9..15 (zlib), got {bits}")
        _check_bits("client_max_window_bits", self.client_max_window_bits, allow_true=False)


@dataclass(frozen=True)
class AgreedDeflate:
    """The outcome of a negotiation: each direction's effective window and reset rule.

    ``side`` below names the endpoint that owns the codec: ``encoder_for("server")`` is what
    the server compresses with (server parameters), ``decoder_for("server")`` is what it
    inflates the client's messages with (client parameters).
    """

    server_max_window_bits: int = 15
    client_max_window_bits: int = 15
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    response: DeflateParams = field(default_factory=DeflateParams, compare=False)

    def __post_init__(self) -> None:
        _check_bits("server_max_window_bits", self.server_max_window_bits, allow_true=False)
        _check_bits("client_max_window_bits", self.client_max_window_bits, allow_true=False)

    def window_bits(self, sender: Side) -> int:
        """The largest window ``sender`` may compress with."""
        return self.server_max_window_bits if sender == "server" else self.client_max_window_bits

    def no_context_takeover(self, sender: Side) -> bool:
        """Whether ``sender`` resets its compressor before every message."""
        if sender == "server":
            return self.server_no_context_takeover
        return self.client_no_context_takeover

    def encoder_for(self, side: Side, *, mem_level: int = 8, level: int = -1) -> DeflateEncoder:
        """The compressor ``side`` sends with.

        Raises:
            NegotiationError: The agreed window is 8 bits, which zlib cannot compress with.
        """
        bits = self.window_bits(side)
        if bits < MIN_ENCODER_WINDOW_BITS:
            raise NegotiationError(
                f"{side}_max_window_bits=8 was agreed, but zlib cannot compress with an "
                "8-bit window"
            )
        return DeflateEncoder(bits, mem_level, level, self.no_context_takeover(side))

    def decoder_for(self, side: Side) -> DeflateDecoder:
        """The decompressor ``side`` reads its peer's messages with."""
        peer: Side = "client" if side == "server" else "server"
        return DeflateDecoder(self.window_bits(peer), self.no_context_takeover(peer))


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
