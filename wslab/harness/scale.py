"""``wslab scale``: many connections over worker processes, Redis fan-out, nginx in front.

What lives here: :func:`run_scale` (plan the load, start a private redis-server if needed,
K workers balanced by ``SO_REUSEPORT`` or by nginx, holder processes spread over 127.0.0.x
source addresses; ramp, idle with heartbeats, broadcast, direct messages; stop everything
it started, also on error, Ctrl-C or SIGTERM; on SIGKILL its children die with it, see
``lifeline.py``), :class:`ScaleResult`, and :class:`ScaleRun`,
what one run started (:class:`ScaleOptions`, what it is asked to do, is re-exported from
``scale_options.py``). What must not live here: turning what the workers and holders
reported into the run's figures (``scale_summary.py``: latency, integrity, memory, CPU;
``merge_counts`` is re-exported here), the storm and the memory matrix
(``scale_modes.py``), planning and process plumbing (``loadplan.py``, ``cluster.py``),
the worker's and holder's insides (``procs.py``), printing (the CLI).

The steps, in order: a redis-server if needed, the workers (and nginx), a CPU and RSS
baseline, the holders' ramp, idle with heartbeats, an optional worker kill (its
connections purged from the registry), broadcasts, direct messages, then every holder's
receipts.

With ``cluster`` set the holders run as tasks on Dask workers (``scale_dask.py``) and are
spoken to over sockets in the same lines; their clocks are measured before the ramp and
after the last receipt, and their times are moved onto this machine's clock before
the figures are made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness import commands as c
from wslab.harness.cluster import (
    Channel,
    Child,
    NginxFront,
    RedisServer,
    need_binary,
    python_child,
    stop_children,
)
from wslab.harness.lifeline import INTERRUPT_GRACE_S
from wslab.harness.loadplan import (
    FD_SLACK,
    LoadPlan,
    check_port_free,
    free_port,
    free_port_block,
    plan_load,
)
from wslab.harness.meter import ProcessSampler
from wslab.harness.scale_options import NginxConf as NginxConf  # re-exported
from wslab.harness.scale_options import ScaleOptions as ScaleOptions  # re-exported
from wslab.harness.scale_summary import Collected, Ramp, Samples, summarise
from wslab.harness.scale_summary import merge_counts as merge_counts  # re-exported

if TYPE_CHECKING:
    from wslab.harness.scale_dask import DaskHolders

Progress = Callable[[str], None]
BALANCERS = ("reuseport", "nginx")
BROKERS = ("memory", "redis", "redis-cluster")
RAMP_FLOOR = 200.0
"""Connections per second below which waiting for a ramp gives up (beyond ``timeout_s``)."""


@dataclass
class ScaleResult:
    """The summary (one JSON object) and the plan it followed."""

    summary: dict[str, Any]
    plan: LoadPlan
    workers: list[dict[str, Any]] = field(default_factory=list)


class ScaleRun:
    """Everything one run started, so :meth:`stop` can stop it all."""

    def __init__(self, config: TuningConfig, opts: ScaleOptions, say: Progress) -> None:
        self.config = config
        self.opts = opts
        self.say = say
        self.tmp = Path(tempfile.mkdtemp(prefix="wslab-scale-"))
        self.redis: RedisServer | None = None
        self.redis_nodes: list[Child] = []  # a private Redis Cluster's (redis-cluster)
        self.nginx: NginxFront | None = None
        self.workers: list[Child] = []
        self.holders: list[Channel] = []
        self.remote: DaskHolders | None = None  # holders on Dask (``cluster``)
        self.url = ""

    def stop(self, grace: float | None = None) -> None:
        """Stop everything started: holders, nginx, workers, redis-server in that order,
        each group with room to finish; with ``grace`` (after Ctrl-C or SIGTERM) all at once,
        SIGKILL after ``grace`` seconds."""
        nginx = [self.nginx.child] if self.nginx is not None else []
        redis = [self.redis.child] if self.redis is not None else []
        redis += self.redis_nodes
        if grace is not None:
            stop_children([*self.holders, *nginx, *self.workers, *redis], grace)
        else:
            stop_children(self.holders, 10)
            stop_children(nginx, 10)
            stop_children(self.workers, 15)
            stop_children(redis, 5)
        if self.remote is not None:  # hangs up on its holders, closes the Dask session
            self.remote.close()
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
        if not opts.prepared_broadcast:
            common.append("--session-broadcast")
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
            assert opts.nginx_conf is not None  # checked by _resolve
            sized = self.config.updated({"scaling.workers": opts.workers,
                                         "scaling.max_connections": max(
                                             opts.connections,
                                             self.config.scaling.max_connections)})
            listen = free_port()
            self.nginx = NginxFront(opts.nginx_conf(sized, base, listen), listen,
                                    self.tmp / "nginx")
            self.url = f"ws://127.0.0.1:{self.nginx.port}/"
        else:
            self.url = f"ws://127.0.0.1:{port}/"

    def start_holders(self, plan: LoadPlan, connections: list[int] | None = None) -> None:
        cfg_path = self.tmp / "client.yaml"
        self.config.save(cfg_path)
        counts = connections or plan.per_process
        if connections is None and self.opts.holders:
            base, extra = divmod(plan.connections, self.opts.holders)
            counts = [base + (i < extra) for i in range(self.opts.holders)]
        addrs = plan.source_addresses
        if self.opts.cluster:
            from wslab.harness.scale_dask import DaskHolders

            self.remote = DaskHolders(self.opts.cluster, self.opts.callback_host)
            self.holders = list(self.remote.start(self.url, self.config, plan.connections,
                                                  self.opts.holders, addrs, self.opts.rate))
            self.say("holders on Dask: " + ", ".join(
                f"{h.what} ({n['connections']} connections)"
                for h, n in zip(self.holders, self.remote.rows(), strict=True)))
            return
        for p, n in enumerate(counts):
            mine = addrs[p::len(counts)] or addrs
            args = ["holder", "--url", self.url, "--config", str(cfg_path), "--connections",
                    str(n), "--prefix", f"h{p}", "--rate",
                    str(self.opts.rate / len(counts) if self.opts.rate else 0)]
            for a in mine:
                args += ["--source", a]
            self.holders.append(python_child(args, f"client process {p}"))

    def worker_stats(self) -> list[dict[str, Any]]:
        """Each worker's :class:`~wslab.harness.commands.WorkerStats`; a dead one's
        ``{"worker": ID, "dead": True}``."""
        return [dict(c.expect(c.WorkerStats, w.ask(c.Stats()), w.what)) if w.alive()
                else {"worker": str(i), "dead": True} for i, w in enumerate(self.workers)]

    def ready(self) -> list[c.Ready]:
        """Every holder's line once its ramp is over (waiting ``timeout_s`` plus a second
        per RAMP_FLOOR connections: a loaded machine opens 50,000 slowly, not wrongly)."""
        wait = self.opts.timeout_s + self.opts.connections / RAMP_FLOOR
        return [c.expect(c.Ready, h.read_json(wait), h.what) for h in self.holders]

    def reports(self) -> list[c.Receipts]:
        """Every holder's receipts (remote holders' clocks measured once more after)."""
        reports = [c.expect(c.Receipts, h.ask(c.Report(), timeout=120), h.what)
                   for h in self.holders]
        if self.remote is not None:
            self.remote.clock_after()
        return reports

    def counts(self) -> list[c.Counted]:
        """Every holder's counts now."""
        return [c.expect(c.Counted, h.ask(c.Count()), h.what) for h in self.holders]


