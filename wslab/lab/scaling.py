"""The scaling panel: what N connections cost, estimated at once and measured live.

What lives here: :class:`ScalingPanel`. Its controls set the connection count, worker
processes, heartbeat interval, ``max_connections``, pending timeout, broker and
compression (off, websockets' default deflate, or the panel's own window bits and memLevel).
Every move redraws an estimate that runs nothing: memory per connection (a fixed base plus
zlib's formula), file descriptors, ephemeral ports and admission headroom against this
machine's limits (``scaling_estimate.estimate``; figures in ``scaling_figures``). Three
buttons run the real thing on loopback as cancellable background jobs (``scaling_jobs``):
**Live run** (``wslab.harness.scale.run_scale``: ramp, idle with heartbeats, broadcasts)
fills the ramp and fan-out figures and puts the measured memory per connection beside the
estimate; **Storm** (``run_storm``) sends more clients than ``max_connections`` and counts
who was held, queued and refused with 1013; **Processing** sends the bundled traces'
client messages into a live server whose processing queue parses and aggregates them (as
``wslab serve --processing``), batched by type up to the panel's batch size and then one
per call, and shows both side by side.
The scale layer does the measuring and stops every process it starts; this module only
wires widgets to it. The window bits and memLevel sliders apply only to the ``configured``
compression variant and are disabled otherwise (:data:`APPLIES`); a pinned estimate is
drawn beside the current one (a column, a bar per variant, a marker per limit).
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as W

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.scale import ScaleOptions, ScaleResult, run_scale
from wslab.harness.scale_modes import run_storm
from wslab.traces.model import Trace, TraceMeta

from .base import Panel
from .controls import When
from .data import fast_mode, load_trace
from .figures import fmt_ms, row_of, stat_table
from .scaling_estimate import (
    BASE_KIB,
    KERNEL_KIB,
    VARIANTS,
    Estimate,
    estimate,
    estimate_rows,
    variant_compression,
)
from .scaling_figures import (
    draw_estimate,
    draw_live,
    draw_pinned_estimate,
    draw_storm,
    fanout_figure,
    limits_figure,
    memory_figure,
    ramp_figure,
    storm_figure,
)
from .scaling_jobs import processing_run, run_in_thread
from .tasks import Progress

CONNECTIONS = (50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
               200_000)
MAX_CONNECTIONS = (20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)
HEARTBEATS = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
PENDING_TIMEOUTS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
RAMP_RATES = (0.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0)
STORM_FACTORS = (1.5, 2.0, 3.0, 5.0)
PROCESSING_BATCHES = (1, 10, 50, 100, 500, 1_000)
PROCESSING_TRACES = ("chat", "game", "telemetry")
COMPRESSION_FIELDS = ("compression", "window_bits", "mem_level")
COMPRESSION_ALGORITHMS = ("none", "permessage-deflate")
"""What the live workers negotiate (zstd exists only in the simulator)."""
APPLIES: dict[str, When] = {
    "window_bits": When("compression", ("configured",)),
    "mem_level": When("compression", ("configured",)),
}
"""The configured variant's settings mean nothing for the other two variants."""


def _steps(values: tuple[float, ...], current: float) -> list[float]:
    """A slider's steps, with ``current`` added where it is not one of them."""
    return sorted({*values, current})


def _count(n: float) -> str:
    return f"{n:,.0f}"


