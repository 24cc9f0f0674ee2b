"""Batch envelopes: how several messages share one WebSocket frame, byte-exact.

What lives here: the three envelope formats, their encoders and decoders, the check that an
envelope can carry a set of messages, the ``auto`` choice, and the subprotocol names that
announce an envelope on the wire. Which messages go together is ``batching.py``'s business.

- ``json-array`` (text frame): ``[m1,m2,...]`` with each message's bytes verbatim; carries
  text messages that are JSON documents.
- ``ndjson`` (text frame): ``m1\nm2\n...mN``, no trailing newline; carries text messages
  without a newline.
- ``length-prefixed`` (binary frame): per message a flag byte (1 text, 0 binary), its
  length as unsigned LEB128, then its bytes; carries anything.

Messages are never re-escaped: the decoder returns each message's original bytes. When a
peer has agreed on an envelope (subprotocol ``wslab.v1.<envelope>``) every data frame is an
envelope, even one carrying a single message, so a frame is never ambiguous.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

import orjson

from wslab.errors import DecodeError, WslabError

ENVELOPES = ("json-array", "ndjson", "length-prefixed")
SUBPROTOCOL_PREFIX = "wslab.v1."
TEXT_ENVELOPES = frozenset({"json-array", "ndjson"})

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def subprotocol(envelope: str) -> str:
    """The subprotocol that announces ``envelope`` (``wslab.v1.json-array``)."""
    return SUBPROTOCOL_PREFIX + envelope


def envelope_of(subprotocol_name: str | None) -> str | None:
    """The envelope a negotiated subprotocol stands for, or None if it is not ours."""
    if subprotocol_name and subprotocol_name.startswith(SUBPROTOCOL_PREFIX):
        name = subprotocol_name[len(SUBPROTOCOL_PREFIX):]
        if name in ENVELOPES:
            return name
    return None


def is_json_document(payload: bytes) -> bool:
    """True if ``payload`` is one complete JSON document (UTF-8)."""
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        # orjson refuses a few documents the standard library accepts (numbers beyond
        # 64 bits, lone surrogates in escapes): let the standard parser have the last word.
        try:
            json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return False
    return True


def unfit_reason(envelope: str, payload: bytes, is_text: bool) -> str | None:
    """Why ``envelope`` cannot carry this message, or None if it can."""
    if envelope == "length-prefixed":
        return None
    if not is_text:
        return f"{envelope} carries text messages only, not binary"
    if envelope == "ndjson":
        return "ndjson cannot carry a message containing a newline" if b"\n" in payload else None
    if envelope == "json-array":
        return None if is_json_document(payload) else "json-array carries JSON documents only"
    raise WslabError(f"unknown envelope {envelope!r}; known: {', '.join(ENVELOPES)}")


def check_envelope(envelope: str, messages: Iterable[tuple[bytes, bool]]) -> None:
    """Raise a clear error if ``envelope`` cannot carry one of ``(payload, is_text)``."""
    for index, (payload, is_text) in enumerate(messages):
        reason = unfit_reason(envelope, payload, is_text)
        if reason:
            raise WslabError(f"envelope {envelope}: message {index} does not fit: {reason}; "
                             "use envelope auto or length-prefixed")


def choose_envelope(messages: Iterable[tuple[bytes, bool]]) -> str:
    """The ``auto`` choice: the most compact envelope that carries every message.

    json-array if every message is a JSON text document (the receiver can parse the
    frame in one call), else ndjson if every message is text without a newline, else
    length-prefixed.
    """
    json_ok = ndjson_ok = True
    for payload, is_text in messages:
        if not is_text:
            return "length-prefixed"
        if ndjson_ok and b"\n" in payload:
            ndjson_ok = False
        if json_ok and not is_json_document(payload):
            json_ok = False
        if not (json_ok or ndjson_ok):
            return "length-prefixed"
    return "json-array" if json_ok else "ndjson"


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode(envelope: str, payloads: Sequence[bytes], is_text: Sequence[bool]) -> bytes:
    """The frame payload that carries ``payloads`` in ``envelope``.

    The caller has made sure the envelope fits (see :func:`check_envelope`).
    """
    if envelope == "json-array":
        return b"[" + b",".join(payloads) + b"]"
    if envelope == "ndjson":
        return b"\n".join(payloads)
    if envelope == "length-prefixed":
        parts = []
        for payload, text in zip(payloads, is_text, strict=True):
            parts.append(b"\x01" if text else b"\x00")
            parts.append(_leb128(len(payload)))
            parts.append(payload)
        return b"".join(parts)
    raise WslabError(f"unknown envelope {envelope!r}; known: {', '.join(ENVELOPES)}")


def encoded_size(envelope: str, sizes: Sequence[int]) -> int:
    """Size of :func:`encode`'s output from the message sizes alone."""
    n = len(sizes)
    total = sum(sizes)
    if envelope == "json-array":
        return total + n + 1
    if envelope == "ndjson":
        return total + n - 1
    return total + n + sum(len(_leb128(s)) for s in sizes)