def _check_binaries(opts: ScaleOptions, broker: str) -> None:
    if broker in ("redis", "redis-cluster") and not opts.redis_url:
        need_binary("redis-server", "redis-server")
    if opts.balancer == "nginx":
        need_binary("nginx", "nginx")


def _resolve(config: TuningConfig, opts: ScaleOptions) -> tuple[str, LoadPlan]:
    if opts.balancer not in BALANCERS:
        raise WslabError(f"unknown balancer {opts.balancer!r}; known: {', '.join(BALANCERS)}")
    if opts.balancer == "nginx" and opts.nginx_conf is None:
        raise WslabError("the nginx balancer needs nginx_conf, a renderer of nginx.conf "
                         "(wslab.tune.export.render_nginx in the command line)")
    if opts.holders is not None and not 1 <= opts.holders <= opts.connections:
        raise WslabError("holders must be between 1 and the number of connections")
    if opts.connections < 1 or opts.workers < 1:
        raise WslabError("connections and workers must be at least 1")
    if opts.cluster is not None:
        from wslab.harness.dask_cluster import parse_cluster

        parse_cluster(opts.cluster)  # a malformed address fails before anything starts
    if opts.fleet_url is not None:
        from wslab.harness.scale_fleet import parse_fleet_url

        target = parse_fleet_url(opts.fleet_url, allow_remote=opts.allow_remote)
        plan = plan_load(opts.connections, 1, max_connections=opts.connections)
        if plan.problems:
            raise WslabError("cannot reach the requested load: " + "; ".join(plan.problems))
        if target.remote:  # 127.0.0.x sources reach only this machine
            plan = dataclasses.replace(plan, source_addresses=[])
        return "none", plan
    broker = opts.broker or ("redis" if opts.workers > 1 else "memory")
    if broker not in BROKERS:
        raise WslabError(f"unknown broker {broker!r}; known: {', '.join(BROKERS)}")
    if broker == "redis-cluster" and opts.redis_url:
        from wslab.harness.broker_cluster import parse_seeds

        parse_seeds(opts.redis_url)  # a malformed seed list fails before anything starts
    if broker == "memory" and opts.workers > 1:
        raise WslabError("an in-memory broker cannot fan out across worker processes; "
                         "use --broker redis")
    plan = plan_load(opts.connections, opts.workers, nginx=opts.balancer == "nginx",
                     max_connections=config.scaling.max_connections)
    if plan.problems:
        raise WslabError("cannot reach the requested load: " + "; ".join(plan.problems))
    if opts.holders is not None and math.ceil(opts.connections / opts.holders) \
            > plan.fd_limit - FD_SLACK:
        raise WslabError(f"{opts.holders} holder process(es) would each open more than "
                         f"{plan.fd_limit - FD_SLACK} connections (hard RLIMIT_NOFILE "
                         f"{plan.fd_limit}); use more")
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
    if opts.fleet_url is not None:
        return _execute_fleet(run, plan)
    redis_url = opts.redis_url
    if broker == "redis" and redis_url is None:
        say("starting a private redis-server")
        run.redis = RedisServer(run.tmp / "redis")
        redis_url = run.redis.url
    if broker == "redis-cluster" and redis_url is None:
        from wslab.harness.redis_cluster import RedisCluster

        say("starting a private 3-node Redis Cluster")
        cluster = RedisCluster(run.tmp / "redis-cluster")
        run.redis_nodes = cluster.children()
        redis_url = cluster.url
    namespace = f"wslab:{uuid.uuid4().hex[:8]}"
    say(f"starting {opts.workers} worker(s) ({opts.balancer}, broker {broker})")
    run.start_workers(broker, redis_url, namespace)
    samplers = [ProcessSampler(w.pid) for w in run.workers]
    time.sleep(0.3)
    samples = Samples(base=[s.sample() for s in samplers])
    say(f"opening {opts.connections} connections from {plan.client_processes} process(es), "
        f"{len(plan.source_addresses)} source address(es)")
    run.start_holders(plan)
    readies = run.ready()
    ramp = Ramp(readies)
    time.sleep(1.0)
    held = [s.get("held", 0) for s in run.worker_stats()]
    samples.idle_a = [s.sample() for s in samplers]
    say(f"{ramp.opened} open; idling {opts.idle_s:g} s with heartbeats")
    time.sleep(opts.idle_s)
    samples.idle_b = [s.sample() for s in samplers]
    died = _kill_and_purge(run, held)
    origin = next(w for w in run.workers if w.alive())
    say(f"{opts.broadcasts} broadcast(s) of {opts.message_size} B")
    holder_samplers = [ProcessSampler(h.pid) for h in run.holders
                       if isinstance(h, Child)]  # a remote holder's pid is not ours
    samples.cpu_a = _sample(samplers, run.workers)
    samples.holders_a = [s.sample() for s in holder_samplers]
    c.expect(c.Sent, origin.ask(c.Broadcast(count=opts.broadcasts, size=opts.message_size,
                                            interval_s=opts.broadcast_interval_s),
                                timeout=opts.timeout_s), origin.what)
    for h in run.holders:
        c.expect(c.Waited, h.ask(c.Wait(kind="b", per_connection=opts.broadcasts,
                                        timeout=30), timeout=60), h.what)
    samples.cpu_b = _sample(samplers, run.workers)
    samples.holders_b = [s.sample() for s in holder_samplers]
    directs = c.expect(c.DirectSent, origin.ask(c.Direct(count=opts.directs),
                                                timeout=opts.timeout_s), origin.what)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(n["d"] for n in run.counts()) >= directs["sent"]:
            break
        time.sleep(0.05)
    samples.after = _sample(samplers, run.workers)
    stats = run.worker_stats()
    reports = run.reports()
    clocks: list[dict[str, Any]] = []
    if run.remote is not None:  # every holder's times onto this machine's clock
        readies, reports = run.remote.corrected(readies, reports)
        ramp, clocks = Ramp(readies), run.remote.rows()
    summary = summarise(opts, broker, plan, ramp, samples,
                        Collected(held, stats, reports, directs, died, clocks))
    return ScaleResult(summary, plan, stats)


