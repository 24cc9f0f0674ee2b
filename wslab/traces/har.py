"""Import WebSocket traffic from a browser's HAR export.

What lives here: :func:`import_har` and its result :class:`HarImport`. Browsers' developer
tools (Chromium and Firefox) store the frames of each WebSocket in the entry of its
handshake request, under ``_webSocketMessages``: ``type`` ``"send"`` or ``"receive"``,
``time`` in epoch seconds, ``opcode`` (1 text, 2 binary as base64, 8-10 control) and
``data``.

What must not live here: reading or writing trace files (``io``). Privacy rule: only the
frames, the host and the path of each socket are read. Request and response headers,
cookies, query strings and any other part of an entry are never copied into the trace;
:attr:`HarImport.dropped` counts what was left out and why.

Secrets *inside* messages are redacted by default (``keep_payload_secrets=False``) by the
rule table of :mod:`wslab.traces.redact`: same length, same character classes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from wslab.errors import TraceFormatError, WslabError
from wslab.priority import DEFAULT_PRIORITY
from wslab.traces.model import Direction, Message, Trace, TraceMeta
from wslab.traces.redact import new_salt, redact_secrets
from wslab.wire import CONTROL_OPCODES, Opcode

#: JSON fields that name a message kind, in the order they are tried.
TYPE_FIELDS: tuple[str, ...] = ("type", "t", "op", "event", "e", "action", "channel")

_DIRECTION: dict[str, Direction] = {"send": "c2s", "receive": "s2c"}
_MESSAGE = (Opcode.TEXT, Opcode.BINARY)


@dataclass(slots=True)
class HarImport:
    """The result of a HAR import.

    Attributes:
        trace: The WebSocket messages as a trace, times relative to the first message.
        sockets: How many WebSocket connections had at least one data message.
        messages: How many messages the trace holds.
        dropped: What was left out and why, e.g. ``{"control frames (opcode 8-10)": 3}``.
        redacted: Secret values replaced inside messages, per rule of the module table
            (empty with ``keep_payload_secrets``).
    """

    trace: Trace
    sockets: int
    messages: int
    dropped: dict[str, int] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)


def message_type(payload: bytes, is_text: bool) -> str:
    """Derive a message type from its payload.

    A text message holding a JSON object with a short string in one of
    :data:`TYPE_FIELDS` gets that string; anything else is ``"text"`` or ``"binary"``.
    """
    if not is_text:
        return "binary"
    head = payload.lstrip()[:1]
    if head != b"{":
        return "text"
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return "text"
    if isinstance(obj, dict):
        for key in TYPE_FIELDS:
            value = obj.get(key)
            if isinstance(value, str) and 0 < len(value) <= 64 and "\n" not in value:
                return value
    return "text"


_TOKENISH = re.compile(r"^[A-Za-z0-9._~+=-]{16,}$")


def _path_segment(segment: str) -> str:
    """A path segment, or ``*`` when it looks like a credential (long, random-looking)."""
    if _TOKENISH.match(segment) and any(c.isdigit() for c in segment):
        return "*"
    return segment


def _socket_label(index: int, url: Any) -> str:
    """``ws<index> <host><path>``: host and path only, never the query, fragment or user
    info; a path segment that looks like a token (16+ characters with digits) becomes
    ``*``, since some services put credentials in the path."""
    if not isinstance(url, str):
        return f"ws{index}"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a malformed URL: keep nothing from it
        return f"ws{index}"
    if port:
        host = f"{host}:{port}"
    path = "/".join(_path_segment(seg) for seg in parts.path.split("/"))
    return f"ws{index} {host}{path}".rstrip()


def _load(path: str | os.PathLike[str]) -> list[Any]:
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except OSError as exc:
        raise WslabError(f"{name}: cannot open HAR file: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TraceFormatError(f"{name}: not a HAR file: invalid JSON ({exc})") from None
    except RecursionError:
        raise TraceFormatError(f"{name}: not a HAR file: JSON nested too deeply") from None
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise TraceFormatError(f"{name}: not a HAR file: no 'log.entries' list")
    return entries


def import_har(path: str | os.PathLike[str], *, keep_payload_secrets: bool = False,
               salt: bytes | None = None) -> HarImport:
    """Read the WebSocket messages of a HAR file into a trace.

    ``send`` frames become ``c2s`` and ``receive`` frames ``s2c``; every message gets the
    ``conn`` label of its socket (``ws1 host/path``, numbered in file order), priority
    ``normal`` and a type derived by :func:`message_type`. Times become seconds since the
    first message across all sockets, and messages are sorted by time (stable, so frames
    with equal times keep their file order).

    Secrets inside the messages are replaced by same-length stand-ins (module table) and
    counted in :attr:`HarImport.redacted` and the trace header's description.

    Args:
        path: A ``.har`` file exported by a browser.
        keep_payload_secrets: Copy the messages verbatim, secrets included.
        salt: The key of the stand-ins (default: random, one per import).

    Returns:
        The trace and counts of sockets, messages, dropped items and redacted secrets.

    Raises:
        TraceFormatError: If the file is not a HAR, holds no WebSocket entry, or a frame is
            malformed (naming the entry and frame).
        WslabError: If the file cannot be opened.
    """
    name = os.fspath(path)
    entries = _load(path)
    dropped: Counter[str] = Counter()
    redacted: Counter[str] = Counter()
    key = new_salt() if salt is None else salt
    rows: list[tuple[float, int, Direction, bytes, bool, str]] = []
    sockets = 0
    ws_entries = 0
    for e_index, entry in enumerate(entries):
        frames = entry.get("_webSocketMessages") if isinstance(entry, dict) else None
        if frames is None:
            dropped["non-WebSocket entries (never read)"] += 1
            continue
        if not isinstance(frames, list):
            raise TraceFormatError(f"{name}: entry {e_index}: '_webSocketMessages' is not a list")
        ws_entries += 1
        request = entry.get("request")
        url = request.get("url") if isinstance(request, dict) else None
        if isinstance(url, str) and "?" in url:
            dropped["query strings (never copied)"] += 1
        label = _socket_label(ws_entries, url)
        used = False
        for f_index, frame in enumerate(frames):
            where = f"{name}: entry {e_index}, WebSocket message {f_index}"
            if not isinstance(frame, dict):
                raise TraceFormatError(f"{where}: not a JSON object")
            opcode = frame.get("opcode", Opcode.TEXT)
            if opcode in CONTROL_OPCODES:  # any JSON value: a tuple, so no hashing
                dropped["control frames (opcode 8-10)"] += 1
                continue
            if opcode not in _MESSAGE:
                dropped[f"frames with unknown opcode {opcode!r}"] += 1
                continue
            kind = frame.get("type")
            direction = _DIRECTION.get(kind) if isinstance(kind, str) else None
            if direction is None:
                raise TraceFormatError(f"{where}: field 'type': must be 'send' or 'receive', "
                                       f"got {frame.get('type')!r}")
            t = frame.get("time")
            if isinstance(t, bool) or not isinstance(t, int | float) or not (
                    -1e15 < t < 1e15 and t == t):
                raise TraceFormatError(f"{where}: field 'time': must be a number of seconds, "
                                       f"got {str(t)[:40]}")
            data = frame.get("data", "")
            if not isinstance(data, str):
                raise TraceFormatError(f"{where}: field 'data': must be a string")
            is_text = opcode == Opcode.TEXT
            if is_text:
                try:
                    payload = data.encode("utf-8")
                except UnicodeEncodeError:
                    raise TraceFormatError(f"{where}: field 'data': not valid Unicode") from None
            else:
                try:
                    payload = base64.b64decode(data, validate=True)
                except (binascii.Error, ValueError):
                    raise TraceFormatError(f"{where}: field 'data': invalid base64 in a "
                                           "binary frame") from None
            if not keep_payload_secrets:
                payload = redact_secrets(payload, is_text, key, redacted)
            rows.append((float(t), len(rows), direction, payload, is_text, label))
            used = True
        sockets += used
        dropped["WebSocket handshake headers and cookies (never read)"] += 1
    if ws_entries == 0:
        raise TraceFormatError(f"{name}: no WebSocket entry (no '_webSocketMessages'); export "
                               "the HAR from a page with an open WebSocket")
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0] if rows else 0.0
    messages = [
        Message(max(0.0, t - t0), d, message_type(p, is_text), DEFAULT_PRIORITY, p, is_text,
                label)
        for t, _, d, p, is_text, label in rows
    ]
    secrets_note = ("secrets inside messages kept as captured (--keep-payload-secrets)"
                    if keep_payload_secrets else
                    f"{sum(redacted.values())} secret value(s) inside messages redacted "
                    "(same length, same character classes)")
    meta = TraceMeta(name=os.path.basename(name),
                     description=f"imported from a HAR file; {secrets_note}",
                     source=f"HAR import: {sockets} socket(s), {len(messages)} message(s)")
    return HarImport(Trace(messages, meta), sockets, len(messages), dict(dropped),
                     dict(redacted))
