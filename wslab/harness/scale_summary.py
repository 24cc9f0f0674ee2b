"""The figures of a ``wslab scale`` run, from what its workers and holders reported.

What lives here: :func:`summarise` (the one JSON object a run reports) and what it is
given (:class:`Ramp`, the holders' ``ready`` lines; :class:`Samples`, CPU and RSS of the
processes at the run's moments; :class:`Collected`, the answers gathered at its end), the
broadcast integrity count (:func:`broadcast_integrity`), latency :func:`percentiles` and
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
| ``broadcast_fanout_ms``       | each worker's own hand-off of each broadcast, wall time |
| ``broadcast_fanout_cpu_ms``   | the same, CPU time of the worker's thread               |
| ``broadcast_cpu_s``           | workers' CPU from the first broadcast to the last receipt |
| ``holder_broadcast_cpu_s``    | the holders' CPU over the same span                     |
| ``lost`` ... ``reordered``    | broadcasts on connections open from ramp to report      |
| ``direct_latency_ms``         | every direct-message receipt                            |
| ``*_latency_uncertainty_ms``  | holders on Dask: the largest clock uncertainty among    |
|                               | the holders that had receipts of that kind              |
| ``clock_offsets``             | holders on Dask: host, worker, pid, offset, uncertainty |

Holders on Dask workers stamp receipts on their own host's clock; by the time the figures
are made every such time has been moved onto the coordinator's clock (``scale_dask.py``),
and what is left of the clocks' disagreement is the uncertainty reported beside each
latency figure (None: every holder ran here, on the workers' own clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from wslab.harness.commands import DirectSent, Ready, Receipts
    from wslab.harness.loadplan import LoadPlan
    from wslab.harness.meter import ProcSample
    from wslab.harness.scale_options import ScaleOptions


@dataclass
class Ramp:
    """The holders' ``ready`` lines: how the connections opened."""

    readies: list[Ready]

    @property
    def opened(self) -> int:
        """Connections open after the ramp."""
        return sum(r["opened"] for r in self.readies)

    @property
    def started(self) -> float:
        """When the first holder started opening (``time.monotonic()``)."""
        return min(r["started"] for r in self.readies)

    @property
    def done(self) -> list[float]:
        """Every connection's open time, sorted."""
        return sorted(t for r in self.readies for t in r["done"])


Sampled = list["ProcSample | None"]


@dataclass
class Samples:
    """CPU and RSS of the workers (None: dead by then) and holders at the run's moments."""

    base: Sampled  # workers before the ramp
    idle_a: Sampled = field(default_factory=list)  # around the idle period
    idle_b: Sampled = field(default_factory=list)
    cpu_a: Sampled = field(default_factory=list)  # around the broadcasts
    cpu_b: Sampled = field(default_factory=list)
    holders_a: Sampled = field(default_factory=list)
    holders_b: Sampled = field(default_factory=list)
    after: Sampled = field(default_factory=list)  # at the end


@dataclass
class Collected:
    """What the run gathered at its end."""

    held: list[int]  # connections per worker after the ramp
    stats: list[dict[str, Any]]  # each worker's stats (``dead`` for a dead one)
    reports: list[Receipts]  # each holder's report
    directs: DirectSent
    died: list[dict[str, Any]]
    # holders on Dask: where each ran, its clock offset and uncertainty (``scale_dask.py``)
    clocks: list[dict[str, Any]] = field(default_factory=list)


def _cpu(a: Sampled, b: Sampled) -> float:
    """CPU seconds between two samples of the same processes (the dead left out)."""
    return sum(y.cpu_s - x.cpu_s for x, y in zip(a, b, strict=True)
               if x is not None and y is not None)


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


