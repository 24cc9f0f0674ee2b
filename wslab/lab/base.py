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
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ipywidgets as W

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.traces.model import Trace

from .data import default_messages, head, load_trace
from .tasks import Debouncer, JobFactory, Progress, TaskRunner

R = TypeVar("R")

SECTIONS = ("batching", "compression", "scaling", "link")
DEFAULT = object()
"""Marker: "use the default" where ``None`` already means something (all messages)."""


@dataclass(slots=True)
class Binding:
    """One widget tied to one or more config fields or panel parameters.

    Attributes:
        widget: The ipywidgets control.
        fields: Dotted config fields (``"compression.mem_level"``) or parameter names.
        to_value: Maps the widget's value to the stored value (identity by default).
        from_value: Maps a stored value back to the widget's value.
    """

    widget: Any
    fields: tuple[str, ...]
    to_value: Callable[[Any], Any]
    from_value: Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def is_config_field(name: str) -> bool:
    """True for a dotted config field such as ``"batching.interval_ms"``."""
    return name.split(".", 1)[0] in SECTIONS and "." in name


def config_value(config: TuningConfig, dotted: str) -> Any:
    """The value of a dotted field of ``config``."""
    node: Any = config
    for part in dotted.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


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
        self.status = W.HTML(value="")
        self.progress = W.IntProgress(
            value=0, min=0, max=1, description="", bar_style="info",
            layout=W.Layout(visibility="hidden", width="60%"),
        )
        self.cancel_button = W.Button(
            description="Cancel", icon="stop", disabled=True, layout=W.Layout(width="90px")
        )
        self.tasks = TaskRunner(on_progress=self._show_progress, on_state=self._task_state)
        self.cancel_button.on_click(lambda _b: self.tasks.cancel())
        self.debouncer: Debouncer[R] = Debouncer(
            self._compute_current, self._apply,
            delay_s=self.debounce_s if debounce_s is None else debounce_s,
            on_error=self.show_error,
        )
        self._ui: Any = None
        self._quiet = False
        self.build()
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

    # -- binding widgets ----------------------------------------------------------------

    def bind(
        self,
        widget: Any,
        fields: str | Sequence[str],
        *,
        key: str | None = None,
        to_value: Callable[[Any], Any] = _identity,
        from_value: Callable[[Any], Any] = _identity,
    ) -> Any:
        """Tie ``widget`` to config fields or panel parameters and return it.

        The widget starts at the stored value; moving it stores the new value (through
        ``to_value``), validates it against the config's rules and schedules a re-run.

        Args:
            widget: An ipywidgets control with a ``value`` trait.
            fields: One name or several names set together (e.g. both window bits).
            key: Name of the control in :attr:`controls` (default: last part of the
                first field).
            to_value: Widget value -> stored value.
            from_value: Stored value -> widget value.
        """
        names = (fields,) if isinstance(fields, str) else tuple(fields)
        binding = Binding(widget, names, to_value, from_value)
        name = key or names[0].rsplit(".", 1)[-1]
        if name in self.bindings:
            raise ValueError(f"a control named {name!r} is already bound")
        self.bindings[name] = binding
        self.controls[name] = widget
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
        if not self._quiet:
            self.refresh()

    def changed(self, fields: tuple[str, ...]) -> None:
        """Hook: called after a bound value changed, before the re-run is scheduled."""

    # -- running ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Schedule a run (debounced in a kernel; immediate without a running loop)."""
        self.debouncer.trigger()

    def _compute_current(self) -> R:
        return self.compute(self.config, dict(self.params))

    def _apply(self, result: R) -> None:
        self.result = result
        self.draw(result)
        if self.status.value.startswith("<span class='wslab-error'"):
            self.status.value = ""

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

    @property
    def widget(self) -> Any:
        """The whole panel as one ipywidgets ``VBox`` (built once)."""
        if self._ui is None:
            heading = W.HTML(f"<b>{html.escape(self.title)}</b> "
                             f"<small>({self._trace_note()})</small>")
            controls = W.GridBox(
                list(self.controls.values()),
                layout=W.Layout(grid_template_columns="repeat(2, minmax(300px, 1fr))"),
            )
            footer = W.HBox([self.progress, self.cancel_button, self.status]
                            if self.uses_tasks else [self.status])
            self._ui = W.VBox([heading, controls, footer, self.body()])
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
