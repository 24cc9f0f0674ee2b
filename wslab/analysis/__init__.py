"""Content analysis of message traces, and the adaptive compression selector.

What lives here (one module each): ``features`` (entropy, LZ repetition, JSON structure,
vectorised over messages), ``ratios`` (measured compression ratios with real codecs),
``predictor`` (a cheap ratio guess from features, and its error), ``report``
(:func:`analyse`, one row per message type and direction), ``selector``
(:class:`CompressionSelector`, the per-message compress-or-not policy), ``evaluate``
(policies against the hindsight oracle) and ``bundled`` (the example traces).

What must not live here: I/O beyond reading the bundled traces, clocks other than the CPU
timing in ``evaluate``, command-line parsing, printing. The package is sans-I/O core.
"""

from .bundled import bundled_traces
from .evaluate import evaluate
from .features import message_features
from .predictor import error_summary, predict_messages, predictor_error
from .ratios import CodecSettings, message_sizes, ratios_by_type
from .report import analyse, analysis_json, message_table
from .selector import CompressionSelector

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
