"""The long jobs and figures behind the recommend/export panel.

What lives here: the lab's sweep grids (:data:`FAST_GRID`, :data:`FULL_GRID`, built by
:func:`grid_points`, with the two yardsticks added by :func:`with_baselines`),
:class:`Sweep` (``wslab.tune.sweep.run_sweep`` in chunks, blocking or as a background job
whose progress counts points and whose cancellation lands between chunks), and live
validation: the trace slice a live run replays, the simulated twin of a candidate on that
same slice, :func:`validate_async` (``wslab.tune.validate.validate_live`` one candidate at a
time) and the measured-beside-simulated figure; and the frontier scatter (its shape and
:func:`draw_frontier`, which fills it from a table and a recommendation). The panel
itself (widgets, recommending) is in ``recommend.py``, the text it shows (the policy table
included) and its export preview in ``recommend_views.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from wslab.config import TuningConfig
from wslab.sim import simulate
from wslab.traces.io import read_trace, write_trace
from wslab.traces.model import Trace
from wslab.tune.canonical import plan_points
from wslab.tune.clients import client_exclusions
from wslab.tune.recommend import Recommendation
from wslab.tune.recommend_baseline import baseline_spec, find_row
from wslab.tune.recommend_constraints import CONSTRAINTS
from wslab.tune.recommend_explain import describe_config, fmt, label
from wslab.tune.recommend_pareto import integrity_ok, row_config
from wslab.tune.space import Space, point_key
from wslab.tune.sweep import ChunkRunner, point_row, run_sweep
from wslab.tune.validate import validate_live

from .figures import COLOURS, figure, widget_of
from .tasks import Progress

Axis = Sequence[dict[str, Any]]
"""Alternative sub-spaces (``Space.from_dict`` mappings) for one part of the config."""
FAST_GRID: tuple[Axis, ...] = (
    ({"batching.strategy": ["none"]},
     {"batching.strategy": ["hybrid"], "batching.interval_ms": [5, 50]}),
    ({"compression.algorithm": ["none", "zstd-stream"]},
     {"compression.algorithm": ["permessage-deflate"],
      "compression.server_max_window_bits": [9, 12, 15]}),
)
"""Fast mode: 3 batching x 5 compression choices = 15 points."""
FULL_GRID: tuple[Axis, ...] = (
    ({"batching.strategy": ["none", "priority"]},
     {"batching.strategy": ["hybrid"], "batching.interval_ms": [5, 16, 50]}),
    ({"compression.algorithm": ["none", "zstd-stream"]},
     {"compression.algorithm": ["permessage-deflate"],
      "compression.server_max_window_bits": [9, 11, 12, 15], "compression.mem_level": [4, 8],
      "compression.policy": ["always", "adaptive"]}),
)
"""Otherwise: 5 batching x 18 compression choices = 90 points (+ the defaults)."""
LIVE_METRICS = ("ws_bytes_per_msg", "latency_p99_ms", "cpu_us_per_msg")
HOVER_METRICS = ("ws_bytes_per_msg", "latency_p99_ms", "cpu_us_per_msg", "mem_kib_per_conn")
LIVE_TITLES = ("bytes per message", "p99 latency (ms)", "CPU \u00b5s per message")


def grid_points(axes: Sequence[Axis]) -> list[dict[str, Any]]:
    """Every combination of one point per axis (each axis a union of grids).

    Splitting the space into alternatives keeps settings that mean nothing for a choice
    (a batch interval without batching, window bits without deflate) out of the grid.
    """
    options = [[p for part in axis for p in Space.from_dict(part, where="lab space").grid()]
               for axis in axes]
    return [{k: v for p in combo for k, v in p.items()} for combo in itertools.product(*options)]


def with_baselines(points: list[dict[str, Any]], base: TuningConfig) -> list[dict[str, Any]]:
    """``points`` plus the library defaults and plain (unless an equal config is there).

    With both in the table, ``recommend`` finds its yardsticks without simulating them.
    """
    def key(p: dict[str, Any]) -> str:
        return point_key(base.updated(p).to_dict())

    seen = {key(p) for p in points}
    extra = [spec for spec in (baseline_spec(n, base) for n in ("defaults", "plain"))
             if key(spec) not in seen]
    return [*points, *extra]


@dataclass
class Sweep:
    """One sweep of ``points`` over the trace at ``trace_path``, run in chunks.

    Each chunk is one ``run_sweep`` call writing ``workdir/parts/NNN.parquet``; a
    cancelled background sweep stops after the chunk in flight (its rows are discarded).

    Attributes:
        trace_path: The working trace file.
        points: Dotted-field overrides, one per config.
        workdir: Folder for the chunk tables.
        base: The config the points modify.
        workers: Processes per chunk (``None``: every core).
        runner: Where the chunks' points run (``None``: a process pool here; a Dask
            cluster's ``DaskRunner``, see ``dask_link.py``).
    """

    trace_path: Path
    points: list[dict[str, Any]]
    workdir: Path
    base: TuningConfig
    workers: int | None = None
    runner: ChunkRunner | None = None

    def configs(self) -> int:
        """How many distinct configs the points ask for (what the sweep simulates)."""
        return len(plan_points(self.points, self.base))

    def chunks(self) -> list[list[dict[str, Any]]]:
        """The points in chunks of four distinct configs per worker.

        Points with the same canonical config stay in one chunk, so each config is
        simulated and listed once across the chunks.
        """
        size = 4 * (self.runner.workers if self.runner else self.workers or 2)
        plan = plan_points(self.points, self.base)
        return [[q for p in plan[i:i + size] for q in p.requested]
                for i in range(0, len(plan), size)]

    def run_chunk(self, i: int, chunk: list[dict[str, Any]],
                  report: Callable[[int, int], None]) -> pd.DataFrame:
        """Simulate one chunk (blocking); ``report(done, total)`` as points finish."""
        parts = self.workdir / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        return run_sweep(self.trace_path, chunk, parts / f"{i:03d}.parquet", base=self.base,
                         workers=self.workers, progress=report, runner=self.runner)

    def blocking(self, progress: Progress) -> pd.DataFrame:
        """Every chunk in this thread; returns the whole table."""
        progress.start(self.configs(), progress.note)
        parts = []
        for i, chunk in enumerate(self.chunks()):
            offset = progress.done

            def report(done: int, _total: int, o: int = offset) -> None:
                progress.step(o + done - progress.done)

            parts.append(self.run_chunk(i, chunk, report))
        return pd.concat(parts, ignore_index=True)

    async def background(self, progress: Progress) -> pd.DataFrame:
        """Every chunk in a thread, awaited one by one (cancellation lands between)."""
        loop = asyncio.get_running_loop()
        stopped = threading.Event()

        def advance(done: int) -> None:
            if not stopped.is_set():
                progress.step(done - progress.done)

        progress.start(self.configs(), progress.note)
        parts = []
        try:
            for i, chunk in enumerate(self.chunks()):
                offset = progress.done

                def report(done: int, _total: int, o: int = offset) -> None:
                    if not stopped.is_set():
                        loop.call_soon_threadsafe(advance, o + done)

                parts.append(await asyncio.to_thread(self.run_chunk, i, chunk, report))
        finally:
            stopped.set()  # a chunk still running after a cancel reports nothing
        return pd.concat(parts, ignore_index=True)


def live_trace(trace: Trace, seconds: float, workdir: Path) -> Path:
    """Write (once) and return the first ``seconds`` of ``trace``: what a live run replays."""
    path = workdir / f"live-{seconds:g}s.jsonl.zst"
    if not path.exists():
        start = trace.messages[0].t if len(trace) else 0.0
        cut = [m for m in trace.messages if m.t - start <= seconds]
        write_trace(Trace(cut, trace.meta), path)
    return path


def simulated_twin(path: Path, candidate: pd.Series) -> dict[str, Any]:
    """The candidate simulated on the live slice: a row in the sweep's shape, mode ``sim``."""
    config = row_config(candidate)
    summary = simulate(read_trace(path), config).summary
    return {"point": candidate["point"], "mode": "sim", **point_row(config, summary)}