def summarise(opts: ScaleOptions, broker: str, plan: LoadPlan, ramp: Ramp, samples: Samples,
              got: Collected) -> dict[str, Any]:
    """The run's summary, from the holders' ``ready`` and ``report`` answers, the workers'
    ``stats``, the process samples and what the run did."""
    reports, stats, held, after = got.reports, got.stats, got.held, samples.after
    readies, opened, done, started = ramp.readies, ramp.opened, ramp.done, ramp.started
    time_to_n = (done[-1] - started) if done else None
    receipts = [[p, *r] for p, rep in enumerate(reports) for r in rep["receipts"]]
    alive = {(p, n) for p, rep in enumerate(reports) for n in rep["alive"]}
    d_lat = [(r[5] - r[4]) * 1e3 for r in receipts if r[2] == "d"]
    by_seq: dict[int, list[float]] = {}  # broadcast latencies, per broadcast
    for r in receipts:
        if r[2] == "b":
            by_seq.setdefault(r[3], []).append((r[5] - r[4]) * 1e3)
    b_lat = [lat for lats in by_seq.values() for lat in lats]
    integrity = broadcast_integrity(receipts, alive, opts.broadcasts)
    clocks = got.clocks
    ramp_s = [t - started for t in done]
    per_second = np.bincount(np.floor(ramp_s).astype(int)).tolist() if ramp_s else []
    live = [i for i, a in enumerate(after) if a is not None]
    held_live = sum(held[i] for i in live)
    rss_growth = 0
    for i in live:
        end, base = after[i], samples.base[i]
        if end is not None and base is not None:
            rss_growth += end.rss_kib - base.rss_kib
    idle_cpu = _cpu(samples.idle_a, samples.idle_b)
    bcast_cpu = _cpu(samples.cpu_a, samples.cpu_b)
    # holders on Dask run on other hosts: their CPU is not sampled here (None)
    holder_cpu = _cpu(samples.holders_a, samples.holders_b) if samples.holders_a else None
    live_stats = [s for s in stats if not s.get("dead")]
    directs, died = got.directs, got.died
    return {
        "connections": opts.connections, "opened": opened,
        "failed": sum(r["failed"] for r in readies),
        "first_error": next((r["first_error"] for r in readies if r["first_error"]), None),
        "workers": opts.workers, "balancer": opts.balancer, "broker": broker,
        "client_processes": len(reports),
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
        "broadcast_latency_ms": percentiles(b_lat),
        "broadcast_latency_uncertainty_ms": _uncertainty(clocks, receipts, "b"),
        "broadcast_receipts": len(b_lat),
        "broadcast_p99_ms_each": [round(p, 3) for k in sorted(by_seq)
                                  if (p := percentiles(by_seq[k])["p99"]) is not None],
        # the worker's own part: handing each broadcast to all its connections
        "broadcast_fanout_ms": [s.get("fanout_ms", []) for s in live_stats],
        "broadcast_fanout_cpu_ms": [s.get("fanout_cpu_ms", []) for s in live_stats],
        # connections each broadcast reached by one prepared frame / through their session
        "fanout_prepared": sum(s.get("fanout_prepared", 0) for s in live_stats),
        "fanout_pushed": sum(s.get("fanout_pushed", 0) for s in live_stats),
        "prepared_broadcast": opts.prepared_broadcast,
        "holder_broadcast_cpu_s": holder_cpu,
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
        "direct_latency_uncertainty_ms": _uncertainty(clocks, receipts, "d"),
        "clock_uncertainty_ms": max((k["uncertainty_ms"] for k in clocks), default=None),
        "clock_offsets": clocks,
        "registered": live_stats[0].get("registered") if live_stats else None,
        "broker_publish_failed": sum(s.get("counts", {}).get("broker_publish_failed", 0)
                                     for s in live_stats),
        "workers_died": died,
        "connections_lost": sum(r["closed_early"] for r in reports),
        "close_codes": merge_counts([r["close_codes"] for r in reports]),
    }


def _uncertainty(clocks: list[dict[str, Any]], receipts: list[list[Any]],
                 kind: str) -> float | None:
    """The largest clock uncertainty (ms) among holders with receipts of ``kind``; None
    when no holder's clock was estimated (all ran on the workers' machine)."""
    if not clocks:
        return None
    holders = {r[0] for r in receipts if r[2] == kind}
    return max((k["uncertainty_ms"] for k in clocks if k["holder"] in holders), default=0.0)


def merge_counts(dicts: list[dict[str, int]]) -> dict[str, int]:
    """Sum counters key by key (close codes over holders)."""
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out
