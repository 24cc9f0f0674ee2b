"""Reading and writing trace files (format v1, DESIGN.md section 3).

What lives here: streaming readers (:func:`iter_messages`, :func:`read_trace`,
:func:`read_meta`) and the atomic streaming writer (:func:`write_trace`) for ``.jsonl`` and
``.jsonl.zst`` files, plus the hot parsing loop. Every malformed line becomes a
:class:`~wslab.errors.TraceFormatError` naming the file, the line number and the field (the
exact diagnosis is in ``_checks``).

What must not live here: making traces (``generators``, ``har``) or describing them
(``info``). This module knows the file format and nothing about what the messages mean.

Lines are read as bytes and parsed one at a time, so a file never sits in memory whole, and a
line that is not UTF-8 is reported with its own line number. ``orjson`` is used when it is
installed (it parses several times faster); the standard ``json`` module is the fallback.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final

import zstandard

from wslab.errors import TraceFormatError, WslabError
from wslab.priority import DEFAULT_PRIORITY
from wslab.traces._checks import (
    DIRS,
    FORMAT_VERSION,
    HEADER_KEY,
    MESSAGE_FIELDS,
    PRIOS,
    SUFFIXES,
    build_message,
    diagnose,
    fail,
    parse_header,
)
from wslab.traces.model import Message, Trace, TraceMeta

try:  # pragma: no cover - which branch runs depends on the environment
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)

    def _dumps(obj: dict[str, Any]) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover
    _loads = json.loads
    _JSON_ERRORS = (ValueError,)

    def _dumps(obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_INF: Final = math.inf
_ZSTD_LEVEL: Final = 10
_CHUNK_LINES: Final = 1024

__all__ = ["FORMAT_VERSION", "HEADER_KEY", "SUFFIXES", "is_compressed", "iter_messages",
           "read_meta", "read_trace", "write_trace"]


# -- paths and streams ---------------------------------------------------------------------


def is_compressed(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` names a ``.jsonl.zst`` trace, False for ``.jsonl``.

    Raises:
        WslabError: If the name ends in neither suffix.
    """
    name = os.fspath(path)
    if name.endswith(".jsonl.zst"):
        return True
    if name.endswith(".jsonl"):
        return False
    raise WslabError(f"{name}: a trace file name must end in .jsonl or .jsonl.zst")


MAX_LINE_BYTES: Final = 4 << 20
"""Longest trace line read: a message of about 3 MiB (base64) — three times the websockets
default ``max_size``. A longer line is an error, so a small compressed file that inflates
into one huge line cannot make the reader allocate it."""


def _bounded_lines(stream: IO[bytes], path: object) -> Iterator[bytes]:
    readline = stream.readline
    lineno = 0
    while True:
        line = readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE_BYTES:
            raise fail(path, lineno, f"line longer than {MAX_LINE_BYTES >> 20} MiB (the "
                                     "longest message a trace holds)")
        yield line


