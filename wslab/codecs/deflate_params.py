"""The data types of permessage-deflate negotiation: parameters, limits, agreement.

What lives here: :class:`DeflateParams` (the four RFC 7692 parameters of one offer or
response, with their validation), :class:`ServerDeflateLimits` (what a server allows),
:class:`AgreedDeflate` (the outcome, which builds the codecs) and the errors of negotiation,
each naming the parameter at fault (:class:`DeflateParamError`; a server's
:class:`OfferDeclined`, a client's :class:`ResponseRejected`). What must not live here: the
rules of who may answer what; those are the tables in ``negotiation.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from wslab.codecs.deflate import MIN_ENCODER_WINDOW_BITS, DeflateDecoder, DeflateEncoder
from wslab.codecs.extheader import ExtensionOffer, Param
from wslab.errors import OfferDeclined as OfferDeclined
from wslab.errors import ParamError
from wslab.errors import ResponseRejected as ResponseRejected

EXTENSION_NAME = "permessage-deflate"
Side = Literal["server", "client"]
WindowParam = int | Literal[True] | None

DeflateParamError = ParamError
"""A permessage-deflate offer or answer that one parameter spoils (``wslab.errors``)."""


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
            DeflateParamError: An unknown or repeated parameter, a value where none is
                allowed, a missing value, or a value that is not 8..15 written in decimal
                without leading zeros. The message and ``parameter`` name the parameter.
        """
        where = "response" if response else "offer"
        seen: dict[str, str | None] = {}
        for name, value in params:
            if name in seen:
                raise DeflateParamError(
                    name, f"{EXTENSION_NAME} {where}: duplicate parameter {name}")
            if name not in _FLAGS and name not in _WINDOWS:
                raise DeflateParamError(
                    name, f"{EXTENSION_NAME} {where}: unknown parameter {name}")
            seen[name] = value
        flags = {}
        for name in _FLAGS:
            if name in seen and seen[name] is not None:
                raise DeflateParamError(
                    name, f"{EXTENSION_NAME} {where}: {name} takes no value, got {seen[name]!r}"
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
        raise DeflateParamError(name, f"{EXTENSION_NAME} {where}: {name} needs a value")
    if not raw.isascii() or not raw.isdigit() or raw.startswith("0"):
        raise DeflateParamError(
            name, f"{EXTENSION_NAME} {where}: {name}={raw!r} is not a decimal number without "
            f"leading zeros"
        )
    bits = int(raw)
    if not 8 <= bits <= 15:
        raise DeflateParamError(
            name, f"{EXTENSION_NAME} {where}: {name}={bits} is outside 8..15")
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
            DeflateParamError: The agreed window is 8 bits, which zlib cannot compress
                with (``parameter`` names the side's window).
        """
        bits = self.window_bits(side)
        if bits < MIN_ENCODER_WINDOW_BITS:
            raise DeflateParamError(
                f"{side}_max_window_bits",
                f"{side}_max_window_bits=8 was agreed, but zlib cannot compress with an "
                "8-bit window"
            )
        return DeflateEncoder(bits, mem_level, level, self.no_context_takeover(side))

    def decoder_for(self, side: Side) -> DeflateDecoder:
        """The decompressor ``side`` reads its peer's messages with."""
        peer: Side = "client" if side == "server" else "server"
        return DeflateDecoder(self.window_bits(peer), self.no_context_takeover(peer))
