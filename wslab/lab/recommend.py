"""The recommend/export panel: sweep once, then choose under constraints and export.

What lives here: :class:`RecommendPanel` and its :class:`RecommendResult`. A button runs a
simulated sweep (``wslab.tune.sweep.run_sweep``) as a cancellable background job; after it,
three constraint sliders, a client-population dropdown (``browser`` leaves out what
browsers cannot negotiate and says what it would have saved; ``custom`` does not) and an
objective dropdown re-run ``wslab.tune.recommend.recommend`` on the table (debounced, tens
of milliseconds) and redraw a bytes-vs-p99 scatter with the Pareto frontier, the feasible
points and the chosen one, the explanation (or what to relax; it includes where the
policy changed what was sent, against ``always``), a table of the chosen config's policy
variants, the chosen config as YAML and a preview of every export target's files
(``wslab.tune.export.render``). Further buttons validate the best candidates live
(``wslab.tune.validate.validate_live``, measured beside simulated), export every target to a
folder and write the HTML report. Nothing here chooses, renders or measures by itself;
the sweep grids, the long jobs and the figures are in ``recommend_jobs``; the text it shows
(explanation, defaults, policy table) and the export preview in ``recommend_views``.

The working trace is the first ``messages`` messages replayed ``speedup`` times faster (as
``wslab demo`` does). Live runs replay only its first ``live_seconds`` of trace time, and
each is paired with a simulation of that same slice, so the comparison is like for like.
The sweep starts from the config a browser population can be held to (a 15-bit client
window, ``wslab.tune.clients.holdable_config``), which custom clients can be held to too,
so switching the population compares like with like.
"""

from __future__ import annotations

import asyncio
import html
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.tables import write_tables
from wslab.traces.io import write_trace
from wslab.traces.model import Trace
from wslab.tune.canonical import plan_points
from wslab.tune.clients import CLIENTS, client_exclusions, holdable_config
from wslab.tune.export import SINGLE_TARGETS, export, render
from wslab.tune.recommend import Recommendation, recommend
from wslab.tune.recommend_constraints import CONSTRAINTS
from wslab.tune.recommend_explain import label
from wslab.tune.report import sim_vs_live, write_report
from wslab.tune.validate import best_candidates

from .base import Panel
from .dask_link import DaskLink
from .data import fast_mode, head, load_trace, speed_up
from .recommend_jobs import (
    FAST_GRID,
    FULL_GRID,
    Sweep,
    draw_frontier,
    draw_live,
    draw_pinned_choice,
    frontier_figure,
    grid_points,
    live_figure,
    live_trace,
    validate_async,
    with_baselines,
)
from .recommend_views import (
    CLIENT_LABELS,
    DEFAULT_LIMITS,
    LIMIT_STEPS,
    NEEDS,
    NO_SWEEP,
    OBJECTIVES,
    ExportPreview,
    defaults_table,
    explanation_html,
    limit_label,
    limit_value,
    policy_table,
    preview_note,
)
from .tasks import Progress


@dataclass(slots=True)
class RecommendResult:
    """One run of the panel: the recommendation under the current sliders.

    Attributes:
        rec: The recommendation (``None`` before the sweep has run).
        limits: The constraints it was made under (``None``: unbounded).
        files: Per export target, ``render(config, target)`` of the chosen config.
        yaml: The chosen config as YAML ("" when nothing is feasible).
    """

    rec: Recommendation | None
    limits: dict[str, float | None]
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    yaml: str = ""


