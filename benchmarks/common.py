"""Shared helpers for the benchmark scripts.

Every benchmark script in this folder exposes ``run(quick: bool) -> list[dict]`` and can be
run alone (``python benchmarks/bench_x.py [--quick]``). Each row compares wslab against a
peer measured side by side in the same run, so figures are ratios, not absolute timings on
a machine that may be busy. Each side is the median of at least three runs taken in turns
with the other (:func:`alternating`, :func:`turns`), never the best of them.
``benchmarks/run_all.py`` collects the rows into ``out/bench/results.parquet`` and
regenerates ``docs/performance.md``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
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


def turns(fns: Sequence[Callable[[], float]], repeats: int = 3, *,
          warm_up: bool = True) -> list[list[float]]:
    """Figures of each of ``fns``, measured in turns (a, b, a, b, ...): one list per function.

    Each function makes one measurement and returns its figure (seconds, msg/s, bytes...).
    There are at least three turns, so a median can ignore one disturbed turn either way,
    and figure ``i`` of every list comes from the same turn: ``turn_ratio`` pairs them.
    With ``warm_up``, one unrecorded call of each comes first, so no contender pays for
    imports or caches warming up.
    """
    if warm_up:
        for fn in fns:
            fn()
    figures: list[list[float]] = [[] for _ in fns]
    for _ in range(max(3, repeats)):
        for k, fn in enumerate(fns):
            figures[k].append(fn())
    return figures


def mirrored_turns(a: Callable[[], float], b: Callable[[], float], repeats: int = 3, *,
                   warm_up: bool = True) -> tuple[list[float], list[float]]:
    """Two contenders measured in mirrored turns (a, b, b, a): per turn, each side's mean.

    For two contenders a few per cent apart on a machine whose speed drifts by tens of per
    cent over seconds, plain turns favour whichever runs second while the machine speeds up.
    In a mirrored turn each side runs once early and once late, so a drift that is linear
    over the turn cancels out of the turn's ratio (``turn_ratio`` of the two lists).
    """
    if warm_up:
        a()
        b()
    firsts: list[float] = []
    seconds: list[float] = []
    for _ in range(max(3, repeats)):
        a1 = a()
        b1 = b()
        b2 = b()
        a2 = a()
        firsts.append((a1 + a2) / 2)
        seconds.append((b1 + b2) / 2)
    return firsts, seconds


def spread(values: Sequence[float]) -> tuple[float, float]:
    """The lower and upper quartiles of ``values``: how far single turns scatter."""
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (the mean of the middle two for an even count)."""
    return float(statistics.median(values))


def turn_ratio(values: Sequence[float], peers: Sequence[float]) -> float:
    """Median of the per-turn ratios ``values[i] / peers[i]``, from the same turns.

    Each pair was measured back to back, so a slow drift of the machine cancels out of
    every ratio before the median is taken.
    """
    return median(v / p for v, p in zip(values, peers, strict=True))


def alternating_median(fns: Sequence[Callable[[], float]], repeats: int = 3, *,
                       warm_up: bool = True) -> list[float]:
    """Median figure of each of ``fns``, measured in turns (see :func:`turns`)."""
    return [median(f) for f in turns(fns, repeats, warm_up=warm_up)]


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """A function that calls ``fn()`` once and returns its wall-clock seconds."""
    def once() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return once


def alternating(fns: Sequence[Callable[[], object]], repeats: int = 3) -> list[float]:
    """Median wall-clock seconds of each of ``fns``, timed in turns (a, b, a, b, ...).

    Taking turns spreads whatever else the machine does over every contender, and the
    median of at least three turns ignores one disturbed run either way. One untimed call
    of each comes first, so no contender pays for imports or caches warming up.
    """
    return alternating_median([timed(fn) for fn in fns], repeats)


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
    ratio: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One result row: what was measured, against what, and whether the target holds.

    ``ratio`` is ``value / peer_value`` unless given: a script that measured both sides in
    turns passes the median of the per-turn ratios (:func:`turn_ratio`) instead.
    """
    if ratio is None:
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
