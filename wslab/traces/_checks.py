"""Line checks for trace format v1: the constants, the header parser, the error diagnosis.

What lives here: the field sets and format constants, :func:`parse_header`,
:func:`diagnose` (which explains exactly why a message line failed the reader's fast
path), and :func:`fail`, the one place that formats ``file:line: field ...`` messages.
Also the fast :class:`Message` constructor used by the reader.

What must not live here: opening, reading or writing files (``io``). Everything here is
pure and only ever called with an already-parsed line.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any, Final

from wslab.errors import TraceFormatError
from wslab.priority import DEFAULT_PRIORITY
from wslab.traces.model import DIRECTIONS, PRIORITIES, Message, TraceMeta

FORMAT_VERSION: Final = 1
HEADER_KEY: Final = "wslab_trace"
SUFFIXES: Final = (".jsonl", ".jsonl.zst")

MESSAGE_FIELDS: Final = frozenset({"t", "dir", "type", "priority", "text", "b64", "conn"})
HEADER_FIELDS: Final = frozenset({HEADER_KEY, "name", "description", "source"})
DIRS: Final = frozenset(DIRECTIONS)
PRIOS: Final = frozenset(PRIORITIES)


def fail(path: object, lineno: int, what: str) -> TraceFormatError:
    """The error for line ``lineno`` of ``path``: ``<path>:<line>: <what>``."""
    return TraceFormatError(f"{path}:{lineno}: {what}")


def parse_header(obj: dict[str, Any], path: object, lineno: int) -> TraceMeta:
    """Validate a header line and return its metadata."""
    version = obj[HEADER_KEY]
    if version != FORMAT_VERSION or type(version) is not int:
        raise fail(path, lineno, f"field '{HEADER_KEY}': unsupported version {version!r} "
                                  f"(this wslab reads version {FORMAT_VERSION})")
    for key in obj:
        if key not in HEADER_FIELDS:
            raise fail(path, lineno, f"field '{key}': unknown header field")
    values: dict[str, str] = {}
    for key in ("name", "description", "source"):
        value = obj.get(key, "")
        if not isinstance(value, str):
            raise fail(path, lineno, f"field '{key}': must be a string, got {value!r}")
        values[key] = value
    return TraceMeta(**values)


def diagnose(obj: Any, path: object, lineno: int, prev_t: float) -> TraceFormatError:
    """Work out exactly what is wrong with a message line that failed the fast path."""
    if not isinstance(obj, dict):
        return fail(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
    if HEADER_KEY in obj:
        return fail(path, lineno, f"field '{HEADER_KEY}': header line is only allowed as "
                                   "the first line")
    for key in obj:
        if key not in MESSAGE_FIELDS:
            return fail(path, lineno, f"field '{key}': unknown field")
    for key in ("t", "dir", "type"):
        if key not in obj:
            return fail(path, lineno, f"field '{key}': missing")
    t = obj["t"]
    if type(t) not in (int, float):
        return fail(path, lineno, f"field 't': must be a number, got {t!r}")
    if not math.isfinite(t):
        return fail(path, lineno, f"field 't': must be finite, got {t!r}")
    if t < 0:
        return fail(path, lineno, f"field 't': must not be negative, got {t!r}")
    if t < prev_t:
        return fail(path, lineno, f"field 't': decreasing ({t!r} after {prev_t!r})")
    if not isinstance(obj["dir"], str) or obj["dir"] not in DIRS:
        return fail(path, lineno, f"field 'dir': must be 's2c' or 'c2s', got {obj['dir']!r}")
    if not isinstance(obj["type"], str):
        return fail(path, lineno, f"field 'type': must be a string, got {obj['type']!r}")
    prio = obj.get("priority", DEFAULT_PRIORITY)
    if not isinstance(prio, str) or prio not in PRIOS:
        return fail(path, lineno, f"field 'priority': must be one of "
                                   f"{', '.join(PRIORITIES)}, got {prio!r}")
    conn = obj.get("conn")
    if conn is not None and not isinstance(conn, str):
        return fail(path, lineno, f"field 'conn': must be a string, got {conn!r}")
    has_text, has_b64 = "text" in obj, "b64" in obj
    if has_text == has_b64:
        which = "both" if has_text else "neither"
        return fail(path, lineno, f"field 'text'/'b64': exactly one is required, got {which}")
    if has_text:
        text = obj["text"]
        if not isinstance(text, str):
            return fail(path, lineno, f"field 'text': must be a string, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return fail(path, lineno, "field 'text': not valid Unicode (lone surrogate)")
    else:
        b64 = obj["b64"]
        if not isinstance(b64, str):
            return fail(path, lineno, f"field 'b64': must be a string, got {type(b64).__name__}")
        try:
            base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            return fail(path, lineno, f"field 'b64': invalid base64 ({exc})")
    return fail(path, lineno, "malformed message")  # pragma: no cover - fast path agrees


def _message_builder() -> Callable[[float, str, str, str, bytes, bool, str | None], Message]:
    """A constructor for :class:`Message` that skips the frozen-dataclass ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``, which is the single
    largest cost when loading. With slots, the slot descriptors can set the fields directly
    (about twice as fast); the result is an ordinary, equal, immutable ``Message``.
    """
    names = ("t", "dir", "type", "priority", "payload", "is_text", "conn")
    try:
        setters = [Message.__dict__[n].__set__ for n in names]
    except (KeyError, AttributeError):  # pragma: no cover - Message without slots
        return Message  # type: ignore[return-value]
    s_t, s_dir, s_type, s_prio, s_payload, s_text, s_conn = setters
    new = object.__new__

    def build(t: float, d: str, kind: str, prio: str, payload: bytes, is_text: bool,
              conn: str | None) -> Message:
        m: Message = new(Message)
        s_t(m, t)
        s_dir(m, d)
        s_type(m, kind)
        s_prio(m, prio)
        s_payload(m, payload)
        s_text(m, is_text)
        s_conn(m, conn)
        return m

    return build


build_message = _message_builder()
