"""The demo's own space, swept by the demo itself: every config once, listed once.

One module-scoped ``run_demo`` on 400 messages of the bundled ``mixed`` trace (no live
runs) feeds the checks: no two rows share a canonical config, every requested point is
accounted for exactly once, the report's frontier table repeats no row, and the
recommendation for browsers says what it left out.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from wslab.cli import run
from wslab.config import TuningConfig
from wslab.tune.canonical import canonical_key
from wslab.tune.clients import holdable_config
from wslab.tune.demo import DEMO_SPACE, DemoResult, run_demo
from wslab.tune.recommend_pareto import row_config
from wslab.tune.space import Space, point_key

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "mixed.jsonl.zst"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(BUNDLED, tmp_path_factory.mktemp("demo"), messages=400, live=0)


def test_sweeping_the_demo_space_yields_no_two_points_with_the_same_canonical_config(
        demo: DemoResult) -> None:
    assert demo.results is not None
    rows = demo.results[demo.results["mode"] == "sim"]
    keys = [canonical_key(row_config(r)) for r in rows.to_dict("records")]
    assert len(set(keys)) == len(keys)
    points = Space.from_dict(DEMO_SPACE).grid()
    base = holdable_config(TuningConfig().updated({"link.profile": "4g"}), "browser")
    wanted = {canonical_key(base.updated(p)) for p in points}
    assert set(keys) == wanted and len(rows) < len(points)
    listed = [point_key(q) for text in rows["requested"] for q in json.loads(text)]
    assert sorted(listed) == sorted(point_key(p) for p in points)  # each exactly once
    for key, text in zip(keys, rows["requested"], strict=True):
        assert {canonical_key(base.updated(q)) for q in json.loads(text)} == {key}


def test_demo_report_frontier_repeats_no_row(demo: DemoResult) -> None:
    text = demo.files["report"].read_text(encoding="utf-8")
    section = text.split("<h2>Pareto frontier</h2>")[1].split("<h2>")[0]
    configs = [html.unescape(c) for c in re.findall(r"<tr>\s*<td>(.*?)</td>", section)]
    assert len(configs) == demo.recommendation.counts["frontier"] > 1
    assert len(set(configs)) == len(configs)
    assert sum("no batching + no compression" in c for c in configs) <= 1


def test_demo_recommends_for_browsers_and_says_what_it_left_out(demo: DemoResult) -> None:
    rec = demo.recommendation
    assert demo.results is not None
    zstd = demo.results[demo.results["compression.algorithm"] == "zstd-stream"]
    assert rec.clients == "browser" and len(zstd) > 0
    assert rec.chosen is not None and rec.chosen["compression.algorithm"] != "zstd-stream"
    left = rec.left_out.set_index("rule")
    assert int(left.loc["zstd", "rows"]) == len(zstd)
    assert any(line.startswith("Left out for browser clients") for line in rec.explanation)
    assert json.loads(demo.files["recommendation"].read_text())["clients"] == "browser"


def test_demo_unknown_clients_fails_before_any_work(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["demo", "--clients", "robots", "--out", str(tmp_path / "out")]) == 2
    assert "unknown clients 'robots'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
