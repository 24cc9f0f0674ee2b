"""The scaling panel's arithmetic, figures and background runs.

What lives here: :func:`estimate` (what N connections cost before anything runs: memory per
connection from a fixed base plus zlib's formula, kernel socket memory, file descriptors,
ephemeral ports, admission headroom and heartbeat traffic, set against this machine's
limits through :func:`wslab.harness.cluster.plan_load`), the figure factories and drawers
of :class:`~wslab.lab.scaling.ScalingPanel`, :func:`processing_run` (inbound messages
through a live server's processing queue, batched by type and then one by one), and
:func:`run_in_thread`, which runs a blocking scale-layer call (``run_scale``,
``run_storm``) in a thread with progress and a cancel that still lets the scale layer stop
every process it started.

The figures used here are sourced, not measured: 14 KiB per connection without compression
(the python-websockets docs; a connection object, its buffers and the asyncio transport) and
about 4 KiB of kernel memory per socket that RSS does not show (Centrifugo's 2026 write-up);
both are listed in ``/work/shared/FIELD-NOTES.md`` ("Connections in practice").
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import plotly.graph_objects as go

from wslab.config import CompressionConfig, TuningConfig
from wslab.errors import WslabError
from wslab.harness.client import LoadClient
from wslab.harness.cluster import BALANCE_SLACK, FD_SLACK, plan_load
from wslab.harness.events import ProcessingQueue
from wslab.harness.server import LiveServer
from wslab.traces.model import Message, Trace
from wslab.tune.sweep import memory_estimate_kib

from .figures import COLOURS, HALF_WIDTH, figure
from .tasks import Progress

T = TypeVar("T")

BASE_KIB = 14.0
"""Memory per connection without compression (python-websockets docs: ~14 KiB)."""
KERNEL_KIB = 4.0
"""Kernel socket memory per connection, outside RSS (Centrifugo: ~4 KB per socket)."""
DOCS_KIB = {"off": 14.0, "websockets default": 64.0}
"""What the websockets docs quote per connection: compression off, and default deflate."""
NGINX_READ_TIMEOUT_S = 60.0
"""nginx's default ``proxy_read_timeout``: a quiet upgraded connection is closed after it."""
PING_BYTES = 6 + 10 + 2 * 52
"""One heartbeat on the wire: a ping with a 4-byte payload (2-byte header, unmasked, from
the server), the masked pong (2 + 4 + 4), and one TCP/IP header (52 bytes) for each."""
VARIANTS = ("off", "websockets default", "configured")


def variant_compression(variant: str, configured: CompressionConfig) -> CompressionConfig:
    """The compression section a variant of the compression control stands for.

    Args:
        variant: ``"off"``, ``"websockets default"`` or ``"configured"``.
        configured: The panel's own settings (used for ``"configured"``, and as the base of
            ``"off"``, which keeps them but turns the algorithm off).
    """
    if variant == "off":
        return configured.model_copy(update={"algorithm": "none"})
    if variant == "websockets default":
        return CompressionConfig()
    if variant == "configured":
        return configured
    raise ValueError(f"unknown compression variant {variant!r}; known: {', '.join(VARIANTS)}")


@dataclass(slots=True)
class Usage:
    """One resource a run needs, against the limit that stops it.

    Attributes:
        name: What is counted.
        used: How much the run needs.
        limit: How much there is.
        note: The numbers in words.
    """

    name: str
    used: float
    limit: float
    note: str

    @property
    def percent(self) -> float:
        """``used`` as a share of ``limit``, in percent."""
        return 100.0 * self.used / self.limit if self.limit else math.inf


@dataclass(slots=True)
class Estimate:
    """What a number of connections costs, from formulas and limits only.

    Attributes:
        connections: Connections held at once.
        workers: Server worker processes.
        per_worker: Connections the busiest worker holds (uneven spread included).
        variant: The compression variant selected.
        memory_kib: Per variant: (fixed base, compression state) per connection, KiB.
        kernel_kib: Kernel socket memory per connection (not in RSS), KiB.
        usage: Resources against their limits.
        client_processes: Client processes the load needs.
        source_addresses: 127.0.0.x source addresses the load needs.
        pings_per_s: Heartbeats per second across all connections.
        heartbeat_bytes_per_s: Their bytes on the wire per second (both directions).
        problems: Why the run cannot happen as set (the scale layer would refuse it).
        warnings: What would go wrong in production with these settings.
    """

    connections: int
    workers: int
    per_worker: int
    variant: str
    memory_kib: dict[str, tuple[float, float]]
    kernel_kib: float
    usage: list[Usage]
    client_processes: int
    source_addresses: int
    pings_per_s: float
    heartbeat_bytes_per_s: float
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def per_connection_kib(self) -> float:
        """Process memory per connection of the selected variant (base + compression)."""
        base, comp = self.memory_kib[self.variant]
        return base + comp

    @property
    def server_mib(self) -> float:
        """Memory of all workers together for every connection, RSS plus kernel, MiB."""
        return self.connections * (self.per_connection_kib + self.kernel_kib) / 1024


