"""The content-analysis panel: what is in a trace, and what each message type compresses to.

What lives here: :class:`ContentPanel`. It runs :func:`wslab.analysis.analyse` (one row per
message type and direction: entropy, repetition, JSON share, measured ratios, advice) and
:func:`wslab.analysis.message_table` (the same, per message) at the deflate settings of
its sliders, and shows ratios per type, entropy against repetition, the advice table, and
the messages of the type picked in the dropdown. Types are shown largest share of the
bytes first, and only the larger ones are named on the scatter (the rest on hover), so the
labels stay readable on a trace with dozens of types; each name goes where it overlaps no
other (:func:`place_labels`; else it is left to the hover text) and is never clipped.
Analyses are remembered per setting, so picking another type redraws without recomputing.
A pinned analysis (other deflate settings) shows as a black tick on each type's
context-takeover bar.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from wslab.analysis import analyse, message_table
from wslab.config import TuningConfig
from wslab.traces.model import Trace

from .base import Panel
from .controls import FONT_PX, text_px
from .figures import figure, row_of

RATIO_COLUMNS = (
    ("deflate_ratio", "deflate, context takeover"),
    ("deflate_ratio_no_context", "deflate, no context takeover"),
    ("zstd_ratio", "zstd per message"),
    ("zstd_dict_ratio", "zstd with a trained dictionary"),
)
ALL_TYPES = "(all types)"
TABLE_ROWS = 25
PREVIEW_CHARS = 90
LABELLED_TYPES = 8
"""The scatter names the largest types by bytes (at most this many, >= 2 % of the bytes)."""
LARGE_MESSAGE = 512
"""... and every type whose messages average at least this many bytes."""
FIGURE_WIDTH = 700
ENTROPY_RANGE = (-0.2, 8.4)
REPETITION_RANGE = (-0.06, 1.14)
"""Fixed scatter axes (entropy 0..8 bits per byte, repetition 0..1) with room for names."""
PINNED = len(RATIO_COLUMNS)
"""Trace index of the pinned analysis in the ratios figure."""


@dataclass(slots=True)
class ContentResult:
    """One analysis: per-type rows, per-message rows, and the type being looked at."""

    per_type: pd.DataFrame
    per_message: pd.DataFrame
    selected: str


class ContentPanel(Panel[ContentResult]):
    """Analyse a trace's content per message type; pick a type to see its messages.

    Controls: ``server_max_window_bits``, ``mem_level``, ``level`` (deflate settings the
    ratios are measured at) and ``type`` (which messages the table lists). Figures:
    ``ratios`` and ``features``; tables: :attr:`advice` and :attr:`table`.
    """

    title = "Content analysis"

    def __init__(self, trace: Trace | str, config: TuningConfig | None = None,
                 **kwargs: Any) -> None:
        self._cache: dict[tuple[int, int, int], tuple[pd.DataFrame, pd.DataFrame]] = {}
        super().__init__(trace, config, **kwargs)

    def default_params(self) -> dict[str, Any]:
        """``type``: the message type listed in the table (all types at first)."""
        return {"type": ALL_TYPES}

    def build(self) -> None:
        """Deflate-setting sliders, the type picker, two figures and two tables."""
        slider = {"continuous_update": False}
        self.bind(W.IntSlider(min=9, max=15, description="window bits", **slider),
                  "compression.server_max_window_bits", key="window_bits",
                  tip="LZ77 window the ratios are measured with, 2^N bytes: how far back a "
                      "repeat may be found")
        self.bind(W.IntSlider(min=1, max=9, description="memLevel", **slider),
                  "compression.mem_level",
                  tip="zlib memLevel 1..9 the ratios are measured with (hash table memory)")
        self.bind(W.IntSlider(min=0, max=9, description="level", **slider),
                  "compression.level", from_value=lambda v: 6 if v == -1 else v,
                  tip="zlib level 0..9 the ratios are measured with (effort finding repeats)")
        types = [ALL_TYPES, *self.trace.types()]
        self.bind(W.Dropdown(options=types, description="message type"), "type",
                  tip="which messages the table below lists, one row per message")
        ratios = self.figures["ratios"] = figure(
            "Compressed / original bytes per message type (lower is better)",
            x="message type (largest share of the bytes first)",
            y="ratio (above 1: it grows)", height=460, width=FIGURE_WIDTH,
            traces=[*(go.Bar(x=[], y=[], name=label) for _, label in RATIO_COLUMNS),
                    go.Scatter(x=[], y=[], mode="markers", name="pinned: deflate, context",
                               marker={"symbol": "line-ew-open", "size": 18,
                                       "line": {"width": 3, "color": "#000"}})],
        )
        # The legend goes above the plot: below it, it would sit on the type names.
        ratios.update_layout(legend={"orientation": "h", "x": 0, "y": 1.02,
                                     "yanchor": "bottom"}, margin={"t": 100},
                             title={"y": 0.98, "yanchor": "top"})
        ratios.update_xaxes(tickangle=-60, automargin=True)
        ratios.add_hline(y=1.0, line_dash="dot", line_color="#999")
        features = self.figures["features"] = figure(
            "What compresses: repetition against entropy (marker area ~ bytes)",
            x="entropy (bits per byte)", y="repeated share of bytes", height=440,
            width=FIGURE_WIDTH,
            traces=[go.Scatter(x=[], y=[], mode="markers+text", textposition="top center",
                               name="type", hoverinfo="text", cliponaxis=False)],
        )
        features.update_xaxes(range=list(ENTROPY_RANGE))
        features.update_yaxes(range=list(REPETITION_RANGE))
        self.advice = W.HTML()
        self.table = W.HTML()

    def compute(self, config: TuningConfig, params: dict[str, Any]) -> ContentResult:
        """Analyse at the sliders' settings (remembered per setting)."""
        c = config.compression
        key = (c.server_max_window_bits, c.mem_level, c.level)
        if key not in self._cache:
            per_type = analyse(self.trace, window_bits=key[0], mem_level=key[1], level=key[2])
            per_msg = message_table(self.trace, window_bits=key[0], mem_level=key[1],
                                    level=key[2])
            self._cache[key] = (per_type, per_msg)
        per_type, per_msg = self._cache[key]
        return ContentResult(per_type, per_msg, str(params["type"]))

    def draw(self, result: ContentResult) -> None:
        """Redraw bars and scatter; rebuild the advice and message tables."""
        df = by_bytes(result.per_type)
        labels = [f"{t} ({d})" for t, d in zip(df["type"], df["dir"], strict=True)]
        bars = self.figures["ratios"]
        with bars.batch_update():
            for tr, (col, _label) in zip(bars.data[:PINNED], RATIO_COLUMNS, strict=True):
                tr.x = labels
                tr.y = [None if v != v else float(v) for v in df[col].to_numpy(dtype=float)]
        size = df["bytes"].to_numpy(dtype=np.float64)
        area = 8 + 40 * np.sqrt(size / size.max()) if size.size and size.max() > 0 else size
        scatter = self.figures["features"]
        with scatter.batch_update():
            pts = scatter.data[0]
            entropy = df["entropy_bits_per_byte"].to_numpy(dtype=np.float64)
            pts.x = entropy
            pts.y = df["repetition"].to_numpy(dtype=np.float64)
            names, positions = place_labels(entropy, df["repetition"], area,
                                            scatter_labels(df))
            pts.text, pts.textposition = names, positions
            pts.marker.size = area
            pts.hovertext = [
                f"{name}<br>entropy {e:.2f} bits/B, repetition {r:.0%}, {int(b):,} B"
                for name, e, r, b in zip(labels, df["entropy_bits_per_byte"], df["repetition"],
                                         df["bytes"], strict=True)]
        self.advice.value = _advice_html(df)
        self.table.value = _messages_html(self.trace, result.per_message, result.selected)

    def draw_pinned(self) -> None:
        """The pinned analysis' context-takeover ratios as ticks on the bars (or none)."""
        tick = self.figures["ratios"].data[PINNED]
        if self.pinned is None or self.pinned_config is None:
            tick.x, tick.y = [], []
            return
        df = by_bytes(self.pinned.per_type)
        c = self.pinned_config.compression
        tick.name = (f"pinned: context takeover at {c.server_max_window_bits} bits, "
                     f"memLevel {c.mem_level}, level {c.level}")
        tick.x = [f"{t} ({d})" for t, d in zip(df["type"], df["dir"], strict=True)]
        tick.y = [None if v != v else float(v)
                  for v in df["deflate_ratio"].to_numpy(dtype=float)]

    def body(self) -> Any:
        """Figures side by side, then the advice table, then the message table."""
        return W.VBox([
            row_of(self.figures["ratios"], self.figures["features"]),
            W.HTML("<b>Advice per type</b>"), self.advice,
            W.HTML("<b>Messages</b>"), self.table,
        ])


