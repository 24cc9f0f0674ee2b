"""Secrets inside WebSocket messages, and the same-length stand-ins that replace them.

What lives here: the redaction rules of a HAR import (``har.py``) as tables, and
:func:`redact_secrets`, which applies them to one message. Sans-I/O; no trace types.

A HAR import redacts secrets inside messages by default (``keep_payload_secrets=False``)
by these rules, tried in this order (a span an earlier rule took is not counted again):

| rule                          | finds                                                        |
|-------------------------------|--------------------------------------------------------------|
| JSON value under a secret key | in a JSON text message, every string and number at any       |
|                               | depth under a key named by :data:`SECRET_KEY_WORDS`          |
| auth message field            | every string and number of a JSON object whose type field    |
|                               | (:data:`AUTH_TYPE_FIELDS`) is in :data:`AUTH_MESSAGE_TYPES`, |
|                               | except the type itself                                       |
| JWT                           | ``eyJ...`` header, payload and signature, in any message     |
| bearer token                  | the credential after ``Bearer`` (with a digit), any message  |
| key=value secret              | ``password=...``, ``token: ...`` in a text message           |

A key is secret when, lower-cased and without ``_``, ``-``, ``.`` and spaces, it is or ends
with one of :data:`SECRET_KEY_WORDS` (``accessToken``, ``x-api-key``, ``client_secret``).
Each redacted value keeps its length in bytes and its character classes (a letter stays a
letter of the same case, a digit a digit, punctuation and JSON escapes stay; a non-ASCII
letter becomes a fixed letter of the same UTF-8 length), so the trace stays valid JSON
and compresses about as the original did. The stand-in is keyed by a random salt per import
(``salt``): the same secret gets the same stand-in within one import, as repeats compress
alike, and no stand-in can be checked against a guessed password.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import Counter
from collections.abc import Iterator
from typing import Any

AUTH_TYPE_FIELDS: tuple[str, ...] = ("type", "t", "op", "event", "e", "action", "method",
                                     "channel")
"""JSON fields that can name a message's kind (as ``har.TYPE_FIELDS``, plus ``method``)."""

SECRET_KEY_WORDS: tuple[str, ...] = (
    "token", "password", "passwd", "passphrase", "passcode", "secret", "apikey", "accesskey",
    "privatekey", "authorization", "auth", "credential", "credentials", "cookie", "sessionid",
    "jwt", "signature", "otp",
)
"""JSON keys (and ``key=value`` names) whose values are secrets: a key is secret when its
normalised form (lower case, no ``_ - .`` or spaces) is or ends with one of these."""

AUTH_MESSAGE_TYPES: frozenset[str] = frozenset(
    {"auth", "authenticate", "authorize", "authorization", "login", "signin"})
"""Message types (normalised like keys) whose every other field is a credential, as in
``{"action": "auth", "params": "API-KEY"}``."""

_JWT = re.compile(r"(?<![A-Za-z0-9_-])(eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)")
_BEARER = re.compile(r"(?i)\bbearer\s+((?=[A-Za-z0-9._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,})")
_KEY_VALUE = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z][A-Za-z0-9_.-]*)\s*[=:]\s*"
                        r"(?:bearer\s+|basic\s+)?([^\s&;,\"'<>\\]+)", re.IGNORECASE)

#: The text rules of the module table: (name, pattern, also in binary messages); group 1
#: of each pattern is the secret (for ``key=value`` group 2, when group 1 is a secret key).
_PATTERNS: tuple[tuple[str, re.Pattern[str], bool], ...] = (
    ("JWT", _JWT, True),
    ("bearer token", _BEARER, True),
    ("key=value secret", _KEY_VALUE, False),
)
_NORMALISE = str.maketrans("", "", "_-. ")
_WIDE_LETTER = {2: "é", 3: "あ", 4: "𝐚"}  # a non-ASCII letter or digit, by UTF-8 length
_ESCAPE_LETTERS = "abcdef"  # \u00eX: a Latin-1 letter, so an escape stays a valid letter
_SURROGATE_PAIR = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def is_secret_key(key: str) -> bool:
    """Whether a JSON key (or ``key=value`` name) names a secret (see the module table)."""
    norm = key.lower().translate(_NORMALISE)
    return any(norm.endswith(word) for word in SECRET_KEY_WORDS)


def _stream(salt: bytes, value: str) -> Iterator[int]:
    """Pseudo-random bytes keyed by the salt and the value (same value, same stand-in)."""
    block = 0
    while True:
        yield from hashlib.blake2b(value.encode("utf-8"), key=salt,
                                   salt=block.to_bytes(16, "little")).digest()
        block += 1


def _swap(c: str, rand: Iterator[int]) -> str:
    """A stand-in of ``c``'s class: ASCII letter (same case), digit, a non-ASCII letter or
    digit (a fixed letter of the same UTF-8 length); anything else is ``c`` itself."""
    if "a" <= c <= "z":
        return chr(97 + next(rand) % 26)
    if "A" <= c <= "Z":
        return chr(65 + next(rand) % 26)
    if "0" <= c <= "9":
        return chr(48 + next(rand) % 10)
    if c > "\x7f" and c.isalnum():
        return _WIDE_LETTER.get(len(c.encode("utf-8")), c)
    return c