def estimate(config: TuningConfig, connections: int, variant: str,
             configured: CompressionConfig) -> Estimate:
    """The cost of holding ``connections`` with ``config``, without running anything.

    Args:
        config: The panel's config (``scaling`` and the effective ``compression``).
        connections: Connections to hold at once.
        variant: The selected compression variant (see :data:`VARIANTS`).
        configured: The panel's own compression settings (for the ``configured`` bars).
    """
    sc = config.scaling
    memory = {
        v: (BASE_KIB, memory_estimate_kib(config.model_copy(
            update={"compression": variant_compression(v, configured)})))
        for v in VARIANTS
    }
    plan = plan_load(connections, sc.workers, max_connections=sc.max_connections)
    per_worker = math.ceil(connections / sc.workers * (BALANCE_SLACK if sc.workers > 1 else 1))
    per_process = max(plan.per_process)
    addresses = len(plan.source_addresses)
    per_address = math.ceil(connections / addresses)
    heartbeat = sc.heartbeat_interval_s
    usage = [
        Usage("descriptors per worker", per_worker + FD_SLACK, plan.fd_limit,
              f"{per_worker:,} sockets + {FD_SLACK} spare of {plan.fd_limit:,} files"),
        Usage("descriptors per client process", per_process + FD_SLACK, plan.fd_limit,
              f"{per_process:,} sockets in each of {plan.client_processes} process(es)"),
        Usage("ports per source address", per_address, plan.ports_per_address,
              f"{per_address:,} of {plan.ports_per_address:,} ephemeral ports on each of "
              f"{addresses} address(es)"),
        Usage("connections per worker vs max_connections", per_worker, sc.max_connections,
              f"{per_worker:,} of max_connections {sc.max_connections:,}"),
    ]
    if heartbeat is not None:
        usage.append(Usage("ping interval vs nginx proxy_read_timeout", heartbeat,
                           NGINX_READ_TIMEOUT_S,
                           f"a ping every {heartbeat:g} s; nginx closes after "
                           f"{NGINX_READ_TIMEOUT_S:g} s of silence"))
    warnings = []
    if sc.broker == "memory" and sc.workers > 1:
        warnings.append("the memory broker cannot fan out across worker processes: "
                        "choose redis for more than one worker")
    if heartbeat is None:
        warnings.append("no heartbeat: dead peers are never noticed, and nginx closes quiet "
                        f"connections after {NGINX_READ_TIMEOUT_S:g} s")
    elif heartbeat >= NGINX_READ_TIMEOUT_S:
        warnings.append(f"pings every {heartbeat:g} s are not more frequent than nginx's "
                        f"default proxy_read_timeout ({NGINX_READ_TIMEOUT_S:g} s): raise "
                        "proxy_read_timeout (wslab's nginx export does)")
    pings = connections / heartbeat if heartbeat else 0.0
    return Estimate(connections, sc.workers, per_worker, variant, memory, KERNEL_KIB, usage,
                    plan.client_processes, addresses, pings, pings * PING_BYTES,
                    list(plan.problems), warnings)


# -- figures -------------------------------------------------------------------------------

def memory_figure() -> Any:
    """Memory per connection per compression variant: estimate, docs, measured."""
    def bars(name: str, colour: str) -> Any:
        return go.Bar(x=list(VARIANTS), y=[None] * 3, name=name, marker_color=colour,
                      text=[""] * 3, textposition="outside", cliponaxis=False)

    fig = figure("Memory per connection (KiB)<br><sup>&nbsp;</sup>", y="KiB per connection",
                 height=360, width=HALF_WIDTH, traces=[
        bars(f"estimate: {BASE_KIB:g} KiB base + zlib formula", COLOURS["normal"]),
        bars("websockets docs", COLOURS["baseline"]),
        bars("measured: RSS growth / connections", COLOURS["ws"]),
    ])
    fig.update_layout(barmode="group")
    return fig


