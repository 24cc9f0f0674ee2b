"""The two yardsticks a recommendation is measured against, and the tidy comparison.

What lives here: the baselines (``defaults``: the websockets library's own settings,
permessage-deflate 12/5 level 6 and no batching; ``plain``: no batching and no compression),
each on the same link as the chosen point; finding their rows in a results table, or
simulating them when the table lacks them and a trace (or a simulate function) is given;
and :func:`compare`, one tidy row per (baseline, metric).

What must not live here: choosing the point, wording the explanation, printing, file I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from wslab.config import BatchingConfig, CompressionConfig, TuningConfig
from wslab.errors import WslabError
from wslab.traces.model import Trace

SimulateFn = Callable[[TuningConfig], Mapping[str, Any]]
"""Turns a config into a results row (at least the metric columns)."""

BASELINES = {
    "defaults": "the library defaults (permessage-deflate 12/5, level 6, no batching)",
    "plain": "no batching and no compression",
}

COMPARE_METRICS = (
    "ws_bytes_per_msg",
    "tcp_bytes_per_msg",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "cpu_us_per_msg",
    "mem_kib_per_conn",
)

# Compression fields that change what permessage-deflate sends (threshold only matters
# with policy "threshold", zstd fields only for zstd).
_DEFLATE_FIELDS = (
    "algorithm",
    "server_max_window_bits",
    "client_max_window_bits",
    "mem_level",
    "level",
    "server_no_context_takeover",
    "client_no_context_takeover",
    "policy",
)


def baseline_config(name: str, chosen: TuningConfig) -> TuningConfig:
    """The baseline's config: the chosen one with batching and compression replaced.

    Link, scaling and everything else stay as chosen, so the comparison changes only what
    the recommendation changed.
    """
    if name == "defaults":
        return chosen.model_copy(
            update={"batching": BatchingConfig(), "compression": CompressionConfig()}
        )
    if name == "plain":
        return chosen.updated({"batching.strategy": "none", "compression.algorithm": "none"})
    raise ValueError(f"unknown baseline {name!r}")


def baseline_spec(name: str, chosen: TuningConfig) -> dict[str, Any]:
    """The columns (and values) a table row must match to stand for the baseline."""
    spec: dict[str, Any] = {"batching.strategy": "none", "link.profile": chosen.link.profile}
    if name == "plain":
        spec["compression.algorithm"] = "none"
        return spec
    defaults = CompressionConfig()
    for field in _DEFLATE_FIELDS:
        spec[f"compression.{field}"] = getattr(defaults, field)
    return spec


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def find_row(df: pd.DataFrame, spec: Mapping[str, Any]) -> pd.Series | None:
    """The first row matching every spec column present in the table, or ``None``."""
    mask = pd.Series(True, index=df.index)
    for column, wanted in spec.items():
        if column not in df.columns:
            continue
        mask &= df[column].map(lambda v, w=wanted: _same(v, w)).astype(bool)
    hits = df[mask]
    return None if hits.empty else hits.iloc[0]


def trace_simulator(trace: Trace | str | Path, *, seed: int = 0) -> SimulateFn:
    """A :data:`SimulateFn` replaying ``trace`` (a loaded trace or a path) in the simulator."""
    from wslab.sim import simulate
    from wslab.traces.io import read_trace
    from wslab.tune.sweep import point_row

    loaded = trace if isinstance(trace, Trace) else read_trace(trace)

    def run(config: TuningConfig) -> dict[str, Any]:
        result = simulate(loaded, config, seed=seed)
        return {"point": "baseline", "mode": "sim", **point_row(config, result.summary)}

    return run


def baseline_rows(
    df: pd.DataFrame,
    chosen_row: pd.Series,
    chosen: TuningConfig,
    simulate_fn: SimulateFn | None,
) -> tuple[dict[str, pd.Series | None], dict[str, str]]:
    """Each baseline's row and where it came from (``table``, ``simulated``, ``missing``).

    Raises:
        WslabError: If a simulated baseline replays a different number of messages than
            the chosen row did (the trace is not the one the sweep ran on).
    """
    rows: dict[str, pd.Series | None] = {}
    sources: dict[str, str] = {}
    pool = df
    if "mode" in df.columns and "mode" in chosen_row.index:
        pool = df[df["mode"].astype(str) == str(chosen_row["mode"])]
    for name in BASELINES:
        row = find_row(pool, baseline_spec(name, chosen))
        if row is not None:
            rows[name], sources[name] = row, "table"
            continue
        if simulate_fn is None:
            rows[name], sources[name] = None, "missing"
            continue
        simulated = pd.Series(dict(simulate_fn(baseline_config(name, chosen))))
        want, got = chosen_row.get("messages"), simulated.get("messages")
        if want is not None and got is not None and not _same(want, got):
            raise WslabError(
                f"the trace replays {got} messages but the results rows have {want}: "
                "give the trace the sweep ran on"
            )
        rows[name], sources[name] = simulated, "simulated"
    return rows, sources


def compare(chosen_row: pd.Series, baselines: Mapping[str, pd.Series | None]) -> pd.DataFrame:
    """One row per (baseline, metric): chosen, baseline, change and change in percent.

    ``change_pct`` is relative to the baseline (negative = the chosen point is lower);
    it is missing where the baseline value is 0.
    """
    records: list[dict[str, Any]] = []
    for name, base in baselines.items():
        if base is None:
            continue
        for metric in COMPARE_METRICS:
            if metric not in chosen_row.index or metric not in base.index:
                continue
            c, b = float(chosen_row[metric]), float(base[metric])
            records.append({
                "baseline": name,
                "metric": metric,
                "chosen": c,
                "base": b,
                "change": c - b,
                "change_pct": (c - b) / b * 100 if b else float("nan"),
            })
    columns = ["baseline", "metric", "chosen", "base", "change", "change_pct"]
    return pd.DataFrame.from_records(records, columns=columns)