def decode(envelope: str, frame: bytes) -> list[tuple[bytes, bool]]:
    """Split a frame payload back into ``(payload, is_text)`` messages, byte-exact.

    Raises:
        DecodeError: the frame is not a well-formed envelope (the peer's fault: a
            server closes such a connection with code 1007).
    """
    if envelope == "ndjson":
        return [(part, True) for part in frame.split(b"\n")]
    if envelope == "json-array":
        return _decode_json_array(frame)
    if envelope == "length-prefixed":
        return _decode_length_prefixed(frame)
    raise WslabError(f"unknown envelope {envelope!r}; known: {', '.join(ENVELOPES)}")


def _decode_json_array(frame: bytes) -> list[tuple[bytes, bool]]:
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"json-array envelope is not UTF-8 at byte {exc.start}") from None
    if len(text) < 2 or text[0] != "[" or text[-1] != "]":
        raise DecodeError("json-array envelope must start with '[' and end with ']'")
    try:
        whole = orjson.loads(frame)
    except orjson.JSONDecodeError:
        whole = None  # the careful walk below says exactly what is wrong (or accepts it)
    if isinstance(whole, list) and len(whole) == 1:
        return [(frame[1:-1], True)]  # one message: everything between the brackets
    out: list[tuple[bytes, bool]] = []
    pos, end = 1, len(text) - 1
    if _WS.match(text, pos).end() == end:  # type: ignore[union-attr]
        raise DecodeError("json-array envelope carries no message")
    while True:
        start = pos
        doc_at = _WS.match(text, pos).end()  # type: ignore[union-attr]
        try:
            _, after = _DECODER.raw_decode(text, doc_at)
        except json.JSONDecodeError as exc:
            raise DecodeError(f"json-array envelope: message {len(out)} is not JSON "
                              f"({exc.msg} at char {exc.pos})") from None
        except RecursionError:
            raise DecodeError(f"json-array envelope: message {len(out)} is nested too "
                              "deeply") from None
        pos = _WS.match(text, after).end()  # type: ignore[union-attr]
        out.append((text[start:pos].encode("utf-8"), True))
        if pos == end:
            return out
        if pos > end or text[pos] != ",":
            raise DecodeError(f"json-array envelope: expected ',' or ']' at char {pos}")
        pos += 1


def _decode_length_prefixed(frame: bytes) -> list[tuple[bytes, bool]]:
    out: list[tuple[bytes, bool]] = []
    pos, n = 0, len(frame)
    if n == 0:
        raise DecodeError("length-prefixed envelope is empty")
    while pos < n:
        flag = frame[pos]
        if flag > 1:
            raise DecodeError(f"length-prefixed envelope: bad flag byte {flag} at byte {pos}")
        pos += 1
        length = shift = 0
        while True:
            if pos >= n:
                raise DecodeError("length-prefixed envelope: truncated length")
            byte = frame[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise DecodeError("length-prefixed envelope: length longer than 64 bits")
        if pos + length > n:
            raise DecodeError(f"length-prefixed envelope: message {len(out)} claims {length} "
                              f"bytes, {n - pos} left")
        out.append((frame[pos:pos + length], flag == 1))
        pos += length
    return out
