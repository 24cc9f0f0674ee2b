"""Sweeps: run many configs over one trace and collect one tidy row per distinct config.

What lives here: :func:`run_sweep` (simulation mode; both cores through a process pool), the
row layout (every config field flattened as ``section.field``, then the summary metrics,
then what the selector did and, for ``threshold``/``adaptive`` rows, the difference to the
same config with policy ``always``), and resuming: each finished point is appended to
``OUT.partial.jsonl`` as it arrives, a rerun skips the configs already there, and the final
table is written atomically at the end.

Work goes to the workers in chunks of points that release the same frames
(:func:`chunk_plan`), and each worker simulates with ``reuse=True``: a chunk's points share
their released frames, and points whose frames and compression agree share their coded
frames, with the codec CPU times measured the first time (``wslab/sim/cache.py``).

Where the chunks run is a :class:`ChunkRunner`: by default a process pool on this machine
(:class:`PoolRunner`); ``sweep_dask.py`` has one that sends them to a Dask cluster. The
orchestration (resuming, the partial file, the final table) is the same for both.

Requested points are folded by canonical config first (``canonical.py``): points that
differ only in fields that cannot matter (window bits with compression off, an interval
without batching, ...) are simulated once and listed once. The row's ``point`` is the
first such point without those fields; ``requested`` lists every point that mapped onto
it (JSON) and ``requested_count`` how many.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from wslab.codecs.deflate import deflate_memory_bytes
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.lifeline import process_pool
from wslab.tables import write_tables
from wslab.tune.canonical import PlannedPoint, canonical_key, plan_points
from wslab.tune.policy import add_policy_columns
from wslab.tune.space import Space, point_key

Progress = Callable[[int, int], None]

_TRACE: Any = None
_HOLD_OUT = False
# On a Dask worker: traces loaded by a plugin, by key, and how many loads there were.
_LOADED: dict[str, tuple[Any, bool]] = {}
_LOADS = 0


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


def memory_estimate_kib(config: TuningConfig, dictionary_bytes: int = 0) -> float:
    """Compression memory per connection on the server, in KiB.

    Deflate: the server's compressor plus its decompressor for the client's window (zlib's
    formula); without context takeover a side keeps nothing between messages (wslab's
    encoder and the websockets library's decoder both let the context go after each
    message), so that side counts 0. zstd: the server's compression and decompression
    contexts as zstd itself counts them once a message has gone through (``zstd_memory_bytes``: with
    ``zstd-stream`` they hold the agreed window and tables for the connection's life),
    plus for ``zstd-dict`` the trained dictionaries (``dictionary_bytes``, the summary
    record's ``dictionary_bytes``). 0 without compression.
    """
    c = config.compression
    if c.algorithm == "none":
        return 0.0
    if c.algorithm == "permessage-deflate":
        comp = (0 if c.server_no_context_takeover else
                deflate_memory_bytes(c.server_max_window_bits, c.mem_level, decoder=False))
        decomp = 0 if c.client_no_context_takeover else 1 << c.client_max_window_bits
        return (comp + decomp) / 1024

    compressor, decompressor = _zstd_memory(c.zstd_level, c.zstd_window_log,
                                            c.algorithm == "zstd-stream")
    extra = dictionary_bytes if c.algorithm == "zstd-dict" else 0
    return float(compressor + decompressor + extra) / 1024


@functools.lru_cache(maxsize=64)
def _zstd_memory(level: int, window_log: int, stream: bool) -> tuple[int, int]:
    from wslab.codecs.zstd import zstd_memory_bytes

    return zstd_memory_bytes(level, window_log, stream=stream)


def _compact(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def point_row(config: TuningConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """One result row: the whole config flattened, then the metrics.

    ``frames_plain`` counts frames sent uncompressed although compression was on,
    ``plain_keys`` says of which message types (compact JSON, type -> frames) and
    ``c2s_messages`` how many messages the client sent; each is missing (None) when the
    summary does not carry it.
    """
    row = flatten(config.to_dict())
    n = summary["messages"] or 1
    lat = summary["latency_ms"]
    c2s = summary.get("by_dir", {}).get("c2s", {}).get("messages")
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
        "mem_kib_per_conn": memory_estimate_kib(config,
                                                int(summary.get("dictionary_bytes") or 0)),
        "lost": summary["lost"], "duplicated": summary["duplicated"],
        "reordered": summary["reordered"], "dropped": summary["dropped"],
        "frames_compressed": summary.get("frames_compressed"),
        "frames_plain": summary.get("frames_plain"),
        "plain_keys": _compact(summary.get("plain_by_key")),
        "c2s_messages": c2s,
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
    # reuse: points of one chunk share their streams' released and coded frames where
    # those cannot differ (wslab/sim/cache.py); codec CPU times are then measured once
    result = simulate(trace, config, seed=seed, reuse=True)
    return {"point": point_key(point), "mode": "sim", **point_row(config, result.summary)}


def run_points(points: list[dict[str, Any]], base: dict[str, Any],
               seed: int) -> list[dict[str, Any]]:
    """Simulate a chunk of points in one worker, in order (see :func:`chunk_plan`)."""
    return [run_point(point, base, seed) for point in points]


def load_on_worker(path: str, key: str, hold_out: bool) -> None:
    """Load a trace on a Dask worker under ``key`` (the worker plugin calls this once)."""
    global _LOADS
    from wslab.traces.io import read_trace

    _LOADED[key] = (read_trace(path), hold_out)
    _LOADS += 1


def forget_on_worker(key: str, hold_out: bool) -> None:
    """Drop the trace loaded under ``key`` (the plugin's removal calls this)."""
    _LOADED.pop(key, None)


def trace_loads() -> int:
    """How many times this process loaded a trace through :func:`load_on_worker`."""
    return _LOADS


def run_points_of(key: str, points: list[dict[str, Any]], base: dict[str, Any],
                  seed: int) -> list[dict[str, Any]]:
    """:func:`run_points` on the trace loaded under ``key`` (a Dask worker, one thread)."""
    global _TRACE, _HOLD_OUT
    _TRACE, _HOLD_OUT = _LOADED[key]
    return run_points(points, base, seed)


@dataclass(frozen=True)
class SweepJob:
    """What every chunk of one sweep shares."""

    trace_path: str
    base: dict[str, Any]
    seed: int
    hold_out: bool


Chunk = list[dict[str, Any]]


class ChunkRunner(Protocol):
    """Runs chunks of points somewhere and yields (chunk index, rows) as each finishes."""

    @property
    def workers(self) -> int: ...

    def run(self, job: SweepJob, chunks: list[Chunk]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        ...


@dataclass
class PoolRunner:
    """Chunks on this machine, a process pool of ``workers`` (the trace loaded once each)."""

    workers: int

    def run(self, job: SweepJob, chunks: list[Chunk]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        # lifeline: on Ctrl-C the queued points are dropped and the workers stopped at once
        with process_pool(self.workers, init_worker, (job.trace_path, job.hold_out)) as pool:
            futures = {pool.submit(run_points, chunk, job.base, job.seed): i
                       for i, chunk in enumerate(chunks)}
            for future in as_completed(futures):
                yield futures[future], future.result()


def chunk_plan(plan: list[PlannedPoint], base: TuningConfig,
               workers: int) -> list[list[PlannedPoint]]:
    """The planned points in chunks, one worker each, so points that can share frames meet.

    Points whose configs agree on everything the send pipeline reads (``batching`` and
    ``scaling``) release the same frames, so they go to one chunk and the worker releases
    them once (and codes them once per compression config; other batching configs that
    happen to release the same frames share the coding too when they meet in one worker,
    found by the frames' digest). Grouping by the frames themselves would need every
    batching config's frames released before the pool starts: on the 500-point bench that
    cost more (1.3 s serial) than the 5 % of worker CPU it saved. Largest chunks come first
    (the pool then balances the cores); while there are fewer than two chunks per worker
    the largest is halved, so no core idles for want of a chunk.
    """
    groups: dict[str, list[PlannedPoint]] = {}
    for planned in plan:
        config = base.updated(planned.overrides)
        key = config.batching.model_dump_json() + config.scaling.model_dump_json()
        groups.setdefault(key, []).append(planned)
    chunks = sorted(groups.values(), key=len, reverse=True)
    while chunks and len(chunks) < 2 * workers and len(chunks[0]) > 1:
        largest = chunks.pop(0)
        half = (len(largest) + 1) // 2
        chunks += [largest[:half], largest[half:]]
        chunks.sort(key=len, reverse=True)
    return chunks


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


def row_key(row: dict[str, Any]) -> str | None:
    """The canonical key of the config a results row holds (None if it cannot be rebuilt)."""
    from wslab.tune.recommend_pareto import row_config

    try:
        return canonical_key(row_config(row))
    except WslabError:
        return None


def listed_row(row: dict[str, Any], planned: PlannedPoint) -> dict[str, Any]:
    """A finished row as the table lists it: its canonical point and the points it stands for."""
    out = dict(row)
    out["point"] = point_key(planned.point)
    out["requested"] = json.dumps(list(planned.requested), sort_keys=True, default=str)
    out["requested_count"] = len(planned.requested)
    return out


def run_sweep(
    trace_path: str | Path,
    points: list[dict[str, Any]],
    out: str | Path,
    *,
    base: TuningConfig | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: Progress | None = None,
    runner: ChunkRunner | None = None,
) -> pd.DataFrame:
    """Simulate every distinct config the points ask for; write and return the results table.

    Args:
        trace_path: The trace to replay.
        points: Dotted-field overrides, one dict per point (from :class:`Space`). Points
            with the same canonical config (see ``canonical.py``) share one simulation
            and one row.
        out: Where the table goes (``.parquet`` or ``.csv``; the other format is written
            beside it).
        base: The config the points modify (default: defaults).
        seed: Link seed, the same for every point so points differ only by config.
        workers: Processes (default: every core); ignored with ``runner``.
        progress: Called with (done, total) as configs finish (total: distinct configs).
        runner: Where the chunks run (default: a :class:`PoolRunner` on this machine).
    """
    out = Path(out)
    base_config = base or TuningConfig()
    base_dict = base_config.to_dict()
    plan = plan_points(points, base_config)  # fails before any work on a rejected point
    partial = partial_path(out)
    done: dict[str, dict[str, Any]] = {}
    for row in load_partial(partial):
        key = row_key(row)
        if key is not None:
            done[key] = row
    todo = [p for p in plan if p.key not in done]
    total = len(plan)
    finished = total - len(todo)
    if progress:
        progress(finished, total)
    if todo:
        if runner is None:
            runner = PoolRunner(max(1, min(workers or os.cpu_count() or 1, len(todo))))
        job = SweepJob(str(trace_path), base_dict, seed, holds_dictionaries(points, base_dict))
        chunks = chunk_plan(todo, base_config, runner.workers)
        with open(partial, "a", encoding="utf-8") as sink:
            for index, rows in runner.run(job, [[p.overrides for p in c] for c in chunks]):
                for planned, row in zip(chunks[index], rows, strict=True):
                    done[planned.key] = row
                    sink.write(json.dumps(row, default=str) + "\n")
                finished += len(chunks[index])
                sink.flush()
                if progress:
                    progress(finished, total)
    table = add_policy_columns(pd.DataFrame([listed_row(done[p.key], p) for p in plan]))
    write_tables(table, out)
    partial.unlink(missing_ok=True)
    return table


def load_space_points(space: Space, mode: str, samples: int, seed: int) -> list[dict[str, Any]]:
    """Points for a mode: ``grid`` (every combination) or ``random`` (seeded samples)."""
    if mode == "grid":
        return space.grid()
    if mode == "random":
        return space.sample(samples, seed)
    raise WslabError(f"unknown sweep mode {mode!r}; known: grid, random")
