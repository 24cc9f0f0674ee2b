"""Measured compression ratios: real zlib and zstd calls on the trace's own messages.

What lives here: per-message compressed sizes under permessage-deflate (with and without
context takeover) and per-message zstd, zstd with a dictionary trained per message type,
and their aggregation per (type, dir). Every number comes from the codecs in
``wslab.codecs``; nothing here estimates (that is ``predictor.py``) or decides (that is
``selector.py``).

ratio = compressed bytes / original bytes, lower is better. An aggregated ratio is
byte-weighted: the sum of compressed sizes over the sum of original sizes.

Context takeover is measured the way one connection sends the trace: one deflate encoder
per direction, fed every message of that direction in trace order, all types interleaved.
A message type's ratio with context therefore includes what it gains from (or loses to)
the other types sharing the window, as it would on a real socket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from wslab.codecs.deflate import DeflateEncoder
from wslab.codecs.zstd import ZstdEncoder, train_dictionary
from wslab.errors import WslabError
from wslab.traces.model import Trace

from .features import group_ids

DICT_TRAIN_FRACTION = 0.2
DICT_MIN_TRAIN = 8
DICT_MAX_TRAIN = 256
DICT_MIN_TEST = 8
DICT_BYTES = 16384


@dataclass(frozen=True, slots=True)
class CodecSettings:
    """The compressor settings every measured ratio uses.

    Attributes:
        window_bits: permessage-deflate window (``*_max_window_bits``), 9..15.
        mem_level: zlib ``memLevel``, 1..9.
        level: zlib level, -1..9.
        zstd_level: zstd level for the per-message and dictionary modes.
    """

    window_bits: int = 12
    mem_level: int = 5
    level: int = 6
    zstd_level: int = 3


def message_sizes(trace: Trace, settings: CodecSettings | None = None) -> pd.DataFrame:
    """Compressed size of every message, in trace order, under each codec mode.

    Returns:
        Columns ``size`` (original), ``deflate`` (context takeover: one encoder per
        direction in trace order), ``deflate_no_context`` (fresh compressor per message)
        and ``zstd`` (one complete zstd frame per message).
    """
    s = settings or CodecSettings()
    msgs = trace.messages
    payloads = [m.payload for m in msgs]
    size = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
    ctx = np.empty(len(payloads), dtype=np.int64)
    dirs = np.array([m.dir == "s2c" for m in msgs], dtype=bool)
    for d in (True, False):
        idx = np.flatnonzero(dirs == d)
        # One encoder per direction, fed that direction's messages in trace order.
        enc = DeflateEncoder(s.window_bits, s.mem_level, s.level).encode
        ctx[idx] = list(map(len, map(enc, [payloads[i] for i in idx])))
    fresh = DeflateEncoder(s.window_bits, s.mem_level, s.level, no_context_takeover=True).encode
    alone = np.array(list(map(len, map(fresh, payloads))), dtype=np.int64)
    zs = np.array(list(map(len, map(ZstdEncoder(s.zstd_level).encode, payloads))), dtype=np.int64)
    return pd.DataFrame(
        {"size": size, "deflate": ctx, "deflate_no_context": alone, "zstd": zs}
    )


@dataclass(frozen=True, slots=True)
class DictResult:
    """zstd-with-dictionary outcome for one message group.

    Attributes:
        sizes: Compressed size per message of the group (NaN for training messages and
            when no dictionary could be trained).
        ratio: Byte-weighted ratio over the held-out messages, or NaN.
        trained_on: How many (leading) messages trained the dictionary.
        note: Empty when measured; otherwise why the ratio is NaN.
    """

    sizes: npt.NDArray[np.float64]
    ratio: float
    trained_on: int
    note: str


def dictionary_split(n: int) -> int:
    """How many leading messages of a group of ``n`` train its dictionary.

    20 % of the group, at least 8 (zstd's minimum) and at most 256; the rest measure it.
    """
    return int(min(DICT_MAX_TRAIN, max(DICT_MIN_TRAIN, round(n * DICT_TRAIN_FRACTION))))


def zstd_dictionary_sizes(payloads: list[bytes], zstd_level: int = 3) -> DictResult:
    """Train a dictionary on the first messages of a group and measure it on the rest.

    Training uses :func:`dictionary_split` leading messages (so the measured messages were
    never seen by the trainer, as a dictionary shipped ahead of time would not have seen
    them). With fewer than ``8 + 2`` messages, or when zstd cannot train, the ratio is NaN
    and ``note`` says why.
    """
    n = len(payloads)
    sizes = np.full(n, np.nan)
    k = dictionary_split(n)
    if n < k + DICT_MIN_TEST:
        note = f"too few messages ({n}) for a dictionary: need {DICT_MIN_TRAIN + DICT_MIN_TEST}"
        return DictResult(sizes, float("nan"), 0, note)
    try:
        dictionary = train_dictionary(payloads[:k], dict_bytes=DICT_BYTES, search=False)
    except WslabError as exc:
        return DictResult(sizes, float("nan"), 0, f"no dictionary: {exc}")
    enc = ZstdEncoder(zstd_level, dictionary=dictionary).encode
    total = 0
    compressed = 0
    for i in range(k, n):
        c = len(enc(payloads[i]))
        sizes[i] = c
        compressed += c
        total += len(payloads[i])
    ratio = compressed / total if total else float("nan")
    return DictResult(sizes, ratio, k, "" if total else "held-out messages are all empty")


def ratios_by_type(
    trace: Trace,
    settings: CodecSettings | None = None,
    sizes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Measured ratios per (type, dir), groups in order of first appearance.

    Args:
        trace: The messages.
        settings: Codec settings (defaults: window 12, memLevel 5, level 6, zstd 3).
        sizes: A :func:`message_sizes` result for the same trace and settings, to reuse.

    Returns:
        Columns ``type, dir, messages, bytes, deflate_ratio, deflate_ratio_no_context,
        zstd_ratio, zstd_dict_ratio, zstd_dict_trained_on, zstd_dict_note``.
    """
    s = settings or CodecSettings()
    sz = message_sizes(trace, s) if sizes is None else sizes
    gids, keys = group_ids(trace)
    n_groups = len(keys)
    per = sz.groupby(gids).sum()
    rows = pd.DataFrame(
        {
            "type": pd.Series([k[0] for k in keys], dtype="str"),
            "dir": pd.Series([k[1] for k in keys], dtype="str"),
            "messages": np.bincount(gids, minlength=n_groups),
        }
    )
    orig = per["size"].reindex(range(n_groups)).to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rows["bytes"] = orig.astype(np.int64)
        for col, name in (
            ("deflate", "deflate_ratio"),
            ("deflate_no_context", "deflate_ratio_no_context"),
            ("zstd", "zstd_ratio"),
        ):
            comp = per[col].reindex(range(n_groups)).to_numpy(dtype=np.float64)
            rows[name] = np.where(orig > 0, comp / orig, np.nan)
    dict_ratio, trained, notes = [], [], []
    payloads = trace.payloads
    for g in range(n_groups):
        members = [payloads[i] for i in np.flatnonzero(gids == g)]
        res = zstd_dictionary_sizes(members, s.zstd_level)
        dict_ratio.append(res.ratio)
        trained.append(res.trained_on)
        notes.append(res.note)
    rows["zstd_dict_ratio"] = np.array(dict_ratio, dtype=np.float64)
    rows["zstd_dict_trained_on"] = np.array(trained, dtype=np.int64)
    rows["zstd_dict_note"] = pd.Series(notes, dtype="str")
    return rows
