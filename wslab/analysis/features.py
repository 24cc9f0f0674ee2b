"""Per-message content features, computed for all messages of a trace at once.

What lives here: byte entropy and LZ-style repetition (inside a message, against earlier
messages of the same direction, and of the same type), each one numpy array with one value
per message, and :func:`message_features`, the per-message table that also carries the
JSON structure from ``jsonshape.py``. Every measure works on one packed buffer
(``packed.py``: all payloads concatenated, plus offsets) with whole-array numpy passes;
there are no Python loops over bytes, only over messages where a real parser is needed
(JSON validity). Compression itself (real zlib/zstd calls) lives in ``ratios.py``; turning
features into a guess of the ratio lives in ``predictor.py``. Nothing here compresses
anything or reads files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from wslab.traces.model import Trace

from .jsonshape import JsonStructure, json_structure
from .packed import BoolArray, FloatArray, IntArray, Packed

__all__ = [
    "MIN_MATCH",
    "BoolArray",
    "Coverage",
    "FloatArray",
    "IntArray",
    "JsonStructure",
    "Packed",
    "entropy",
    "group_ids",
    "json_structure",
    "match_coverage",
    "message_features",
]

MIN_MATCH = 4
"""Shortest back-reference that counts as repetition (deflate's minimum is 3, but a
3-byte match rarely pays for its length/distance codes; 4 is what zstd and LZ4 use)."""

_CHUNK_MESSAGES = 4096
_BLOCK_BYTES = 1 << 16


def entropy(packed: Packed) -> FloatArray:
    """Order-0 Shannon entropy of each message, in bits per byte (0 for an empty one).

    The byte histograms of up to 4096 messages at a time come from one ``bincount`` over
    ``message * 256 + byte``; ``H = log2(n) - sum(c * log2 c) / n`` then needs only a table
    lookup of ``c * log2 c``, no logarithm per histogram cell.
    """
    n_msgs = len(packed.lengths)
    out = np.zeros(n_msgs, dtype=np.float64)
    if n_msgs == 0 or packed.buf.size == 0:
        return out
    max_len = int(packed.lengths.max())
    counts_range = np.arange(max_len + 1, dtype=np.float64)
    clogc = np.zeros(max_len + 1, dtype=np.float64)
    clogc[1:] = counts_range[1:] * np.log2(counts_range[1:])
    for a in range(0, n_msgs, _CHUNK_MESSAGES):
        b = min(a + _CHUNK_MESSAGES, n_msgs)
        lens = packed.lengths[a:b]
        lo, hi = int(packed.starts[a]), int(packed.starts[b - 1] + lens[-1])
        local = np.repeat(np.arange(b - a, dtype=np.int64) * 256, lens)
        counts = np.bincount(local + packed.buf[lo:hi], minlength=(b - a) * 256)
        sum_clogc = clogc[counts].reshape(b - a, 256).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.where(lens > 0, np.log2(np.maximum(lens, 1)) - sum_clogc / lens, 0.0)
        out[a:b] = np.maximum(h, 0.0)
    return out


class Coverage(NamedTuple):
    """Per-message LZ coverage (see :func:`match_coverage`)."""

    inside: FloatArray
    history: FloatArray
    same_kind: FloatArray
    history_runs: FloatArray


def match_coverage(
    packed: Packed, groups: IntArray, window: int, kinds: IntArray | None = None
) -> Coverage:
    """Share of each message's bytes that an LZ77 coder could send as back-references.

    A byte counts as covered when it lies inside some 4-byte sequence (``MIN_MATCH``) whose
    nearest earlier occurrence is at most ``window`` bytes back. This is the measure that
    matters for deflate and zstd: covered bytes become (cheap) length/distance pairs, the
    rest are literals whose cost the entropy describes. Unlike a count of distinct
    characters it sees order, and unlike a distinct-4-gram share it honours the window.

    How: the 4-grams are numbered with a hash table (``pandas.factorize``) and put in
    order of (gram number, position) by a stable radix argsort on 16-bit digits; neighbours
    with the same number are then nearest earlier occurrences, and the difference of their
    positions is the match distance. That is linear time: no comparison sort, no per-byte
    Python.

    Args:
        packed: The payloads. Messages of one group must be contiguous and in send order
            (the caller orders them), so that "earlier in the buffer" means "sent before".
        groups: Stream id of every message (e.g. its direction): history only counts
            inside one stream.
        window: The LZ77 window in bytes (``1 << window_bits``).
        kinds: Kind id of every message (e.g. its type); defaults to ``groups``.

    Returns:
        ``inside``: the covered share counting only matches inside the same message (what
        a compressor without context takeover finds); ``history``: counting matches in
        earlier messages of the same group too (what a kept window can exploit);
        ``same_kind``: like ``history``, but a match into an earlier message counts only
        when the nearest earlier occurrence lies in a message of the same kind;
        ``history_runs``: covered runs per byte under ``history`` (each run is roughly one
        back-reference, whose length/distance code costs a few bytes).
    """
    n_msgs = len(packed.lengths)
    inside = np.zeros(n_msgs, dtype=np.float64)
    history = np.zeros(n_msgs, dtype=np.float64)
    buf = packed.buf
    n = buf.size
    if n < MIN_MATCH:
        return Coverage(inside, history, np.zeros(n_msgs), np.zeros(n_msgs))
    ends = packed.ends
    count_inside = np.zeros(n_msgs, dtype=np.int64)
    count_history = np.zeros(n_msgs, dtype=np.int64)
    count_runs = np.zeros(n_msgs, dtype=np.int64)
    count_kind = np.zeros(n_msgs, dtype=np.int64)
    kind_of = groups if kinds is None else kinds
    # Blocks of 64 KiB fit the caches; with a large window they grow so that the history
    # each block must re-read stays a quarter of the work at most.
    block = max(_BLOCK_BYTES, 4 * window)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        base = max(0, lo - window - (MIN_MATCH - 1))
        end = min(hi + MIN_MATCH - 1, n)
        # Local owner array: which message each byte of buf[base:end] belongs to.
        first = int(np.searchsorted(ends, base, side="right"))
        last = int(np.searchsorted(packed.starts, end, side="left"))
        spans = np.minimum(ends[first:last], end) - np.maximum(packed.starts[first:last], base)
        own = np.repeat(np.arange(first, last, dtype=np.int32), spans)
        _cover_block(buf[base:end], own, (groups, kind_of), window, lo - base, hi - base,
                     (count_inside, count_history, count_kind, count_runs))
    lengths = np.maximum(packed.lengths, 1)
    inside[:] = count_inside / lengths
    history[:] = count_history / lengths
    return Coverage(inside, history, count_kind / lengths, count_runs / lengths)


def _cover_block(
    seg: npt.NDArray[np.uint8],
    own: npt.NDArray[np.int32],
    ids: tuple[IntArray, IntArray],
    window: int,
    lo: int,
    hi: int,
    counts: tuple[IntArray, IntArray, IntArray, IntArray],
) -> None:
    """Count, per message, the covered bytes of ``seg[lo:hi]``.

    ``seg`` is a slice of the whole buffer that starts ``window + 3`` bytes before ``lo`` (the
    only history a match at or after ``lo`` can reach) and ends 3 bytes after ``hi``, and
    ``own`` gives the message of each of its bytes. Working block by block keeps every
    gather inside a cache-sized slice. A byte belongs to exactly one block, so each is
    counted once; matches starting up to 3 bytes before ``lo`` are included because they
    cover bytes of this block.
    """
    if seg.size < MIN_MATCH:
        return
    wide = seg.astype(np.uint32)
    gram = wide[:-3].copy()
    for k in (1, 2, 3):
        gram <<= 8
        gram |= wide[k : wide.size - 3 + k]
    pos = np.flatnonzero(own[:-3] == own[3:]).astype(np.int32)
    codes, uniques = pd.factorize(gram[pos])
    order = _stable_order(np.asarray(codes), len(uniques))
    codes_s = codes[order]
    pos_s = pos[order]
    same = codes_s[1:] == codes_s[:-1]
    prev = pos_s[:-1][same]
    cur = pos_s[1:][same]
    keep = ((cur - prev) <= window) & (cur >= lo - (MIN_MATCH - 1)) & (cur < hi)
    prev, cur = prev[keep], cur[keep]
    own_prev, own_cur = own[prev], own[cur]
    groups, kinds = ids
    in_stream = groups[own_prev] == groups[own_cur]
    in_kind = in_stream & (kinds[own_prev] == kinds[own_cur])
    # The three match sets nest (same message => same kind => same stream), so one byte
    # per position holds them all: 3 inside, 2 same kind, 1 same stream, 0 none. Each
    # match start covers itself and the next 3 bytes: a running max over 4 shifted views.
    pad = MIN_MATCH - 1
    hit_padded = np.zeros(seg.size + pad, dtype=np.uint8)
    hit = hit_padded[pad:]
    hit[cur] = in_stream.view(np.uint8) + in_kind.view(np.uint8) + (own_prev == own_cur)
    level = hit[lo:hi].copy()
    for k in range(1, MIN_MATCH):
        np.maximum(level, hit_padded[pad + lo - k : pad + hi - k], out=level)
    mine = own[lo:hi]
    count_inside, count_history, count_kind, count_runs = counts
    # One histogram of (message, level) gives all three tallies.
    first = int(mine[0])
    n_own = int(mine[-1]) - first + 1
    per = np.bincount((mine - first) * 4 + level, minlength=4 * n_own).reshape(n_own, 4)
    span = slice(first, first + per.shape[0])
    count_inside[span] += per[:, 3]
    count_kind[span] += per[:, 2] + per[:, 3]
    count_history[span] += per[:, 1] + per[:, 2] + per[:, 3]
    # Runs of the history coverage: a covered byte whose predecessor is uncovered or in
    # another message starts one.
    spread = level > 0
    starts = spread.copy()
    starts[1:] &= ~spread[:-1] | (mine[1:] != mine[:-1])
    if lo >= 1 and starts[0] and own[lo - 1] == own[lo]:
        starts[0] = not hit_padded[lo - 1 : lo + pad].any()
    _tally(count_runs, mine[starts])


def _tally(counts: IntArray, owners: npt.NDArray[np.int32]) -> None:
    """Add one to ``counts[m]`` for every ``m`` in the (sorted) ``owners``."""
    if owners.size:
        first = int(owners[0])
        counts[first : int(owners[-1]) + 1] += np.bincount(owners - first)


def _stable_order(codes: npt.NDArray[np.intp], n_codes: int) -> npt.NDArray[np.intp]:
    """Indices that sort ``codes`` (all in ``0..n_codes-1``) stably, by 16-bit radix passes.

    NumPy's stable sort of 16-bit integers is a radix sort; casting to ``uint16`` keeps
    the low 16 bits. Codes number the distinct 4-grams of one block, far below 2**32.
    """
    order = np.argsort(codes.astype(np.uint16), kind="stable")
    if n_codes > 0x10000:
        high = (codes >> 16)[order].astype(np.uint16)
        order = order[np.argsort(high, kind="stable")]
    return order


def group_ids(trace: Trace) -> tuple[IntArray, list[tuple[str, str]]]:
    """Id of each message's (type, dir) group, numbered by first appearance."""
    seen: dict[tuple[str, str], int] = {}
    ids = np.fromiter(
        (seen.setdefault((m.type, m.dir), len(seen)) for m in trace.messages),
        dtype=np.int64,
        count=len(trace.messages),
    )
    return ids, list(seen)


