"""The plotly figures of the tuning report.

What lives here: :func:`frontier_figure` (bytes per message against p99 latency, coloured
by CPU or memory per connection with a switch, the Pareto frontier highlighted and the chosen
point marked), :func:`sim_live_figure` (simulated against measured, per metric) and
:func:`compression_figure` (compression ratio per message type and codec). Each takes tidy
tables and returns a ``plotly.graph_objects.Figure``.

What must not live here: HTML assembly or file writing (``report.py``), choosing points
(``recommend.py``), any computed metric (figures only draw the tables they are given).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from wslab.tune.recommend_explain import describe_config, fmt, label
from wslab.tune.recommend_pareto import integrity_ok

_HOVER_METRICS = ("ws_bytes_per_msg", "latency_p99_ms", "cpu_us_per_msg", "mem_kib_per_conn")
_COLOURS = {"cpu_us_per_msg": "CPU µs/msg", "mem_kib_per_conn": "memory KiB/conn"}


def _hover(row: dict[str, Any]) -> str:
    lines = [describe_config(row)]
    lines += [f"{label(m)}: {fmt(m, row.get(m))}" for m in _HOVER_METRICS if m in row]
    if "point" in row:
        lines.append(f"point: {row['point']}")
    return "<br>".join(lines)


def _log_axis(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return bool(len(v) and v.min() > 0 and v.max() / v.min() > 30)


def frontier_figure(
    df: pd.DataFrame, frontier: pd.DataFrame, chosen: dict[str, Any] | None,
    *, x: str = "ws_bytes_per_msg", y: str = "latency_p99_ms",
) -> go.Figure:
    """Every point, the frontier highlighted, the chosen point starred.

    Args:
        df: The points to draw (usually the simulated rows).
        frontier: The frontier rows (index labels of ``df``).
        chosen: The chosen row, or ``None``.
        x: Column on the x axis.
        y: Column on the y axis.
    """
    ok = integrity_ok(df).to_numpy()
    on_front = df.index.isin(frontier.index)
    groups = {
        "points": df[ok & ~on_front],
        "Pareto frontier": df[ok & on_front],
    }
    fig = go.Figure()
    for name, part in groups.items():
        records = part.to_dict(orient="records")
        front = name == "Pareto frontier"
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers", name=name,
            text=[_hover({str(k): v for k, v in r.items()}) for r in records],
            hovertemplate="%{text}<extra></extra>",
            marker={
                "color": part["cpu_us_per_msg"], "coloraxis": "coloraxis",
                "size": 12 if front else 7, "opacity": 1.0 if front else 0.55,
                "line": {"width": 1.5 if front else 0, "color": "black"},
            },
        ))
    broken = df[~ok]
    if not broken.empty:
        fig.add_trace(go.Scatter(
            x=broken[x], y=broken[y], mode="markers", name="lost/duplicated/reordered",
            marker={"symbol": "x", "color": "crimson", "size": 9},
            hovertemplate="integrity failure<extra></extra>",
        ))
    if chosen is not None:
        fig.add_trace(go.Scatter(
            x=[chosen[x]], y=[chosen[y]], mode="markers+text", name="chosen",
            text=["chosen"], textposition="top center",
            hovertext=[_hover(chosen)], hovertemplate="%{hovertext}<extra></extra>",
            marker={"symbol": "star", "size": 22, "color": "gold",
                    "line": {"width": 1.5, "color": "black"}},
        ))
    buttons = []
    for column, title in _COLOURS.items():
        if column not in df.columns:
            continue
        colours = [groups[g][column].tolist() for g in groups]
        buttons.append({
            "label": f"colour: {title}", "method": "update",
            "args": [{"marker.color": colours}, {"coloraxis.colorbar.title.text": title}, [0, 1]],
        })
    fig.update_layout(
        title=f"{label(x)} against {label(y)} (every simulated point)",
        xaxis={"title": {"text": f"{label(x)} ({x})"},
               "type": "log" if _log_axis(df[x]) else "linear"},
        yaxis={"title": {"text": f"{label(y)} ({y})"},
               "type": "log" if _log_axis(df[y]) else "linear"},
        coloraxis={"colorscale": "Viridis", "colorbar": {"title": {"text": "CPU µs/msg"}}},
        updatemenus=[{"buttons": buttons, "x": 0.0, "y": 1.12, "xanchor": "left",
                      "direction": "down"}] if buttons else [],
        legend={"orientation": "h", "y": -0.18},
        height=560, margin={"t": 90},
    )
    return fig


def sim_live_figure(tidy: pd.DataFrame) -> go.Figure:
    """Simulated against measured, one panel per metric, one bar pair per point.

    Args:
        tidy: Columns ``point``, ``metric``, ``sim``, ``live`` (one row per pair).
    """
    metrics = list(dict.fromkeys(tidy["metric"]))
    fig = make_subplots(rows=1, cols=len(metrics),
                        subplot_titles=[label(m) for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        part = tidy[tidy["metric"] == metric]
        for kind, colour in (("sim", "#4c78a8"), ("live", "#f58518")):
            fig.add_trace(go.Bar(
                x=part["point"].astype(str), y=part[kind], name=kind, marker_color=colour,
                legendgroup=kind, showlegend=col == 1,
            ), row=1, col=col)
    fig.update_layout(barmode="group", title="simulated against measured live",
                      height=420, legend={"orientation": "h", "y": -0.3})
    fig.update_xaxes(title_text="point")
    return fig


_RATIOS = {
    "deflate_ratio": "deflate (context takeover)",
    "deflate_ratio_no_context": "deflate (no context takeover)",
    "zstd_ratio": "zstd (per message)",
    "zstd_dict_ratio": "zstd with dictionary",
}


def compression_figure(analysis: pd.DataFrame) -> go.Figure:
    """Compressed/original size per message type and direction, one bar per codec.

    Args:
        analysis: ``wslab.analysis.analyse`` output (one row per type and direction).
    """
    names = (analysis["type"].astype(str) + " (" + analysis["dir"].astype(str) + ")").tolist()
    fig = go.Figure()
    for column, title in _RATIOS.items():
        if column in analysis.columns:
            fig.add_trace(go.Bar(y=names, x=analysis[column], name=title, orientation="h"))
    fig.update_layout(
        barmode="group", title="compression ratio per message type (lower is better)",
        xaxis={"title": {"text": "compressed / original bytes"}},
        height=max(320, min(1800, 80 + 18 * len(names) * max(1, len(fig.data)))),
        legend={"orientation": "h", "y": -0.12}, yaxis={"autorange": "reversed"},
    )
    return fig
