"""The compression panel: what permessage-deflate (or zstd) buys and costs on a trace.

What lives here: :class:`CompressionPanel`. Its controls drive the ``compression`` section
(algorithm, window bits for both sides, memLevel, level, threshold, context takeover,
adaptive selection) and the link profile. Every move re-simulates the trace and shows the
ratio, CPU per message (compressing and, since every frame is decoded again, decompressing),
memory per connection (zlib's formula) and latency on the link, beside the same trace sent
uncompressed. With policy ``threshold`` or ``adaptive`` a second table sets the run beside
the same config with policy ``always`` (bytes and compression CPU per message, and the
difference) and says which frames went uncompressed, of which message types, and why. A
button fills a window-bits x memLevel heatmap of the deflate ratio for this trace, cell by
cell, as a cancellable background job (its progress bar beside the button); before that
the heatmap says what it will show instead of drawing empty axes, and once filled it
outlines the current setting (and the pinned one). Controls an algorithm does not read
are disabled (:data:`APPLIES`): window bits, memLevel, level and context takeover are
permessage-deflate's, the zstd level and window zstd's.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go

from wslab.config import CompressionConfig, TuningConfig
from wslab.link import PROFILES
from wslab.sim import simulate
from wslab.traces.model import Trace
from wslab.tune.recommend_explain import plain_frames_text
from wslab.tune.sweep import memory_estimate_kib

from .base import Panel
from .batching import WireCost
from .compression_heatmap import CURRENT, PINNED, DeflateHeatmap
from .controls import When
from .data import deflate_ratio_cell, heatmap_axes
from .figures import (
    COLOURS,
    HALF_WIDTH,
    figure,
    fmt_bytes,
    fmt_ms,
    quantile_curve,
    row_of,
    stat_table,
)
from .tasks import Progress, in_worker

ALGORITHMS = ("none", "permessage-deflate", "zstd-stream", "zstd-dict")
DEFLATE = ("permessage-deflate",)
ZSTD = ("zstd-stream", "zstd-dict")
APPLIES: dict[str, When] = {
    **{name: When("compression.algorithm", DEFLATE, "algorithm")
       for name in ("window_bits", "mem_level", "level", "context_takeover")},
    **{name: When("compression.algorithm", ZSTD, "algorithm")
       for name in ("zstd_level", "zstd_window_log")},
    **{name: When("compression.algorithm", (*DEFLATE, *ZSTD), "algorithm")
       for name in ("threshold_bytes", "adaptive")},
}
"""Which controls each algorithm reads (``wslab.codecs.factory``); the others are disabled."""


@dataclass(slots=True)
class PolicyRun:
    """What the selector did in one run: frames sent plain (and of which types), CPU."""

    cost: WireCost
    cpu_us: float
    frames_plain: int
    plain_by_key: dict[str, int]

    @classmethod
    def from_summary(cls, summary: dict[str, Any], seconds: float) -> PolicyRun:
        """Read it out of a simulation summary record (missing keys count as 0)."""
        return cls(WireCost.from_summary(summary, seconds), float(summary["cpu_us_per_msg"]),
                   int(summary.get("frames_plain", 0)),
                   {str(k): int(v) for k, v in (summary.get("plain_by_key") or {}).items()})

    @property
    def plain_text(self) -> str:
        """``"190 of 1,120 frames went uncompressed (media.chunk 160)"``."""
        return plain_frames_text(self.frames_plain, self.cost.frames,
                                 json.dumps(self.plain_by_key))


@dataclass(slots=True)
class CompressionResult:
    """One run of the compression panel.

    ``run`` is this config's selector record; ``always`` the same config with policy
    ``always`` (``None`` unless the policy is ``threshold`` or ``adaptive``).
    """

    cost: WireCost
    baseline: WireCost
    ratio: float
    cpu_us: float
    decompress_us: float
    memory_kib: float
    curve: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    baseline_curve: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    run: PolicyRun | None = None
    always: PolicyRun | None = None


def derive_policy(adaptive: bool, threshold: int) -> str:
    """The ``compression.policy`` the adaptive checkbox and threshold slider mean."""
    if adaptive:
        return "adaptive"
    return "threshold" if threshold > 0 else "always"


class CompressionPanel(Panel[CompressionResult]):
    """Tune compression on a trace: ratio, CPU, memory and latency on a link.

    Controls: ``algorithm``, ``window_bits`` (both sides), ``mem_level``, ``level``,
    ``threshold_bytes``, ``context_takeover``, ``adaptive`` and ``profile``. Figures:
    ``latency``, ``bytes`` and ``heatmap`` (filled by :meth:`start_heatmap` or the button).
    """

    title = "Compression (permessage-deflate and zstd)"
    uses_tasks = True
    applies = APPLIES
    config_name = "wslab-compression.yaml"

    def __init__(self, trace: Trace | str, config: TuningConfig | None = None,
                 **kwargs: Any) -> None:
        self._baselines: dict[str, tuple[WireCost, npt.NDArray[np.float64]]] = {}
        self._always: dict[str, PolicyRun] = {}
        self.wbits_axis, self.mem_axis = heatmap_axes()
        super().__init__(trace, config, **kwargs)

    def default_config(self) -> TuningConfig:
        """The websockets defaults, on a 4G link where bytes cost time."""
        return TuningConfig().updated({"link.profile": "4g"})

    def default_params(self) -> dict[str, Any]:
        """``adaptive``: whether the per-message selector decides (policy ``adaptive``)."""
        return {"adaptive": self.config.compression.policy == "adaptive"}

    def build(self) -> None:
        """Controls for the compression section and link; three figures and a button."""
        slider = {"continuous_update": True}
        self.bind(W.Dropdown(options=ALGORITHMS, description="algorithm"),
                  "compression.algorithm",
                  tip="none, permessage-deflate (RFC 7692, what browsers speak), zstd-stream "
                      "(one zstd stream per connection) or zstd-dict (a trained dictionary)")
        self.bind(W.IntSlider(min=9, max=15, description="window bits", **slider),
                  ("compression.server_max_window_bits", "compression.client_max_window_bits"),
                  key="window_bits",
                  tip="LZ77 window of both sides, 2^N bytes: how far back a repeat may be found")
        self.bind(W.IntSlider(min=1, max=9, description="memLevel", **slider),
                  "compression.mem_level",
                  tip="zlib memLevel 1..9: hash table and buffer memory, 2^(N+9) bytes")
        self.bind(W.IntSlider(min=0, max=9, description="deflate level", **slider),
                  "compression.level", from_value=lambda v: 6 if v == -1 else v,
                  tip="zlib level 0..9: effort spent finding repeats (0 stores, 9 tries "
                      "hardest)")
        self.bind(W.IntSlider(min=-7, max=22, description="zstd level", **slider),
                  "compression.zstd_level",
                  tip="zstd level -7..22: effort spent compressing (3 is zstd's default)")
        self.bind(W.IntSlider(min=10, max=22, description="zstd window", **slider),
                  "compression.zstd_window_log",
                  tip="largest zstd window, 2^N bytes: a zstd-stream connection keeps it "
                      "on both sides")
        self.bind(W.IntSlider(min=0, max=2048, step=16, description="threshold (bytes)",
                              continuous_update=False), "compression.threshold_bytes",
                  tip="send frames smaller than this many bytes uncompressed (0: compress "
                      "every frame)")
        self.bind(W.Checkbox(description="context takeover"),
                  ("compression.server_no_context_takeover",
                   "compression.client_no_context_takeover"),
                  key="context_takeover", to_value=lambda v: not v, from_value=lambda v: not v,
                  tip="keep the compressor's window from message to message (both sides): "
                      "better ratios, more memory per connection")
        self.bind(W.Checkbox(description="adaptive policy"), "adaptive",
                  tip="policy adaptive: stop compressing a message type whose frames do not "
                      "shrink, and probe it now and then")
        self.bind(W.Dropdown(options=list(PROFILES), description="link"), "link.profile",
                  tip="the link between server and client: bandwidth, round trip, loss "
                      "(wslab link list shows each profile)")
        self.stats = W.HTML()
        self.policy_stats = W.HTML()
        self.figures["latency"] = figure(
            "Latency per message on the link", x="latency (ms, log)", y="share of messages",
            width=HALF_WIDTH, traces=[
                go.Scatter(x=[], y=[], mode="lines", name="this config",
                           line={"color": COLOURS["normal"]}),
                go.Scatter(x=[], y=[], mode="lines", name="uncompressed",
                           line={"color": COLOURS["baseline"], "dash": "dash"}),
                go.Scatter(x=[], y=[], mode="lines", name="pinned",
                           line={"color": "#333", "dash": "dot", "width": 1.5})],
        )
        self.figures["latency"].update_xaxes(type="log")
        self.figures["bytes"] = figure(
            "Bytes on the wire per message", y="bytes per message", width=HALF_WIDTH,
            traces=[go.Bar(x=["uncompressed", "this config"], y=[0, 0], name=name,
                           marker_color=COLOURS[key])
                    for key, name in (("payload", "payload"), ("ws", "WebSocket header"),
                                      ("tcp", "TCP/IP headers"))],
        )
        self.figures["bytes"].update_layout(barmode="stack")
        self.heatmap = DeflateHeatmap(self.wbits_axis, self.mem_axis)
        self.figures["heatmap"] = self.heatmap.figure
        self.heatmap.empty(*self._heatmap_args())
        self.heatmap_button = W.Button(
            description="Compute heatmap", icon="th", button_style="primary",
            layout=W.Layout(width="auto"),
            tooltip="measure the deflate ratio of this trace at every window bits x "
                    "memLevel cell, in the background (Cancel stops it)")
        self.heatmap_button.on_click(lambda _b: self.start_heatmap())

    def changed(self, fields: tuple[str, ...]) -> None:
        """Keep ``compression.policy`` in step with the adaptive box and the threshold."""
        policy = derive_policy(bool(self.params["adaptive"]),
                               int(self.config.compression.threshold_bytes))
        if policy != self.config.compression.policy:
            self.config = self.config.updated({"compression.policy": policy})

    def compute(self, config: TuningConfig, params: dict[str, Any]) -> CompressionResult:
        """Simulate the trace under ``config`` and (once per link/batching) uncompressed."""
        seconds = self.trace.duration
        # verify: decode every frame, so the decompression CPU is measured too (it costs a
        # few per cent of the run; the twins below need no decoding).
        run = simulate(self.trace, config, verify=True)
        # The uncompressed twin depends on batching and link only: moving a compression
        # slider must not re-simulate it.
        plain = TuningConfig(batching=config.batching, link=config.link).updated(
            {"compression.algorithm": "none"})
        key = json.dumps(plain.to_dict(), sort_keys=True)
        if key not in self._baselines:
            base = simulate(self.trace, plain, verify=False)
            self._baselines[key] = (WireCost.from_summary(base.summary, seconds),
                                    base.messages["latency_ms"].to_numpy(dtype=np.float64))
        base_cost, base_latency = self._baselines[key]
        s = run.summary
        always = None
        c = config.compression
        if c.algorithm != "none" and c.policy in ("threshold", "adaptive"):
            twin = config.updated({"compression.policy": "always"})
            twin_key = json.dumps(twin.to_dict(), sort_keys=True)
            if twin_key not in self._always:
                self._always[twin_key] = PolicyRun.from_summary(
                    simulate(self.trace, twin, verify=False).summary, seconds)
            always = self._always[twin_key]
        return CompressionResult(
            cost=WireCost.from_summary(s, seconds),
            baseline=base_cost,
            ratio=float(s["compression_ratio"]),
            cpu_us=float(s["cpu_us_per_msg"]),
            decompress_us=float(s.get("decompress_us_per_msg", 0.0)),
            memory_kib=memory_estimate_kib(config, int(s.get("dictionary_bytes") or 0)),
            curve=quantile_curve(run.messages["latency_ms"].to_numpy(dtype=np.float64)),
            baseline_curve=quantile_curve(base_latency),
            run=PolicyRun.from_summary(s, seconds),
            always=always,
        )

    def draw(self, result: CompressionResult) -> None:
        """Redraw curves and bars in place; refresh the numbers."""
        lat = self.figures["latency"]
        with lat.batch_update():
            lat.data[0].x, lat.data[0].y = result.curve
            lat.data[1].x, lat.data[1].y = result.baseline_curve
        c, b = result.cost, result.baseline
        pinned = self.pinned
        costs = [b, c] if pinned is None else [b, pinned.cost, c]
        names = ["uncompressed", "this config"] if pinned is None else [
            "uncompressed", "pinned", "this config"]
        bars = self.figures["bytes"]
        with bars.batch_update():
            for tr, attr in zip(bars.data, ("payload", "ws_header", "tcp_header"), strict=True):
                if tuple(tr.x) != tuple(names):
                    tr.x = names
                tr.y = [w.per_message(getattr(w, attr)) for w in costs]
        ours = _column(result)
        plain = [
            "1.000", fmt_bytes(b.payload + b.ws_header + b.tcp_header), "0 \u00b5s",
            "0 \u00b5s", "0 KiB", *(fmt_ms(b.latency[q]) for q in ("p50", "p95", "p99")), "all"]
        labels = ["compression ratio (payload)", "wire bytes (incl. headers)",
                  "compress CPU per message", "decompress CPU per message",
                  "codec memory per connection", "latency p50", "latency p95", "latency p99",
                  "frames sent uncompressed"]
        columns = [ours] if pinned is None else [ours, _column(pinned)]
        headers = ("", "this config", *(("pinned",) if pinned is not None else ()),
                   "uncompressed")
        rows = [(label, *(col[i] for col in columns), plain[i])
                for i, label in enumerate(labels) if i < len(ours)]
        self.stats.value = stat_table(rows, headers=headers)
        self.policy_stats.value = _policy_table(self.config.compression, result)
        if self.heatmap.filled:
            self.heatmap.outline(CURRENT, self.config)
        elif self.heatmap.hint_args != self._heatmap_args():
            self.heatmap.empty(*self._heatmap_args())  # the note names level and context

    def draw_pinned(self) -> None:
        """The pinned run's latency curve, dotted, and its heatmap outline (or none)."""
        lat = self.figures["latency"]
        curve = self.pinned.curve if self.pinned is not None else ([], [])
        with lat.batch_update():
            lat.data[2].x, lat.data[2].y = curve
        self.heatmap.outline(PINNED, self.pinned_config)

    def body(self) -> Any:
        """Numbers, latency beside bytes, then the heatmap with its button and progress."""
        return W.VBox([
            self.stats,
            self.policy_stats,
            row_of(self.figures["latency"], self.figures["bytes"]),
            self.task_bar(self.heatmap_button),
            self.figures["heatmap"],
        ])

    # -- the heatmap ---------------------------------------------------------------------

    def heatmap_cells(self) -> list[tuple[int, int]]:
        """(window bits, memLevel) of every heatmap cell, row by row."""
        return self.heatmap.cells()

    @property
    def heatmap_filled(self) -> bool:
        """True once at least one heatmap cell is measured."""
        return self.heatmap.filled

    def _heatmap_args(self) -> tuple[int, bool]:
        c = self.config.compression
        level = 6 if c.level == -1 else c.level
        return level, not c.server_no_context_takeover

    def _put_cell(self, w: int, m: int, ratio: float) -> None:
        if self.heatmap.put(w, m, ratio):
            self.heatmap.outline(CURRENT, self.config)
            self.heatmap.outline(PINNED, self.pinned_config)

    async def heatmap_job(self, progress: Progress) -> list[list[float | None]]:
        """Fill the heatmap cell by cell in the worker thread, yielding between cells."""
        level, context = self._heatmap_args()
        cells = self.heatmap_cells()
        progress.start(len(cells), f"heatmap: {len(cells)} settings on {len(self.trace):,} "
                                   "messages")
        self.heatmap.clear(level, context)
        for w, m in cells:
            cell = functools.partial(deflate_ratio_cell, self.trace, w, m, level=level,
                                     context_takeover=context)
            ratio = await in_worker(cell)
            self._put_cell(w, m, ratio)
            progress.step(note=f"window bits {w}, memLevel {m}: ratio {ratio:.3f}")
            await asyncio.sleep(0)
        return self.heatmap.z

    def start_heatmap(self) -> Any:
        """Start filling the heatmap in the background (Cancel stops it)."""
        return self.start_task(self.heatmap_job, note="computing heatmap")

    def run_heatmap(self) -> list[list[float | None]]:
        """Fill the heatmap now, blocking (scripts and tests; no running loop needed)."""
        level, context = self._heatmap_args()
        for w, m in self.heatmap_cells():
            self._put_cell(w, m, deflate_ratio_cell(self.trace, w, m, level=level,
                                                    context_takeover=context))
        return self.heatmap.z