async def validate_async(path: Path, candidates: pd.DataFrame, link: str, progress: Progress,
                         on_rows: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    """Each candidate simulated, then run live, on the slice at ``path``, one at a time.

    ``on_rows`` gets every row so far after each candidate (simulated, live, ...).
    """
    rows: list[dict[str, Any]] = []
    for i in range(len(candidates)):
        one = candidates.iloc[[i]]
        rows.append(await asyncio.to_thread(simulated_twin, path, one.iloc[0]))
        rows += await asyncio.to_thread(validate_live, path, one, link)
        on_rows(rows)
        progress.step(note=f"measured {describe_config(one.iloc[0].to_dict())}")
    return rows


def live_figure() -> Any:
    """A ``FigureWidget`` with one panel per metric, simulated and measured bars."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=LIVE_TITLES)
    for col in (1, 2, 3):
        for name, colour in (("simulated", COLOURS["normal"]), ("measured", COLOURS["ws"])):
            fig.add_trace(go.Bar(x=[], y=[], name=name, marker_color=colour,
                                 legendgroup=name, showlegend=col == 1), row=1, col=col)
    widget = widget_of(fig)
    widget.update_layout(
        title={"text": "Live validation: measured beside simulated", "font": {"size": 14}},
        height=320, template="plotly_white", margin={"l": 60, "r": 20, "t": 60, "b": 45},
        legend={"orientation": "h", "y": -0.25}, barmode="group")
    return widget


def draw_live(fig: Any, rows: list[dict[str, Any]]) -> None:
    """Put simulated and live rows (paired by order) into :func:`live_figure`'s bars."""
    table = pd.DataFrame(rows)
    with fig.batch_update():
        for i, metric in enumerate(LIVE_METRICS):
            for j, mode in enumerate(("sim", "live")):
                part = table[table["mode"] == mode] if len(table) else table
                bars = fig.data[2 * i + j]
                bars.x = [f"#{k + 1}" for k in range(len(part))]
                bars.y = list(part[metric]) if len(part) else []
                bars.hovertext = [describe_config(r) for r in part.to_dict("records")]


LEFT_OUT = 6
"""Index of the frontier figure's "left out for these clients" trace."""
STAIRS = 7
"""Index of the staircase through the points no other beats on both bytes and p99."""
PINNED_CHOICE = 8
"""Index of the pinned choice's star."""


def staircase(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """The points no other beats on both axes (lower is better), left to right.

    Drawn with ``line_shape="hv"`` they make the frontier's staircase: the region above and
    to the right of it is what some point on it beats. Points with NaN are left out.
    """
    pts = sorted((float(x), float(y)) for x, y in zip(xs, ys, strict=True)
                 if x == x and y == y)
    out_x: list[float] = []
    out_y: list[float] = []
    best = float("inf")
    for x, y in pts:
        if y < best:
            out_x.append(x)
            out_y.append(y)
            best = y
    return out_x, out_y


def frontier_figure() -> Any:
    """The bytes-vs-p99 scatter: all, feasible, frontier, defaults, chosen, limit, left out.

    "meets the constraints" holds only configs the client population can negotiate; the
    ones it cannot (zstd, or a client window below 15 bits, for browsers) are crossed out
    in their own trace, whatever their numbers.
    """
    def points(name: str, **marker: Any) -> Any:
        return go.Scatter(x=[], y=[], mode="markers", name=name, marker=marker,
                          hoverinfo="text")

    # The frontier is over four objectives (bytes, p99, CPU, memory), so its points joined
    # in order of bytes zig-zag in this plane: they are rings, and the staircase joins
    # only the ones no other point beats on both of the plotted axes.
    frontier = points("Pareto frontier (bytes, p99, CPU, memory)", size=12,
                      color="rgba(0,0,0,0)", line={"color": COLOURS["ws"], "width": 2})
    return figure(
        "Configs: bytes on the wire against p99 latency", height=420,
        x="WebSocket bytes per message", y="p99 latency (ms)", traces=[
            points("all configs", color=COLOURS["baseline"], size=7),
            points("meets the constraints", color=COLOURS["normal"], size=8),
            frontier,
            points("library defaults", symbol="diamond", size=12, color=COLOURS["tcp"]),
            points("chosen", symbol="star", size=18, color=COLOURS["critical"]),
            go.Scatter(x=[], y=[], mode="lines", name="p99 limit",
                       line={"color": COLOURS["critical"], "dash": "dash", "width": 1}),
            points("left out for these clients", symbol="x-thin", size=11,
                   line={"color": "#444", "width": 2}),
            go.Scatter(x=[], y=[], mode="lines", name="best p99 for the bytes",
                       line={"color": COLOURS["ws"], "dash": "dot", "shape": "hv"},
                       hoverinfo="skip"),
            points("pinned choice", symbol="star-open", size=18,
                   line={"color": "#333", "width": 2}),
        ])


def draw_pinned_choice(fig: Any, chosen: Mapping[Any, Any] | None) -> None:
    """Star the pinned choice in :func:`frontier_figure` (``None``: take it away)."""
    star = fig.data[PINNED_CHOICE]
    if chosen is None:
        star.x, star.y, star.hovertext = [], [], []
        return
    star.x = [chosen["ws_bytes_per_msg"]]
    star.y = [chosen["latency_p99_ms"]]
    star.hovertext = [f"pinned choice<br>{_hover(chosen)}"]


def _hover(row: Mapping[Any, Any]) -> str:
    return "<br>".join([describe_config(row),
                        *(f"{label(m)}: {fmt(m, row.get(m))}" for m in HOVER_METRICS)])


def draw_frontier(fig: Any, table: pd.DataFrame, rec: Recommendation,
                  limits: Mapping[str, float | None], base: TuningConfig) -> None:
    """Fill :func:`frontier_figure` in place from a sweep table and its recommendation.

    Args:
        fig: The figure :func:`frontier_figure` made.
        table: The sweep table (only intact simulated rows are drawn).
        rec: The recommendation under ``limits`` (its frontier and chosen row).
        limits: Constraint name -> upper bound (``None``: unbounded).
        base: The sweep's base config (locates the library-defaults row).
    """
    sim = table[(table["mode"].astype(str) == "sim") & integrity_ok(table)]
    left_out = client_exclusions(sim, rec.clients) != ""
    feasible = ~left_out
    for name, limit in limits.items():
        if limit is not None:
            feasible &= sim[CONSTRAINTS[name]] <= limit
    defaults = find_row(sim, baseline_spec("defaults", base))
    layers = (sim, sim[feasible], rec.frontier.sort_values("ws_bytes_per_msg"),
              pd.DataFrame([] if defaults is None else [defaults]),
              pd.DataFrame([rec.chosen] if rec.chosen is not None else []))
    x, y = "ws_bytes_per_msg", "latency_p99_ms"
    with fig.batch_update():
        for trace, rows in zip(fig.data[:5], layers, strict=True):
            trace.x = list(rows[x]) if len(rows) else []
            trace.y = list(rows[y]) if len(rows) else []
            trace.hovertext = [_hover(r) for r in rows.to_dict("records")]
        p99 = limits.get("max_p99_ms")
        fig.data[5].x = [] if p99 is None else [sim[x].min(), sim[x].max()]
        fig.data[5].y = [] if p99 is None else [p99, p99]
        stairs = fig.data[STAIRS]
        front = layers[2]
        stairs.x, stairs.y = (staircase(list(front[x]), list(front[y])) if len(front)
                              else ([], []))
        out = sim[left_out]
        gone = fig.data[LEFT_OUT]
        gone.name = f"left out for {rec.clients} clients"
        gone.x, gone.y = list(out[x]), list(out[y])
        gone.hovertext = [f"left out for {rec.clients} clients<br>{_hover(r)}"
                          for r in out.to_dict("records")]
