"""JSON detection and structure (depth, keys, key bytes), for many messages at once.

What lives here: :func:`json_structure` and its result type. It is a content feature like
those in ``features.py`` (which re-exports it), kept apart because it is a small scanner
of its own. Nothing here compresses or reads files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .packed import BoolArray, IntArray, Packed

_WS = np.zeros(256, dtype=bool)
_WS[[0x20, 0x09, 0x0A, 0x0D]] = True
_JSON_BLANKS = " \t\n\r"
_DECODER = json.JSONDecoder()
_JSON_MARK = np.zeros(256, dtype=bool)
_JSON_MARK[[0x22, 0x5B, 0x5D, 0x7B, 0x7D]] = True
_OPENING = np.zeros(256, dtype=bool)
_OPENING[[0x5B, 0x7B]] = True


@dataclass(frozen=True, slots=True)
class JsonStructure:
    """JSON facts per message (zeros where a message is not a JSON object or array)."""

    is_json: BoolArray
    depth: IntArray
    keys: IntArray
    key_bytes: IntArray


def json_structure(payloads: Sequence[bytes]) -> JsonStructure:
    """Detect JSON documents and measure their nesting depth, key count and key bytes.

    A message is JSON when its first non-blank byte is ``{`` or ``[`` and Python's JSON
    decoder accepts all of it (scalars such as ``"42"`` do not count as documents). Depth
    counts nested containers (``{"a": [1]}`` is 2); key bytes count each object key with
    its two quotes.

    Validity is checked per message with the standard decoder's ``raw_decode`` (the only
    per-message Python call here). Parsing all candidates as one joined array was tried
    and is slower: the one big result keeps the garbage collector busy.

    The scan covers all documents together and visits only structural bytes: quotes not
    escaped by an odd run of backslashes delimit strings; brackets outside strings (an even
    number of quotes before them) give the depth by a running sum; a string whose next
    non-blank byte is ``:`` is a key.
    """
    n_msgs = len(payloads)
    out = JsonStructure(np.zeros(n_msgs, dtype=bool), np.zeros(n_msgs, dtype=np.int64),
                        np.zeros(n_msgs, dtype=np.int64), np.zeros(n_msgs, dtype=np.int64))
    cand_idx: list[int] = []
    for i, p in enumerate(payloads):
        head = p[:1]
        if head != b"{" and head != b"[":
            head = p[:64].lstrip()[:1]
            if head != b"{" and head != b"[":
                continue
        cand_idx.append(i)
    if not cand_idx:
        return out
    valid = [i for i in cand_idx if _parses(payloads[i])]
    if not valid:
        return out
    idx = np.array(valid, dtype=np.int64)
    scan = _scan(Packed.of([payloads[i] for i in valid]))
    out.is_json[idx] = True
    out.depth[idx] = scan.depth
    out.keys[idx] = scan.keys
    out.key_bytes[idx] = scan.key_bytes
    return out


def _parses(doc: bytes) -> bool:
    """True when ``doc`` alone is one JSON value (with blanks around it at most)."""
    try:
        text = doc.decode("utf-8").strip(_JSON_BLANKS)
        return bool(_DECODER.raw_decode(text)[1] == len(text))
    except (ValueError, UnicodeDecodeError):
        return False


@dataclass(frozen=True, slots=True)
class _Scan:
    depth: IntArray
    keys: IntArray
    key_bytes: IntArray


def _scan(packed: Packed) -> _Scan:
    """The structural scan of valid JSON documents (see :func:`json_structure`)."""
    buf = packed.buf
    n = buf.size
    n_docs = len(packed.lengths)
    marks = np.flatnonzero(_JSON_MARK[buf])
    kind = buf[marks]
    quotes = marks[kind == 0x22]
    quotes = quotes[~_escaped(buf, quotes)]
    if quotes.size % 2:
        quotes = quotes[:-1]
    q_open, q_close = quotes[0::2], quotes[1::2]
    brackets = marks[kind != 0x22]
    brackets = brackets[np.searchsorted(quotes, brackets) % 2 == 0]
    level = np.cumsum(np.where(_OPENING[buf[brackets]], 1, -1).astype(np.int32))
    first = np.searchsorted(brackets, packed.starts)
    has = first < np.searchsorted(brackets, packed.ends)
    depth = np.zeros(n_docs, dtype=np.int64)
    if brackets.size:
        peak = np.maximum.reduceat(level, np.minimum(first, brackets.size - 1))
        depth[has] = peak[has]
    after = q_close + 1
    blank = after < n
    blank[blank] = _WS[buf[after[blank]]]
    while blank.any():
        after[blank] += 1
        blank &= after < n
        blank[blank] = _WS[buf[after[blank]]]
    is_key = after < n
    is_key[is_key] = buf[after[is_key]] == 0x3A
    doc_of = np.searchsorted(packed.starts, q_open, side="right") - 1
    keys = np.bincount(doc_of, weights=is_key, minlength=n_docs).astype(np.int64)
    lens = (q_close - q_open + 1) * is_key
    key_bytes = np.bincount(doc_of, weights=lens, minlength=n_docs).astype(np.int64)
    return _Scan(depth, keys, key_bytes)


def _escaped(buf: npt.NDArray[np.uint8], quotes: IntArray) -> BoolArray:
    """Which quotes are escaped: preceded by an odd run of backslashes (rare, so cheap)."""
    run = np.zeros(len(quotes), dtype=np.int64)
    look = quotes - 1
    active = (look >= 0) & (buf[np.maximum(look, 0)] == 0x5C)
    while active.any():
        run[active] += 1
        look[active] -= 1
        active &= look >= 0
        active[active] = buf[look[active]] == 0x5C
    odd: BoolArray = run % 2 == 1
    return odd