@contextlib.contextmanager
def _open_lines(path: str | os.PathLike[str]) -> Iterator[Iterator[bytes]]:
    """Open a trace for reading as an iterator of lines, each at most MAX_LINE_BYTES."""
    compressed = is_compressed(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise WslabError(f"{os.fspath(path)}: cannot open trace: {exc.strerror}") from None
    try:
        if compressed:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            yield _bounded_lines(io.BufferedReader(reader, buffer_size=1 << 16),
                                 os.fspath(path))
        else:
            yield _bounded_lines(raw, os.fspath(path))
    finally:
        raw.close()


# -- reading ------------------------------------------------------------------------------


def _parse_lines(
    lines: Iterable[bytes], path: object, header: list[TraceMeta]
) -> Iterator[Message]:
    """Yield every message; a header line, if present, is appended to ``header``.

    The loop below is the hot path: it checks the common case with as few operations as
    possible and hands anything unusual to :func:`_diagnose` for an exact message.
    """
    loads = _loads
    json_errors = _JSON_ERRORS
    dirs, prios, fields = DIRS, PRIOS, MESSAGE_FIELDS
    b64decode = base64.b64decode
    new = build_message
    inf = _INF
    prev_t = 0.0
    first = True
    for lineno, line in enumerate(lines, 1):
        try:
            obj = loads(line)
        except json_errors as exc:
            if not line.strip():
                continue  # blank lines are allowed and ignored
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                raise fail(path, lineno, "line is not valid UTF-8") from None
            raise fail(path, lineno, f"line is not valid JSON ({exc})") from None
        if first:
            first = False
            if type(obj) is dict and HEADER_KEY in obj:
                header.append(parse_header(obj, path, lineno))
                continue
        try:
            t = obj["t"]
            if type(t) is not float:
                if type(t) is not int:
                    raise ValueError
                t = float(t)
            if not prev_t <= t < inf or not obj.keys() <= fields:
                raise ValueError
            d = obj["dir"]
            kind = obj["type"]
            prio = obj.get("priority", DEFAULT_PRIORITY)
            conn = obj.get("conn")
            if d not in dirs or prio not in prios or type(kind) is not str:
                raise ValueError
            if conn is not None and type(conn) is not str:
                raise ValueError
            text = obj.get("text")
            if text is not None:
                if "b64" in obj or type(text) is not str:
                    raise ValueError
                msg = new(t, d, kind, prio, text.encode(), True, conn)
            else:
                b64 = obj["b64"]
                if type(b64) is not str:
                    raise ValueError
                msg = new(t, d, kind, prio, b64decode(b64, validate=True), False, conn)
        except (KeyError, TypeError, ValueError, AttributeError, UnicodeEncodeError):
            raise diagnose(obj, path, lineno, prev_t) from None
        prev_t = t
        yield msg


@contextlib.contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[tuple[Iterator[Message], list[TraceMeta]]]:
    """Open ``path`` and give its message iterator plus a list that receives the header."""
    name = os.fspath(path)
    header: list[TraceMeta] = []
    with _open_lines(path) as stream:
        try:
            yield _parse_lines(stream, name, header), header
        except zstandard.ZstdError as exc:
            raise TraceFormatError(f"{name}: corrupt zstd data ({exc})") from None


def iter_messages(path: str | os.PathLike[str]) -> Iterator[Message]:
    """Stream the messages of a trace file, one line at a time.

    Args:
        path: A ``.jsonl`` or ``.jsonl.zst`` trace file.

    Yields:
        Each message in file order.

    Raises:
        TraceFormatError: At the first malformed line (naming file, line and field).
        WslabError: If the file cannot be opened or has an unknown suffix.
    """
    with _reading(path) as (messages, _):
        yield from messages


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a whole trace file: header metadata and every message.

    The cyclic garbage collector is paused while the list is built (it would otherwise
    rescan the growing list of new objects again and again) and restored afterwards.

    Args:
        path: A ``.jsonl`` or ``.jsonl.zst`` trace file.

    Returns:
        The trace; its ``meta`` is empty when the file has no header line.

    Raises:
        TraceFormatError: At the first malformed line.
        WslabError: If the file cannot be opened or has an unknown suffix.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _reading(path) as (messages, header):
            loaded = list(messages)
    finally:
        if was_enabled:
            gc.enable()
    return Trace(loaded, header[0] if header else TraceMeta())


def read_meta(path: str | os.PathLike[str]) -> TraceMeta:
    """Read only the header line of a trace (an empty :class:`TraceMeta` if it has none).

    Raises:
        TraceFormatError: If the first line is not JSON or is a malformed header.
        WslabError: If the file cannot be opened or has an unknown suffix.
    """
    name = os.fspath(path)
    with _open_lines(path) as stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                obj = _loads(line)
            except _JSON_ERRORS as exc:
                raise fail(name, lineno, f"line is not valid JSON ({exc})") from None
            if isinstance(obj, dict) and HEADER_KEY in obj:
                return parse_header(obj, name, lineno)
            break
    return TraceMeta()


# -- writing ------------------------------------------------------------------------------


def _header_line(meta: TraceMeta) -> bytes:
    return _dumps({HEADER_KEY: FORMAT_VERSION, "name": meta.name,
                   "description": meta.description, "source": meta.source}) + b"\n"


def _message_line(m: Message, index: int, prev_t: float) -> bytes:
    where = f"message {index}"
    t = m.t
    if type(t) not in (int, float) or not math.isfinite(t) or t < prev_t or t < 0:
        raise WslabError(f"{where}: field 't': must be a finite number >= {prev_t!r}, "
                         f"got {t!r}")
    if m.dir not in DIRS:
        raise WslabError(f"{where}: field 'dir': must be 's2c' or 'c2s', got {m.dir!r}")
    if m.priority not in PRIOS:
        raise WslabError(f"{where}: field 'priority': unknown priority {m.priority!r}")
    if not isinstance(m.type, str):
        raise WslabError(f"{where}: field 'type': must be a string, got {m.type!r}")
    if m.conn is not None and not isinstance(m.conn, str):
        raise WslabError(f"{where}: field 'conn': must be a string, got {m.conn!r}")
    obj: dict[str, Any] = {"t": float(t), "dir": m.dir, "type": m.type, "priority": m.priority}
    if m.is_text:
        try:
            obj["text"] = m.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise WslabError(f"{where}: field 'text': payload of a text message is not "
                             "valid UTF-8") from None
    else:
        obj["b64"] = base64.b64encode(m.payload).decode("ascii")
    if m.conn is not None:
        obj["conn"] = m.conn
    return _dumps(obj) + b"\n"


def write_trace(
    trace_or_messages: Trace | Iterable[Message],
    path: str | os.PathLike[str],
    meta: TraceMeta | None = None,
    *,
    level: int = _ZSTD_LEVEL,
) -> int:
    """Write a trace file atomically, streaming the messages as they come.

    The output goes to ``<path>.part`` first and is renamed over ``path`` only when every
    message has been written; on any error the part file is deleted and ``path`` is left as
    it was.

    Args:
        trace_or_messages: A :class:`Trace`, or any iterable of messages (e.g. a generator).
        path: Destination; ``.jsonl.zst`` is zstd-compressed, ``.jsonl`` is plain.
        meta: Header metadata. Defaults to the trace's own ``meta`` (or an empty one).
        level: zstd compression level for ``.jsonl.zst`` (1-22; ignored for ``.jsonl``).

    Returns:
        The number of messages written.

    Raises:
        WslabError: If a message is invalid (naming its index and field), e.g. a text
            message whose payload is not UTF-8 or a time that goes backwards.
    """
    if meta is None:
        meta = trace_or_messages.meta if isinstance(trace_or_messages, Trace) else TraceMeta()
    compressed = is_compressed(path)
    final = Path(path)
    part = final.with_name(final.name + ".part")
    count = 0
    try:
        with open(part, "wb") as raw:
            cctx = zstandard.ZstdCompressor(level=level) if compressed else None
            sink: IO[bytes] = cctx.stream_writer(raw, closefd=False) if cctx else raw
            chunk = [_header_line(meta)]
            prev_t = 0.0
            for m in trace_or_messages:
                chunk.append(_message_line(m, count, prev_t))
                prev_t = m.t
                count += 1
                if len(chunk) >= _CHUNK_LINES:
                    sink.write(b"".join(chunk))
                    chunk.clear()
            sink.write(b"".join(chunk))
            if cctx is not None:
                sink.close()  # ends the zstd frame; closefd=False keeps ``raw`` open
        os.replace(part, final)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return count