def limits_figure() -> Any:
    """Each resource the run needs as a share of its limit (the red line is 100 %)."""
    fig = figure("What the run needs, against this machine's limits<br>"
                 "<sup>share of each limit; past 100 % (red) it cannot run</sup>",
                 x="% of the limit", height=360, width=HALF_WIDTH,
                 traces=[go.Bar(x=[], y=[], orientation="h", text=[], textposition="auto",
                                hoverinfo="text", hovertext=[], marker_color=[])])
    fig.add_vline(x=100, line_color=COLOURS["critical"], line_dash="dash")
    fig.update_layout(margin={"l": 20, "r": 30, "t": 58, "b": 45})
    fig.update_yaxes(automargin=True)  # the limits' names set the left margin
    return fig


def draw_estimate(memory_fig: Any, limits_fig: Any, est: Estimate,
                  measured: dict[str, float]) -> None:
    """Fill :func:`memory_figure` and :func:`limits_figure` from an estimate."""
    total = [sum(est.memory_kib[v]) for v in VARIANTS]
    got = [measured.get(v) for v in VARIANTS]
    docs = [DOCS_KIB.get(v) for v in VARIANTS]
    outline = [3 if v == est.variant else 0 for v in VARIANTS]
    with memory_fig.batch_update():
        memory_fig.data[0].y = total
        memory_fig.data[0].text = [f"{t:.0f}" for t in total]
        memory_fig.data[0].marker.line = {"width": outline, "color": "#000"}
        memory_fig.data[1].y = docs
        memory_fig.data[1].text = ["" if d is None else f"{d:.0f}" for d in docs]
        memory_fig.data[2].y = got
        memory_fig.data[2].text = ["" if g is None else f"{g:.0f}" for g in got]
        memory_fig.layout.title.text = (
            f"Memory per connection (KiB)<br><sup>selected: {est.variant}, "
            f"{est.per_connection_kib:.0f} KiB + {est.kernel_kib:g} KiB kernel</sup>")
    rows = est.usage[::-1]  # plotly draws the first bar at the bottom
    with limits_fig.batch_update():
        bar = limits_fig.data[0]
        bar.y = [u.name for u in rows]
        bar.x = [min(u.percent, 400.0) for u in rows]
        bar.text = [f"{u.percent:.0f} %" for u in rows]
        bar.hovertext = [u.note for u in rows]
        bar.marker.color = [COLOURS["critical"] if u.percent > 100 else COLOURS["payload"]
                            for u in rows]


def ramp_figure() -> Any:
    """Connections open over time during the ramp."""
    return figure("Ramp: connections open over time<br><sup>&nbsp;</sup>",
                  x="seconds since the first connect", y="connections open",
                  width=HALF_WIDTH, traces=[go.Scatter(
                      x=[], y=[], mode="lines+markers", name="opened",
                      line={"color": COLOURS["normal"], "shape": "linear"})])


def ramp_points(summary: dict[str, Any]) -> tuple[list[float], list[int]]:
    """Cumulative connections at each whole second of the ramp, ending at time to N.

    The scale layer reports connections per one-second bin (``ramp_per_second``) and the
    time the last one opened (``time_to_n_s``); between those points the curve is linear.
    """
    per_second = list(summary.get("ramp_per_second") or [])
    end = summary.get("time_to_n_s")
    xs: list[float] = [0.0]
    ys: list[int] = [0]
    total = 0
    for i, n in enumerate(per_second):
        total += int(n)
        t = float(i + 1)
        if end is not None and t >= end:
            break
        xs.append(t)
        ys.append(total)
    total = sum(int(n) for n in per_second)
    xs.append(float(end) if end is not None else float(len(per_second)))
    ys.append(total)
    return xs, ys


def fanout_figure() -> Any:
    """Broadcast fan-out latency percentiles of the last live run."""
    return figure("Broadcast fan-out latency<br><sup>from the worker's send to each "
                  "client's receipt</sup>", y="latency (ms)", width=HALF_WIDTH,
                  traces=[go.Bar(x=[], y=[], name="broadcast", marker_color=COLOURS["ws"],
                                 text=[], textposition="outside", cliponaxis=False)])


def storm_figure() -> Any:
    """What happened to every client of a connection storm."""
    return figure("Connection storm: admission control", y="clients", traces=[
        go.Bar(x=[], y=[], marker_color=[], text=[], textposition="outside")])


STORM_BARS = (("clients", "clients", COLOURS["baseline"]),
              ("held", "held", COLOURS["payload"]),
              ("refused with 1013", "refused_1013", COLOURS["critical"]),
              ("failed otherwise", "handshake_failed", COLOURS["tcp"]))