def _swap_escape(escape: str, rand: Iterator[int]) -> str:
    """A ``\\uXXXX`` escape (or a surrogate pair of them) of a character of the same class,
    or the escape itself for anything but a letter or digit."""
    try:
        c = json.loads(f'"{escape}"')
    except ValueError:
        return escape
    if len(c) != 1 or not c.isalnum():
        return escape
    if len(escape) == 12:  # outside the BMP: U+1D41A.. (mathematical bold small letters)
        return f"\\ud835\\u{0xDC1A + next(rand) % 26:04x}"
    if not c.isascii():  # U+00E0..U+00EF, Latin-1 small letters
        return f"\\u00e{_ESCAPE_LETTERS[next(rand) % 6]}"
    return f"\\u{ord(_swap(c, rand)):04x}"


def _stand_in(value: str, salt: bytes, kind: str) -> str:
    """``value`` with every letter and digit replaced by one of the same class (:func:`_swap`).

    ``kind`` ``string`` (the inside of a JSON string): escapes stay escapes of the same
    class (:func:`_swap_escape`; ``\\n``, ``\\"`` and the like are kept); ``number`` (a
    JSON number): only digits change, and a leading non-zero digit stays non-zero;
    ``text``: any other span. The result is as valid as the input.
    """
    rand = _stream(salt, value)
    out: list[str] = []
    i, n = 0, len(value)
    lead = kind == "number"  # the next digit leads the number
    while i < n:
        c = value[i]
        if kind == "string" and c == "\\":
            size = (12 if _SURROGATE_PAIR.match(value, i) else
                    6 if value[i + 1:i + 2] == "u" else 2)
            out.append(_swap_escape(value[i:i + size], rand) if size > 2
                       else value[i:i + size])
            i += size
            continue
        if kind == "number":  # sign, point, exponent, Infinity: kept
            if "0" <= c <= "9":
                c = chr(49 + next(rand) % 9) if lead and c != "0" else _swap(c, rand)
                lead = False
        else:
            c = _swap(c, rand)
        out.append(c)
        i += 1
    return "".join(out)


_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?')


def _key(raw: str) -> str:
    """A JSON key token's text (escapes decoded where valid)."""
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


def _has_secret_key(text: str) -> bool:
    """Whether any key of the JSON text names a secret (strings tokenised left to right)."""
    return any(m.group(2) and is_secret_key(_key(m.group(1))) for m in _STRING.finditer(text))


def _auth_type_field(obj: Any) -> str | None:
    """The type field of an auth message (module table), or None."""
    if isinstance(obj, dict):
        for key in AUTH_TYPE_FIELDS:
            value = obj.get(key)
            if isinstance(value, str) and value.lower().translate(_NORMALISE) in \
                    AUTH_MESSAGE_TYPES:
                return key
    return None


def _json_spans(text: str) -> list[tuple[int, int, str, str]]:
    """Spans ``(start, end, kind, rule)`` of the JSON values the key rules redact, kind
    ``string`` (the characters between the quotes) or ``number``. Iterative: any depth."""
    try:
        auth_key = _auth_type_field(json.loads(text))
    except ValueError:
        return []
    except RecursionError:  # deeper than json goes; the scanner below is iterative
        auth_key = None
    if auth_key is None and not _has_secret_key(text):
        return []
    spans: list[tuple[int, int, str, str]] = []
    # per open container: [is object, rule of its values or "", expecting a key, value rule]
    stack: list[list[Any]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        top = stack[-1] if stack else None
        rule = "" if top is None else (top[3] if top[0] else top[1])
        if c in " \t\r\n:":
            i += 1
        elif c == ",":
            if top is not None and top[0]:
                top[2] = True
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                return []  # unterminated: not JSON after all
            if top is not None and top[0] and top[2]:
                key = _key(text[i + 1:j])
                top[2] = False
                top[3] = top[1] or (
                    "JSON value under a secret key" if is_secret_key(key) else
                    "auth message field" if auth_key is not None and len(stack) == 1
                    and key != auth_key else "")
            elif rule:
                spans.append((i + 1, j, "string", rule))
            i = j + 1
        elif c in "{[":
            stack.append([c == "{", rule, True, rule])
            i += 1
        elif c in "}]":
            if not stack:
                return []
            stack.pop()
            i += 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n,:]}":
                j += 1
            if rule and c in "-0123456789":
                spans.append((i, j, "number", rule))
            i = j
    return spans


def redact_secrets(payload: bytes, is_text: bool, salt: bytes,
                   counts: Counter[str]) -> bytes:
    """``payload`` with the secrets of the module table replaced by same-length stand-ins;
    ``counts`` gains one per value replaced, by rule."""
    text = payload.decode("utf-8") if is_text else payload.decode("latin-1")
    spans = _json_spans(text) if is_text else []
    for name, pattern, binary_too in _PATTERNS:
        if not (is_text or binary_too):
            continue
        for m in pattern.finditer(text):
            group = 1
            if pattern is _KEY_VALUE:
                if not is_secret_key(m.group(1)):
                    continue
                group = 2
            a, b = m.span(group)
            if not any(a < y and x < b for x, y, _, _ in spans):
                spans.append((a, b, "text", name))
    if not spans:
        return payload
    spans.sort()
    parts: list[str] = []
    at = 0
    for a, b, kind, rule in spans:
        parts += [text[at:a], _stand_in(text[a:b], salt, kind)]
        at = b
        counts[rule] += 1
    parts.append(text[at:])
    joined = "".join(parts)
    return joined.encode("utf-8") if is_text else joined.encode("latin-1")


def new_salt() -> bytes:
    """A fresh random key for :func:`redact_secrets` (one per import)."""
    return secrets.token_bytes(16)
