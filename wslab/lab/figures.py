"""Small plotting and formatting helpers the panels share.

What lives here: :class:`LabFigure`, the lab's plotly ``FigureWidget``, and
:func:`figure`, its factory with the house style; the quantile curve that stands in for a
latency histogram (a few hundred points, whatever the trace size, so redraws stay cheap),
in-place trace updates, number formats, the HTML table of headline numbers each panel
shows above its figures, and :func:`row_of`, the wrapping row that holds figures side by
side.

Why not plotly's ``FigureWidget`` as it comes. It keeps the figure in its synced state
only as it was when it was built: every later change (``update_layout``, new trace data)
travels as a one-off message (``_py2js_relayout`` set, then reset to ``None``) that only a
view watching at that moment applies, and its browser model applies them to a throwaway
copy. So a view made after the cells ran starts from the empty figure: in Voila (which runs
the notebook before the page connects and then asks the kernel for the widgets' state) a
panel's figures had no data, no title, no template, grouped bars for stacked ones and the
default axes (-1..6); a reopened notebook's saved widget state held the same empty figures.
It also ships plotly.js (about 5 MB) inside every figure's state. :class:`LabFigure` keeps
the whole figure in its state and sends it after each change, and its view
(``static/figure.js``) draws that state with ``Plotly.react`` and loads one plotly.js per
page from the server (:mod:`wslab.lab_assets`).

Widths. A figure has no fixed width: it follows the width of the box it sits in and
resizes with the page. :func:`row_of` puts figures side by side in boxes of at least
:data:`HALF_WIDTH` px that wrap one under the other when the output is too narrow for two.

``WSLAB_FIGURES=stock`` builds plotly's own ``FigureWidget`` instead: the benchmark
(``benchmarks/bench_browser.py``) measures it as the peer.
"""

from __future__ import annotations

import html
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from copy import deepcopy
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go


def _import_jsonschema_lean() -> None:
    """Import jsonschema without its optional IRI-syntax checker, if nothing has yet.

    plotly's ``FigureWidget`` imports nbformat, which imports jsonschema, which imports
    ``rfc3987_syntax`` when it is installed (Jupyter's own servers pull it in): that one
    builds a parser at import and takes over 3 s, in the cell that shows the first
    figure. Without it jsonschema leaves the "iri" formats unchecked, as it documents for a
    missing optional dependency; nothing in a lab kernel validates them.
    """
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        return
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("jsonschema")
    except ImportError:
        pass
    finally:
        del sys.modules["rfc3987_syntax"]


_import_jsonschema_lean()

QUANTILES = np.linspace(0.0, 1.0, 201)
"""Probabilities at which a latency distribution is drawn."""

HALF_WIDTH = 440
"""Narrowest box (px) of a figure that shares a row with another: two fit a 900 px output,
and a narrower one shows them one under the other."""

STATIC = Path(__file__).parent / "static"

COLOURS = {
    "critical": "#d62728",
    "normal": "#1f77b4",
    "background": "#7f7f7f",
    "baseline": "#aaaaaa",
    "payload": "#2ca02c",
    "ws": "#ff7f0e",
    "tcp": "#9467bd",
}


@cache
def figure_esm() -> str:
    """The JavaScript module of :class:`LabFigure`'s view, with plotly.js's URL filled in."""
    from wslab.lab_assets import plotly_url

    return (STATIC / "figure.js").read_text().replace("__WSLAB_PLOTLY_URL__", plotly_url())


def stock_figures() -> bool:
    """True when ``WSLAB_FIGURES=stock`` asks for plotly's own ``FigureWidget``."""
    return os.environ.get("WSLAB_FIGURES", "").strip().lower() == "stock"