def by_bytes(per_type: pd.DataFrame) -> pd.DataFrame:
    """The per-type rows, largest share of the bytes first (stable for equal sizes)."""
    return per_type.sort_values("bytes", ascending=False, kind="stable").reset_index(drop=True)


def scatter_labels(df: pd.DataFrame) -> list[str]:
    """Names for the scatter, "" for the types named on hover only.

    Named: the largest types by bytes (at most :data:`LABELLED_TYPES`, each at least 2 %
    of the bytes) and the types of large messages (:data:`LARGE_MESSAGE`).
    """
    total = float(df["bytes"].sum()) or 1.0
    big = df["bytes"].rank(ascending=False, method="first") <= LABELLED_TYPES
    keep = (big & (df["bytes"] / total >= 0.02)) | (df["mean_size"] >= LARGE_MESSAGE)
    return [str(t) if k else "" for t, k in zip(df["type"], keep, strict=True)]


Box = tuple[float, float, float, float]
"""A label's box in pixels: left, bottom, right, top (y grows upwards)."""
POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right",
             "top left", "bottom right", "bottom left")
"""Where a scatter name may go around its marker, in order of preference."""
PLOT_PX = (360.0, 330.0)
"""The scatter's plot area (width, height) in its narrowest box: labels placed without
overlap there do not overlap in a wider one."""
LABEL_FONT_PX = 12
GAP_PX = 3


