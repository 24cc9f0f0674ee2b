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
    decoder accepts all of it (the one per-message Python call here; scalars such as ``"42"`` do not
    count as JSON documents). Depth counts nested containers (``{"a": [1]}`` is 2); key
    bytes count each object key with its two quotes. Those three come from one vectorised
    scan over all JSON messages together, which visits only the structural bytes: quotes
    not escaped by an odd run of backslashes delimit strings; brackets outside strings
    (an even number of quotes before them) give the depth by a running sum; a string whose
    next non-blank byte is ``:`` is a key.
    """
    n_msgs = len(payloads)
    is_json = np.zeros(n_msgs, dtype=bool)
    depth = np.zeros(n_msgs, dtype=np.int64)
    keys = np.zeros(n_msgs, dtype=np.int64)
    key_bytes = np.zeros(n_msgs, dtype=np.int64)
    docs: list[bytes] = []
    parse = _DECODER.raw_decode
    for i, p in enumerate(payloads):
        head = p[:64].lstrip()[:1]
        if head != b"{" and head != b"[":
            continue
        try:
            text = p.decode("utf-8").strip(_JSON_BLANKS)
            if parse(text)[1] != len(text):
                continue
        except (ValueError, UnicodeDecodeError):
            continue
        is_json[i] = True
        docs.append(p)
    if not docs:
        return JsonStructure(is_json, depth, keys, key_bytes)
    idx = np.flatnonzero(is_json)
    packed = Packed.of(docs)
    buf = packed.buf
    n = buf.size
    marks = np.flatnonzero(_JSON_MARK[buf])
    kind = buf[marks]
    quotes = marks[kind == 0x22]
    escaped = _escaped(buf, quotes)
    quotes = quotes[~escaped]
    q_open, q_close = quotes[0::2], quotes[1::2]
    brackets = marks[kind != 0x22]
    outside = np.searchsorted(quotes, brackets) % 2 == 0
    brackets = brackets[outside]
    step = np.where(_OPENING[buf[brackets]], 1, -1).astype(np.int32)
    level = np.cumsum(step)
    first = np.searchsorted(brackets, packed.starts)
    depth[idx] = np.maximum.reduceat(level, first)
    after = q_close + 1
    for _ in range(64):
        blank = after < n
        blank[blank] = _WS[buf[after[blank]]]
        if not blank.any():
            break
        after[blank] += 1
    is_key = after < n
    is_key[is_key] = buf[after[is_key]] == 0x3A
    doc_of = np.searchsorted(packed.starts, q_open, side="right") - 1
    keys[idx] = np.bincount(doc_of, weights=is_key, minlength=len(docs)).astype(np.int64)
    lens = (q_close - q_open + 1) * is_key
    key_bytes[idx] = np.bincount(doc_of, weights=lens, minlength=len(docs)).astype(np.int64)
    return JsonStructure(is_json, depth, keys, key_bytes)


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
