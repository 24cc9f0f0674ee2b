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
cell, as a cancellable background job.
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

from wslab.codecs.deflate import deflate_memory_bytes
from wslab.config import CompressionConfig, TuningConfig
from wslab.link import PROFILES
from wslab.sim import simulate
from wslab.traces.model import Trace
from wslab.tune.recommend_explain import plain_frames_text
from wslab.tune.sweep import memory_estimate_kib

from .base import Panel
from .batching import WireCost
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
HEATMAP_HINT = "press <b>Compute heatmap</b> to measure every cell"


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
        style = {"description_width": "150px"}
        wide = W.Layout(width="95%")
        slider = {"style": style, "layout": wide, "continuous_update": True}
        menu = {"style": style, "layout": W.Layout(width="95%", max_width="360px")}
        self.bind(W.Dropdown(options=ALGORITHMS, description="algorithm", **menu),
                  "compression.algorithm")
        self.bind(W.IntSlider(min=9, max=15, description="window bits", **slider),
                  ("compression.server_max_window_bits", "compression.client_max_window_bits"),
                  key="window_bits")
        self.bind(W.IntSlider(min=1, max=9, description="memLevel", **slider),
                  "compression.mem_level")
        self.bind(W.IntSlider(min=0, max=9, description="level", **slider),
                  "compression.level", from_value=lambda v: 6 if v == -1 else v)
        self.bind(W.IntSlider(min=0, max=2048, step=16, description="threshold (bytes)",
                              **{**slider, "continuous_update": False}),
                  "compression.threshold_bytes")
        self.bind(W.Checkbox(description="context takeover", style=style, layout=wide),
                  ("compression.server_no_context_takeover",
                   "compression.client_no_context_takeover"),
                  key="context_takeover", to_value=lambda v: not v, from_value=lambda v: not v)
        self.bind(W.Checkbox(description="adaptive (skip what will not shrink)", style=style,
                             layout=wide), "adaptive")
        self.bind(W.Dropdown(options=list(PROFILES), description="link", **menu),
                  "link.profile")
        self.stats = W.HTML()
        self.policy_stats = W.HTML()
        self.figures["latency"] = figure(
            "Latency per message on the link", x="latency (ms, log)", y="share of messages",
            width=HALF_WIDTH, traces=[go.Scatter(x=[], y=[], mode="lines", name="this config",
                               line={"color": COLOURS["normal"]}),
                    go.Scatter(x=[], y=[], mode="lines", name="uncompressed",
                               line={"color": COLOURS["baseline"], "dash": "dash"})],
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
        memory = [[deflate_memory_bytes(w, m) / 1024 for w in self.wbits_axis]
                  for m in self.mem_axis]
        self.figures["heatmap"] = heat = figure(
            "permessage-deflate ratio on this trace (lower is better)",
            x="window bits", y="memLevel", height=360,
            traces=[go.Heatmap(
                x=list(self.wbits_axis), y=list(self.mem_axis),
                z=[[None] * len(self.wbits_axis) for _ in self.mem_axis],
                customdata=memory, colorscale="Viridis", reversescale=True,
                texttemplate="%{z:.3f}",
                hovertemplate=("window bits %{x}, memLevel %{y}<br>ratio %{z:.4f}<br>"
                               "zlib memory %{customdata:.0f} KiB<extra></extra>"),
            )],
        )
        # Until the cells are measured, the axes show the grid's own values (not plotly's
        # -1..6 for a heatmap with no numbers) and a hint where the colours will be.
        heat.update_xaxes(tickmode="array", tickvals=list(self.wbits_axis),
                          range=_cell_range(self.wbits_axis))
        heat.update_yaxes(tickmode="array", tickvals=list(self.mem_axis),
                          range=_cell_range(self.mem_axis))
        heat.add_annotation(text=HEATMAP_HINT, showarrow=False, xref="paper", yref="paper",
                            x=0.5, y=0.5, font={"size": 14, "color": "#666"})
        self.heatmap_button = W.Button(description="Compute heatmap", icon="th",
                                       button_style="primary",
                                       layout=W.Layout(width="200px"))
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
        bars = self.figures["bytes"]
        with bars.batch_update():
            for tr, attr in zip(bars.data, ("payload", "ws_header", "tcp_header"), strict=True):
                tr.y = [b.per_message(getattr(b, attr)), c.per_message(getattr(c, attr))]
        wire_c = c.payload + c.ws_header + c.tcp_header
        wire_b = b.payload + b.ws_header + b.tcp_header
        rows = [
            ("compression ratio (payload)", f"{result.ratio:.3f}", "1.000"),
            ("wire bytes (incl. headers)", fmt_bytes(wire_c), fmt_bytes(wire_b)),
            ("compress CPU per message", f"{result.cpu_us:.1f} \u00b5s", "0 \u00b5s"),
            ("decompress CPU per message", f"{result.decompress_us:.1f} \u00b5s", "0 \u00b5s"),
            ("codec memory per connection", f"{result.memory_kib:.0f} KiB", "0 KiB"),
            *((f"latency {q}", fmt_ms(c.latency[q]), fmt_ms(b.latency[q]))
              for q in ("p50", "p95", "p99")),
        ]
        if result.run is not None:
            rows.append(("frames sent uncompressed", f"{result.run.frames_plain:,}", "all"))
        self.stats.value = stat_table(rows, headers=("", "this config", "uncompressed"))
        self.policy_stats.value = _policy_table(self.config.compression, result)

    def body(self) -> Any:
        """Numbers, latency beside bytes, then the heatmap with its button."""
        return W.VBox([
            self.stats,
            self.policy_stats,
            row_of(self.figures["latency"], self.figures["bytes"]),
            self.heatmap_button,
            self.figures["heatmap"],
        ])

    # -- the heatmap ---------------------------------------------------------------------

    def heatmap_cells(self) -> list[tuple[int, int]]:
        """(window bits, memLevel) of every heatmap cell, row by row."""
        return [(w, m) for m in self.mem_axis for w in self.wbits_axis]

    def _heatmap_args(self) -> tuple[int, bool]:
        c = self.config.compression
        level = 6 if c.level == -1 else c.level
        return level, not c.server_no_context_takeover

    def _put_cell(self, w: int, m: int, ratio: float) -> None:
        if self.figures["heatmap"].layout.annotations:
            self.figures["heatmap"].layout.annotations = []  # the hint gives way to numbers
        heat = self.figures["heatmap"].data[0]
        z = [list(row) for row in heat.z]
        z[self.mem_axis.index(m)][self.wbits_axis.index(w)] = ratio
        heat.z = z

    async def heatmap_job(self, progress: Progress) -> list[list[float]]:
        """Fill the heatmap cell by cell in the worker thread, yielding between cells."""
        level, context = self._heatmap_args()
        cells = self.heatmap_cells()
        progress.start(len(cells), f"heatmap: {len(cells)} settings on {len(self.trace):,} "
                                   "messages")
        self.figures["heatmap"].data[0].z = [[None] * len(self.wbits_axis)
                                            for _ in self.mem_axis]
        for w, m in cells:
            cell = functools.partial(deflate_ratio_cell, self.trace, w, m, level=level,
                                     context_takeover=context)
            ratio = await in_worker(cell)
            self._put_cell(w, m, ratio)
            progress.step(note=f"window bits {w}, memLevel {m}: ratio {ratio:.3f}")
            await asyncio.sleep(0)
        return [list(row) for row in self.figures["heatmap"].data[0].z]

    def start_heatmap(self) -> Any:
        """Start filling the heatmap in the background (Cancel stops it)."""
        return self.start_task(self.heatmap_job, note="computing heatmap")

    def run_heatmap(self) -> list[list[float]]:
        """Fill the heatmap now, blocking (scripts and tests; no running loop needed)."""
        level, context = self._heatmap_args()
        for w, m in self.heatmap_cells():
            self._put_cell(w, m, deflate_ratio_cell(self.trace, w, m, level=level,
                                                    context_takeover=context))
        return [list(row) for row in self.figures["heatmap"].data[0].z]


def _cell_range(values: tuple[int, ...]) -> list[float]:
    """An axis range that shows the outer heatmap cells whole (evenly spaced values)."""
    half = (values[1] - values[0]) / 2 if len(values) > 1 else 0.5
    return [values[0] - half, values[-1] + half]


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
