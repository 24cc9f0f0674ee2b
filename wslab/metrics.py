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
import numpy.typing as npt
import pandas as pd

from wslab.priority import PRIORITIES

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}


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
    codes: dict[Hashable, int] = {stream: i for i, stream in enumerate(expected)}
    stream_ids: list[int] = []
    seqs: list[int] = []
    for stream, seq in received:
        stream_ids.append(codes.setdefault(stream, len(codes)))
        seqs.append(seq)
    want = np.zeros(len(codes), dtype=np.int64)
    for stream, n in expected.items():
        want[codes[stream]] = n
    return integrity_arrays(
        np.asarray(stream_ids, dtype=np.int64), np.asarray(seqs, dtype=np.int64), want
    )


def integrity_arrays(
    streams: npt.NDArray[np.int64], seqs: npt.NDArray[np.int64], expected: npt.NDArray[np.int64]
) -> dict[str, int]:
    """:func:`integrity_counts` on arrays: stream codes ``0..k-1`` and sequence numbers in
    the order received, and the expected count per stream code."""
    n = len(seqs)
    if n == 0:
        return {"lost": int(expected.clip(min=0).sum()), "duplicated": 0, "reordered": 0}
    span = int(seqs.max()) + 1
    keys = streams * span + seqs
    _, first = np.unique(keys, return_index=True)
    first.sort()  # first sightings, in the order received
    duplicated = n - len(first)
    s_first, q_first = streams[first], seqs[first]
    order = np.argsort(s_first, kind="stable")  # group by stream, keep receipt order
    grouped = s_first[order] * span + q_first[order]
    # Offsets make each stream's values exceed every earlier stream's, so a running max
    # over the concatenation restarts at each stream boundary.
    before = np.maximum.accumulate(grouped)[:-1]
    reordered = int((grouped[1:] < before).sum())
    seen = np.bincount(s_first, minlength=len(expected))[: len(expected)]
    lost = int(np.clip(expected - seen, 0, None).sum())
    return {"lost": lost, "duplicated": int(duplicated), "reordered": reordered}


def latency_summary(latency_ms: np.ndarray | pd.Series) -> dict[str, float | None]:
    """p50, p90, p95, p99 and max of latencies in ms (NaN entries ignored; None when empty)."""
    values = np.asarray(latency_ms, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {**dict.fromkeys(PERCENTILES), "max": None}
    qs = np.percentile(values, list(PERCENTILES.values()))
    out: dict[str, float | None] = {k: float(v) for k, v in zip(PERCENTILES, qs, strict=True)}
    out["max"] = float(values.max())
    return out


WIRE_TOTALS = (
    "frames",
    "compressed_bytes",
    "ws_bytes",
    "tcp_bytes",
    "tcp_segments",
    "compress_us",
    "decompress_us",
)


def frame_totals(frames: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per-direction wire totals from a per-frame table (the simulator's ``frames``)."""
    out: dict[str, dict[str, float]] = {}
    n_all = len(frames)
    columns = {name: frames[name].to_numpy() for name in _FRAME_SUMS} if n_all else {}
    for direction in ("s2c", "c2s"):
        chosen = _mask(frames, "dir", direction) if n_all else None
        n = int(chosen.sum()) if chosen is not None else 0
        totals: dict[str, float] = {"frames": n}
        for name, key in _FRAME_SUMS.items():
            is_int = key != "compress_us" and key != "decompress_us"
            if not n:
                totals[key] = 0 if is_int else 0.0
                continue
            total = columns[name][chosen].sum()
            totals[key] = int(total) if is_int else float(total)
        out[direction] = totals
    return out


_FRAME_SUMS = {"wire_payload_bytes": "compressed_bytes", "ws_bytes": "ws_bytes",
               "tcp_bytes": "tcp_bytes", "tcp_segments": "tcp_segments",
               "compress_us": "compress_us", "decompress_us": "decompress_us"}
"""Frame table column -> the wire total it sums into."""


def _mask(table: pd.DataFrame, column: str, value: str) -> npt.NDArray[np.bool_]:
    """Rows of ``table`` whose ``column`` equals ``value``, as a boolean array."""
    return np.asarray((table[column] == value).to_numpy(dtype=bool, na_value=False))


def _block(size: npt.NDArray[np.int64], latency: npt.NDArray[np.float64],
           wire: Mapping[str, float]) -> dict[str, Any]:
    """One block of the summary from the messages' sizes and latencies and wire totals."""
    n = len(size)
    payload = int(size.sum()) if n else 0
    compressed = int(wire["compressed_bytes"])
    return {
        "messages": n,
        "frames": int(wire["frames"]),
        "payload_bytes": payload,
        "compressed_bytes": compressed,
        "ws_bytes": int(wire["ws_bytes"]),
        "tcp_bytes": int(wire["tcp_bytes"]),
        "tcp_segments": int(wire["tcp_segments"]),
        "compression_ratio": compressed / payload if payload else None,
        "cpu_us_per_msg": wire["compress_us"] / n if n else None,
        "decompress_us_per_msg": wire["decompress_us"] / n if n else None,
        "latency_ms": latency_summary(latency),
    }


def summarise(
    messages: pd.DataFrame,
    wire: Mapping[str, Mapping[str, float]] | pd.DataFrame,
    *,
    integrity: Mapping[str, int],
    dropped: int = 0,
    control: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary record of a run: totals, latency, integrity, per direction and priority.

    Args:
        messages: One row per message with ``dir``, ``priority``, ``size``, ``latency_ms``.
        wire: Per-direction wire totals (``s2c``/``c2s`` -> the keys of
            :data:`WIRE_TOTALS`), or a per-frame table to total with :func:`frame_totals`.
        integrity: ``lost``, ``duplicated``, ``reordered``.
        dropped: Messages the batcher refused (background queue full).
        control: Handshake and control-frame figures, reported apart from data.

    ``compressed_bytes`` is the data-frame payload bytes on the wire (after compression,
    including any batch envelope); ``compression_ratio`` divides it by the application
    payload bytes, so envelope overhead counts against it. ``cpu_us_per_msg`` is the
    sender's compression CPU per message.
    """
    per_dir = frame_totals(wire) if isinstance(wire, pd.DataFrame) else wire
    total = {key: sum(per_dir[d][key] for d in per_dir) for key in WIRE_TOTALS}
    n = len(messages)
    size = (messages["size"].to_numpy(dtype=np.int64) if n
            else np.zeros(0, dtype=np.int64))
    latency = (messages["latency_ms"].to_numpy(dtype=np.float64) if n
               else np.zeros(0, dtype=np.float64))
    out = _block(size, latency, total)
    out.update({k: int(v) for k, v in integrity.items()})
    out["dropped"] = dropped
    out["by_dir"] = {}
    for direction in ("s2c", "c2s"):
        chosen = _mask(messages, "dir", direction) if n else np.zeros(0, dtype=bool)
        out["by_dir"][direction] = _block(size[chosen], latency[chosen],
                                          per_dir.get(direction, dict.fromkeys(WIRE_TOTALS, 0)))
    out["by_priority"] = {}
    for prio in PRIORITIES:
        chosen = _mask(messages, "priority", prio) if n else np.zeros(0, dtype=bool)
        if chosen.any():
            out["by_priority"][prio] = {
                "messages": int(chosen.sum()),
                "latency_ms": latency_summary(latency[chosen]),
            }
    out["control"] = (
        dict(control)
        if control is not None
        else {"frames": 0, "ws_bytes": 0, "note": "the simulator models data frames only"}
    )
    return out
