"""The tuning lab: ipywidgets + plotly panels that notebooks show in a line or two.

What lives here: the panel framework (``base``: config binding, debounced re-runs,
figures updated in place, progress and background tasks; ``tasks``: the scheduling
underneath), shared inputs (``data``: fast mode, traces, rate scaling, heatmap cells),
plotting helpers (``figures``), what every panel's controls share (``controls``: label
widths, when a control applies), hidden exercise answers (``answers``) and the panels
themselves: :class:`ContentPanel`,
:class:`BatchingPanel`, :class:`CompressionPanel`, :class:`ScalingPanel` and
:class:`RecommendPanel`. Logic stays in the core packages (``wslab.sim``,
``wslab.analysis``, ``wslab.tune``, ``wslab.harness``); a panel only wires widgets to them.

Example:
    >>> from wslab.lab import BatchingPanel
    >>> BatchingPanel("chat")  # doctest: +SKIP
"""

from .answers import ANSWER_TAG, answer_check
from .base import Panel
from .batching import BatchingPanel
from .compression import CompressionPanel
from .content import ContentPanel
from .data import bundled_names, fast_mode, load_trace, speed_up
from .recommend import RecommendPanel
from .scaling import ScalingPanel
from .tasks import Debouncer, Progress, TaskRunner

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
    "fast_mode",
    "load_trace",
    "speed_up",
]
