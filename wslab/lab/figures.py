"""Small plotting and formatting helpers the panels share.

What lives here: a ``FigureWidget`` factory with the lab's house style, the quantile
curve that stands in for a latency histogram (a few hundred points, whatever the trace
size, so redraws stay cheap), in-place trace updates, and the HTML table of headline
numbers each panel shows above its figures.
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
           traces: Sequence[Any] = ()) -> Any:
    """A plotly ``FigureWidget`` with the lab's margins, titles and legend placement."""
    fig = go.FigureWidget(data=list(traces))
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 60, "r": 20, "t": 40, "b": 45},
        xaxis_title=x,
        yaxis_title=y,
        legend={"orientation": "h", "y": -0.25},
        template="plotly_white",
    )
    return fig


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
    """Milliseconds with a sensible number of digits (us below 1 ms)."""
    if ms != ms:  # NaN
        return "n/a"
    if ms < 1:
        return f"{ms * 1000:.0f} \u00b5s"
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:,.0f} ms"


def stat_table(rows: Sequence[tuple[str, str, str]], *, headers: tuple[str, str, str] = (
        "", "this config", "reference")) -> str:
    """An HTML table of (label, value, reference value) rows."""
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