def draw_live(ramp_fig: Any, fanout_fig: Any, summary: dict[str, Any]) -> None:
    """Put a ``run_scale`` summary into the ramp and fan-out figures."""
    xs, ys = ramp_points(summary)
    lat = summary.get("broadcast_latency_ms") or {}
    names = [k for k in ("p50", "p90", "p95", "p99", "max") if lat.get(k) is not None]
    with ramp_fig.batch_update():
        ramp_fig.data[0].x, ramp_fig.data[0].y = xs, ys
    with fanout_fig.batch_update():
        fanout_fig.data[0].x = names
        fanout_fig.data[0].y = [lat[k] for k in names]
        fanout_fig.data[0].text = [f"{lat[k]:.1f}" for k in names]
        fanout_fig.layout.title.text = (
            f"Broadcast fan-out latency<br><sup>{summary.get('broadcast_receipts', 0):,} "
            f"receipts, {summary.get('workers')} worker(s), broker {summary.get('broker')}"
            "</sup>")


def draw_storm(fig: Any, storm: dict[str, Any]) -> None:
    """Put a ``run_storm`` result into :func:`storm_figure`."""
    queued = (storm.get("admission") or {}).get("queued")
    bars = [(label, storm.get(key, 0), colour) for label, key, colour in STORM_BARS]
    if queued is not None:
        bars.append(("waited in the queue", queued, COLOURS["normal"]))
    with fig.batch_update():
        fig.data[0].x = [b[0] for b in bars]
        fig.data[0].y = [b[1] for b in bars]
        fig.data[0].text = [f"{b[1]:,}" for b in bars]
        fig.data[0].marker.color = [b[2] for b in bars]
        fig.layout.title.text = (
            f"Connection storm: {storm.get('clients', 0):,} clients, max_connections "
            f"{storm.get('max_connections', 0):,}, pending queue {storm.get('pending_queue')}")


# -- running the blocking scale layer in the background -----------------------------------

def processing_run(messages: list[Message], max_batch: int,
                   say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """``messages`` into a live server (room, one member: nothing comes back) from one
    flooding connection, handled by its processing queue with ``max_batch`` per call and
    then one per call; the queue's figures and the wall time of each run."""
    trace, config = Trace(messages), TuningConfig().updated({"compression.algorithm": "none"})

    async def once(batch: int) -> dict[str, Any]:
        queue = ProcessingQueue(max_batch=batch)
        async with LiveServer(config, scenario="room", trace=trace, processing=queue,
                              record=False) as server:
            started = time.perf_counter()
            await LoadClient(f"ws://127.0.0.1:{server.port}/", config, trace=trace,
                             speed=1e6, expect_s2c=0, drain_timeout=0.1).run()
            while queue.items < len(messages):
                if time.perf_counter() - started > 60:
                    raise WslabError(f"processing: {queue.items} of {len(messages)} handled")
                await asyncio.sleep(0.001)
            return {**queue.stats(), "wall_s": time.perf_counter() - started}

    out = {}
    for label, batch in (("batched", max_batch), ("one per call", 1)):
        say(f"processing {len(messages):,} messages, {label}")
        out[label] = asyncio.run(once(batch))
    return out


class RunCancelled(WslabError):
    """Raised inside a scale run's thread, at its next step, after Cancel."""


async def run_in_thread(fn: Callable[[Callable[[str], None]], T], progress: Progress,
                        steps: int) -> T:
    """Run a blocking scale-layer call in a thread; its messages become progress steps.

    ``fn`` receives the progress callback to hand to ``run_scale``/``run_storm``. The event
    loop stays free meanwhile. On cancellation the callback raises :class:`RunCancelled`
    at the run's next step (not during its clean-up), and this coroutine waits until the
    run has stopped every process it started before it re-raises the cancellation.

    Args:
        fn: Takes the callback, runs, returns the result.
        progress: The job's progress handle (one step per message).
        steps: Messages the run is expected to say (the progress bar's total).
    """
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    raised = threading.Event()

    def say(message: str) -> None:
        if not stop.is_set():
            loop.call_soon_threadsafe(progress.step, 1, message)
        elif not raised.is_set():  # the scale layer still stops all it started
            raised.set()
            raise RunCancelled("cancelled")

    progress.start(steps, progress.note)
    future = loop.run_in_executor(None, fn, say)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        while not future.done():  # the run stops what it started before we return
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: RunCancelled is expected, nothing to log
        raise
