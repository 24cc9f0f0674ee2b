"""Sweeps: run many configs over one trace and collect one tidy row per point.

What lives here: :func:`run_sweep` (simulation mode; both cores through a process pool), the
row layout (every config field flattened as ``section.field``, then the summary metrics),
and resuming: each finished point is appended to ``OUT.partial.jsonl`` as it arrives, a
rerun skips the points already there, and the final table is written atomically at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from wslab.codecs.deflate import deflate_memory_bytes
from wslab.config import TuningConfig
from wslab.tune.results import write_tables
from wslab.tune.space import Space, point_key

Progress = Callable[[int, int], None]

_TRACE: Any = None
_HOLD_OUT = False


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def memory_estimate_kib(config: TuningConfig) -> float:
    """Compression memory per connection from the codec's documented formula, in KiB.

    Deflate: the server's compressor plus its decompressor for the client's window (zlib's
    formula). zstd: the contexts' own size estimates. 0 without compression.
    """
    c = config.compression
    if c.algorithm == "none":
        return 0.0
    if c.algorithm == "permessage-deflate":
        comp = deflate_memory_bytes(c.server_max_window_bits, c.mem_level, decoder=False)
        return (comp + (1 << c.client_max_window_bits)) / 1024
    import zstandard

    cctx = zstandard.ZstdCompressor(level=c.zstd_level)
    return float(cctx.memory_size() + zstandard.estimate_decompression_context_size()) / 1024


def point_row(config: TuningConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """One result row: the whole config flattened, then the metrics."""
    row = flatten(config.to_dict())
    n = summary["messages"] or 1
    lat = summary["latency_ms"]
    row.update({
        "messages": summary["messages"],
        "frames": summary["frames"],
        "payload_bytes": summary["payload_bytes"],
        "compressed_bytes": summary["compressed_bytes"],
        "ws_bytes": summary["ws_bytes"],
        "tcp_bytes": summary["tcp_bytes"],
        "tcp_segments": summary["tcp_segments"],
        "compression_ratio": summary["compression_ratio"],
        "ws_bytes_per_msg": summary["ws_bytes"] / n,
        "tcp_bytes_per_msg": summary["tcp_bytes"] / n,
        "cpu_us_per_msg": summary["cpu_us_per_msg"],
        "latency_p50_ms": lat["p50"], "latency_p90_ms": lat["p90"],
        "latency_p95_ms": lat["p95"],
        "latency_p99_ms": lat["p99"], "latency_max_ms": lat["max"],
        "mem_kib_per_conn": memory_estimate_kib(config),
        "lost": summary["lost"], "duplicated": summary["duplicated"],
        "reordered": summary["reordered"], "dropped": summary["dropped"],
    })
    return row


def init_worker(trace_path: str, hold_out: bool = False) -> None:
    """Load the trace once per worker process.

    Args:
        trace_path: The trace file.
        hold_out: Score every point on the messages after the zstd dictionaries' training
            prefix (the sweep holds a ``zstd-dict`` point; ``wslab/sim/dictionaries.py``).
    """
    global _TRACE, _HOLD_OUT
    from wslab.traces.io import read_trace

    _TRACE = read_trace(trace_path)
    _HOLD_OUT = hold_out


def run_point(point: dict[str, Any], base: dict[str, Any], seed: int) -> dict[str, Any]:
    """Simulate one point in a worker; return its result row."""
    from wslab.sim import simulate
    from wslab.sim.dictionaries import held_out

    config = TuningConfig.from_dict(base).updated(point)
    # zstd-dict sets its own training prefix aside (the same messages held_out drops).
    dict_point = config.compression.algorithm == "zstd-dict"
    trace = held_out(_TRACE) if _HOLD_OUT and not dict_point else _TRACE
    result = simulate(trace, config, seed=seed)
    return {"point": point_key(point), "mode": "sim", **point_row(config, result.summary)}


def holds_dictionaries(points: list[dict[str, Any]], base: dict[str, Any]) -> bool:
    """Whether any point of a sweep uses ``zstd-dict`` (then every point is held out)."""
    return any(TuningConfig.from_dict(base).updated(p).compression.algorithm == "zstd-dict"
               for p in points)


def partial_path(out: Path) -> Path:
    """Where finished rows of a sweep writing ``out`` are appended as they arrive."""
    return out.with_name(out.name + ".partial.jsonl")


def load_partial(path: Path) -> Iterator[dict[str, Any]]:
    """Rows already finished by an earlier, interrupted run."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line.endswith("}"):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:  # a line cut short by an interrupted run
                    continue


def run_sweep(
    trace_path: str | Path,
    points: list[dict[str, Any]],
    out: str | Path,
    *,
    base: TuningConfig | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Simulate every point on the trace; write and return the results table.

    Args:
        trace_path: The trace to replay.
        points: Dotted-field overrides, one dict per point (from :class:`Space`).
        out: Where the table goes (``.parquet`` or ``.csv``; the other format is written
            beside it).
        base: The config the points modify (default: defaults).
        seed: Link seed, the same for every point so points differ only by config.
        workers: Processes (default: every core).
        progress: Called with (done, total) as points finish.
    """
    out = Path(out)
    base_dict = (base or TuningConfig()).to_dict()
    for point in points:  # fail before any work on a point the config rejects
        TuningConfig.from_dict(base_dict).updated(point)
    partial = partial_path(out)
    done = {row["point"]: row for row in load_partial(partial)}
    todo = [p for p in points if point_key(p) not in done]
    total = len(points)
    finished = total - len(todo)
    if progress:
        progress(finished, total)
    if todo:
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        with open(partial, "a", encoding="utf-8") as sink, ProcessPoolExecutor(
            max_workers=workers, initializer=init_worker,
            initargs=(str(trace_path), holds_dictionaries(points, base_dict))
        ) as pool:
            futures = [pool.submit(run_point, p, base_dict, seed) for p in todo]
            for future in as_completed(futures):
                row = future.result()
                done[row["point"]] = row
                sink.write(json.dumps(row, default=str) + "\n")
                sink.flush()
                finished += 1
                if progress:
                    progress(finished, total)
    order = {point_key(p): i for i, p in enumerate(points)}
    rows = sorted((r for k, r in done.items() if k in order), key=lambda r: order[r["point"]])
    table = pd.DataFrame(rows)
    write_tables(table, out)
    partial.unlink(missing_ok=True)
    return table


def load_space_points(space: Space, mode: str, samples: int, seed: int) -> list[dict[str, Any]]:
    """Points for a mode: ``grid`` (every combination) or ``random`` (seeded samples)."""
    if mode == "grid":
        return space.grid()
    if mode == "random":
        return space.sample(samples, seed)
    from wslab.errors import WslabError

    raise WslabError(f"unknown sweep mode {mode!r}; known: grid, random")
