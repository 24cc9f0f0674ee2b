"""The batching panel: hold messages, send fewer frames, pay in latency.

What lives here: :class:`BatchingPanel`. Its sliders drive the ``batching`` section of the
config (strategy, interval, max bytes and messages, per-priority deadlines), the link
profile and a message-rate factor that replays the trace faster or slower. Every move
re-simulates the trace (debounced) and redraws: the latency distribution per priority
class beside the unbatched baseline, and the bytes each message costs on the wire
(payload, WebSocket header, TCP/IP headers), with frames and segments per second. A
pinned run is drawn beside the current one: dotted curves, a "pinned" bar and column.
Sliders a strategy does not read are disabled (:data:`APPLIES`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as W
import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go

from wslab.config import TuningConfig
from wslab.link import PROFILES
from wslab.sim import simulate
from wslab.traces.model import PRIORITIES, Trace

from .base import Panel
from .controls import When
from .data import speed_up
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

STRATEGIES = ("none", "time", "size", "count", "hybrid", "priority")
MAX_BYTES_STEPS = tuple(1 << k for k in range(8, 21))
CURVE_NAMES = (*PRIORITIES, "unbatched")
PINNED_NAMES = tuple(f"pinned {p}" for p in PRIORITIES)
APPLIES: dict[str, When] = {
    "interval_ms": When("batching.strategy", ("time", "hybrid"), "strategy"),
    "max_hold_ms": When("batching.strategy", ("size", "count"), "strategy"),
    "max_bytes": When("batching.strategy", ("size", "hybrid", "priority"), "strategy"),
    "max_messages": When("batching.strategy", ("count", "hybrid", "priority"), "strategy"),
    **{p: When("batching.strategy", ("priority",), "strategy") for p in PRIORITIES},
}
"""Which sliders each strategy reads (``wslab.batching``'s table); the others are disabled."""


@dataclass(slots=True)
class WireCost:
    """What one simulated run put on the wire, per message and per second.

    Attributes:
        messages: Messages sent.
        frames: WebSocket data frames.
        segments: TCP segments (wire model).
        payload: Payload bytes after compression.
        ws_header: WebSocket framing bytes (headers and masks).
        tcp_header: TCP/IP header bytes.
        seconds: Duration of the (rate-scaled) trace.
        latency: Latency percentiles, ms.
    """

    messages: int
    frames: int
    segments: int
    payload: int
    ws_header: int
    tcp_header: int
    seconds: float
    latency: dict[str, float]

    @classmethod
    def from_summary(cls, summary: dict[str, Any], seconds: float) -> WireCost:
        """Read the cost out of a simulation summary record."""
        ws = int(summary["ws_bytes"])
        payload = int(summary["compressed_bytes"])
        return cls(
            messages=int(summary["messages"]), frames=int(summary["frames"]),
            segments=int(summary["tcp_segments"]), payload=payload, ws_header=ws - payload,
            tcp_header=int(summary["tcp_bytes"]) - ws, seconds=seconds,
            latency=dict(summary["latency_ms"]),
        )

    def per_message(self, amount: int) -> float:
        """``amount`` divided by the number of messages."""
        return amount / self.messages if self.messages else 0.0

    def per_second(self, amount: int) -> float:
        """``amount`` divided by the trace's duration."""
        return amount / self.seconds if self.seconds > 0 else float("nan")


@dataclass(slots=True)
class BatchingResult:
    """One run of the batching panel: its cost, the unbatched baseline's, and curves."""

    cost: WireCost
    baseline: WireCost
    curves: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]
    batch_wait_p99: float
    notes: list[str] = field(default_factory=list)