class LabFigure(go.FigureWidget):  # type: ignore[misc]
    """A plotly ``FigureWidget`` whose synced state is always the current figure.

    Same Python API as ``go.FigureWidget`` (``batch_update``, ``update_layout``, setting
    ``fig.data[i].x``...). Where plotly sends each change as a one-off message, this sends
    the figure's data (after a trace change) or layout (after a layout change) as state, so
    any view, however late, draws the figure as it is now; ``batch_update`` still sends one
    message. The view is ``static/figure.js``: no plotly.js inside the widget, one shared
    copy loaded from the server. Plotly's events from the browser (zoom, clicks) do not
    come back to Python.
    """

    _esm = figure_esm()

    def _sync(self, *, data: bool = False, layout: bool = False) -> None:
        with self.hold_sync():
            if data:
                self._widget_data = deepcopy(self._data)
            if layout:
                self._widget_layout = deepcopy(self._layout_obj._props)

    # plotly's message stubs: send state instead of one-off messages
    def _send_addTraces_msg(self, new_traces_data: Any) -> None:
        self._sync(data=True)

    def _send_moveTraces_msg(self, current_inds: Any, new_inds: Any) -> None:
        self._sync(data=True)

    def _send_deleteTraces_msg(self, delete_inds: Any) -> None:
        self._sync(data=True)

    def _send_restyle_msg(self, restyle_data: Any, trace_indexes: Any = None,
                          source_view_id: Any = None) -> None:
        self._sync(data=True)

    def _send_relayout_msg(self, layout_data: Any, source_view_id: Any = None) -> None:
        self._sync(layout=True)

    def _send_update_msg(self, restyle_data: Any, relayout_data: Any,
                         trace_indexes: Any = None, source_view_id: Any = None) -> None:
        self._sync(data=bool(restyle_data), layout=bool(relayout_data))

    def _send_animate_msg(self, styles_data: Any, relayout_data: Any, trace_indexes: Any,
                          animation_opts: Any) -> None:
        self._sync(data=True, layout=True)


def use_lab_renderer() -> bool:
    """In a Jupyter kernel, draw figures shown with ``fig.show()`` (or as a cell's value)
    as :class:`LabFigure` widgets; True if it did.

    ``wslab lab`` leaves plotly's own JupyterLab renderer out (it holds a second plotly.js,
    loaded with every page), so a plain plotly figure would otherwise show nothing there.
    Outside a kernel, and with ``WSLAB_FIGURES=stock``, plotly's renderers stay.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel") or stock_figures():
        return False
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class LabRenderer(MimetypeRenderer):  # type: ignore[misc]
        def to_mimebundle(self, fig_dict: Any) -> dict[str, Any]:
            bundle: dict[str, Any] = LabFigure(fig_dict)._repr_mimebundle_()
            return bundle

    pio.renderers["wslab"] = LabRenderer()
    pio.renderers.default = "wslab"
    return True


def widget_of(fig: Any) -> Any:
    """A plotly ``go.Figure`` (from ``make_subplots``, say) as the lab's figure widget."""
    return go.FigureWidget(fig) if stock_figures() else LabFigure(fig)


def figure(title: str, *, x: str = "", y: str = "", height: int = 320,
           width: int | None = None, traces: Sequence[Any] = ()) -> Any:
    """A :class:`LabFigure` with the lab's margins, titles and legend placement.

    It follows the width of its box (``width`` is accepted for older callers and ignored:
    put figures that share a row in :func:`row_of`). A title may hold a ``<br>``: the top
    margin grows to fit the second line.
    """
    del width
    # the template comes with the figure: given later, plotly would first build its
    # default template for nothing (a tenth of a second per figure in a fresh kernel)
    start = {"template": "plotly_white"}
    fig = go.FigureWidget(data=list(traces), layout=start) if stock_figures() else LabFigure(
        data=list(traces), layout=start)
    top = 40 + 18 * title.count("<br>")
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 60, "r": 20, "t": top, "b": 45},
        xaxis_title=x,
        yaxis_title=y,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def row_of(*widgets: Any) -> Any:
    """Widgets side by side, each in a box of at least :data:`HALF_WIDTH` px that shares
    the row's width; the row wraps them one under the other when it is too narrow."""
    import ipywidgets as W

    boxes = [W.VBox([w], layout=W.Layout(flex=f"1 1 {HALF_WIDTH}px", min_width="0"))
             for w in widgets]
    return W.HBox(boxes, layout=W.Layout(flex_flow="row wrap", width="100%"))


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


use_lab_renderer()