def _execute_fleet(run: ScaleRun, plan: LoadPlan) -> ScaleResult:
    """Load a fleet wslab did not start: ramp, idle with heartbeats, count what held."""
    from wslab.harness.scale_fleet import fleet_summary, parse_fleet_url

    opts, say = run.opts, run.say
    run.url = parse_fleet_url(opts.fleet_url or "", allow_remote=opts.allow_remote).url
    say(f"opening {opts.connections} connections to {run.url}")
    run.start_holders(plan)
    readies = run.ready()
    say(f"{Ramp(readies).opened} open; idling {opts.idle_s:g} s with heartbeats")
    time.sleep(opts.idle_s)
    counted = run.counts()
    clocks: list[dict[str, Any]] = []
    if run.remote is not None:  # ramp times onto this machine's clock
        readies, _ = run.remote.corrected(readies, run.reports())
        clocks = run.remote.rows()
    return ScaleResult(fleet_summary(opts, plan, Ramp(readies), counted, clocks), plan)


def _kill_and_purge(run: ScaleRun, held: list[int]) -> list[dict[str, Any]]:
    """The optional fault: kill a worker, then purge every dead worker's registry entries
    through a live one; what died."""
    opts = run.opts
    if opts.kill_worker is not None and opts.kill_worker < len(run.workers):
        run.say(f"killing worker {opts.kill_worker} (fault injection)")
        run.workers[opts.kill_worker].stop(timeout=1, sig=9)
        time.sleep(1.0)
    died = [{"worker": i, "exit_code": w.proc.returncode,
             "connections_held": held[i] if i < len(held) else None}
            for i, w in enumerate(run.workers) if not w.alive()]
    alive = [w for w in run.workers if w.alive()]
    if not alive:
        raise WslabError("every worker died; nothing left to measure")
    for d in died:
        c.expect(c.Purged, alive[0].ask(c.Purge(worker=str(d["worker"]))), alive[0].what)
    return died


def _sample(samplers: list[ProcessSampler], workers: list[Child]) -> list[Any]:
    """CPU and RSS of each worker still alive (None for the dead)."""
    out: list[Any] = []
    for sampler, worker in zip(samplers, workers, strict=True):
        try:
            out.append(sampler.sample() if worker.alive() else None)
        except Exception:  # it died between the check and the read
            out.append(None)
    return out
