"""analyse(): one row per (type, dir), sensible recommendations, JSON-safe output."""

from __future__ import annotations

import json
import random

from wslab.analysis import analyse, analysis_json, message_table
from wslab.analysis.report import COLUMNS
from wslab.traces.model import Trace

from .conftest import make_trace


def test_analyse_rows_columns_and_recommendations(mixed_trace: Trace) -> None:
    df = analyse(mixed_trace)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4
    by = {t: row for t, row in zip(df["type"], df.to_dict("records"), strict=True)}
    assert by["chat"]["recommendation"] == "compress"
    assert by["blob"]["recommendation"] == "skip"
    assert "entropy" in by["blob"]["reason"]
    assert by["tick"]["recommendation"] == "compress (context takeover)"
    assert by["tick"]["deflate_ratio"] < 0.9 < by["tick"]["deflate_ratio_no_context"]
    assert by["blob"]["entropy_bits_per_byte"] > 7.0
    assert by["chat"]["json_fraction"] == 1.0 and by["blob"]["json_fraction"] == 0.0
    assert by["chat"]["json_depth"] == 2.0
    assert 0.0 < by["chat"]["key_bytes_fraction"] < 0.5
    assert by["chat"]["messages"] == 200 and by["chat"]["bytes"] > 0
    for row in by.values():
        assert row["reason"]


def test_analysis_json_is_strict_json(mixed_trace: Trace) -> None:
    doc = analysis_json(analyse(mixed_trace, window_bits=10, mem_level=3, level=1))
    text = json.dumps(doc, allow_nan=False)  # NaN would raise here
    back = json.loads(text)
    assert back["settings"] == {"window_bits": 10, "mem_level": 3, "level": 1, "zstd_level": 3}
    assert len(back["types"]) == 4
    rare = next(t for t in back["types"] if t["type"] == "rare")
    assert rare["zstd_dict_ratio"] is None
    assert back["totals"]["messages"] == len(mixed_trace)
    assert 0 < back["totals"]["deflate_ratio"] < 1


def test_empty_trace() -> None:
    df = analyse(Trace([]))
    assert len(df) == 0 and list(df.columns) == list(COLUMNS)
    assert analysis_json(df)["types"] == []


def test_message_table_matches_trace() -> None:
    rng = random.Random(0)
    trace = make_trace([("t", "s2c", rng.randbytes(50)) for _ in range(20)])
    table = message_table(trace)
    assert len(table) == 20
    assert (table["deflate"] > table["size"]).all()


def test_takeover_is_advised_only_when_the_shared_window_helps() -> None:
    """Issue 15: a type at 0.90 alone and 0.90 with the shared window was still told to use
    context takeover; the window buys nothing there and costs memory per connection."""
    from wslab.analysis.report import TAKEOVER_GAIN, WORTH_IT, recommend

    base = {"bytes": 1000, "entropy_bits_per_byte": 5.0, "context_repetition": 0.3,
            "zstd_dict_ratio": float("nan")}
    same = recommend({**base, "deflate_ratio": WORTH_IT - 0.01,
                      "deflate_ratio_no_context": WORTH_IT - 0.005})
    assert same[0] == "compress" and "no_context_takeover" in same[1]
    helped = recommend({**base, "deflate_ratio": WORTH_IT - 2 * TAKEOVER_GAIN - 0.1,
                        "deflate_ratio_no_context": WORTH_IT - 0.01})
    assert helped[0] == "compress (context takeover)"
