"""The tuning lab: ipywidgets + plotly panels that notebooks show in a line or two.

What lives here: the panel framework (``base``: config binding, debounced re-runs,
figures updated in place, progress and background tasks; ``tasks``: the scheduling
underneath), shared inputs (``data``: fast mode, traces, rate scaling, heatmap cells),
plotting helpers (``figures``), what every panel's controls share (``controls``: label
widths, when a control applies), hidden exercise answers (``answers``) and the panels
themselves: :class:`ContentPanel`,
:class:`BatchingPanel`, :class:`CompressionPanel`, :class:`ScalingPanel` and
:class:`RecommendPanel`, plus :func:`probe` and :func:`echo_server` (``probing``: ``wslab
probe`` as tables, and a server to try it on). Logic stays in the core packages (``wslab.sim``,
``wslab.analysis``, ``wslab.tune``, ``wslab.harness``); a panel only wires widgets to them.

Example:
    >>> from wslab.lab import BatchingPanel
    >>> BatchingPanel("chat")  # doctest: +SKIP
"""


from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .answers import ANSWER_TAG, answer_check
from .base import Panel
from .data import bundled_names, fast_mode, load_trace, speed_up
from .tasks import Debouncer, Progress, TaskRunner

if TYPE_CHECKING:
    from .batching import BatchingPanel
    from .compression import CompressionPanel
    from .content import ContentPanel
    from .probing import echo_server, probe
    from .recommend import RecommendPanel
    from .scaling import ScalingPanel

_PANELS = {"BatchingPanel": "batching", "CompressionPanel": "compression",
           "ContentPanel": "content", "RecommendPanel": "recommend",
           "ScalingPanel": "scaling", "probe": "probing", "echo_server": "probing"}
"""Panels imported on first use: a notebook's panel cell then loads only its own panel
(the recommend and scaling panels pull in the tuner and the live harness), which keeps
the first panel of a notebook within its 3 s."""


def __getattr__(name: str) -> Any:
    module = _PANELS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ANSWER_TAG",
    "BatchingPanel",
    "CompressionPanel",
    "ContentPanel",
    "Debouncer",
    "Panel",
    "Progress",
    "RecommendPanel",
    "ScalingPanel",
    "TaskRunner",
    "answer_check",
    "bundled_names",
    "echo_server",
    "fast_mode",
    "load_trace",
    "probe",
    "speed_up",
]
