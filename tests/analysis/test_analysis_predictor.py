"""The ratio predictor stays within its stated error on the bundled traces."""

from __future__ import annotations

import numpy as np
import pytest

from wslab.analysis.bundled import bundled_traces
from wslab.analysis.features import message_features
from wslab.analysis.predictor import (
    COEFFICIENTS,
    FEATURE_NAMES,
    error_summary,
    predict_messages,
    predictor_error,
)
from wslab.traces.model import Trace

MAE_BOUND = 0.05
MAX_BOUND = 0.20


def test_error_on_bundled_traces_is_bounded() -> None:
    traces = bundled_traces()
    if not traces:
        pytest.skip("no bundled traces in data/")
    errors = predictor_error(traces)
    summary = error_summary(errors)
    assert summary["groups"] >= 30
    assert summary["mae"] <= MAE_BOUND, summary
    assert summary["max_error"] <= MAX_BOUND, summary


def test_prediction_orders_random_above_repetitive(mixed_trace: Trace) -> None:
    assert len(COEFFICIENTS) == len(FEATURE_NAMES)
    feats = message_features(mixed_trace, window_bits=12)
    pred = predict_messages(feats)
    blob = pred[(feats["type"] == "blob").to_numpy()].mean()
    chat = pred[(feats["type"] == "chat").to_numpy()].mean()
    assert blob > 0.9 > 0.5 > chat
    assert np.all((pred >= 0) & (pred <= 1.2))
