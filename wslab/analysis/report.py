"""The content analysis of a trace: one row per (type, dir), with a recommendation.

What lives here: :func:`analyse`, which joins features (``features.py``), measured ratios
(``ratios.py``) and the predictor (``predictor.py``) into the table ``wslab analyse``
prints, the plain-words recommendation per row, and :func:`analysis_json`, the JSON-safe
form of that table. Nothing here parses command-line options or prints.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from wslab.traces.model import Trace

from .features import message_features
from .predictor import predict_messages
from .ratios import CodecSettings, message_sizes, ratios_by_type

WORTH_IT = 0.9
"""Compress a type when deflate brings it to this ratio or lower (saves >= 10 %)."""

ALONE_IS_ENOUGH = 0.8
"""Without context a type must reach this ratio to be called plain "compress"."""

TAKEOVER_GAIN = 0.05
"""Context takeover is recommended only when the shared window lowers the ratio by at least
this much: a window that buys nothing still costs its memory on every connection."""

COLUMNS = (
    "type", "dir", "messages", "bytes", "mean_size", "entropy_bits_per_byte", "repetition",
    "context_repetition", "json_fraction", "json_depth", "key_bytes_fraction",
    "deflate_ratio", "deflate_ratio_no_context", "zstd_ratio", "zstd_dict_ratio",
    "predicted_ratio", "recommendation", "reason", "zstd_dict_note",
)


def analyse(
    trace: Trace,
    *,
    window_bits: int = 12,
    mem_level: int = 5,
    level: int = 6,
    zstd_level: int = 3,
) -> pd.DataFrame:
    """Analyse a trace's content per (type, dir), groups in order of first appearance.

    Feature columns are byte-weighted over the group's messages (entropy, repetition,
    key share), except ``json_fraction`` (share of messages that are JSON documents) and
    ``json_depth`` (mean depth of those). Ratio columns are measured with real codecs at
    the given settings (see ``ratios.py`` for how context takeover and dictionaries are
    measured); ``predicted_ratio`` is the cheap predictor's guess of ``deflate_ratio``.

    Args:
        trace: The messages.
        window_bits: permessage-deflate window bits, 9..15.
        mem_level: zlib memLevel, 1..9.
        level: zlib level, -1..9.
        zstd_level: zstd level.

    Returns:
        One row per (type, dir) with the columns in ``COLUMNS``.
    """
    settings = CodecSettings(window_bits, mem_level, level, zstd_level)
    feats = message_features(trace, window_bits=window_bits)
    ratios = ratios_by_type(trace, settings)
    if len(ratios) == 0:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    size = feats["size"].to_numpy(dtype=np.float64)
    is_json = feats["is_json"].to_numpy()
    work = pd.DataFrame(
        {
            "type": feats["type"],
            "dir": feats["dir"],
            "size": size,
            "w_entropy": feats["entropy_bits_per_byte"].to_numpy() * size,
            "w_rep": feats["repetition"].to_numpy() * size,
            "w_ctx": feats["context_repetition"].to_numpy() * size,
            "w_keys": feats["key_bytes_fraction"].to_numpy() * size,
            "w_pred": predict_messages(feats) * size,
            "json": is_json.astype(np.float64),
            "json_depth": np.where(is_json, feats["json_depth"].to_numpy(), np.nan),
        }
    )
    per = work.groupby(["type", "dir"], sort=False).agg(
        size=("size", "sum"),
        w_entropy=("w_entropy", "sum"),
        w_rep=("w_rep", "sum"),
        w_ctx=("w_ctx", "sum"),
        w_keys=("w_keys", "sum"),
        w_pred=("w_pred", "sum"),
        json=("json", "mean"),
        json_depth=("json_depth", "mean"),
    )
    per = per.reindex(pd.MultiIndex.from_frame(ratios[["type", "dir"]]))
    total = per["size"].to_numpy(dtype=np.float64)
    denom = np.where(total > 0, total, np.nan)
    out = ratios[["type", "dir", "messages", "bytes"]].copy()
    out["mean_size"] = total / out["messages"].to_numpy(dtype=np.float64)
    out["entropy_bits_per_byte"] = per["w_entropy"].to_numpy() / denom
    out["repetition"] = per["w_rep"].to_numpy() / denom
    out["context_repetition"] = per["w_ctx"].to_numpy() / denom
    out["json_fraction"] = per["json"].to_numpy()
    out["json_depth"] = per["json_depth"].to_numpy()
    out["key_bytes_fraction"] = per["w_keys"].to_numpy() / denom
    for col in ("deflate_ratio", "deflate_ratio_no_context", "zstd_ratio", "zstd_dict_ratio"):
        out[col] = ratios[col].to_numpy()
    out["predicted_ratio"] = per["w_pred"].to_numpy() / denom
    advice = [recommend(r) for r in out.to_dict("records")]
    out["recommendation"] = pd.Series([a[0] for a in advice], dtype="str")
    out["reason"] = pd.Series([a[1] for a in advice], dtype="str")
    out["zstd_dict_note"] = ratios["zstd_dict_note"].to_numpy()
    out.attrs["settings"] = {
        "window_bits": window_bits, "mem_level": mem_level, "level": level,
        "zstd_level": zstd_level,
    }
    return out[list(COLUMNS)]


def recommend(row: Mapping[Hashable, Any]) -> tuple[str, str]:
    """The recommendation for one analysed group, and why, in plain words.

    ``skip`` when deflate with context takeover saves less than 10 %; ``compress`` when a
    message alone already shrinks to 0.8 or less (so even ``no_context_takeover`` pays);
    ``compress (context takeover)`` when the savings come from repeats across messages,
    that is when the shared window lowers the ratio by :data:`TAKEOVER_GAIN` or more; a
    window that changes nothing (alone 0.90, shared 0.90) gets ``compress`` with
    ``no_context_takeover``, which spares each connection the window's memory.
    """
    d = float(row["deflate_ratio"])
    alone = float(row["deflate_ratio_no_context"])
    if not row["bytes"] or math.isnan(d):
        return "skip", "no payload bytes to compress"
    entropy = float(row["entropy_bits_per_byte"])
    rep = float(row["context_repetition"])
    zd = row.get("zstd_dict_ratio", float("nan"))
    dict_hint = ""
    if zd is not None and not math.isnan(float(zd)) and float(zd) < min(d, WORTH_IT) - 0.05:
        dict_hint = f"; zstd with a trained dictionary reaches {float(zd):.2f}"
    if d > WORTH_IT:
        return "skip", (
            f"deflate saves only {max(0.0, 1 - d):.0%} (ratio {d:.2f}): {entropy:.1f} bits of "
            f"entropy per byte and {rep:.0%} of bytes repeated, not worth the CPU{dict_hint}"
        )
    if alone <= ALONE_IS_ENOUGH:
        return "compress", (
            f"compresses to {d:.2f} with context takeover and {alone:.2f} without: each "
            f"message carries its own repeats{dict_hint}"
        )
    if alone - d < TAKEOVER_GAIN:
        return "compress", (
            f"compresses to {d:.2f} with the shared window and {alone:.2f} without: the "
            f"window adds little, so no_context_takeover saves its memory{dict_hint}"
        )
    return "compress (context takeover)", (
        f"a message alone only shrinks to {alone:.2f}, but with the shared window it goes "
        f"to {d:.2f}: {rep:.0%} of its bytes repeat recent messages{dict_hint}"
    )


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def analysis_json(df: pd.DataFrame) -> dict[str, Any]:
    """The analysis as plain JSON values: ``{"settings", "types": [...], "totals"}``.

    NaN becomes ``null``; numpy scalars become Python numbers. ``totals`` gives the
    byte-weighted ratios over the whole trace (NaN-holding groups left out of each).
    """
    types = [{k: _json_value(v) for k, v in rec.items()} for rec in df.to_dict("records")]
    totals: dict[str, Any] = {
        "messages": int(df["messages"].sum()) if len(df) else 0,
        "bytes": int(df["bytes"].sum()) if len(df) else 0,
    }
    for col in ("deflate_ratio", "deflate_ratio_no_context", "zstd_ratio", "zstd_dict_ratio",
                "predicted_ratio"):
        if not len(df):
            totals[col] = None
            continue
        ok = df[col].notna() & (df["bytes"] > 0)
        b = df.loc[ok, "bytes"].to_numpy(dtype=np.float64)
        r = df.loc[ok, col].to_numpy(dtype=np.float64)
        totals[col] = _json_value(float((r * b).sum() / b.sum())) if b.sum() > 0 else None
    return {"settings": dict(df.attrs.get("settings", {})), "types": types, "totals": totals}


def message_table(trace: Trace, *, window_bits: int = 12, mem_level: int = 5,
                  level: int = 6, zstd_level: int = 3) -> pd.DataFrame:
    """Per-message features joined with measured sizes and the predicted ratio.

    For notebooks that plot messages one by one; columns are those of
    :func:`~wslab.analysis.features.message_features` plus ``deflate``,
    ``deflate_no_context``, ``zstd`` (compressed bytes) and ``predicted_ratio``.
    """
    settings = CodecSettings(window_bits, mem_level, level, zstd_level)
    feats = message_features(trace, window_bits=window_bits)
    sizes = message_sizes(trace, settings)
    return feats.assign(
        deflate=sizes["deflate"].to_numpy(),
        deflate_no_context=sizes["deflate_no_context"].to_numpy(),
        zstd=sizes["zstd"].to_numpy(),
        predicted_ratio=predict_messages(feats),
    )
