"""Summaries of a trace: overall counts and a table per (type, direction).

What lives here: :func:`describe` and its result :class:`TraceInfo`, which is what
``wslab trace info`` prints. Only sizes, counts and timing are summarised; content analysis
(entropy, repetition, compressibility) belongs to ``wslab.analysis``. Nothing here reads
files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from wslab.traces.model import PRIORITIES, Trace

#: Columns of :attr:`TraceInfo.by_type`, in order.
BY_TYPE_COLUMNS: tuple[str, ...] = (
    "type", "dir", "messages", "bytes", "mean_size", "p50_size", "p95_size", "max_size",
    "rate_per_s", *(f"share_{p}" for p in PRIORITIES),
)


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """Overall figures of a trace and a tidy per-(type, dir) table.

    Attributes:
        name: The trace's name from its metadata (may be empty).
        messages: Number of messages.
        bytes: Total payload bytes.
        duration_s: Seconds from the first message to the last.
        rate_per_s: Messages per second over the duration (0 if the duration is 0).
        text_share: Fraction of messages that are text (0 for an empty trace).
        binary_share: Fraction of messages that are binary.
        by_dir: Messages and bytes per direction, e.g. ``{"s2c": {"messages": 3, ...}}``.
        by_type: One row per (type, dir), columns :data:`BY_TYPE_COLUMNS`, sorted by
            messages (most first), then type and direction.
    """

    name: str
    messages: int
    bytes: int
    duration_s: float
    rate_per_s: float
    text_share: float
    binary_share: float
    by_dir: dict[str, dict[str, int]]
    by_type: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only, ready for ``json.dumps``."""
        rows = [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in self.by_type.to_dict(orient="records")
        ]
        return {
            "name": self.name,
            "messages": self.messages,
            "bytes": self.bytes,
            "duration_s": self.duration_s,
            "rate_per_s": self.rate_per_s,
            "text_share": self.text_share,
            "binary_share": self.binary_share,
            "by_dir": self.by_dir,
            "by_type": rows,
        }


def describe(trace: Trace) -> TraceInfo:
    """Summarise a trace's counts, sizes and rates.

    Rates divide by the whole trace's duration, so per-type rates add up to the overall
    rate.

    Args:
        trace: Any trace (may be empty).

    Returns:
        The overall figures and the per-(type, dir) table.
    """
    df = trace.frame()
    n = len(df)
    duration = float(trace.duration)
    total = int(df["size"].sum()) if n else 0
    text = int(df["is_text"].sum()) if n else 0
    by_dir = {
        d: {"messages": int((df["dir"] == d).sum()),
            "bytes": int(df.loc[df["dir"] == d, "size"].sum())}
        for d in ("s2c", "c2s")
    }
    if n:
        grouped = df.groupby(["type", "dir"], observed=True, sort=False)
        table = grouped["size"].agg(
            messages="count", bytes="sum", mean_size="mean", max_size="max",
            p50_size=lambda s: float(s.quantile(0.5)),
            p95_size=lambda s: float(s.quantile(0.95)),
        ).reset_index()
        prio = (pd.crosstab([df["type"], df["dir"]], df["priority"], normalize="index")
                .reindex(columns=list(PRIORITIES), fill_value=0.0))
        prio.columns = [f"share_{p}" for p in PRIORITIES]
        table = table.merge(prio.reset_index(), on=["type", "dir"], how="left")
        table["dir"] = table["dir"].astype(str)
        table["rate_per_s"] = table["messages"] / duration if duration > 0 else 0.0
        table = table.sort_values(["messages", "type", "dir"], ascending=[False, True, True])
        table = table[list(BY_TYPE_COLUMNS)].reset_index(drop=True)
        table["mean_size"] = table["mean_size"].astype(float)
    else:
        table = pd.DataFrame({c: [] for c in BY_TYPE_COLUMNS})
    return TraceInfo(
        name=trace.meta.name,
        messages=n,
        bytes=total,
        duration_s=duration,
        rate_per_s=n / duration if duration > 0 else 0.0,
        text_share=text / n if n else 0.0,
        binary_share=(n - text) / n if n else 0.0,
        by_dir=by_dir,
        by_type=table,
    )
