"""``wslab scale``: many connections over worker processes, Redis fan-out, nginx in front.

What lives here: :func:`run_scale` (plan the load, start a private redis-server if needed,
K workers balanced by ``SO_REUSEPORT`` or by nginx, holder processes spread over 127.0.0.x
source addresses; ramp, idle with heartbeats, broadcast, direct messages; stop everything
it started, also on error, Ctrl-C or SIGTERM; on SIGKILL its children die with it, see
``lifeline.py``) with its figures, and :class:`ScaleRun`, what one run started. What must
not live here: the storm and the memory matrix (``scale_modes.py``),
process plumbing (``cluster.py``), the worker's and holder's insides (``procs.py``),
printing (the CLI).

Latency of a broadcast or direct message: from the worker's hand-off (``time.monotonic()``
written into the message just before it is published) to the holder's receipt; the clock
is system-wide, so the two processes' readings compare directly. Integrity is counted over
connections open from ramp to report: each must receive every broadcast once, in order.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.cluster import (
    Child,
    LoadPlan,
    NginxFront,
    RedisServer,
    check_port_free,
    free_port_block,
    need_binary,
    plan_load,
    python_child,
    stop_children,
)
from wslab.harness.lifeline import INTERRUPT_GRACE_S
from wslab.harness.meter import ProcessSampler

Progress = Callable[[str], None]
BALANCERS = ("reuseport", "nginx")


@dataclass
class ScaleOptions:
    """What a scale run does (see :func:`run_scale`)."""

    connections: int = 1000
    workers: int = 1
    balancer: str = "reuseport"
    broker: str | None = None  # None: memory for one worker, redis for several
    redis_url: str | None = None
    port: int = 0
    broadcasts: int = 5
    message_size: int = 256
    broadcast_interval_s: float = 0.5
    directs: int = 20
    idle_s: float = 3.0
    rate: float = 0.0
    shared_broadcast: bool = False
    gc_freeze: bool = True
    kill_worker: int | None = None
    timeout_s: float = 120.0


@dataclass
class ScaleResult:
    """The summary (one JSON object) and the plan it followed."""

    summary: dict[str, Any]
    plan: LoadPlan
    workers: list[dict[str, Any]] = field(default_factory=list)


def _pct(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max())}


def _integrity(receipts: list[list[Any]], alive: set[tuple[int, int]],
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


class ScaleRun:
    """Everything one run started, so :meth:`stop` can stop it all."""

    def __init__(self, config: TuningConfig, opts: ScaleOptions, say: Progress) -> None:
        self.config = config
        self.opts = opts
        self.say = say
        self.tmp = Path(tempfile.mkdtemp(prefix="wslab-scale-"))
        self.redis: RedisServer | None = None
        self.nginx: NginxFront | None = None
        self.workers: list[Child] = []
        self.holders: list[Child] = []
        self.url = ""

    def stop(self, grace: float | None = None) -> None:
        """Stop everything started: holders, nginx, workers, redis-server in that order,
        each group with room to finish; with ``grace`` (after Ctrl-C or SIGTERM) all at once,
        SIGKILL after ``grace`` seconds."""
        nginx = [self.nginx.child] if self.nginx is not None else []
        redis = [self.redis.child] if self.redis is not None else []
        if grace is not None:
            stop_children([*self.holders, *nginx, *self.workers, *redis], grace)
        else:
            stop_children(self.holders, 10)
            stop_children(nginx, 10)
            stop_children(self.workers, 15)
            stop_children(redis, 5)
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_workers(self, broker: str, redis_url: str | None, namespace: str) -> None:
        opts = self.opts
        cfg_path = self.tmp / "config.yaml"
        self.config.save(cfg_path)
        nginx = opts.balancer == "nginx"
        if opts.port:
            check_port_free(opts.port)
        base = free_port_block(opts.workers) if nginx else opts.port
        common = ["--config", str(cfg_path), "--broker", broker, "--namespace", namespace]
        if redis_url:
            common += ["--redis-url", redis_url]
        if opts.shared_broadcast:
            common.append("--shared-broadcast")
        if opts.gc_freeze:
            common.append("--gc-freeze")
        port = base
        for i in range(opts.workers):
            wport = base + i if nginx else port
            args = ["worker", *common, "--worker-id", str(i), "--port", str(wport)]
            if not nginx:
                args.append("--reuse-port")
            child = python_child(args, f"worker {i}")
            self.workers.append(child)
            line = child.readline(30)
            if not line.isdigit():
                raise WslabError(f"worker {i} did not start: {line}")
            if i == 0 and not nginx:
                port = int(line)
        if nginx:
            self.say(f"starting nginx in front of {opts.workers} worker(s)")
            self.nginx = NginxFront(self.config, base, self.tmp / "nginx", opts.connections,
                                    opts.workers)
            self.url = f"ws://127.0.0.1:{self.nginx.port}/"
        else:
            self.url = f"ws://127.0.0.1:{port}/"

    def start_holders(self, plan: LoadPlan, connections: list[int] | None = None) -> None:
        cfg_path = self.tmp / "client.yaml"
        self.config.save(cfg_path)
        counts = connections or plan.per_process
        addrs = plan.source_addresses
        for p, n in enumerate(counts):
            mine = addrs[p::len(counts)] or addrs
            args = ["holder", "--url", self.url, "--config", str(cfg_path), "--connections",
                    str(n), "--prefix", f"h{p}", "--rate",
                    str(self.opts.rate / len(counts) if self.opts.rate else 0)]
            for a in mine:
                args += ["--source", a]
            self.holders.append(python_child(args, f"client process {p}"))

    def worker_stats(self) -> list[dict[str, Any]]:
        return [w.ask({"cmd": "stats"}) if w.alive() else {"worker": str(i), "dead": True}
                for i, w in enumerate(self.workers)]


def _check_binaries(opts: ScaleOptions, broker: str) -> None:
    if broker == "redis" and not opts.redis_url:
        need_binary("redis-server", "redis-server")
    if opts.balancer == "nginx":
        need_binary("nginx", "nginx")


def _resolve(config: TuningConfig, opts: ScaleOptions) -> tuple[str, LoadPlan]:
    if opts.balancer not in BALANCERS:
        raise WslabError(f"unknown balancer {opts.balancer!r}; known: {', '.join(BALANCERS)}")
    if opts.connections < 1 or opts.workers < 1:
        raise WslabError("connections and workers must be at least 1")
    broker = opts.broker or ("redis" if opts.workers > 1 else "memory")
    if broker == "memory" and opts.workers > 1:
        raise WslabError("an in-memory broker cannot fan out across worker processes; "
                         "use --broker redis")
    plan = plan_load(opts.connections, opts.workers, nginx=opts.balancer == "nginx",
                     max_connections=config.scaling.max_connections)
    if plan.problems:
        raise WslabError("cannot reach the requested load: " + "; ".join(plan.problems))
    _check_binaries(opts, broker)
    return broker, plan


def run_scale(config: TuningConfig, opts: ScaleOptions,
              progress: Progress | None = None) -> ScaleResult:
    """Run one scale experiment and return its figures.

    ``progress`` may raise to cancel the run (a notebook's Cancel button does): the
    exception propagates after every process the run started has been stopped.

    Raises:
        WslabError: The load cannot be reached (with why and the limit), a program is
            missing (with the package to install), Redis is unreachable, a port is taken.
    """
    say = progress or (lambda _m: None)
    broker, plan = _resolve(config, opts)
    run = ScaleRun(config, opts, say)
    grace: float | None = None
    try:
        return _execute(run, broker, plan)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through lifeline.stop_signals
        grace = INTERRUPT_GRACE_S
        raise
    finally:
        with contextlib.suppress(Exception):  # a cancelling callback must not skip the stop
            say("stopping every process started")
        run.stop(grace)


def _execute(run: ScaleRun, broker: str, plan: LoadPlan) -> ScaleResult:
    opts, say = run.opts, run.say
    redis_url = opts.redis_url
    if broker == "redis" and redis_url is None:
        say("starting a private redis-server")
        run.redis = RedisServer(run.tmp / "redis")
        redis_url = run.redis.url
    namespace = f"wslab:{uuid.uuid4().hex[:8]}"
    say(f"starting {opts.workers} worker(s) ({opts.balancer}, broker {broker})")
    run.start_workers(broker, redis_url, namespace)
    samplers = [ProcessSampler(w.pid) for w in run.workers]
    time.sleep(0.3)
    base = [s.sample() for s in samplers]
    say(f"opening {opts.connections} connections from {plan.client_processes} process(es), "
        f"{len(plan.source_addresses)} source address(es)")
    run.start_holders(plan)
    readies = [h.read_json(opts.timeout_s) for h in run.holders]
    opened = sum(r["opened"] for r in readies)
    done = sorted(t for r in readies for t in r["done"])
    started = min(r["started"] for r in readies)
    time_to_n = (done[-1] - started) if done else None
    time.sleep(1.0)
    held_stats = run.worker_stats()
    held = [s.get("held", 0) for s in held_stats]
    idle_a = [s.sample() for s in samplers]
    say(f"{opened} open; idling {opts.idle_s:g} s with heartbeats")
    time.sleep(opts.idle_s)
    idle_b = [s.sample() for s in samplers]
    died: list[dict[str, Any]] = []
    if opts.kill_worker is not None and opts.kill_worker < len(run.workers):
        say(f"killing worker {opts.kill_worker} (fault injection)")
        run.workers[opts.kill_worker].stop(timeout=1, sig=9)
        time.sleep(1.0)
    for i, w in enumerate(run.workers):
        if not w.alive():
            died.append({"worker": i, "exit_code": w.proc.returncode,
                         "connections_held": held[i] if i < len(held) else None})
    alive_workers = [w for w in run.workers if w.alive()]
    if not alive_workers:
        raise WslabError("every worker died; nothing left to measure")
    origin = alive_workers[0]
    for d in died:
        origin.ask({"cmd": "purge", "worker": str(d["worker"])})
    say(f"{opts.broadcasts} broadcast(s) of {opts.message_size} B")
    cpu_a = _sample(samplers, run.workers)
    origin.ask({"cmd": "broadcast", "count": opts.broadcasts, "size": opts.message_size,
                "interval_s": opts.broadcast_interval_s},
               timeout=opts.timeout_s)
    for h in run.holders:
        h.ask({"cmd": "wait", "kind": "b", "per_connection": opts.broadcasts,
               "timeout": 30}, timeout=60)
    cpu_b = _sample(samplers, run.workers)
    directs = origin.ask({"cmd": "direct", "count": opts.directs}, timeout=opts.timeout_s)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = sum(h.ask({"cmd": "count"})["d"] for h in run.holders)
        if got >= directs["sent"]:
            break
        time.sleep(0.05)
    after = _sample(samplers, run.workers)
    stats = run.worker_stats()
    reports = [h.ask({"cmd": "report"}, timeout=120) for h in run.holders]
    summary = _summarise(opts, broker, plan, readies, opened, time_to_n, done, started,
                         held, base, idle_a, idle_b, cpu_a, cpu_b, after, stats, reports,
                         directs, died)
    return ScaleResult(summary, plan, stats)


def _summarise(opts: ScaleOptions, broker: str, plan: LoadPlan, readies: list[dict[str, Any]],
               opened: int, time_to_n: float | None, done: list[float], started: float,
               held: list[int], base: list[Any], idle_a: list[Any], idle_b: list[Any],
               cpu_a: list[Any], cpu_b: list[Any], after: list[Any],
               stats: list[dict[str, Any]], reports: list[dict[str, Any]],
               directs: dict[str, Any], died: list[dict[str, Any]]) -> dict[str, Any]:
    receipts = [[p, *r] for p, rep in enumerate(reports) for r in rep["receipts"]]
    alive = {(p, n) for p, rep in enumerate(reports) for n in rep["alive"]}
    d_lat = [(r[5] - r[4]) * 1e3 for r in receipts if r[2] == "d"]
    by_seq: dict[int, list[float]] = {}  # broadcast latencies, per broadcast
    for r in receipts:
        if r[2] == "b":
            by_seq.setdefault(r[3], []).append((r[5] - r[4]) * 1e3)
    b_lat = [lat for lats in by_seq.values() for lat in lats]
    integrity = _integrity(receipts, alive, opts.broadcasts)
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
        "broadcast_latency_ms": _pct(b_lat), "broadcast_receipts": len(b_lat),
        "broadcast_p99_ms_each": [round(p, 3) for k in sorted(by_seq)
                                  if (p := _pct(by_seq[k])["p99"]) is not None],
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
        "directs_received": len(d_lat), "direct_latency_ms": _pct(d_lat),
        "registered": live_stats[0].get("registered") if live_stats else None,
        "broker_publish_failed": sum(s.get("counts", {}).get("broker_publish_failed", 0)
                                     for s in live_stats),
        "workers_died": died,
        "connections_lost": sum(r["closed_early"] for r in reports),
        "close_codes": merge_counts([r["close_codes"] for r in reports]),
    }


def _sample(samplers: list[ProcessSampler], workers: list[Child]) -> list[Any]:
    """CPU and RSS of each worker still alive (None for the dead)."""
    out: list[Any] = []
    for sampler, worker in zip(samplers, workers, strict=True):
        try:
            out.append(sampler.sample() if worker.alive() else None)
        except Exception:  # it died between the check and the read
            out.append(None)
    return out


def merge_counts(dicts: list[dict[str, int]]) -> dict[str, int]:
    """Sum counters key by key (close codes over holders)."""
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out
