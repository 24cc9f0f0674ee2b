"""The ``Sec-WebSocket-Extensions`` header: its grammar, nothing about any one extension.

What lives here: :class:`ExtensionOffer` (one list element: a name and its parameters), a
parser for the header value following RFC 6455 section 9.1, and the formatter that writes
offers back. What must not live here: the meaning of any parameter. permessage-deflate's
rules live in ``negotiation.py``; this module only knows tokens, ``;``, ``,``, ``=`` and
quoted strings.

The grammar, as RFC 6455 section 9.1 writes it (``1#`` is an HTTP comma list)::

    Sec-WebSocket-Extensions = 1#extension
    extension       = extension-token *( ";" extension-param )
    extension-param = token [ "=" ( token / quoted-string ) ]

A quoted value, once its backslash escapes are undone, must itself be a token. Optional
whitespace (spaces and tabs) may sit around every separator, and empty list elements
(``a, , b``) are skipped, as HTTP asks recipients to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wslab.errors import NegotiationError

# RFC 7230 tchar: the characters allowed in a token.
TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_SPACE = " \t"

Param = tuple[str, str | None]


def is_token(text: str) -> bool:
    """Whether ``text`` is a non-empty RFC 7230 token."""
    return bool(text) and all(ch in TOKEN_CHARS for ch in text)


@dataclass(frozen=True)
class ExtensionOffer:
    """One element of the header: an extension name and its parameters, in order.

    Attributes:
        name: The extension token, e.g. ``permessage-deflate``.
        params: ``(name, value)`` pairs; ``value`` is ``None`` for a parameter without one.
    """

    name: str
    params: tuple[Param, ...] = ()

    def format(self) -> str:
        """This element as header text, e.g. ``permessage-deflate; server_max_window_bits=10``."""
        if not is_token(self.name):
            raise ValueError(f"extension name {self.name!r} is not a token")
        parts = [self.name]
        for key, value in self.params:
            if not is_token(key):
                raise ValueError(f"parameter name {key!r} is not a token")
            if value is None:
                parts.append(key)
            elif is_token(value):
                parts.append(f"{key}={value}")
            else:
                raise ValueError(f"value {value!r} of parameter {key} is not a token")
        return "; ".join(parts)


def format_extensions(offers: Sequence[ExtensionOffer]) -> str:
    """The header value for ``offers``, comma-separated, in order."""
    return ", ".join(offer.format() for offer in offers)


class _Cursor:
    """Walks the header text, raising :class:`NegotiationError` with the column on error."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> NegotiationError:
        shown = self.text if len(self.text) <= 120 else self.text[:117] + "..."
        return NegotiationError(
            f"Sec-WebSocket-Extensions: {what} at column {self.pos + 1} of {shown!r}"
        )

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, what: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in TOKEN_CHARS:
            self.pos += 1
        if self.pos == start:
            found = repr(self.peek()) if self.peek() else "end of header"
            raise self.fail(f"expected {what}, found {found}")
        return self.text[start:self.pos]

    def quoted(self, param: str) -> str:
        # The opening quote is at self.pos.
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.fail(f"unterminated quoted value of parameter {param}")
            self.pos += 1
            if ch == '"':
                break
            if ch == "\\":
                escaped = self.peek()
                if not escaped:
                    raise self.fail(f"dangling backslash in value of parameter {param}")
                self.pos += 1
                ch = escaped
            out.append(ch)
        value = "".join(out)
        if not is_token(value):
            raise self.fail(f"quoted value {value!r} of parameter {param} is not a token")
        return value


def parse_extensions(header: str) -> list[ExtensionOffer]:
    """Parse a ``Sec-WebSocket-Extensions`` value into its offers, in order.

    Args:
        header: The header value (several header lines may be joined with ``", "``).

    Returns:
        One :class:`ExtensionOffer` per list element; an extension may appear several times.

    Raises:
        NegotiationError: The text does not follow the grammar; the message names the
            column and what was expected there.
    """
    cur = _Cursor(header)
    offers: list[ExtensionOffer] = []
    while True:
        cur.skip_space()
        if cur.peek() == ",":  # empty list element
            cur.pos += 1
            continue
        if not cur.peek():
            break
        offers.append(_parse_element(cur))
        cur.skip_space()
        if cur.peek() == ",":
            cur.pos += 1
        elif cur.peek():
            raise cur.fail(f"expected ',' or ';', found {cur.peek()!r}")
    if not offers:
        raise NegotiationError("Sec-WebSocket-Extensions: the header lists no extension")
    return offers


def _parse_element(cur: _Cursor) -> ExtensionOffer:
    name = cur.token("an extension name")
    params: list[Param] = []
    while True:
        cur.skip_space()
        if cur.peek() != ";":
            return ExtensionOffer(name, tuple(params))
        cur.pos += 1
        cur.skip_space()
        key = cur.token(f"a parameter name after ';' in {name}")
        cur.skip_space()
        value: str | None = None
        if cur.peek() == "=":
            cur.pos += 1
            cur.skip_space()
            value = cur.quoted(key) if cur.peek() == '"' else cur.token(f"a value for {key}")
        params.append((key, value))
