"""The scaling panel's figures: what each one shows and how a result is drawn into it.

What lives here: the figure factories of :class:`~wslab.lab.scaling.ScalingPanel` (memory
per connection, limits, ramp, fan-out latency, connection storm) and the drawers that fill
them in place from an :class:`~wslab.lab.scaling_estimate.Estimate`, a ``run_scale``
summary or a ``run_storm`` result (:func:`ramp_points` turns the ramp's per-second counts
into a curve). What must not live here: the arithmetic (``scaling_estimate.py``) and
anything that runs (``scaling_jobs.py``).

| figure                | made by               | filled by             | from                     |
|-----------------------|-----------------------|-----------------------|--------------------------|
| memory per connection | :func:`memory_figure` | :func:`draw_estimate` | estimate, docs, measured |
| limits                | :func:`limits_figure` | :func:`draw_estimate` | the estimate's usage     |
| ramp                  | :func:`ramp_figure`   | :func:`draw_live`     | ``run_scale``            |
| fan-out latency       | :func:`fanout_figure` | :func:`draw_live`     | ``run_scale``            |
| connection storm      | :func:`storm_figure`  | :func:`draw_storm`    | ``run_storm``            |

A pinned estimate (:func:`draw_pinned_estimate`) adds a "pinned" bar per variant to the
memory figure and a marker per limit to the limits figure. Every bar with a number on it
has its value axis set with room above the tallest bar (:func:`headroom`), so the numbers
are never cut off by the plot's edge.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from .figures import COLOURS, HALF_WIDTH, figure
from .scaling_estimate import BASE_KIB, DOCS_KIB, VARIANTS, Estimate

HEADROOM = 1.2
"""The value axis of a labelled bar chart reaches this times the tallest bar."""
LIMIT_CAP = 400.0
"""Bars of the limits figure stop at this percentage (the label says the real one)."""


def headroom(values: list[float | None], *, floor: float = 1.0) -> list[float]:
    """A value-axis range from 0 with room above the tallest bar for its label."""
    top = max((v for v in values if v is not None and v == v), default=0.0)
    return [0.0, max(floor, top * HEADROOM)]


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
        bars("pinned estimate", "#333"),
    ])
    fig.update_layout(barmode="group")
    return fig


def limits_figure() -> Any:
    """Each resource the run needs as a share of its limit (the red line is 100 %)."""
    fig = figure("What the run needs, against this machine's limits<br>"
                 "<sup>share of each limit; past 100 % (red) it cannot run</sup>",
                 x="% of the limit", height=360, width=HALF_WIDTH,
                 traces=[go.Bar(x=[], y=[], orientation="h", text=[], textposition="outside",
                                hoverinfo="text", hovertext=[], marker_color=[],
                                cliponaxis=False, name="this setting"),
                         go.Scatter(x=[], y=[], mode="markers", name="pinned",
                                    marker={"symbol": "diamond-open", "size": 12,
                                            "color": "#333", "line": {"width": 2}})])
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
        pinned = [v for v in memory_fig.data[3].y or () if v is not None]
        memory_fig.layout.yaxis.range = headroom([*total, *docs, *got, *pinned])
        memory_fig.layout.title.text = (
            f"Memory per connection (KiB)<br><sup>selected: {est.variant}, "
            f"{est.per_connection_kib:.0f} KiB + {est.kernel_kib:g} KiB kernel</sup>")
    rows = est.usage[::-1]  # plotly draws the first bar at the bottom
    with limits_fig.batch_update():
        bar = limits_fig.data[0]
        bar.y = [u.name for u in rows]
        shares = [min(u.percent, LIMIT_CAP) for u in rows]
        bar.x = shares
        bar.text = [f"{u.percent:.0f} %" for u in rows]
        bar.hovertext = [u.note for u in rows]
        bar.marker.color = [COLOURS["critical"] if u.percent > 100 else COLOURS["payload"]
                            for u in rows]
        pinned = [v for v in limits_fig.data[1].x or () if v is not None]
        limits_fig.layout.xaxis.range = headroom([*shares, *pinned], floor=110.0)


def draw_pinned_estimate(memory_fig: Any, limits_fig: Any, pinned: Estimate | None) -> None:
    """Put a pinned estimate beside the current one (``None``: take it away)."""
    with memory_fig.batch_update():
        bars = memory_fig.data[3]
        if pinned is None:
            bars.y, bars.text = [None] * len(VARIANTS), [""] * len(VARIANTS)
        else:
            totals = [sum(pinned.memory_kib[v]) for v in VARIANTS]
            bars.y, bars.text = totals, [f"{t:.0f}" for t in totals]
            bars.name = f"pinned estimate ({pinned.connections:,} connections)"
    with limits_fig.batch_update():
        marks = limits_fig.data[1]
        rows = pinned.usage[::-1] if pinned is not None else []
        marks.x = [min(u.percent, LIMIT_CAP) for u in rows]
        marks.y = [u.name for u in rows]


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
                  "client's receipt</sup>", y="latency (ms)", width=HALF_WIDTH, height=340,
                  traces=[go.Bar(x=[], y=[], name="broadcast", marker_color=COLOURS["ws"],
                                 text=[], textposition="outside", cliponaxis=False)])


def storm_figure() -> Any:
    """What happened to every client of a connection storm."""
    return figure("Connection storm: admission control", y="clients", traces=[
        go.Bar(x=[], y=[], marker_color=[], text=[], textposition="outside",
               cliponaxis=False)])


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
        fanout_fig.layout.yaxis.range = headroom([lat[k] for k in names])
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
        fig.layout.yaxis.range = headroom([float(b[1] or 0) for b in bars])
        fig.layout.title.text = (
            f"Connection storm: {storm.get('clients', 0):,} clients, max_connections "
            f"{storm.get('max_connections', 0):,}, pending queue {storm.get('pending_queue')}")
