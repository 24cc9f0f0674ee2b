"""The compression policy, visible: threshold/adaptive rows beside their ``always`` twins.

First on hand-made rows (every expected difference computed here from the rows), then end
to end: a generated trace of compressible JSON beside random binary blobs, swept with
``always`` and ``adaptive``, where adaptive must send the blobs plain and spend less CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mixed_blobs import BLOB_TYPES, blob_trace

from wslab.config import TuningConfig
from wslab.traces.io import write_trace
from wslab.tune.policy import add_policy_columns, family_effects, policy_effects
from wslab.tune.recommend import recommend
from wslab.tune.space import Space
from wslab.tune.sweep import flatten, run_sweep

HELD = {"link.profile": "4g", "compression.client_max_window_bits": 15}


def row(name: str, changes: dict[str, Any], b: float, cpu: float, plain: int = 0,
        keys: dict[str, int] | None = None) -> dict[str, Any]:
    config = TuningConfig().updated({**HELD, **changes})
    return {"point": name, "mode": "sim", **flatten(config.to_dict()), "messages": 1000,
            "frames": 1000, "ws_bytes_per_msg": b, "tcp_bytes_per_msg": b + 40,
            "latency_p50_ms": 5.0, "latency_p99_ms": 20.0, "cpu_us_per_msg": cpu,
            "mem_kib_per_conn": 60.0, "lost": 0, "duplicated": 0, "reordered": 0,
            "dropped": 0, "frames_plain": plain, "frames_compressed": 1000 - plain,
            "plain_keys": json.dumps(keys or {})}


def table() -> pd.DataFrame:
    return pd.DataFrame([
        row("always", {}, 200.0, 20.0),
        row("adaptive", {"compression.policy": "adaptive"}, 204.0, 8.0, 190,
            {"media.chunk": 160, "upload.part": 30}),
        row("threshold", {"compression.policy": "threshold",
                          "compression.threshold_bytes": 400}, 230.0, 6.0, 600,
            {"ticker": 600}),
        row("threshold0", {"compression.policy": "threshold",
                           "compression.threshold_bytes": 0}, 200.0, 20.5),
        row("lonely", {"compression.policy": "adaptive", "compression.mem_level": 9},
            199.0, 9.0, 10, {"media.chunk": 10}),
        row("off", {"compression.algorithm": "none", "compression.policy": "adaptive"},
            400.0, 0.0),
    ])


def test_effects_pair_each_selective_row_with_its_always_twin() -> None:
    df = table()
    effects = policy_effects(df).set_index("point")
    # threshold 0 compresses every frame: it is "always", not a variant of it; "lonely"
    # has no always twin (memLevel 9); "off" does not compress at all.
    assert sorted(effects.index) == ["adaptive", "threshold"]
    by = df.set_index("point")
    for name in ("adaptive", "threshold"):
        e = effects.loc[name]
        assert e["bytes_change"] == pytest.approx(
            by.loc[name, "ws_bytes_per_msg"] - by.loc["always", "ws_bytes_per_msg"])
        assert e["cpu_change"] == pytest.approx(
            by.loc[name, "cpu_us_per_msg"] - by.loc["always", "cpu_us_per_msg"])
        assert json.loads(e["plain_keys"]) == json.loads(by.loc[name, "plain_keys"])
    cols = add_policy_columns(df).set_index("point")
    assert cols.loc["adaptive", "vs_always_cpu_us_per_msg"] == pytest.approx(8.0 - 20.0)
    assert cols[["vs_always_bytes_per_msg"]].loc[["always", "lonely", "off",
                                                   "threshold0"]].isna().all().all()


def test_recommendation_explains_the_policy_against_always() -> None:
    df = table()
    rec = recommend(df[df["point"] != "lonely"], max_cpu_us_per_msg=10)
    assert rec.chosen is not None and rec.chosen["point"] == "adaptive"
    assert sorted(rec.policy["point"]) == ["adaptive", "threshold"]
    line = next(t for t in rec.explanation if t.startswith("The chosen policy adaptive"))
    assert "190 of 1,000 frames went uncompressed (media.chunk 160, upload.part 30)" in line
    assert "20.0 µs → 8.00 µs (-60.0 %)" in line
    assert any(t.startswith("Policy threshold (≥ 400 B) against always") for t in rec.explanation)
    lonely = family_effects(df, df[df["point"] == "lonely"].iloc[0].to_dict())
    assert lonely.empty
    rec = recommend(df[df["point"] == "lonely"])
    assert "10 of 1,000 frames went uncompressed (media.chunk 10)" in rec.text
    assert "no 'always' twin" in rec.text


@pytest.fixture(scope="module")
def blob_sweep(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("blobs")
    trace = root / "blobs.jsonl"
    write_trace(blob_trace(seconds=3.0), trace)
    space = Space.from_dict({"compression.policy": ["always", "adaptive"]})
    return run_sweep(trace, space.grid(), root / "r.parquet",
                     base=TuningConfig().updated(HELD), workers=1)


def test_sweep_rows_show_where_adaptive_differs_from_always(blob_sweep: pd.DataFrame) -> None:
    by = blob_sweep.set_index("compression.policy")
    assert int(by.loc["always", "frames_plain"]) == 0
    plain = json.loads(by.loc["adaptive", "plain_keys"])
    assert set(plain) == set(BLOB_TYPES)
    assert int(by.loc["adaptive", "frames_plain"]) == sum(plain.values()) > 0
    assert by.loc["adaptive", "vs_always_cpu_us_per_msg"] < 0
    assert by.loc["adaptive", "cpu_us_per_msg"] < by.loc["always", "cpu_us_per_msg"]
    assert by.loc["adaptive", "vs_always_bytes_per_msg"] == pytest.approx(
        by.loc["adaptive", "ws_bytes_per_msg"] - by.loc["always", "ws_bytes_per_msg"])
    rec = recommend(blob_sweep, objective="cpu_us_per_msg")
    assert rec.chosen is not None and rec.chosen["compression.policy"] == "adaptive"
    assert all(kind in rec.text for kind in BLOB_TYPES)


def test_report_has_the_policy_section(blob_sweep: pd.DataFrame, tmp_path: Path) -> None:
    from wslab.tune.report import write_report

    text = write_report(blob_sweep, tmp_path / "r.html").read_text(encoding="utf-8")
    section = text.split("<h2>Compression policy against always</h2>")[1].split("<h2>")[0]
    assert "adaptive" in section and BLOB_TYPES[0] in section
    assert "<h2>Left out for browser clients</h2>" in text
