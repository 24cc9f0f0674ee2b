"""Content analysis of message traces.

What lives here (one module each): ``features`` (entropy, LZ repetition, JSON structure,
vectorised over messages), ``ratios`` (measured compression ratios with real codecs),
``predictor`` (a cheap ratio guess from features, and its error), ``report``
(:func:`analyse`, one row per message type and direction), ``evaluate`` (the selector's
policies against the hindsight oracle) and ``bundled`` (the example traces). The selector
itself, :class:`CompressionSelector`, is core (``wslab/selector.py``: the live send path
uses it and must not import pandas); it is re-exported here for analysis users.

What must not live here: I/O beyond reading the bundled traces, clocks other than the CPU
timing in ``evaluate``, command-line parsing, printing. The package is sans-I/O core.
"""

from wslab.selector import CompressionSelector

from .bundled import bundled_traces
from .evaluate import evaluate
from .features import message_features
from .predictor import error_summary, predict_messages, predictor_error
from .ratios import CodecSettings, message_sizes, ratios_by_type
from .report import analyse, analysis_json, message_table

__all__ = [
    "CodecSettings",
    "CompressionSelector",
    "analyse",
    "analysis_json",
    "bundled_traces",
    "error_summary",
    "evaluate",
    "message_features",
    "message_sizes",
    "message_table",
    "predict_messages",
    "predictor_error",
    "ratios_by_type",
]
