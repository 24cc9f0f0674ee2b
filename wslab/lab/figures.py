"""Small plotting and formatting helpers the panels share.

What lives here: a ``FigureWidget`` factory with the lab's house style, the quantile
curve that stands in for a latency histogram (a few hundred points, whatever the trace
size, so redraws stay cheap), in-place trace updates, number formats, the HTML table of
headline numbers each panel shows above its figures, and :func:`row_of`, the wrapping row
that holds figures side by side.

Widths. A ``FigureWidget`` does not follow the width of the box it sits in: plotly sizes
it once, when it is first drawn, and falls back to 700 px, so two of them in a half-width
box overlap and run past the output. Figures meant to sit side by side are therefore made
:data:`HALF_WIDTH` wide and put in :func:`row_of`, which wraps them one under the other
when the notebook is too narrow for both.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go

QUANTILES = np.linspace(0.0, 1.0, 201)
"""Probabilities at which a latency distribution is drawn."""

HALF_WIDTH = 520
"""Width (px) of a figure that shares a row with another (two fit a 1,100 px output)."""

COLOURS = {
    "critical": "#d62728",
    "normal": "#1f77b4",
    "background": "#7f7f7f",
    "baseline": "#aaaaaa",
    "payload": "#2ca02c",
    "ws": "#ff7f0e",
    "tcp": "#9467bd",
}


def figure(title: str, *, x: str = "", y: str = "", height: int = 320,
           width: int | None = None, traces: Sequence[Any] = ()) -> Any:
    """A plotly ``FigureWidget`` with the lab's margins, titles and legend placement.

    ``width`` in px (``None``: plotly's own 700 px); give :data:`HALF_WIDTH` to figures
    that share a row (see :func:`row_of`). A title may hold a ``<br>``: the top margin
    grows to fit the second line.
    """
    fig = go.FigureWidget(data=list(traces))
    top = 40 + 18 * title.count("<br>")
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 60, "r": 20, "t": top, "b": 45},
        xaxis_title=x,
        yaxis_title=y,
        legend={"orientation": "h", "y": -0.25},
        template="plotly_white",
    )
    if width is not None:
        fig.update_layout(width=width)
    return fig


def row_of(*widgets: Any) -> Any:
    """Widgets side by side in a row that wraps (figures of :data:`HALF_WIDTH`)."""
    import ipywidgets as W

    return W.HBox(list(widgets), layout=W.Layout(flex_flow="row wrap", width="100%"))


def quantile_curve(values: npt.ArrayLike) -> tuple[npt.NDArray[np.float64],
                                                   npt.NDArray[np.float64]]:
    """The empirical distribution of ``values`` as (value, cumulative share) points.

    Returns 201 points whatever the number of values (an empty input gives empty arrays);
    NaN values (messages never delivered) are left out.
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return np.empty(0), np.empty(0)
    return np.quantile(arr, QUANTILES), QUANTILES.copy()


def set_xy(trace: Any, x: Iterable[Any], y: Iterable[Any]) -> None:
    """Replace a plotly trace's data (call inside ``fig.batch_update()``)."""
    trace.x = list(x) if not isinstance(x, np.ndarray) else x
    trace.y = list(y) if not isinstance(y, np.ndarray) else y


def fmt_bytes(n: float) -> str:
    """Bytes in B, KiB or MiB with three significant figures."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def fmt_ms(ms: float) -> str:
    """Milliseconds with a steady number of digits: ``"0 ms"``, ``"850 \u00b5s"``,
    ``"4.47 ms"``, ``"45.0 ms"``, ``"1,011 ms"`` (NaN: ``"n/a"``).

    The decimals depend on the magnitude only, so numbers side by side in a table line up
    (``45.0 ms`` beside ``44.9 ms``, not ``45 ms``).
    """
    if ms != ms:  # NaN
        return "n/a"
    if ms == 0:
        return "0 ms"
    if abs(ms) < 1:
        return f"{ms * 1000:.0f} \u00b5s"
    if abs(ms) < 10:
        return f"{ms:.2f} ms"
    return f"{ms:.1f} ms" if abs(ms) < 100 else f"{ms:,.0f} ms"


def stat_table(rows: Sequence[Sequence[str]], *, headers: Sequence[str] = (
        "", "this config", "reference")) -> str:
    """An HTML table of (label, value, reference value, ...) rows ("" when no rows)."""
    if not rows:
        return ""
    head = "".join(f"<th style='text-align:right;padding:2px 10px'>{html.escape(h)}</th>"
                   for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td style='text-align:{'left' if i == 0 else 'right'};padding:2px 10px'>"
            f"{html.escape(cell)}</td>" for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table class='wslab-stats'><tr>{head}</tr>{body}</table>"