def _column(r: CompressionResult) -> list[str]:
    """One run's numbers, in the order of the stats table's rows."""
    c = r.cost
    col = [f"{r.ratio:.3f}", fmt_bytes(c.payload + c.ws_header + c.tcp_header),
           f"{r.cpu_us:.1f} \u00b5s", f"{r.decompress_us:.1f} \u00b5s",
           f"{r.memory_kib:.0f} KiB", *(fmt_ms(c.latency[q]) for q in ("p50", "p95", "p99"))]
    if r.run is not None:
        col.append(f"{r.run.frames_plain:,}")
    return col


def _policy_table(c: CompressionConfig, result: CompressionResult) -> str:
    """This policy beside ``always`` on the same config, and why they differ ("" if n/a)."""
    run, always = result.run, result.always
    if run is None or always is None:
        return ""
    policy, threshold = str(c.policy), int(c.threshold_bytes)

    def per_msg(w: WireCost) -> float:
        return w.per_message(w.payload + w.ws_header)

    def change(a: float, b: float, unit: str) -> str:
        d = a - b
        if d == 0:
            return "same"
        pct = f" ({d / b:+.1%})" if b else ""
        return f"{d:+,.{2 if abs(d) < 1 else 1}f} {unit}{pct}"

    ours, theirs = per_msg(run.cost), per_msg(always.cost)
    rows = [
        ("WebSocket bytes per message", f"{ours:,.1f} B", f"{theirs:,.1f} B",
         change(ours, theirs, "B")),
        ("compress CPU per message", f"{run.cpu_us:.1f} \u00b5s", f"{always.cpu_us:.1f} \u00b5s",
         change(run.cpu_us, always.cpu_us, "\u00b5s")),
        ("frames sent uncompressed", f"{run.frames_plain:,}", f"{always.frames_plain:,}",
         f"{run.frames_plain - always.frames_plain:+,}"
         if run.frames_plain != always.frames_plain else "same"),
    ]
    if policy == "threshold":
        rule = f"It sends every frame under {threshold:,} bytes uncompressed."
    else:
        rule = ("It stops compressing a message type whose frames do not shrink, and "
                "probes it now and then")
        rule += (f"; every frame under {threshold:,} bytes (the threshold) goes "
                 "uncompressed too." if threshold > 0 else ".")
    why = html.escape(f"Policy {policy}: {run.plain_text}. {rule} Compress CPU is measured "
                      "on this machine and moves a little from run to run.")
    return (stat_table(rows, headers=("", f"policy {policy}", "policy always", "difference"))
            + f"<p class='wslab-policy-why'>{why}</p>")