class RecommendPanel(Panel[RecommendResult]):
    """Sweep a trace once, then pick a config under constraints and export it.

    Controls: ``max_p99_ms``, ``max_kib_per_conn``, ``max_cpu_us_per_msg`` (steps in
    :data:`LIMIT_STEPS`; ``math.inf`` is "no limit"), ``clients`` (``browser`` or
    ``custom``) and ``objective``. Figures:
    ``frontier`` and ``live``. Jobs: :meth:`start_sweep` / :meth:`sweep`,
    :meth:`start_validation`; files: :meth:`export_all`, :meth:`write_report`.

    Args:
        trace: A bundled trace name, a trace file, or a :class:`Trace`.
        config: The base config the sweep varies (default: defaults on ``link``).
        link: Link profile of the sweep and the live runs.
        messages: Leading messages to use (default 1,000 in fast mode, else 4,000).
        speedup: Replay the trace this many times faster than recorded.
        points: Sweep points (default: a small grid in fast mode, a moderate one otherwise).
        workdir: Folder for the trace, tables and default exports (default: a temp dir).
        workers: Sweep processes (default: every core; with ``cluster`` local, its workers).
        cluster: Run the sweep on Dask: ``local`` or ``tcp://HOST:PORT`` (default: here).
        live_seconds: Trace seconds one live run replays (default 1.5 fast, else 10).
        live_candidates: Candidates :meth:`start_validation` runs (default 1 fast, else 3).
        **kwargs: Passed to :class:`Panel` (``debounce_s``).
    """

    title = "Recommend and export"
    uses_tasks = True
    config_name = "wslab-recommended.yaml"

    def __init__(self, trace: Trace | str = "chat", config: TuningConfig | None = None, *,
                 link: str = "4g", messages: int | None = None, speedup: float = 16.0,
                 points: list[dict[str, Any]] | None = None, workdir: str | Path | None = None,
                 workers: int | None = None, live_seconds: float | None = None,
                 live_candidates: int | None = None, cluster: str | None = None,
                 **kwargs: Any) -> None:
        fast = fast_mode()
        n = messages or (1_000 if fast else 4_000)
        full = load_trace(trace, messages=n) if isinstance(trace, str) else trace
        work = speed_up(head(full, n), speedup)
        self.link = link
        self.speedup = speedup
        self.workers = workers
        self.dask = DaskLink(cluster, workers) if cluster else None
        self.dask_line = W.HTML(self.dask.html() if self.dask else "")
        self.live_seconds = live_seconds or (1.5 if fast else 10.0)
        self.live_candidates = live_candidates or (1 if fast else 3)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="wslab-lab-recommend-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.table: pd.DataFrame | None = None
        self.live_rows: list[dict[str, Any]] = []
        self._sweeps = 0
        super().__init__(work, config, messages=None, **kwargs)
        self.points = with_baselines(
            points if points is not None else grid_points(FAST_GRID if fast else FULL_GRID),
            self.config)
        self.trace_path = self.workdir / "trace.jsonl.zst"
        write_trace(self.trace, self.trace_path)

    def default_config(self) -> TuningConfig:
        """The library defaults on the panel's link, with the client window browsers use."""
        return holdable_config(TuningConfig().updated({"link.profile": self.link}), "browser")

    def default_params(self) -> dict[str, Any]:
        """The three constraints (see :data:`DEFAULT_LIMITS`), clients and the objective."""
        return {**DEFAULT_LIMITS, "clients": "browser", "objective": "ws_bytes_per_msg"}

    # -- widgets -------------------------------------------------------------------------

    def build(self) -> None:
        """Constraint sliders, objective, buttons, figures, text areas."""
        for name, unit, text, tip in (
                ("max_p99_ms", "ms", "max p99 latency",
                 "leave out configs whose p99 latency is above this, ms"),
                ("max_kib_per_conn", "KiB", "max memory",
                 "leave out configs holding more compression memory per connection, KiB"),
                ("max_cpu_us_per_msg", "\u00b5s", "max CPU",
                 "leave out configs spending more compression CPU per message, \u00b5s")):
            options = [(limit_label(v, unit), float(v)) for v in LIMIT_STEPS[name]]
            self.bind(W.SelectionSlider(options=options, description=text,
                                        continuous_update=True), name, tip=tip)
        self.bind(W.Dropdown(options=[(CLIENT_LABELS.get(c, c), c) for c in CLIENTS],
                             description="clients"), "clients",
                  tip="who must speak the config: browsers (no zstd; the client window "
                      "cannot be held below 15 bits) or custom clients (anything, zstd too)")
        self.bind(W.Dropdown(options=[(label(c), c) for c in OBJECTIVES],
                             description="minimise"), "objective",
                  tip="what the recommendation makes smallest among the configs that meet "
                      "the limits")
        self.stats = W.HTML()
        self.explanation = W.HTML()
        self.policy = W.HTML()
        area = W.Layout(width="98%", height="260px")
        self.yaml_area = W.Textarea(disabled=True, layout=area,
                                    tooltip="the recommended config as YAML (--config)")
        self.export_preview = ExportPreview(SINGLE_TARGETS, area)
        self.target = self.export_preview.target
        self.file = self.export_preview.file
        self.preview = self.export_preview.text
        self.folder = W.Text(value=str(self.workdir / "export"), description="folder",
                             layout=W.Layout(width="60%"),
                             tooltip="where Export all writes every target's files")
        buttons: list[tuple[str, str, Callable[[], Any], str]] = [
            ("Run sweep", "play", self.start_sweep,
             "simulate every config of the grid on the trace, in the background"),
            ("Validate live", "check", self.start_validation,
             "run the best candidates on loopback for real, beside their simulation"),
            ("Export all", "download", self.export_all,
             "write the chosen config for every server and proxy into the folder"),
            ("Write report", "file", self.write_report,
             "write the HTML report: frontier, reasons, live runs"),
        ]
        self.buttons: dict[str, Any] = {}
        for text, icon, action, tip in buttons:
            button = W.Button(description=text, icon=icon, button_style="primary",
                              layout=W.Layout(width="auto"), tooltip=tip)
            button.on_click(lambda _b, act=action: self._guarded(act))
            self.buttons[text] = button
            button.disabled = text in NEEDS
        self.figures["frontier"] = frontier_figure()
        self.figures["live"] = live_figure()

    def body(self) -> Any:
        """Buttons, numbers, the frontier, reasons, config and export preview, live runs."""
        b = self.buttons
        return W.VBox([
            self.task_bar(b["Run sweep"], b["Validate live"], b["Write report"]),
            self.dask_line, self.stats, self.figures["frontier"], self.explanation, self.policy,
            W.HBox([W.VBox([W.HTML("<b>chosen config</b>"), self.yaml_area],
                           layout=W.Layout(width="45%")),
                    W.VBox([W.HBox([self.target, self.file]), self.preview],
                           layout=W.Layout(width="55%"))]),
            W.HBox([self.folder, b["Export all"]]),
            self.figures["live"],
        ])

    def _guarded(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:  # a button never raises into the kernel
            self.show_error(exc)

    # -- the sweep -----------------------------------------------------------------------

    def set_table(self, table: pd.DataFrame) -> None:
        """Use ``table`` (``run_sweep``'s shape) from now on, save it, and redraw at once."""
        self.table = table.reset_index(drop=True)
        write_tables(self.table, self.workdir / "sweep.parquet")
        self.debouncer.flush()

    def _sweep(self) -> Sweep:
        self._sweeps += 1  # a sweep cancelled mid-chunk may still be writing its own folder
        runner = self.dask.runner() if self.dask else None
        if self.dask:
            self.dask_line.value = self.dask.html()
        return Sweep(self.trace_path, self.points, self.workdir / f"sweep-{self._sweeps}",
                     self.config, self.workers, runner)

    def sweep(self) -> pd.DataFrame:
        """Run the sweep now, blocking, with the progress bar (scripts, notebook cells)."""
        self.progress.layout.visibility = "visible"
        try:
            table = self._sweep().blocking(
                Progress(note=self._sweep_note(), listeners=[self._show_progress]))
        finally:
            self.progress.layout.visibility = "hidden"
        self.set_table(table)
        return table

    async def sweep_job(self, progress: Progress) -> pd.DataFrame:
        """The sweep as a background job (see :meth:`Sweep.background`)."""
        progress.note = self._sweep_note()
        if self.dask and not self.dask.connected:  # a cluster starts off the kernel's loop
            await asyncio.to_thread(self.dask.runner)
        table = await self._sweep().background(progress)
        self.set_table(table)
        return table

    def start_sweep(self) -> Any:
        """Start the sweep in the background (Cancel stops it between chunks)."""
        return self.start_task(self.sweep_job, note="sweeping")

    def _sweep_note(self) -> str:
        configs = len(plan_points(self.points, self.config))
        return (f"sweep: {configs} distinct configs of {len(self.points)} points "
                f"on {len(self.trace):,} messages "
                f"({self.speedup:g}x speed, link {self.config.link.profile})")

    # -- recommending --------------------------------------------------------------------

    def compute(self, config: TuningConfig, params: dict[str, Any]) -> RecommendResult:
        """Recommend from the sweep table under the sliders; render every export target."""
        limits = {name: limit_value(params[name]) for name in CONSTRAINTS}
        if self.table is None:
            return RecommendResult(None, limits)
        rec = recommend(self.table, objective=params["objective"], trace=self.trace,
                        clients=params["clients"], max_p99_ms=limits["max_p99_ms"],
                        max_kib_per_conn=limits["max_kib_per_conn"],
                        max_cpu_us_per_msg=limits["max_cpu_us_per_msg"])
        if not rec.feasible:
            return RecommendResult(rec, limits)
        chosen = rec.config
        files = {target: render(chosen, target) for target in SINGLE_TARGETS}
        return RecommendResult(rec, limits, files, chosen.to_yaml())

    def draw(self, result: RecommendResult) -> None:
        """Redraw the scatter in place; refresh reasons, config and preview."""
        rec = result.rec
        have = {"sweep": rec is not None and self.table is not None,
                "choice": rec is not None and rec.feasible and rec.chosen is not None}
        for name, need in NEEDS.items():
            self.buttons[name].disabled = not have[need]
        if rec is None or self.table is None:
            self.explanation.value = NO_SWEEP
            self._show_preview()
            return
        draw_frontier(self.figures["frontier"], self.table, rec, result.limits,
                      self.config)
        self.explanation.value = explanation_html(rec)
        self.yaml_area.value = result.yaml or "# no config meets the constraints"
        self.stats.value = defaults_table(rec, self._pinned_row())
        self.policy.value = policy_table(rec)
        self._show_preview(keep_file=True)

    def can_pin(self, result: RecommendResult | None) -> bool:
        """A choice can be pinned; no sweep, or nothing feasible, cannot."""
        return (result is not None and result.rec is not None and result.rec.feasible
                and result.rec.chosen is not None)

    def _pinned_row(self) -> Any:
        pinned = self.pinned
        return pinned.rec.chosen if pinned is not None and pinned.rec is not None else None

    def draw_pinned(self) -> None:
        """Star the pinned choice on the scatter (or take the star away)."""
        draw_pinned_choice(self.figures["frontier"], self._pinned_row())

    def config_for(self, result: RecommendResult | None) -> TuningConfig:
        """The recommended config once there is one; the sweep's base config before."""
        rec = result.rec if result is not None else None
        return rec.config if rec is not None and rec.feasible else self.config

    # -- export preview and files --------------------------------------------------------

    def _show_preview(self, *, keep_file: bool = False) -> None:
        self.export_preview.show(self.result.files if self.result else {},
                                 preview_note(self.table is not None), keep_file=keep_file)

    def show_file(self, target: str, file: str | None = None) -> str:
        """Show ``target``'s file (its first by default) in the preview; return its text."""
        return self.export_preview.select(target, file)

    def _rec(self) -> Recommendation:
        if self.table is None or self.result is None or self.result.rec is None:
            raise WslabError("no sweep yet: press Run sweep (or call panel.sweep()) first")
        return self.result.rec

    @property
    def chosen_config(self) -> TuningConfig:
        """The recommended config.

        Raises:
            WslabError: No sweep yet, or no config meets the constraints.
        """
        return self._rec().config

    def export_all(self, folder: str | Path | None = None) -> list[Path]:
        """Write every target's files for the chosen config under ``folder``."""
        out = Path(folder or self.folder.value)
        paths = export(self.chosen_config, "all", out)
        self.status.value = html.escape(f"exported {len(paths)} files to {out}")
        return paths

    def write_report(self, path: str | Path | None = None) -> Path:
        """Write the HTML report (frontier, reasons, live runs) and return its path."""
        rec = self._rec()
        live = sim_vs_live(pd.DataFrame(self.live_rows)) if self.live_rows else None
        assert self.table is not None
        out = write_report(self.table, Path(path or self.workdir / "report.html"),
                           recommendation=rec, sim_vs_live_df=live,
                           title=f"wslab lab: {self.full_trace.meta.name or 'trace'}")
        self.status.value = html.escape(f"report written to {out}")
        return out

    # -- live validation -----------------------------------------------------------------

    def candidates(self, count: int | None = None) -> pd.DataFrame:
        """The chosen point and the next best feasible ones the live harness can run."""
        rec = self._rec()
        assert self.table is not None and self.result is not None
        # every algorithm runs live (zstd through x-wslab-zstd)
        runnable = self.table[client_exclusions(self.table, rec.clients) == ""]
        chosen = rec.chosen["point"] if rec.chosen is not None else None
        return best_candidates(runnable, rec.objective, dict(self.result.limits),
                               count or self.live_candidates, chosen)

    async def validation_job(self, progress: Progress) -> list[dict[str, Any]]:
        """Run each candidate live on the slice, beside its simulation, one by one."""
        cands = self.candidates()
        path = live_trace(self.trace, self.live_seconds, self.workdir)
        progress.start(len(cands), f"live: {len(cands)} candidates, {self.live_seconds:g} s "
                                   f"of trace each, link {self.config.link.profile}")
        self.live_rows = []

        def show(rows: list[dict[str, Any]]) -> None:
            self.live_rows = list(rows)
            draw_live(self.figures["live"], self.live_rows)

        return await validate_async(path, cands, self.config.link.profile, progress, show)

    def start_validation(self) -> Any:
        """Start live validation of :meth:`candidates` in the background."""
        if self.candidates().empty:  # fail now, in the status line
            raise WslabError("no feasible candidate the clients can negotiate: relax the "
                             "constraints")
        return self.start_task(self.validation_job, note="validating live")

