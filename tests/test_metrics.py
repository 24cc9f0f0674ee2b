"""Integrity counting and latency percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from wslab.metrics import integrity_counts, latency_summary


def test_integrity_counts_each_fault() -> None:
    ok = integrity_counts([("a", 0), ("a", 1), ("b", 0)], {"a": 2, "b": 1})
    assert ok == {"lost": 0, "duplicated": 0, "reordered": 0}
    bad = integrity_counts([("a", 1), ("a", 0), ("a", 1), ("b", 0)], {"a": 3, "b": 2})
    assert bad == {"lost": 2, "duplicated": 1, "reordered": 1}


def test_latency_summary() -> None:
    s = latency_summary(np.array([1.0, 2.0, 3.0, np.nan, 100.0]))
    assert s["max"] == 100.0
    assert s["p50"] == pytest.approx(2.5)
    # Linear interpolation between order statistics: rank 0.95 * 3 = 2.85 of [1, 2, 3, 100].
    assert s["p95"] == pytest.approx(3 + 0.85 * 97)
    assert latency_summary(np.array([])) == {"p50": None, "p90": None, "p95": None,
                                             "p99": None, "max": None}