class BatchingPanel(Panel[BatchingResult]):
    """Tune frame batching on a trace and watch frames, bytes and latency move.

    Example:
        >>> BatchingPanel("chat")  # doctest: +SKIP

    Controls: ``strategy``, ``interval_ms``, ``max_bytes``, ``max_messages``, ``critical``,
    ``normal``, ``background`` (priority deadlines, ms), ``rate`` (message-rate factor)
    and ``profile`` (link). Figures: ``latency`` and ``bytes``.
    """

    title = "Frame batching"
    applies = APPLIES
    config_name = "wslab-batching.yaml"

    def __init__(self, trace: Trace | str, config: TuningConfig | None = None,
                 **kwargs: Any) -> None:
        self._baselines: dict[str, tuple[WireCost, npt.NDArray[np.float64]]] = {}
        super().__init__(trace, config, **kwargs)

    def default_config(self) -> TuningConfig:
        """Batching on (``time``, 16 ms), so the sliders have something to move."""
        return TuningConfig().updated({"batching.strategy": "time"})

    def default_params(self) -> dict[str, Any]:
        """``rate``: 1.0 replays the trace at its recorded speed."""
        return {"rate": 1.0}

    def build(self) -> None:
        """Controls for the batching section, link and rate; two figures."""
        slider = {"continuous_update": True}
        self.bind(W.Dropdown(options=STRATEGIES, description="strategy"), "batching.strategy",
                  tip="what ends a batch: none (every message alone), time, size, count, "
                      "hybrid (the first of the three), priority (a deadline per class)")
        self.bind(W.FloatSlider(min=0, max=250, step=1, description="interval (ms)", **slider),
                  "batching.interval_ms",
                  tip="how long a batch waits after its first message before it is sent, ms")
        self.bind(W.FloatSlider(min=0, max=1000, step=5, description="max hold (ms)",
                                **slider), "batching.max_hold_ms",
                  tip="longest wait of a size or count batch that does not fill up, ms")
        self.bind(W.SelectionSlider(options=MAX_BYTES_STEPS, description="max bytes",
                                    **slider), "batching.max_bytes",
                  tip="send the batch once its payload reaches this many bytes")
        self.bind(W.IntSlider(min=1, max=256, description="max messages", **slider),
                  "batching.max_messages",
                  tip="send the batch once it holds this many messages")
        for prio, top in (("critical", 50), ("normal", 250), ("background", 2000)):
            self.bind(W.FloatSlider(min=0, max=top, step=1, description=f"{prio} hold (ms)",
                                    **slider), f"batching.priority_interval_ms.{prio}",
                      tip=f"deadline of {prio} messages under strategy priority: the "
                          "longest they wait in a batch, ms")
        self.bind(W.FloatLogSlider(base=2, min=-3, max=5, step=0.25,
                                   description="message rate \u00d7", **slider), "rate",
                  tip="replay the trace this many times faster (x2) or slower (x0.5) than "
                      "recorded: more messages per second on the same connection")
        self.bind(W.Dropdown(options=list(PROFILES), description="link"), "link.profile",
                  tip="the link between server and client: bandwidth, round trip, loss "
                      "(wslab link list shows each profile)")
        self.stats = W.HTML()
        self.figures["latency"] = figure(
            "Latency per message (distribution)", x="latency (ms, log)", y="share of messages",
            width=HALF_WIDTH,
            traces=[*(go.Scatter(x=[], y=[], name=name, mode="lines",
                                 line={"color": COLOURS["baseline" if name == "unbatched"
                                                        else name],
                                       "dash": "dash" if name == "unbatched" else "solid"})
                      for name in CURVE_NAMES),
                    *(go.Scatter(x=[], y=[], name=name, mode="lines", legendgroup="pinned",
                                 line={"color": COLOURS[prio], "dash": "dot", "width": 1.5})
                      for prio, name in zip(PRIORITIES, PINNED_NAMES, strict=True))],
        )
        self.figures["latency"].update_xaxes(type="log")
        self.figures["bytes"] = figure(
            "Bytes on the wire per message", y="bytes per message", width=HALF_WIDTH,
            traces=[go.Bar(x=["unbatched", "this config"], y=[0, 0], name=name,
                           marker_color=COLOURS[key])
                    for key, name in (("payload", "payload (after compression)"),
                                      ("ws", "WebSocket header"), ("tcp", "TCP/IP headers"))],
        )
        self.figures["bytes"].update_layout(barmode="stack")

    def compute(self, config: TuningConfig, params: dict[str, Any]) -> BatchingResult:
        """Simulate the (rate-scaled) trace under ``config`` and its unbatched twin."""
        trace = speed_up(self.trace, float(params["rate"]))
        seconds = trace.duration
        run = simulate(trace, config, verify=False)
        # The unbatched twin depends on compression, link and rate only: moving a batching
        # slider must not re-simulate it.
        unbatched = TuningConfig(compression=config.compression, link=config.link).updated(
            {"batching.strategy": "none"})
        key = json.dumps([params["rate"], unbatched.to_dict()], sort_keys=True)
        if key not in self._baselines:
            base = simulate(trace, unbatched, verify=False)
            self._baselines[key] = (WireCost.from_summary(base.summary, seconds),
                                    base.messages["latency_ms"].to_numpy(dtype=np.float64))
        base_cost, base_latency = self._baselines[key]
        msgs = run.messages
        latency = msgs["latency_ms"].to_numpy()
        prio = msgs["priority"].astype(str).to_numpy()
        curves: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {
            p: quantile_curve(latency[prio == p]) for p in PRIORITIES
        }
        curves["unbatched"] = quantile_curve(base_latency)
        wait = msgs["batch_wait_ms"].to_numpy(dtype=np.float64)
        return BatchingResult(
            cost=WireCost.from_summary(run.summary, seconds),
            baseline=base_cost,
            curves=curves,
            batch_wait_p99=float(np.nanquantile(wait, 0.99)) if wait.size else 0.0,
            notes=list(run.notes),
        )

    def draw(self, result: BatchingResult) -> None:
        """Redraw the curves and bars in place and refresh the numbers."""
        lat = self.figures["latency"]
        with lat.batch_update():
            for tr in lat.data[:len(CURVE_NAMES)]:
                x, y = result.curves[tr.name]
                tr.x, tr.y = x, y
        c, b = result.cost, result.baseline
        pinned = self.pinned
        costs = [b, c] if pinned is None else [b, pinned.cost, c]
        names = ["unbatched", "this config"] if pinned is None else [
            "unbatched", "pinned", "this config"]
        bars = self.figures["bytes"]
        with bars.batch_update():
            for tr, attr in zip(bars.data, ("payload", "ws_header", "tcp_header"), strict=True):
                if tuple(tr.x) != tuple(names):
                    tr.x = names
                tr.y = [w.per_message(getattr(w, attr)) for w in costs]
        rows = _stat_rows(c, b, result.batch_wait_p99)
        headers: tuple[str, ...] = ("", "this config", "unbatched")
        if pinned is not None:
            pin = _stat_rows(pinned.cost, b, pinned.batch_wait_p99)
            rows = [(r[0], r[1], p[1], r[2]) for r, p in zip(rows, pin, strict=True)]
            headers = ("", "this config", "pinned", "unbatched")
        self.stats.value = stat_table(rows, headers=headers)

    def draw_pinned(self) -> None:
        """The pinned run's curves, dotted, beside the current ones (or none)."""
        lat = self.figures["latency"]
        with lat.batch_update():
            for prio, tr in zip(PRIORITIES, lat.data[len(CURVE_NAMES):], strict=True):
                x, y = self.pinned.curves[prio] if self.pinned is not None else ([], [])
                tr.x, tr.y = x, y

    def body(self) -> Any:
        """Numbers on top, then the latency curves beside the byte bars."""
        return W.VBox([self.stats, row_of(self.figures["latency"], self.figures["bytes"])])


def _stat_rows(c: WireCost, b: WireCost, wait_p99: float) -> list[tuple[str, ...]]:
    def overhead(w: WireCost) -> float:
        return w.per_message(w.ws_header + w.tcp_header)

    return [
        ("frames per second", f"{c.per_second(c.frames):,.1f}", f"{b.per_second(b.frames):,.1f}"),
        ("messages per frame", f"{c.messages / max(c.frames, 1):.2f}", "1.00"),
        ("TCP segments per second", f"{c.per_second(c.segments):,.1f}",
         f"{b.per_second(b.segments):,.1f}"),
        ("header overhead per message", f"{overhead(c):.1f} B", f"{overhead(b):.1f} B"),
        ("wire bytes per second",
         fmt_bytes(c.per_second(c.payload + c.ws_header + c.tcp_header)) + "/s",
         fmt_bytes(b.per_second(b.payload + b.ws_header + b.tcp_header)) + "/s"),
        *((f"latency {q}", fmt_ms(c.latency[q]), fmt_ms(b.latency[q]))
          for q in ("p50", "p95", "p99")),
        ("batch wait p99 (added by batching)", fmt_ms(wait_p99), fmt_ms(0.0)),
    ]
