"""The compression panel's heatmap: the deflate ratio at every window bits x memLevel.

What lives here: :class:`DeflateHeatmap`, the figure and its three states. Before any cell
is measured it draws no axes and no colour bar, only a note saying what **Compute
heatmap** will measure (how many cells, at which level and context takeover) instead of
plotly's meaningless empty axes; once a cell is measured it shows the grid's own axes with
the outer cells whole and the colour scale; and it outlines the panel's current setting
(red square) and the pinned one (dark diamond), when they are deflate settings on the grid.
The measuring itself (``wslab.lab.data.deflate_ratio_cell``) and the background job stay
in ``compression.py``.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from wslab.codecs.deflate import deflate_memory_bytes
from wslab.config import TuningConfig

from .figures import COLOURS, figure

HINT = ("Press <b>Compute heatmap</b> to measure the deflate ratio of this trace<br>"
        "at every window bits \u00d7 memLevel setting ({cells} cells, level {level}, "
        "context takeover {context}).<br>The current setting will be outlined.")
CURRENT, PINNED = 1, 2
"""Trace indexes of the outlines: the current setting, the pinned one."""


def cell_range(values: tuple[int, ...]) -> list[float]:
    """An axis range that shows the outer heatmap cells whole (evenly spaced values)."""
    half = (values[1] - values[0]) / 2 if len(values) > 1 else 0.5
    return [values[0] - half, values[-1] + half]


def _outline(name: str, colour: str, symbol: str) -> Any:
    return go.Scatter(x=[], y=[], mode="markers", name=name, hoverinfo="name",
                      marker={"symbol": symbol, "size": 34, "color": colour,
                              "line": {"width": 3, "color": colour}})


class DeflateHeatmap:
    """The heatmap figure over ``wbits_axis`` x ``mem_axis``, empty until filled.

    Attributes:
        figure: The figure widget (heatmap, current outline, pinned outline).
    """

    def __init__(self, wbits_axis: tuple[int, ...], mem_axis: tuple[int, ...]) -> None:
        self.wbits_axis, self.mem_axis = wbits_axis, mem_axis
        memory = [[deflate_memory_bytes(w, m) / 1024 for w in wbits_axis] for m in mem_axis]
        self.figure = figure(
            "permessage-deflate ratio on this trace (lower is better)",
            x="window bits", y="memLevel", height=360,
            traces=[go.Heatmap(
                x=list(wbits_axis), y=list(mem_axis), z=self._blank(),
                customdata=memory, colorscale="Viridis", reversescale=True,
                texttemplate="%{z:.3f}", showscale=False,
                hovertemplate=("window bits %{x}, memLevel %{y}<br>ratio %{z:.4f}<br>"
                               "zlib memory %{customdata:.0f} KiB<extra></extra>"),
            ), _outline("current setting", COLOURS["critical"], "square-open"),
               _outline("pinned setting", "#333", "diamond-open")],
        )
        self._outlined: dict[int, tuple[Any, ...]] = {}
        self.hint_args: tuple[int, bool] | None = None

    def _blank(self) -> list[list[float | None]]:
        return [[None] * len(self.wbits_axis) for _ in self.mem_axis]

    def cells(self) -> list[tuple[int, int]]:
        """(window bits, memLevel) of every cell, row by row."""
        return [(w, m) for m in self.mem_axis for w in self.wbits_axis]

    @property
    def z(self) -> list[list[float | None]]:
        """The measured ratios, one row per memLevel (``None``: not measured)."""
        return [list(row) for row in self.figure.data[0].z]

    @property
    def filled(self) -> bool:
        """True once at least one cell is measured."""
        return any(v is not None for row in self.figure.data[0].z for v in row)

    def clear(self, level: int, context: bool) -> None:
        """Forget every cell and show the note (for a heatmap at ``level``/``context``)."""
        self.figure.data[0].z = self._blank()
        for index in (CURRENT, PINNED):
            self.outline(index, None)
        self.empty(level, context)

    def empty(self, level: int, context: bool) -> None:
        """No axes or colour bar, a note saying what is coming."""
        self.hint_args = (level, context)
        hint = HINT.format(cells=len(self.wbits_axis) * len(self.mem_axis), level=level,
                           context="on" if context else "off")
        fig = self.figure
        with fig.batch_update():
            fig.update_xaxes(visible=False)
            fig.update_yaxes(visible=False)
            fig.data[0].showscale = False
            fig.layout.annotations = []
            fig.add_annotation(text=hint, showarrow=False, xref="paper", yref="paper",
                               x=0.5, y=0.5, font={"size": 13, "color": "#555"})

    def put(self, w: int, m: int, ratio: float) -> bool:
        """Fill one cell; True if it was the first (the axes were just put in)."""
        first = not self.filled
        z = self.z
        z[self.mem_axis.index(m)][self.wbits_axis.index(w)] = ratio
        self.figure.data[0].z = z
        if first:
            fig = self.figure
            with fig.batch_update():
                fig.layout.annotations = []  # the note gives way to numbers
                fig.update_xaxes(visible=True, tickmode="array",
                                 tickvals=list(self.wbits_axis),
                                 range=cell_range(self.wbits_axis))
                fig.update_yaxes(visible=True, tickmode="array", tickvals=list(self.mem_axis),
                                 range=cell_range(self.mem_axis))
                fig.data[0].showscale = True
            self._outlined.clear()
        return first

    def outline(self, index: int, config: TuningConfig | None) -> None:
        """Outline ``config``'s cell (none if it is not deflate on the grid, or nothing is
        measured yet); touches the figure only when the outline moves."""
        c = config.compression if config is not None else None
        cell: tuple[Any, ...] = ()
        if (c is not None and c.algorithm == "permessage-deflate" and self.filled
                and c.server_max_window_bits in self.wbits_axis
                and c.mem_level in self.mem_axis):
            cell = (c.server_max_window_bits, c.mem_level)
        if self._outlined.get(index) == cell:
            return
        self._outlined[index] = cell
        trace = self.figure.data[index]
        trace.x, trace.y = ([cell[0]], [cell[1]]) if cell else ([], [])
