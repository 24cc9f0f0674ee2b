"""The figures of a ``wslab scale`` run, from what its workers and holders reported.

What lives here: :func:`summarise` (the one JSON object a run reports), the broadcast
integrity count (:func:`broadcast_integrity`), latency :func:`percentiles` and
:func:`merge_counts`. What must not live here: running anything (``scale.py``), printing
(the CLI).

Latency of a broadcast or direct message: from the worker's hand-off (``time.monotonic()``
written into the message just before it is published) to the holder's receipt; the clock
is system-wide, so the two processes' readings compare directly. Integrity is counted over
connections open from ramp to report: each must receive every broadcast once, in order.

| figure                        | from                                                    |
|-------------------------------|---------------------------------------------------------|
| ``time_to_n_s``, ramp         | the holders' open times, from the first holder's start  |
| ``memory_per_connection_kib`` | live workers' RSS growth since before the ramp / held   |
| ``idle_cpu_percent``          | workers' CPU over the idle period                       |
| ``broadcast_latency_ms``      | every broadcast receipt; also p99 per broadcast         |
| ``lost`` ... ``reordered``    | broadcasts on connections open from ramp to report      |
| ``direct_latency_ms``         | every direct-message receipt                            |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from wslab.harness.loadplan import LoadPlan
    from wslab.harness.scale import ScaleOptions


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p90, p95, p99 and max (all None without values)."""
    if not values:
        return {"p50": None, "p90": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max())}


def broadcast_integrity(receipts: list[list[Any]], alive: set[tuple[int, int]],
                        expected: int) -> dict[str, int]:
    """Lost / duplicated / reordered broadcasts over connections open throughout."""
    seen: dict[tuple[int, int], list[int]] = {key: [] for key in alive}
    for proc, n, kind, seq, _t_sent, _t_recv in receipts:
        if kind == "b" and (proc, n) in seen:
            seen[(proc, n)].append(seq)
    lost = duplicated = reordered = 0
    for seqs in seen.values():
        unique = set(seqs)
        lost += sum(1 for s in range(expected) if s not in unique)
        duplicated += len(seqs) - len(unique)
        top = -1
        for s in seqs:
            if s < top:
                reordered += 1
            top = max(top, s)
    return {"lost": lost, "duplicated": duplicated, "reordered": reordered}


def summarise(opts: ScaleOptions, broker: str, plan: LoadPlan, readies: list[dict[str, Any]],
              opened: int, time_to_n: float | None, done: list[float], started: float,
              held: list[int], base: list[Any], idle_a: list[Any], idle_b: list[Any],
              cpu_a: list[Any], cpu_b: list[Any], after: list[Any],
              stats: list[dict[str, Any]], reports: list[dict[str, Any]],
              directs: dict[str, Any], died: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's summary: the holders' ``ready`` and ``report`` answers, the workers'
    ``stats`` and process samples (before the ramp, around the idle period and the
    broadcasts, at the end; None for a worker that died), and what the run did."""
    receipts = [[p, *r] for p, rep in enumerate(reports) for r in rep["receipts"]]
    alive = {(p, n) for p, rep in enumerate(reports) for n in rep["alive"]}
    d_lat = [(r[5] - r[4]) * 1e3 for r in receipts if r[2] == "d"]
    by_seq: dict[int, list[float]] = {}  # broadcast latencies, per broadcast
    for r in receipts:
        if r[2] == "b":
            by_seq.setdefault(r[3], []).append((r[5] - r[4]) * 1e3)
    b_lat = [lat for lats in by_seq.values() for lat in lats]
    integrity = broadcast_integrity(receipts, alive, opts.broadcasts)
    ramp = [t - started for t in done]
    per_second = np.bincount(np.floor(ramp).astype(int)).tolist() if ramp else []
    live = [i for i, a in enumerate(after) if a is not None]
    held_live = sum(held[i] for i in live)
    rss_growth = sum(after[i].rss_kib - base[i].rss_kib for i in live)
    idle_cpu = sum(b.cpu_s - a.cpu_s for a, b in zip(idle_a, idle_b, strict=True))
    bcast_cpu = sum(b.cpu_s - a.cpu_s for a, b in zip(cpu_a, cpu_b, strict=True)
                    if a is not None and b is not None)
    live_stats = [s for s in stats if not s.get("dead")]
    return {
        "connections": opts.connections, "opened": opened,
        "failed": sum(r["failed"] for r in readies),
        "first_error": next((r["first_error"] for r in readies if r["first_error"]), None),
        "workers": opts.workers, "balancer": opts.balancer, "broker": broker,
        "client_processes": plan.client_processes,
        "source_addresses": len(plan.source_addresses), "fd_limit": plan.fd_limit,
        "time_to_n_s": time_to_n,
        "connections_per_s": opened / time_to_n if time_to_n else None,
        "ramp_per_second": per_second,
        "held_per_worker": held,
        "rss_server_kib": [a.rss_kib if a is not None else None for a in after],
        "rss_growth_kib": rss_growth,
        "memory_per_connection_kib": rss_growth / held_live if held_live else None,
        "idle_s": opts.idle_s, "idle_cpu_s": idle_cpu,
        "idle_cpu_percent": 100 * idle_cpu / opts.idle_s if opts.idle_s else None,
        "broadcasts": opts.broadcasts, "message_size": opts.message_size,
        "broadcast_interval_s": opts.broadcast_interval_s,
        "broadcast_latency_ms": percentiles(b_lat), "broadcast_receipts": len(b_lat),
        "broadcast_p99_ms_each": [round(p, 3) for k in sorted(by_seq)
                                  if (p := percentiles(by_seq[k])["p99"]) is not None],
        # the worker's own part: handing each broadcast to all its connections
        "broadcast_fanout_ms": [s.get("fanout_ms", []) for s in live_stats],
        "broadcast_cpu_s": bcast_cpu,
        "broadcast_cpu_ms_per_broadcast": 1e3 * bcast_cpu / opts.broadcasts
        if opts.broadcasts else None,
        # every codec call is timed by the connection's FrameCompressor, shared ones too
        "compress_ms": sum(s.get("compress_ns", 0) for s in live_stats) / 1e6,
        "shared_broadcast": opts.shared_broadcast,
        "gc_freeze": opts.gc_freeze,
        "gc": merge_counts([s["gc"] for s in live_stats if s.get("gc")]),
        # the worker's longest full collection: a pause no message it sends can escape
        "gc_full_pause_max_ms": max((s["gc_pauses"]["full_longest_ms"] for s in live_stats
                                     if s.get("gc_pauses")), default=None),
        "gc_full_collections": sum(s["gc_pauses"]["full_collections"] for s in live_stats
                                   if s.get("gc_pauses")),
        "shared_compressions": sum(s.get("shared_compressions", 0) for s in live_stats),
        "shared_frames": sum(s.get("shared_frames", 0) for s in live_stats),
        **integrity,
        "directs_sent": directs["sent"], "direct_routes": directs.get("routes", {}),
        "directs_received": len(d_lat), "direct_latency_ms": percentiles(d_lat),
        "registered": live_stats[0].get("registered") if live_stats else None,
        "broker_publish_failed": sum(s.get("counts", {}).get("broker_publish_failed", 0)
                                     for s in live_stats),
        "workers_died": died,
        "connections_lost": sum(r["closed_early"] for r in reports),
        "close_codes": merge_counts([r["close_codes"] for r in reports]),
    }


def merge_counts(dicts: list[dict[str, int]]) -> dict[str, int]:
    """Sum counters key by key (close codes over holders)."""
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out
