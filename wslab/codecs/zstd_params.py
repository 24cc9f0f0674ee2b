"""The data types of ``x-wslab-zstd`` negotiation: parameters, limits, agreement.

What lives here: :class:`ZstdParams` (the parameters of one offer or answer, with the
grammar that validates them), :class:`ServerZstdLimits` (what a server accepts) and
:class:`AgreedZstd` (the outcome). What must not live here: the rules of who may answer
what (the tables in ``zstd_negotiation.py``, which re-exports these), zstandard, I/O.

Parameter grammar (each parameter at most once; values are tokens)::

    x-wslab-zstd [; mode=stream | ; mode=message] [; dict=<16 lowercase hex digits>]
                 [; max_window_log=<10..27>]

| parameter          | value                       | absent means               |
|--------------------|-----------------------------|----------------------------|
| ``mode``           | ``stream`` or ``message``   | ``message``                |
| ``dict``           | a ``DictionarySet.id``; only| no dictionary              |
|                    | with ``message``            |                            |
| ``max_window_log`` | decimal 10..27, no leading  | offer: the server's window;|
|                    | zeros: one window (2^N B)   | answer: an error           |
|                    | for both directions         |                            |

The window bounds what a peer can make the other allocate: a stream keeps its window for
the connection's life (zstd's own decoder limit is 2^27, 128 MiB). 27 is the top because
it is the largest window zstd decodes without being told to allow more.

An offer that breaks the grammar (unknown or repeated parameter, a missing or bad value,
``dict`` with ``mode=stream``) is refused, not an error: the server goes on to the
client's next offer, as RFC 7692 section 5.1 asks for permessage-deflate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from wslab.codecs.extheader import ExtensionOffer, Param
from wslab.errors import NegotiationError

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet

EXTENSION_NAME = "x-wslab-zstd"
Mode = Literal["stream", "message"]
MODES: tuple[Mode, ...] = ("stream", "message")
DICT_ID = re.compile(r"[0-9a-f]{16}")
WINDOW_LOG_MIN, WINDOW_LOG_MAX = 10, 27
RSV1_EXTENSIONS = frozenset({"permessage-deflate", EXTENSION_NAME})
"""Extensions that give RSV1 its meaning: a connection may agree on one of them only."""

_PARAMS = ("mode", "dict", "max_window_log")


@dataclass(frozen=True)
class ZstdParams:
    """The parameters of one ``x-wslab-zstd`` offer or answer.

    Attributes:
        mode: ``stream`` or ``message``.
        dict_id: The pre-shared dictionary set's id (``message`` only), or None.
        max_window_log: The largest zstd window, 2^N bytes, in either direction (None:
            absent; an offer then leaves it to the server, an answer must not omit it).
    """

    mode: Mode = "message"
    dict_id: str | None = None
    max_window_log: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be stream or message, got {self.mode!r}")
        w = self.max_window_log
        if w is not None and (isinstance(w, bool) or not isinstance(w, int)
                              or not WINDOW_LOG_MIN <= w <= WINDOW_LOG_MAX):
            raise ValueError(f"max_window_log must be an int {WINDOW_LOG_MIN}..{WINDOW_LOG_MAX}"
                             f" or None, got {w!r}")
        if self.dict_id is not None:
            if not DICT_ID.fullmatch(self.dict_id):
                raise ValueError(f"dict_id must be 16 lowercase hex digits, got "
                                 f"{self.dict_id!r}")
            if self.mode == "stream":
                raise ValueError("a dictionary goes with mode message, not stream")

    @classmethod
    def from_params(cls, params: Sequence[Param], *, response: bool = False) -> ZstdParams:
        """Validate raw ``(name, value)`` pairs of one element.

        Raises:
            NegotiationError: The element breaks the grammar; the message names the
                parameter and says what is wrong with it.
        """
        where = f"{EXTENSION_NAME} {'response' if response else 'offer'}"
        seen: dict[str, str | None] = {}
        for name, value in params:
            if name in seen:
                raise NegotiationError(f"{where}: duplicate parameter {name}")
            if name not in _PARAMS:
                raise NegotiationError(f"{where}: unknown parameter {name}")
            if value is None:
                raise NegotiationError(f"{where}: {name} needs a value")
            seen[name] = value
        mode = seen.get("mode", "message")
        if mode not in MODES:
            raise NegotiationError(f"{where}: mode={mode!r} is not stream or message")
        dict_id = seen.get("dict")
        if dict_id is not None and not DICT_ID.fullmatch(dict_id):
            raise NegotiationError(f"{where}: dict={dict_id!r} is not 16 lowercase hex digits")
        if dict_id is not None and mode == "stream":
            raise NegotiationError(f"{where}: dict goes with mode=message, not mode=stream")
        window = seen.get("max_window_log")
        if window is not None:
            if not window.isascii() or not window.isdigit() or window.startswith("0"):
                raise NegotiationError(f"{where}: max_window_log={window!r} is not a decimal "
                                       "number without leading zeros")
            if not WINDOW_LOG_MIN <= int(window) <= WINDOW_LOG_MAX:
                raise NegotiationError(f"{where}: max_window_log={window} is outside "
                                       f"{WINDOW_LOG_MIN}..{WINDOW_LOG_MAX}")
        return cls("stream" if mode == "stream" else "message", dict_id,
                   None if window is None else int(window))

    def to_params(self) -> tuple[Param, ...]:
        """The pairs as a server answers them: ``mode`` always, the others when set."""
        out: list[Param] = [("mode", self.mode)]
        if self.dict_id is not None:
            out.append(("dict", self.dict_id))
        if self.max_window_log is not None:
            out.append(("max_window_log", str(self.max_window_log)))
        return tuple(out)

    def to_offer(self) -> ExtensionOffer:
        """These parameters as one header element."""
        return ExtensionOffer(EXTENSION_NAME, self.to_params())

    def header(self) -> str:
        """Header text for this element alone."""
        return self.to_offer().format()


@dataclass(frozen=True)
class ServerZstdLimits:
    """What a server is willing to accept.

    Attributes:
        max_window_log: The largest window this server compresses with and accepts,
            2^N bytes (its configured ``zstd_window_log``).
        stream: Accept ``mode=stream``.
        message: Accept ``mode=message`` without a dictionary.
        dictionaries: The pre-shared sets it holds, by id; ``mode=message; dict=ID`` is
            accepted for these ids only.
    """

    max_window_log: int
    stream: bool = False
    message: bool = False
    dictionaries: Mapping[str, DictionarySet] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not WINDOW_LOG_MIN <= self.max_window_log <= WINDOW_LOG_MAX:
            raise ValueError(f"max_window_log must be {WINDOW_LOG_MIN}..{WINDOW_LOG_MAX}, "
                             f"got {self.max_window_log}")

    @classmethod
    def holding(cls, *sets: DictionarySet, max_window_log: int, stream: bool = False,
                message: bool = False) -> ServerZstdLimits:
        """Limits that hold ``sets`` (keyed by their own ids)."""
        return cls(max_window_log, stream, message, {s.id: s for s in sets})


@dataclass(frozen=True)
class AgreedZstd:
    """The outcome of a negotiation: the mode both directions use, and the set if any.

    Attributes:
        mode: ``stream`` or ``message``.
        window_log: The largest window either side may use, 2^N bytes: each compresses
            with at most this and refuses frames that need more.
        dictionaries: The agreed pre-shared set (``message`` with ``dict``), or None.
        response: The server's answer.
    """

    mode: Mode
    window_log: int
    dictionaries: DictionarySet | None = None
    response: ZstdParams = field(default_factory=ZstdParams, compare=False)

    @property
    def dict_id(self) -> str | None:
        """The agreed set's id, or None."""
        return self.dictionaries.id if self.dictionaries is not None else None

    @property
    def algorithm(self) -> str:
        """The name the simulator and configs use for this agreement."""
        if self.mode == "stream":
            return "zstd-stream"
        return "zstd-dict" if self.dictionaries is not None else "zstd"
