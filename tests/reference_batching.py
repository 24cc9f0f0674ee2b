"""A deliberately naive model of the batching rules, for tests to compare the Batcher with.

It recomputes everything from the buffer's contents at every step (no incremental state), so
it shares no logic with ``wslab.batching`` beyond the documented rules.
"""

from __future__ import annotations

import math

from wslab.batching import Batch, Batcher, Pending
from wslab.config import BatchingConfig

STRATEGIES = ["none", "time", "size", "count", "hybrid", "priority"]
CLASSES = ["critical", "normal", "background"]


def max_hold(cfg: BatchingConfig, priority: str) -> float:
    """The longest a message of ``priority`` may wait under ``cfg``, in seconds, as the
    strategy table of ``wslab/batching.py`` documents it."""
    s = cfg.strategy
    if s == "none":
        return 0.0
    if s == "priority":
        return float(getattr(cfg.priority_interval_ms, priority)) / 1e3
    if s in ("size", "count"):
        return cfg.max_hold_ms / 1e3
    return cfg.interval_ms / 1e3


def drive(batcher: Batcher, items: list[tuple[float, str, int]]) -> list[Batch]:
    """Feed messages in time order, polling at every deadline, as the simulator does."""
    out: list[Batch] = []
    seqs = dict.fromkeys(CLASSES, 0)
    for i, (t, prio, size) in enumerate(items):
        while (d := batcher.next_deadline()) is not None and d <= t:
            out += batcher.poll(d)
        out += batcher.push(Pending(i, seqs[prio], t, prio, "x", b"a" * size, True), t)
        seqs[prio] += 1
    while (d := batcher.next_deadline()) is not None:
        out += batcher.poll(d)
    last = items[-1][0] if items else 0.0
    return out + batcher.flush(last)


def reference(
    cfg: BatchingConfig, items: list[tuple[float, str, int]]
) -> list[tuple[list[int], float]]:
    """A deliberately naive model of the documented rules, recomputed from the buffer."""
    s = cfg.strategy
    if s == "none":
        return [([i], t) for i, (t, _, _) in enumerate(items)]
    max_bytes = cfg.max_bytes if s in ("size", "hybrid", "priority") else math.inf
    max_count = cfg.max_messages if s in ("count", "hybrid", "priority") else math.inf

    buffer: list[tuple[int, float, str, int]] = []  # index, arrival, class, size
    out: list[tuple[list[int], float]] = []

    def deadlines() -> dict[str, float]:
        keys = CLASSES if s == "priority" else ["all"]
        found: dict[str, float] = {}
        for key in keys:
            members = [b for b in buffer if key in ("all", b[2])]
            if members:
                first = min(members, key=lambda b: b[0])
                found[key] = first[1] + max_hold(cfg, first[2])
        return found

    def emit(keys: set[str], when: float) -> None:
        nonlocal buffer
        taken = [b for b in buffer if "all" in keys or b[2] in keys]
        buffer = [b for b in buffer if b not in taken]
        out.append(([b[0] for b in sorted(taken)], when))

    def flush_due(until: float) -> None:
        while buffer:
            d = deadlines()
            soonest = min(d.values())
            if soonest > until or soonest == math.inf:
                return
            emit({k for k, v in d.items() if v <= soonest}, soonest)

    background = 0
    for i, (t, prio, size) in enumerate(items):
        flush_due(t)
        background = sum(1 for b in buffer if b[2] == "background")
        if prio == "background" and background >= cfg.background_queue_limit:
            continue
        if buffer and sum(b[3] for b in buffer) + size > max_bytes:
            emit({"all"}, t)
        buffer.append((i, t, prio, size))
        if sum(b[3] for b in buffer) >= max_bytes or len(buffer) >= max_count:
            emit({"all"}, t)
        else:
            flush_due(t)
    flush_due(math.inf)
    if buffer:
        emit({"all"}, items[-1][0])
    return out


