"""The panel framework every lab panel builds on.

What lives here: :class:`Panel`, which holds a :class:`~wslab.config.TuningConfig` and a
trace, binds widgets to config fields by dotted name (``"batching.interval_ms"``) or to
panel-only parameters (``"rate"``), re-runs its computation debounced and off the kernel's
event loop when a bound widget moves, redraws its plotly ``FigureWidget``s in place, and
owns a progress bar, a status line and a :class:`~wslab.lab.tasks.TaskRunner` for long
background jobs (heatmaps now; live runs once the harness can drive them).

A panel subclass writes four things: ``build`` (make widgets with :meth:`Panel.bind`, make
figures), ``compute`` (pure: config and params in, a result out; runs in a worker
thread, must not touch widgets), ``draw`` (put the result into the figures) and ``body``
(arrange its figures). The notebooks then need one line: ``BatchingPanel("chat")``.

What every panel gets from here, once: a tooltip on every control (what it does, its
unit, and when it applies); controls that do not apply to the current settings disabled
(the panel's :attr:`Panel.applies` table, rows of :class:`~wslab.lab.controls.When`);
descriptions wide enough for their words (:func:`~wslab.lab.controls.fit_descriptions`);
a "computing..." note while a run or a job is under way (and a "building" note while the
panel builds in a kernel); a toolbar to pin the current result as a baseline (each panel's
:meth:`Panel.draw_pinned` draws it beside the current one), clear it, reset every control
to the panel's starting values, and download the current config as YAML that
``TuningConfig.load`` (and every ``--config`` option of the CLI) reads back; and
:meth:`Panel.task_bar`, which puts the progress bar and Cancel beside a panel's buttons.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import ipywidgets as W

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.traces.model import Trace

from .controls import (
    CONTROL_PX,
    CONTROL_SHARE,
    Binding,
    When,
    config_value,
    fit_descriptions,
    identity,
    is_config_field,
)
from .data import default_messages, head, load_trace
from .tasks import Debouncer, JobFactory, Progress, TaskRunner
from .toolbar import BUSY, DownloadLink, Toolbar, building

R = TypeVar("R")

DEFAULT = object()
"""Marker: "use the default" where ``None`` already means something (all messages)."""


class Panel(Generic[R]):
    """Base of the lab panels: config, bound widgets, debounced re-runs, figures, tasks.

    Args:
        trace: A :class:`Trace`, or the name of a bundled trace, or a trace file path.
        config: Starting configuration (the defaults of DESIGN.md 4a if omitted).
        messages: Replay only the first this many messages per run (``None``: the whole
            trace; default: 6,000, or 2,000 with ``WSLAB_FAST=1``).
        debounce_s: Quiet time after the last slider event before a run starts.
    """

    title = "wslab panel"
    debounce_s = 0.03
    uses_tasks = False
    """True for panels with background jobs: shows the progress bar and Cancel button."""
    applies: ClassVar[dict[str, When]] = {}
    """Control name -> when it applies; otherwise it is disabled (and its tooltip says so)."""
    config_name = "wslab-config.yaml"
    """The file name the download link suggests."""

    def __init__(
        self,
        trace: Trace | str,
        config: TuningConfig | None = None,
        *,
        messages: int | object | None = DEFAULT,
        debounce_s: float | None = None,
    ) -> None:
        self.full_trace = load_trace(trace, messages=None) if isinstance(trace, str) else trace
        limit = default_messages() if messages is DEFAULT else messages
        self.messages: int | None = limit if isinstance(limit, int) else None
        self.trace = head(self.full_trace, self.messages)
        self.config = config if config is not None else self.default_config()
        self.params: dict[str, Any] = dict(self.default_params())
        self.bindings: dict[str, Binding] = {}
        self.controls: dict[str, Any] = {}
        self.figures: dict[str, Any] = {}
        self.result: R | None = None
        self.pinned: R | None = None
        """The result pinned as a baseline (``None``: nothing pinned)."""
        self.pinned_config: TuningConfig | None = None
        self.status = W.HTML(value="")
        self.toolbar = Toolbar(self.pin, self.unpin, self.reset)
        self.pin_button, self.unpin_button = self.toolbar.pin, self.toolbar.unpin
        self.reset_button, self.download = self.toolbar.reset, self.toolbar.download
        self.busy_note = self.toolbar.busy
        self._link = DownloadLink(self.title, self.config_name)
        self._next_download = ""
        self.progress = W.IntProgress(
            value=0, min=0, max=1, description="", bar_style="info",
            layout=W.Layout(visibility="hidden", width="240px"),
            tooltip="steps of the running job done so far",
        )
        self.cancel_button = W.Button(
            description="Cancel", icon="stop", disabled=True, layout=W.Layout(width="auto"),
            tooltip="stop the running job (nothing it started is left running)",
        )
        self._task_bar: Any = None
        self.tasks = TaskRunner(on_progress=self._show_progress, on_state=self._task_state)
        self.cancel_button.on_click(lambda _b: self.tasks.cancel())
        self.debouncer: Debouncer[R] = Debouncer(
            self._compute_current, self._apply,
            delay_s=self.debounce_s if debounce_s is None else debounce_s,
            on_error=self.show_error, on_busy=self._show_busy,
        )
        self._ui: Any = None
        self._quiet = False
        with building(self.title):
            self.build()
            fit_descriptions(self.controls.values())
            self._initial = (self.config, dict(self.params))
            self._sync_enabled()
            self.debouncer.run_now()  # the first result is drawn before the panel is shown

    # -- what a subclass provides --------------------------------------------------------

    def default_config(self) -> TuningConfig:
        """The config a panel starts from when none is given."""
        return TuningConfig()

    def default_params(self) -> dict[str, Any]:
        """Panel-only parameters (not part of the config), with their starting values."""
        return {}

    def build(self) -> None:
        """Create the controls (with :meth:`bind`) and the figures."""

    def compute(self, config: TuningConfig, params: dict[str, Any]) -> R:
        """The panel's slow work, run in a worker thread; must not touch widgets."""
        raise NotImplementedError

    def draw(self, result: R) -> None:
        """Show ``result``: update figures in place (``with fig.batch_update()``)."""
        raise NotImplementedError

    def body(self) -> Any:
        """The widget(s) under the controls: figures, tables."""
        return W.VBox(list(self.figures.values()))

    def draw_pinned(self) -> None:
        """Put :attr:`pinned` into the figures beside the current result (``None``: clear).

        Called when a result is pinned or the pin is cleared; :meth:`draw` is called
        right after, so tables that show a pinned column can read :attr:`pinned` there.
        """

    def can_pin(self, result: R | None) -> bool:
        """True when ``result`` is worth pinning (a panel with nothing drawn yet: no)."""
        return result is not None

    def config_for(self, result: R | None) -> TuningConfig:
        """The config the download link offers with ``result`` drawn (the panel's own)."""
        return self.config

    def current_config(self) -> TuningConfig:
        """The config the download link offers now."""
        return self.config_for(self.result)

    # -- binding widgets ----------------------------------------------------------------

    def bind(
        self,
        widget: Any,
        fields: str | Sequence[str],
        *,
        key: str | None = None,
        to_value: Callable[[Any], Any] = identity,
        from_value: Callable[[Any], Any] = identity,
        tip: str = "",
    ) -> Any:
        """Tie ``widget`` to config fields or panel parameters and return it.

        The widget starts at the stored value; moving it stores the new value (through
        ``to_value``), validates it against the config's rules and schedules a re-run.
        It takes the width of its cell in the controls grid.

        Args:
            widget: An ipywidgets control with a ``value`` trait.
            fields: One name or several names set together (e.g. both window bits).
            key: Name of the control in :attr:`controls` (default: last part of the
                first field).
            to_value: Widget value -> stored value.
            from_value: Stored value -> widget value.
            tip: The tooltip: what the control does and its unit (the panel's
                :attr:`applies` row, if any, is added: "only with strategy time").
        """
        names = (fields,) if isinstance(fields, str) else tuple(fields)
        binding = Binding(widget, names, to_value, from_value)
        name = key or names[0].rsplit(".", 1)[-1]
        if name in self.bindings:
            raise ValueError(f"a control named {name!r} is already bound")
        self.bindings[name] = binding
        self.controls[name] = widget
        rule = self.applies.get(name)
        widget.tooltip = f"{tip} ({rule.text()})" if rule is not None and tip else tip
        widget.layout.width = f"{CONTROL_SHARE:.0%}"
        widget.layout.max_width = None
        widget.value = from_value(self.get(names[0]))
        widget.observe(lambda change: self._on_change(binding, change["new"]), names="value")
        return widget

    def get(self, name: str) -> Any:
        """A config field (dotted) or a panel parameter."""
        return config_value(self.config, name) if is_config_field(name) else self.params[name]

    def set(self, **values: Any) -> None:
        """Move bound controls by name (``panel.set(interval_ms=5)``) and redraw at once.

        Unlike a slider moved by hand, the re-run is not debounced: when ``set`` returns,
        :attr:`result` and the figures reflect the new values (a notebook cell after it
        sees them).
        """
        for name, value in values.items():
            if name not in self.controls:
                raise KeyError(f"no control {name!r}; controls: {', '.join(self.controls)}")
            self._quiet = True
            try:
                self.controls[name].value = value
            finally:
                self._quiet = False
        self.debouncer.flush()

    def _on_change(self, binding: Binding, new: Any) -> None:
        value = binding.to_value(new)
        config_changes = {f: value for f in binding.fields if is_config_field(f)}
        try:
            if config_changes:
                self.config = self.config.updated(config_changes)
        except WslabError as exc:
            self.show_error(exc)
            return
        for f in binding.fields:
            if not is_config_field(f):
                self.params[f] = value
        self.changed(binding.fields)
        self._sync_enabled()
        if not self._quiet:
            self.refresh()

    def changed(self, fields: tuple[str, ...]) -> None:
        """Hook: called after a bound value changed, before the re-run is scheduled."""

    def _sync_enabled(self) -> None:
        """Disable the controls whose :attr:`applies` row does not hold now."""
        for name, rule in self.applies.items():
            control = self.controls.get(name)
            if control is not None:
                control.disabled = not rule.holds(self.get)

    def reset(self) -> None:
        """Put every control back to the panel's starting value and redraw at once.

        A pinned baseline stays, so the starting point can be compared against it.
        """
        config, params = self._initial
        self._quiet = True
        try:
            self.config, self.params = config, dict(params)
            for binding in self.bindings.values():
                binding.widget.value = binding.from_value(self.get(binding.fields[0]))
        finally:
            self._quiet = False
        self.config, self.params = config, dict(params)  # exactly, whatever the mappings
        self.changed(tuple(f for b in self.bindings.values() for f in b.fields))
        self._sync_enabled()
        self.debouncer.flush()

    # -- the baseline -------------------------------------------------------------------

    def pin(self) -> None:
        """Keep the current result as the baseline, drawn beside every later one."""
        if not self.can_pin(self.result):
            return
        self.pinned, self.pinned_config = self.result, self.config
        self.unpin_button.disabled = False
        self._redraw_pinned()

    def unpin(self) -> None:
        """Forget the baseline."""
        self.pinned = self.pinned_config = None
        self.unpin_button.disabled = True
        self._redraw_pinned()

    def _redraw_pinned(self) -> None:
        try:
            self.draw_pinned()
            if self.result is not None:
                self.draw(self.result)
        except Exception as exc:  # a button never raises into the kernel
            self.show_error(exc)

    # -- the config as a file -----------------------------------------------------------

    def config_yaml(self) -> str:
        """The current config as YAML that ``TuningConfig.load`` reads back."""
        return self._link.text(self.current_config())

    # -- running ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Schedule a run (debounced in a kernel; immediate without a running loop)."""
        self.debouncer.trigger()

    def _compute_current(self) -> R:
        result = self.compute(self.config, dict(self.params))
        # The YAML link is made here, in the worker thread, not in the redraw.
        self._next_download = self._link.html(self.config_for(result))
        return result

    def _apply(self, result: R) -> None:
        self.result = result
        self.draw(result)
        self.pin_button.disabled = not self.can_pin(result)
        if self.download.value != self._next_download:
            self.download.value = self._next_download
        if self.status.value.startswith("<span class='wslab-error'"):
            self.status.value = ""

    def _show_busy(self, busy: bool) -> None:
        self.busy_note.value = BUSY if busy or self.tasks.running else ""

    def start_task(self, job: JobFactory, *, note: str = "") -> Any:
        """Start a background asyncio job with the panel's progress bar and Cancel button.

        ``job`` is an ``async`` function taking a :class:`Progress`; see
        :class:`~wslab.lab.tasks.TaskRunner`. Returns the ``asyncio.Task``.
        """
        self.status.value = html.escape(note)
        return self.tasks.start(job)

    def _show_progress(self, progress: Progress) -> None:
        self.progress.max = max(1, progress.total)
        self.progress.value = progress.done
        self.progress.description = f"{progress.done}/{progress.total}"
        if progress.note:
            self.status.value = html.escape(progress.note)

    def _task_state(self, state: str, payload: Any) -> None:
        running = state == "running"
        self.cancel_button.disabled = not running
        self.progress.layout.visibility = "visible" if running else "hidden"
        self.progress.bar_style = "info"
        self.busy_note.value = BUSY if running or self.debouncer.busy else ""
        if state == "cancelled":
            self.status.value = "cancelled"
        elif state == "failed":
            self.show_error(payload)
        elif state == "done" and not self.status.value.startswith("<span"):
            self.status.value = "done"

    def show_error(self, exc: BaseException) -> None:
        """Show an error in the panel's status line instead of raising into the kernel."""
        self.status.value = (
            f"<span class='wslab-error' style='color:#b00'>{html.escape(str(exc))}</span>"
        )

    # -- display ------------------------------------------------------------------------

    def task_bar(self, *buttons: Any) -> Any:
        """``buttons`` with the panel's progress bar and Cancel beside them (once)."""
        self._task_bar = W.HBox([*buttons, self.progress, self.cancel_button],
                                layout=W.Layout(flex_flow="row wrap", align_items="center"))
        return self._task_bar

    @property
    def widget(self) -> Any:
        """The whole panel as one ipywidgets ``VBox`` (built once)."""
        if self._ui is None:
            heading = W.HTML(f"<b>{html.escape(self.title)}</b> "
                             f"<small>({self._trace_note()})</small>")
            controls = W.GridBox(
                list(self.controls.values()),
                layout=W.Layout(grid_template_columns=(
                    f"repeat(auto-fill, minmax({CONTROL_PX}px, 1fr))")),
            )
            body = self.body()  # may place the progress bar (task_bar)
            toolbar = self.toolbar.row()
            footer = W.HBox([self.progress, self.cancel_button, self.status]
                            if self.uses_tasks and self._task_bar is None else [self.status])
            self._ui = W.VBox([heading, controls, toolbar, footer, body])
            self._ui.add_class("wslab-panel")
        return self._ui

    def _trace_note(self) -> str:
        name = self.full_trace.meta.name or "trace"
        shown = len(self.trace)
        total = len(self.full_trace)
        part = f"first {shown:,} of {total:,} messages" if shown < total else f"{total:,} messages"
        return f"{name}: {part}"

    def show(self) -> None:
        """Display the panel in the notebook."""
        from IPython.display import display

        display(self.widget)  # type: ignore[no-untyped-call]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
