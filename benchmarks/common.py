"""Shared helpers for the benchmark scripts.

Every benchmark script in this folder exposes ``run(quick: bool) -> list[dict]`` and can be
run alone (``python benchmarks/bench_x.py [--quick]``). Each row compares wslab against a
peer measured side by side in the same run, so figures are ratios, not absolute timings on
a machine that may be busy. ``benchmarks/run_all.py`` collects the rows into
``out/bench/results.parquet`` and regenerates ``docs/performance.md``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The shaped link the live benchmarks share: 10 Mbit/s each way, 40 ms RTT, nothing random,
# so that a measured latency can be held to the simulator's without jitter or loss noise.
SHAPED_LINK: dict[str, Any] = {
    "name": "10mbit-40ms", "down_kbps": 10_000, "up_kbps": 10_000, "rtt_ms": 40.0,
    "source": "wslab benchmarks: 10 Mbit/s each way, 40 ms RTT, no jitter, no loss"}


def shaped_link_file(directory: Path) -> Path:
    """Write :data:`SHAPED_LINK` as a link profile file in ``directory``; return its path."""
    path = directory / "10mbit-40ms.json"
    path.write_text(json.dumps(SHAPED_LINK))
    return path


def best_of(fn: Callable[[], object], repeats: int = 5) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn()``, in seconds.

    The minimum is the figure least disturbed by whatever else the machine is doing.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def alternating(fns: list[Callable[[], object]], repeats: int = 3) -> list[float]:
    """Median wall-clock seconds of each of ``fns``, timed in turns (a, b, a, b, ...).

    Taking turns spreads whatever else the machine does over every contender, and the
    median of at least three turns ignores one disturbed run either way. One untimed call
    of each comes first, so no contender pays for imports or caches warming up.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(3, repeats)):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return [sorted(t)[len(t) // 2] for t in times]


def row(
    benchmark: str,
    metric: str,
    value: float,
    unit: str,
    *,
    peer: str = "",
    peer_value: float | None = None,
    target: str = "",
    ok: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One result row: what was measured, against what, and whether the target holds."""
    ratio = value / peer_value if peer_value else None
    return {
        "benchmark": benchmark,
        "metric": metric,
        "value": value,
        "unit": unit,
        "peer": peer,
        "peer_value": peer_value,
        "ratio": ratio,
        "target": target,
        "ok": ok,
        **extra,
    }


def main(run: Callable[[bool], list[dict[str, Any]]]) -> None:
    """Run a benchmark script from the command line and print its rows as JSON lines."""
    quick = "--quick" in sys.argv
    failed = False
    for r in run(quick):
        print(json.dumps(r, default=str))
        failed |= r.get("ok") is False
    sys.exit(1 if failed else 0)