class ScalingPanel(Panel[Estimate]):
    """Connections, workers, heartbeat, limits, broker and compression: cost and runs.

    Controls: ``connections``, ``workers``, ``heartbeat_interval_s``, ``max_connections``,
    ``pending_timeout_s``, ``broker``, ``compression`` (``off``, ``websockets default``,
    ``configured``), ``window_bits`` and ``mem_level`` (the ``configured`` settings),
    ``ramp_rate`` (connections per second, 0 for as fast as possible), ``storm_factor``
    (storm clients per ``max_connections``) and ``processing_batch`` (messages per handler
    call). Figures: ``memory``, ``limits`` (the estimate), ``ramp``, ``fanout`` (live run),
    ``storm``; ``processing_stats`` (a table). Jobs: :meth:`start_live`,
    :meth:`start_storm`, :meth:`start_processing`.

    Args:
        config: Starting config; its ``compression`` section is the ``configured`` variant
            (default: the library defaults).
        connections: Starting connection count (default 200 in fast mode, else 1,000).
        broadcasts: Broadcasts per live run (default 5 in fast mode, else 10).
        directs: Direct messages per live run (default 5 in fast mode, else 20).
        idle_s: Seconds a live run idles with heartbeats (default 0.5 in fast mode, else 3).
        **kwargs: Passed to :class:`Panel` (``debounce_s``).
    """

    title = "Connection scaling"
    uses_tasks = True
    applies = APPLIES
    config_name = "wslab-scaling.yaml"

    def __init__(self, config: TuningConfig | None = None, *, connections: int | None = None,
                 broadcasts: int | None = None, directs: int | None = None,
                 idle_s: float | None = None, **kwargs: Any) -> None:
        fast = fast_mode()
        base = config if config is not None else TuningConfig()
        self.configured = base.compression
        self.start_connections = connections or (200 if fast else 1_000)
        self.broadcasts = broadcasts if broadcasts is not None else (5 if fast else 10)
        self.directs = directs if directs is not None else (5 if fast else 20)
        self.idle_s = idle_s if idle_s is not None else (0.5 if fast else 3.0)
        self.live: ScaleResult | None = None
        self.storm: dict[str, Any] | None = None
        self.processing: dict[str, dict[str, Any]] | None = None
        self.measured: dict[str, float] = {}
        """Measured memory per connection (KiB) per compression variant, from live runs."""
        empty = Trace([], TraceMeta(name="connection scaling"))
        super().__init__(empty, base, messages=None, **kwargs)

    def default_params(self) -> dict[str, Any]:
        """Connections, compression variant and its settings, ramp rate, storm factor."""
        c = self.configured
        return {"connections": self.start_connections, "compression": "configured",
                "window_bits": c.server_max_window_bits, "mem_level": c.mem_level,
                "ramp_rate": 0.0, "storm_factor": 3.0, "processing_batch": 100}

    # -- widgets -------------------------------------------------------------------------

    def build(self) -> None:
        """The controls, the two buttons, the stat tables and five figures."""
        slider = {"continuous_update": True}
        sc = self.config.scaling

        def steps(values: tuple[float, ...], current: float, text: Any = _count) -> Any:
            return [(text(v), v) for v in _steps(values, current)]

        self.bind(W.SelectionSlider(options=steps(CONNECTIONS, self.params["connections"]),
                                    description="connections", **slider), "connections",
                  tip="connections held at once, over all workers together")
        self.bind(W.IntSlider(min=1, max=8, description="workers", **slider),
                  "scaling.workers",
                  tip="server worker processes; the connections are spread over them")
        self.bind(W.SelectionSlider(
            options=steps(HEARTBEATS, sc.heartbeat_interval_s or 0.0,
                          lambda v: "off" if v == 0 else f"{v:g} s"),
            description="heartbeat every", **slider), "scaling.heartbeat_interval_s",
            to_value=lambda v: v or None, from_value=lambda v: float(v or 0.0),
            tip="ping interval, s (websockets ping_interval); off sends no pings")
        self.bind(W.SelectionSlider(options=steps(MAX_CONNECTIONS, sc.max_connections),
                                    description="max_connections", **slider),
                  "scaling.max_connections",
                  tip="connections one worker accepts before new ones wait in the pending "
                      "queue (per worker process)")
        self.bind(W.SelectionSlider(options=steps(PENDING_TIMEOUTS, sc.pending_timeout_s,
                                                  lambda v: f"{v:g} s"),
                                    description="pending timeout", **slider),
                  "scaling.pending_timeout_s",
                  tip="longest a handshake waits in the pending queue for a free slot, s; "
                      "then it is closed with 1013 (try again later)")
        self.bind(W.Dropdown(options=("memory", "redis"), description="broker"),
                  "scaling.broker",
                  tip="how a broadcast reaches every worker: memory (one process only) or "
                      "redis (pub/sub across worker processes)")
        self.bind(W.Dropdown(options=VARIANTS, description="compression"), "compression",
                  tip="off, the websockets default (permessage-deflate, 12-bit windows, "
                      "memLevel 5) or configured (the window bits and memLevel below)")
        self.bind(W.IntSlider(min=9, max=15, description="window bits", **slider),
                  "window_bits",
                  tip="the configured variant's deflate window, 2^N bytes, both sides")
        self.bind(W.IntSlider(min=1, max=9, description="memLevel", **slider),
                  "mem_level",
                  tip="the configured variant's zlib memLevel 1..9 (hash table memory)")
        self.bind(W.SelectionSlider(options=steps(RAMP_RATES, 0.0, lambda v: (
            "no limit" if v == 0 else f"{v:,.0f}/s")),
            description="live ramp rate", **slider), "ramp_rate",
            tip="new connections per second while a live run ramps up (as fast as "
                "possible: no limit)")
        self.bind(W.SelectionSlider(options=steps(STORM_FACTORS, 3.0, lambda v: f"{v:g}x"),
                                    description="storm size", **slider),
                  "storm_factor",
                  tip="clients a storm sends, as a multiple of max_connections (3x: three "
                      "times as many as one worker accepts)")
        self.bind(W.SelectionSlider(options=[(f"{v:,}", v) for v in PROCESSING_BATCHES],
                                    description="per handler call", **slider),
                  "processing_batch",
                  tip="Processing run: the most messages one handler call takes (batched by "
                      "type); compared with one message per call")
        self._apply_compression()
        self.estimate_stats = W.HTML()
        self.warnings = W.HTML()
        self.live_stats = W.HTML("<i>No live run yet: press <b>Live run</b>.</i>")
        self.processing_stats = W.HTML()
        self.buttons: dict[str, Any] = {}
        for text, icon, action, tip in (
                ("Live run", "play", self.start_live,
                 "open the connections on loopback for real: ramp, idle with heartbeats, "
                 "broadcasts; measures memory per connection and fan-out latency"),
                ("Storm", "bolt", self.start_storm,
                 "send more clients than max_connections at once and count who was held, "
                 "queued and refused with 1013"),
                ("Processing", "tasks", self.start_processing,
                 "send the traces' client messages into a live server, batched per handler "
                 "call and then one per call")):
            button = W.Button(description=text, icon=icon, button_style="primary",
                              layout=W.Layout(width="auto"), tooltip=tip)
            button.on_click(lambda _b, act=action: self._guarded(act))
            self.buttons[text] = button
        self.figures["memory"] = memory_figure()
        self.figures["limits"] = limits_figure()
        self.figures["ramp"] = ramp_figure()
        self.figures["fanout"] = fanout_figure()
        self.figures["storm"] = storm_figure()

    def body(self) -> Any:
        """Estimate (numbers, warnings, two figures), then buttons and the live figures."""
        f = self.figures
        return W.VBox([
            self.estimate_stats, self.warnings,
            row_of(f["memory"], f["limits"]),
            self.task_bar(self.buttons["Live run"], self.buttons["Storm"],
                          self.buttons["Processing"]),
            self.live_stats,
            row_of(f["ramp"], f["fanout"]),
            f["storm"],
            self.processing_stats,
        ])

    def _trace_note(self) -> str:
        return "estimate from formulas and limits; live runs on loopback"

    def _guarded(self, action: Any) -> None:
        try:
            action()
        except Exception as exc:  # a button never raises into the kernel
            self.show_error(exc)

    def changed(self, fields: tuple[str, ...]) -> None:
        """Rebuild the effective ``compression`` section when its controls move."""
        if any(f in COMPRESSION_FIELDS for f in fields):
            self._apply_compression()

    def _configured(self) -> Any:
        wbits = int(self.params["window_bits"])
        return self.configured.model_copy(update={
            "server_max_window_bits": wbits, "client_max_window_bits": wbits,
            "mem_level": int(self.params["mem_level"])})

    def _apply_compression(self) -> None:
        section = variant_compression(self.params["compression"], self._configured())
        self.config = self.config.model_copy(update={"compression": section})

    # -- the estimate --------------------------------------------------------------------

    def compute(self, config: TuningConfig, params: dict[str, Any]) -> Estimate:
        """The estimate for the current controls (formulas and limits; nothing runs)."""
        wbits = int(params["window_bits"])
        configured = self.configured.model_copy(update={
            "server_max_window_bits": wbits, "client_max_window_bits": wbits,
            "mem_level": int(params["mem_level"])})
        return estimate(config, int(params["connections"]), params["compression"], configured)

    def draw(self, result: Estimate) -> None:
        """Redraw the memory and limits figures in place; refresh numbers and warnings."""
        draw_estimate(self.figures["memory"], self.figures["limits"], result, self.measured)
        rows = estimate_rows(result)
        headers: tuple[str, ...] = ("estimate", "value", "from")
        if self.pinned is not None:
            pin = estimate_rows(self.pinned)
            rows = [(r[0], r[1], p[1], r[2]) for r, p in zip(rows, pin, strict=True)]
            headers = ("estimate", "value", "pinned", "from")
        self.estimate_stats.value = stat_table(rows, headers=headers)
        notes = [f"<li><b>cannot run:</b> {html.escape(p)}</li>" for p in result.problems]
        notes += [f"<li>{html.escape(w)}</li>" for w in result.warnings]
        self.warnings.value = (
            f"<ul class='wslab-scaling-notes' style='background:#fff3cd'>{''.join(notes)}</ul>"
            if notes else "")

    def draw_pinned(self) -> None:
        """The pinned estimate beside the current one (or none)."""
        draw_pinned_estimate(self.figures["memory"], self.figures["limits"], self.pinned)

    # -- live runs -----------------------------------------------------------------------

    def live_options(self) -> ScaleOptions:
        """The :class:`ScaleOptions` a live run uses now (from the controls)."""
        sc = self.config.scaling
        return ScaleOptions(connections=int(self.params["connections"]), workers=sc.workers,
                            broker=sc.broker, broadcasts=self.broadcasts,
                            directs=self.directs, idle_s=self.idle_s,
                            rate=float(self.params["ramp_rate"]))

    def _live_config(self) -> TuningConfig:
        if self.config.compression.algorithm not in COMPRESSION_ALGORITHMS:
            raise WslabError(f"the live harness negotiates permessage-deflate or none, not "
                             f"{self.config.compression.algorithm}: pick another compression")
        return self.config

    async def live_job(self, progress: Progress) -> ScaleResult:
        """One ``run_scale`` with the panel's settings, in a thread; then draw it."""
        config, opts = self._live_config(), self.live_options()
        variant = self.params["compression"]
        progress.note = (f"live: {opts.connections:,} connections, {opts.workers} worker(s), "
                         f"broker {opts.broker}, compression {variant}")
        steps = 6 if opts.broker == "redis" else 5
        result = await run_in_thread(lambda say: run_scale(config, opts, progress=say),
                                     progress, steps)
        self.live = result
        s = result.summary
        if s.get("memory_per_connection_kib") is not None:
            self.measured[variant] = float(s["memory_per_connection_kib"])
        draw_live(self.figures["ramp"], self.figures["fanout"], s)
        self._show_live(s, variant)
        self.debouncer.flush()  # the memory figure gains its measured bar
        return result

    def start_live(self) -> Any:
        """Start a live run in the background (Cancel stops it; nothing is left running)."""
        self._live_config()  # fail now, in the status line
        return self.start_task(self.live_job, note="live run")

    def _show_live(self, s: dict[str, Any], variant: str) -> None:
        lat = s.get("broadcast_latency_ms") or {}
        mem = s.get("memory_per_connection_kib")
        est = self.result.memory_kib[variant] if self.result else (BASE_KIB, math.nan)
        rows = [
            ("connections opened", f"{s['opened']:,} of {s['connections']:,}",
             f"{s.get('failed', 0)} failed"),
            ("time to N", f"{s['time_to_n_s']:.2f} s" if s.get("time_to_n_s") else "n/a",
             f"{s['connections_per_s']:,.0f} connections/s" if s.get("connections_per_s")
             else ""),
            ("memory per connection", f"{mem:.1f} KiB" if mem is not None else "n/a",
             f"estimate {sum(est):.1f} KiB ({variant}) + {KERNEL_KIB:g} KiB kernel"),
            ("CPU while idle with heartbeats",
             f"{s['idle_cpu_percent']:.1f} %" if s.get("idle_cpu_percent") is not None
             else "n/a", f"over {s.get('idle_s', 0):g} s"),
            ("broadcast p50 / p95 / p99 / max",
             " / ".join(fmt_ms(lat[k]) if lat.get(k) is not None else "n/a"
                        for k in ("p50", "p95", "p99", "max")),
             f"{s.get('broadcast_receipts', 0):,} receipts"),
            ("lost / duplicated / reordered",
             f"{s.get('lost')} / {s.get('duplicated')} / {s.get('reordered')}",
             "must be 0 / 0 / 0"),
        ]
        self.live_stats.value = stat_table(rows, headers=("live run", "measured", ""))

    def storm_clients(self) -> int:
        """Clients a storm sends: ``storm_factor`` times ``max_connections``."""
        return math.ceil(self.config.scaling.max_connections * float(self.params["storm_factor"]))

    async def storm_job(self, progress: Progress) -> dict[str, Any]:
        """One ``run_storm`` against one worker, in a thread; then draw it."""
        config, clients = self._live_config(), self.storm_clients()
        settle = config.scaling.pending_timeout_s + 1.0
        progress.note = (f"storm: {clients:,} clients against max_connections "
                         f"{config.scaling.max_connections:,}")
        storm = await run_in_thread(
            lambda say: run_storm(config, clients, settle_s=settle, progress=say), progress, 1)
        self.storm = storm
        draw_storm(self.figures["storm"], storm)
        return storm

    def start_storm(self) -> Any:
        """Start a connection storm in the background (Cancel stops it)."""
        self._live_config()
        return self.start_task(self.storm_job, note="storm")

    async def processing_job(self, progress: Progress) -> dict[str, dict[str, Any]]:
        """Inbound processing, batched against one per call, live; then the table."""
        n, batch = (2_000 if fast_mode() else 10_000), int(self.params["processing_batch"])
        pools = [[m for m in load_trace(name).messages if m.dir == "c2s" and m.is_text]
                 for name in PROCESSING_TRACES]
        k = len(pools)
        messages = [pools[i % k][i // k % len(pools[i % k])] for i in range(n)]  # interleaved
        progress.note = f"processing: {n:,} messages, up to {batch:,} per call"
        got = await run_in_thread(lambda say: processing_run(messages, batch, say),
                                  progress, 2)
        self.processing = got
        cols = [[f"{r['items'] / r['wall_s']:,.0f}", f"{r['batches']:,}",
                 f"{r['mean_batch']:.1f}", f"{r['handler_us_per_item']:.2f} us",
                 f"{fmt_ms(r['latency_p50_ms'])} / {fmt_ms(r['latency_p99_ms'])}"]
                for r in (got["batched"], got["one per call"])]
        labels = ("messages handled per second", "handler calls (one commit each)",
                  "messages per call", "handler time per message", "wait + handling p50 / p99")
        self.processing_stats.value = stat_table(
            list(zip(labels, *cols, strict=True)),
            headers=("inbound processing", f"batched (up to {batch:,})", "one per call"))
        return got

    def start_processing(self) -> Any:
        """Start the processing comparison in the background (Cancel stops it)."""
        return self.start_task(self.processing_job, note="processing")

