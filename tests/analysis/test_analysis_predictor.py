"""The ratio predictor, scored only on messages it was not fitted on.

The shipped coefficients are fitted on the bundled traces (seed 0 of every generator kind),
so their error is measured on fresh seeds and, refitting without each kind, on a kind the
fit never saw. Each must stay within the error the module states and beat the best
constant ratio for the very groups scored (a baseline that may even peek at the answers).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from wslab.analysis.bundled import bundled_traces
from wslab.analysis.features import message_features
from wslab.analysis.predictor import (
    COEFFICIENTS,
    FEATURE_NAMES,
    HELD_OUT_SEEDS,
    STATED_ERROR,
    error_summary,
    held_out_error,
    leave_one_kind_out_error,
    predict_messages,
    related_kinds,
)
from wslab.traces.model import Trace


def _best_constant_mae(errors: pd.DataFrame) -> float:
    """The mean absolute error of the best single ratio for these groups (their median)."""
    measured = errors["measured"].to_numpy()
    return float(np.abs(measured - np.median(measured)).mean())


@pytest.fixture(scope="module")
def bundled() -> dict[str, Trace]:
    traces = bundled_traces()
    if not traces:
        pytest.skip("no bundled traces in data/")
    return traces


@pytest.fixture(scope="module")
def held_out(bundled: dict[str, Trace]) -> pd.DataFrame:
    return held_out_error()


def test_held_out_seeds_are_not_the_fitted_ones(bundled: dict[str, Trace]) -> None:
    fitted = {int(m.group(1)) for t in bundled.values()
              for m in [re.search(r"seed=(\d+)", t.meta.source)] if m}
    assert len(fitted) == 1 and not fitted & set(HELD_OUT_SEEDS)


def test_error_on_fresh_seeds_is_within_the_stated_error(
        bundled: dict[str, Trace], held_out: pd.DataFrame) -> None:
    errors = held_out
    summary = error_summary(errors)
    assert set(errors["trace"].str.split(":").str[0]) == set(bundled)
    assert summary["mae"] <= STATED_ERROR["held_out_seeds"]["mae"], summary
    assert summary["max_error"] <= STATED_ERROR["held_out_seeds"]["max_error"], summary
    assert summary["mae"] < _best_constant_mae(errors) / 2, summary


def test_error_on_a_kind_the_fit_never_saw_is_within_the_stated_error(
        bundled: dict[str, Trace], held_out: pd.DataFrame) -> None:
    errors = leave_one_kind_out_error(bundled)
    summary = error_summary(errors)
    assert set(errors["trace"]) == set(bundled)
    assert summary["mae"] <= STATED_ERROR["leave_one_kind_out"]["mae"], summary
    assert summary["max_error"] <= STATED_ERROR["leave_one_kind_out"]["max_error"], summary
    assert summary["mae"] < _best_constant_mae(errors) / 2, summary
    # and the shipped coefficients, which did see every kind, do no worse there
    assert error_summary(held_out)["mae"] <= summary["mae"]


def test_a_left_out_kind_takes_every_trace_sharing_its_streams() -> None:
    assert related_kinds("chat") == {"chat", "mixed"}
    assert related_kinds("mixed") == {"mixed", "chat", "market", "telemetry"}
    assert related_kinds("sensor") == {"sensor"}


def test_prediction_orders_random_above_repetitive(mixed_trace: Trace) -> None:
    assert len(COEFFICIENTS) == len(FEATURE_NAMES)
    feats = message_features(mixed_trace, window_bits=12)
    pred = predict_messages(feats)
    blob = pred[(feats["type"] == "blob").to_numpy()].mean()
    chat = pred[(feats["type"] == "chat").to_numpy()].mean()
    assert blob > 0.9 > 0.5 > chat
    assert np.all((pred >= 0) & (pred <= 1.2))
