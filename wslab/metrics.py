"""The numbers every run reports, defined once (DESIGN.md section 4).

What lives here: integrity counting (lost, duplicated, reordered within a class), latency
percentiles, and :func:`summarise`, which turns the per-message and per-frame tables of a
run into the summary record shared by ``wslab simulate --json`` and ``wslab bench --json``.
The simulator and the live harness both call these, so a figure means the same in both.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0}


def integrity_counts(
    received: Iterable[tuple[Hashable, int]], expected: Mapping[Hashable, int]
) -> dict[str, int]:
    """Lost, duplicated and reordered counts from what a receiver saw, in order.

    Args:
        received: ``(stream, seq)`` for every message as it was read, where ``stream`` is
            the ordering domain (connection and priority class) and ``seq`` counts from 0.
        expected: How many distinct messages each stream should deliver.

    Returns:
        ``lost`` (expected but never seen), ``duplicated`` (seen again), ``reordered`` (seen
        after a later sequence number of the same stream).
    """
    seen: dict[Hashable, set[int]] = {}
    highest: dict[Hashable, int] = {}
    duplicated = reordered = 0
    for stream, seq in received:
        got = seen.setdefault(stream, set())
        if seq in got:
            duplicated += 1
            continue
        got.add(seq)
        if seq < highest.get(stream, -1):
            reordered += 1
        else:
            highest[stream] = seq
    lost = sum(max(0, n - len(seen.get(stream, ()))) for stream, n in expected.items())
    return {"lost": lost, "duplicated": duplicated, "reordered": reordered}


def latency_summary(latency_ms: np.ndarray | pd.Series) -> dict[str, float | None]:
    """p50, p90, p99 and max of latencies in ms (NaN entries ignored; None when empty)."""
    values = np.asarray(latency_ms, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {**dict.fromkeys(PERCENTILES), "max": None}
    qs = np.percentile(values, list(PERCENTILES.values()))
    out: dict[str, float | None] = {k: float(v) for k, v in zip(PERCENTILES, qs, strict=True)}
    out["max"] = float(values.max())
    return out


def _block(messages: pd.DataFrame, frames: pd.DataFrame) -> dict[str, Any]:
    n = len(messages)
    payload = int(messages["size"].sum()) if n else 0
    compressed = int(frames["wire_payload_bytes"].sum()) if len(frames) else 0
    cpu = float(frames["compress_us"].sum()) if len(frames) else 0.0
    dcpu = float(frames["decompress_us"].sum()) if len(frames) else 0.0
    return {
        "messages": n,
        "frames": len(frames),
        "payload_bytes": payload,
        "compressed_bytes": compressed,
        "ws_bytes": int(frames["ws_bytes"].sum()) if len(frames) else 0,
        "tcp_bytes": int(frames["tcp_bytes"].sum()) if len(frames) else 0,
        "tcp_segments": int(frames["tcp_segments"].sum()) if len(frames) else 0,
        "compression_ratio": compressed / payload if payload else None,
        "cpu_us_per_msg": cpu / n if n else None,
        "decompress_us_per_msg": dcpu / n if n else None,
        "latency_ms": latency_summary(messages["latency_ms"])
        if n
        else latency_summary(np.array([])),
    }


def summarise(
    messages: pd.DataFrame,
    frames: pd.DataFrame,
    *,
    integrity: Mapping[str, int],
    dropped: int = 0,
) -> dict[str, Any]:
    """The summary record of a run: totals, latency, integrity, per direction and priority.

    ``compressed_bytes`` is the data-frame payload bytes on the wire (after compression,
    including any batch envelope); ``compression_ratio`` divides it by the application
    payload bytes, so envelope overhead counts against it. ``cpu_us_per_msg`` is the
    sender's compression CPU per message.
    """
    out = _block(messages, frames)
    out.update({k: int(v) for k, v in integrity.items()})
    out["dropped"] = dropped
    out["by_dir"] = {}
    for direction in ("s2c", "c2s"):
        m = messages[messages["dir"] == direction] if len(messages) else messages
        f = frames[frames["dir"] == direction] if len(frames) else frames
        out["by_dir"][direction] = _block(m, f)
    out["by_priority"] = {}
    for prio in ("critical", "normal", "background"):
        m = messages[messages["priority"] == prio] if len(messages) else messages
        if len(m):
            out["by_priority"][prio] = {
                "messages": len(m),
                "latency_ms": latency_summary(m["latency_ms"]),
            }
    out["control"] = {"frames": 0, "ws_bytes": 0, "note": "the simulator models data frames only"}
    return out