def label_box(x: float, y: float, radius: float, text: str, position: str) -> Box:
    """Where plotly draws ``text`` at ``position`` around a marker at pixel ``(x, y)``."""
    w = text_px(text) * LABEL_FONT_PX / FONT_PX
    h = LABEL_FONT_PX * 1.3
    vertical, horizontal = position.split()
    if horizontal == "center":
        left = x - w / 2
    elif horizontal == "right":
        left = x + (radius + GAP_PX if vertical == "middle" else 0)
    else:
        left = x - w - (radius + GAP_PX if vertical == "middle" else 0)
    if vertical == "top":
        bottom = y + radius + GAP_PX
    elif vertical == "bottom":
        bottom = y - radius - GAP_PX - h
    else:
        bottom = y - h / 2
    return left, bottom, left + w, bottom + h


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(xs: Any, ys: Any, sizes: Any, names: list[str]) -> tuple[list[str], list[str]]:
    """Names and their positions on the scatter, so that no two names overlap.

    Names are placed in order (the largest types first), each at the first of
    :data:`POSITIONS` that overlaps no name placed before and stays inside the plot; a
    name with no free place is left to the hover text. Pixels are those of the narrowest
    box (:data:`PLOT_PX`).

    Returns:
        (the names to draw, "" where left out; their positions).
    """
    (x0, x1), (y0, y1) = ENTROPY_RANGE, REPETITION_RANGE
    sx, sy = PLOT_PX[0] / (x1 - x0), PLOT_PX[1] / (y1 - y0)
    placed: list[Box] = []
    shown, where = [], []
    for x, y, size, name in zip(xs, ys, sizes, names, strict=True):
        px, py, radius = (float(x) - x0) * sx, (float(y) - y0) * sy, float(size) / 2
        choice = ""
        if name:
            for position in POSITIONS:
                box = label_box(px, py, radius, name, position)
                inside = (box[0] >= -20 and box[2] <= PLOT_PX[0] + 20 and box[1] >= -15
                          and box[3] <= PLOT_PX[1] + 40)
                if inside and not any(_overlap(box, other) for other in placed):
                    placed.append(box)
                    choice = position
                    break
        shown.append(name if choice else "")
        where.append(choice or "top center")
    return shown, where


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.3f}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]], *, last_min: str = "") -> str:
    """An HTML table; ``last_min`` keeps the last column (long text) at least that wide."""
    head = "".join(f"<th style='padding:2px 8px;text-align:left'>{html.escape(h)}</th>"
                   for h in headers)
    last = f"padding:2px 8px;min-width:{last_min}" if last_min else "padding:2px 8px"
    body = "".join("<tr>" + "".join(
        f"<td style='{last if i == len(r) - 1 else 'padding:2px 8px'}'>{_cell(v)}</td>"
        for i, v in enumerate(r)) + "</tr>" for r in rows)
    return (f"<div style='max-height:360px;overflow:auto'><table class='wslab-table'>"
            f"<tr>{head}</tr>{body}</table></div>")


def _number(value: Any, spec: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "" if v != v else format(v, spec)


def _advice_html(df: pd.DataFrame) -> str:
    rows = [[r["type"], r["dir"], _number(r["messages"], ",.0f"),
             _number(r["mean_size"], ",.0f"), _number(r["entropy_bits_per_byte"], ".2f"),
             _number(r["repetition"], ".0%"), _number(r["json_fraction"], ".0%"),
             _number(r["deflate_ratio"], ".3f"), r["recommendation"], r["reason"]]
            for r in df.to_dict("records")]
    return _table(["type", "dir", "messages", "mean bytes", "entropy (bits/B)", "repetition",
                   "JSON", "deflate ratio", "advice", "why"], rows, last_min="16em")


def _messages_html(trace: Trace, per_msg: pd.DataFrame, selected: str) -> str:
    index = np.arange(len(per_msg))
    if selected != ALL_TYPES:
        index = index[per_msg["type"].to_numpy() == selected]
    shown = index[:TABLE_ROWS]
    rows = []
    for i in shown:
        r = per_msg.iloc[int(i)]
        m = trace.messages[int(i)]
        text = m.payload.decode("utf-8", "replace") if m.is_text else m.payload[:40].hex(" ")
        preview = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "\u2026"
        ratio = r["deflate"] / r["size"] if r["size"] else float("nan")
        rows.append([int(i), f"{r['t']:.3f}", r["dir"], r["type"], f"{int(r['size']):,}",
                     _number(r["entropy_bits_per_byte"], ".2f"), _number(r["repetition"], ".0%"),
                     f"{int(r['deflate']):,}", float(ratio), preview])
    note = (f"<small>{len(shown)} of {len(index):,} messages shown</small>")
    return note + _table(["#", "t (s)", "dir", "type", "bytes", "entropy (bits/B)",
                          "repetition", "deflate bytes", "ratio", "payload"], rows)