def _coverage_in_order(
    payloads: Sequence[bytes], groups: IntArray, kinds: IntArray, window: int
) -> Coverage:
    """:func:`match_coverage` with each group's messages sent back to back, in trace order."""
    order = np.argsort(groups, kind="stable")
    packed = Packed.of([payloads[i] for i in order])
    cov = match_coverage(packed, groups[order], window, kinds[order])
    n = len(order)
    out = Coverage(np.empty(n), np.empty(n), np.empty(n), np.empty(n))
    for src, dst in zip(cov, out, strict=True):
        dst[order] = src
    return out


def message_features(trace: Trace, *, window_bits: int = 15) -> pd.DataFrame:
    """One row per message (in trace order) with every content feature.

    Columns: ``t, dir, type, size, is_text, entropy_bits_per_byte``, then three LZ
    coverages (see :func:`match_coverage`; all within the window):

    - ``repetition``: matches inside the message itself (what a compressor without
      context takeover can use);
    - ``context_repetition``: matches inside it or in earlier messages of the same
      direction, in trace order (exactly the history a permessage-deflate sender with
      context takeover has, all types interleaved);
    - ``cross_repetition``: what earlier messages of the same type add over
      ``repetition``, in that same direction stream: bytes whose nearest earlier
      occurrence in the window lies in a previous message of the same type (how much of
      what context takeover finds comes from the type repeating itself);

    then ``context_runs_per_byte`` (covered runs under ``context_repetition`` per byte,
    roughly back-references per byte) and ``is_json, json_depth, json_keys,
    key_bytes_fraction``.

    Args:
        trace: The messages.
        window_bits: LZ77 window for the repetition measures, as deflate's ``wbits``.
    """
    msgs = trace.messages
    payloads = [m.payload for m in msgs]
    window = 1 << window_bits
    gids, _ = group_ids(trace)
    dirs = np.fromiter((m.dir == "c2s" for m in msgs), dtype=np.int64, count=len(msgs))
    inside, history, same_type, runs = _coverage_in_order(payloads, dirs, gids, window)
    packed = Packed.of(payloads)
    js = json_structure(payloads)
    sizes = packed.lengths
    with np.errstate(divide="ignore", invalid="ignore"):
        key_frac = np.where(sizes > 0, js.key_bytes / np.maximum(sizes, 1), 0.0)
    return pd.DataFrame(
        {
            "t": np.fromiter((m.t for m in msgs), dtype=np.float64, count=len(msgs)),
            "dir": pd.Series([m.dir for m in msgs], dtype="str"),
            "type": pd.Series([m.type for m in msgs], dtype="str"),
            "size": sizes,
            "is_text": np.fromiter((m.is_text for m in msgs), dtype=bool, count=len(msgs)),
            "entropy_bits_per_byte": entropy(packed),
            "repetition": inside,
            "context_repetition": history,
            "cross_repetition": np.maximum(same_type - inside, 0.0),
            "context_runs_per_byte": runs,
            "is_json": js.is_json,
            "json_depth": js.depth,
            "json_keys": js.keys,
            "key_bytes_fraction": key_frac,
        }
    )
