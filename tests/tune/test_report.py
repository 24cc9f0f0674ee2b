"""The report page, on a real mini sweep: self-contained, parseable, atomic, complete.

One module-scoped sweep (2,000 messages of a bundled trace, 8 points on the 4g link, one
worker) feeds the recommendation and the page; the tests then check what a user opening the
file offline relies on.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from wslab.analysis import analyse
from wslab.cli.report_cmd import report as report_cmd
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.traces.io import read_trace, write_trace
from wslab.tune.recommend import Recommendation, recommend
from wslab.tune.recommend_explain import describe_config
from wslab.tune.report import sim_vs_live, write_report
from wslab.tune.space import Space
from wslab.tune.sweep import run_sweep

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "mixed.jsonl.zst"
SPACE = {
    "batching.strategy": ["none", "hybrid"],
    "batching.interval_ms": [30],
    "compression.algorithm": ["none", "permessage-deflate"],
    "compression.server_max_window_bits": [10, 12],
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("mini")
    trace = root / "mini.jsonl"
    write_trace(read_trace(BUNDLED)[:2000], trace)
    out = root / "results.parquet"
    df = run_sweep(trace, Space.from_dict(SPACE).grid(), out,
                   base=TuningConfig().updated({"link.profile": "4g"}), workers=1)
    return trace, out, df


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    parser.close()
    return parser


def test_mini_sweep_recommend_loads(sweep: tuple[Path, Path, pd.DataFrame],
                                    tmp_path: Path) -> None:
    trace, _, df = sweep
    # 2 batching x (no compression + 2 window sizes): the window sizes of the 4 requested
    # no-compression points cannot matter, so 6 distinct configs are simulated.
    assert len(df) == 6 and (df[["lost", "duplicated", "reordered"]] == 0).all().all()
    assert sorted(df["requested_count"]) == [1, 1, 1, 1, 2, 2]
    rec = recommend(df, max_p99_ms=float(df["latency_p99_ms"].max()), trace=trace,
                    clients="custom")
    assert rec.feasible and rec.chosen is not None
    assert rec.chosen["ws_bytes_per_msg"] == df["ws_bytes_per_msg"].min()
    assert rec.baseline_sources == {"defaults": "table", "plain": "table"}
    # the defaults row of the table, found and compared honestly
    defaults = df[(df["batching.strategy"] == "none")
                  & (df["compression.algorithm"] == "permessage-deflate")
                  & (df["compression.server_max_window_bits"] == 12)].iloc[0]
    cmp = rec.comparison.set_index(["baseline", "metric"])
    want = (rec.chosen["ws_bytes_per_msg"] / defaults["ws_bytes_per_msg"] - 1) * 100
    assert cmp.loc[("defaults", "ws_bytes_per_msg"), "change_pct"] == pytest.approx(want)
    rec.config.save(tmp_path / "chosen.yaml")
    assert TuningConfig.load(tmp_path / "chosen.yaml") == rec.config
    assert rec.config.link.profile == "4g"


def test_missing_baselines_simulated_from_trace(sweep: tuple[Path, Path, pd.DataFrame]) -> None:
    trace, _, df = sweep
    batched = df[df["batching.strategy"] == "hybrid"]
    rec = recommend(batched, trace=trace, clients="custom")
    assert rec.baseline_sources == {"defaults": "simulated", "plain": "simulated"}
    base = df[(df["batching.strategy"] == "none")
              & (df["compression.algorithm"] == "none")].iloc[0]
    cmp = rec.comparison.set_index(["baseline", "metric"])
    # the simulator is deterministic in bytes: the simulated plain row equals the swept one
    assert cmp.loc[("plain", "ws_bytes_per_msg"), "base"] == pytest.approx(
        base["ws_bytes_per_msg"])
    with pytest.raises(WslabError, match="trace the sweep ran on"):
        recommend(batched, trace=read_trace(trace)[:100])


def _with_live(df: pd.DataFrame) -> pd.DataFrame:
    live = df.iloc[[0, 3]].assign(mode="live")
    live["ws_bytes_per_msg"] = live["ws_bytes_per_msg"] * 1.1
    return pd.concat([df, live], ignore_index=True)


def test_sim_vs_live_pairs_twins(sweep: tuple[Path, Path, pd.DataFrame]) -> None:
    tidy = sim_vs_live(_with_live(sweep[2]))
    assert set(tidy["point"]) == set(sweep[2]["point"].iloc[[0, 3]])
    bytes_rows = tidy[tidy["metric"] == "ws_bytes_per_msg"]
    assert bytes_rows["live_vs_sim_pct"].to_numpy() == pytest.approx([10.0, 10.0])
    assert sim_vs_live(sweep[2]).empty


def test_report_self_contained_and_complete(sweep: tuple[Path, Path, pd.DataFrame],
                                            tmp_path: Path) -> None:
    trace, _, df = sweep
    table = _with_live(df)
    rec = recommend(table, clients="custom")
    out = tmp_path / "report.html"
    path = write_report(table, out, recommendation=rec, analysis_df=analyse(read_trace(trace)),
                        title="mini <report>")
    assert path == out and out.exists()
    assert not list(tmp_path.glob("*.part"))
    text = out.read_text(encoding="utf-8")
    lowered = text.lower()
    assert "<script src" not in lowered
    # plotly.js itself carries map-tile and topojson URLs it never fetches for these charts;
    # what must not appear is any script or stylesheet loaded from a CDN.
    assert "cdn.plot.ly/plotly" not in lowered and "cdn.jsdelivr.net/npm/plotly" not in lowered
    tags = _parse(text).tags
    assert not [a for t, a in tags if t == "script" and a.get("src")]
    assert not [a for t, a in tags if t == "link" and (a.get("href") or "").startswith("http")]
    scripts = [t for t, _ in tags if t == "script"]
    assert len(scripts) >= 3  # plotly.js once, then one per figure
    assert lowered.count("plotly.js v") <= 2  # one embedded copy (its banner)
    assert 2_000_000 < len(text) < 8_000_000
    assert "mini &lt;report&gt;" in text
    assert rec.chosen is not None
    assert html.escape(describe_config(rec.chosen)) in text
    assert html.escape(str(rec.chosen["point"])) in text
    for heading in ("Pareto frontier", "Recommendation", "Simulated against live",
                    "Compression per message type"):
        assert f"<h2>{heading}</h2>" in text
    assert "chat.message" in text  # a per-type row from the analysis
    assert "server_max_window_bits" in text  # the chosen config as YAML
    # Exports: every target with whether wslab's tests run it; uWS and Centrifugo do not.
    exports = text.split("<h2>Exports</h2>", 1)[1]
    for target, proven in (("uvicorn", "yes"), ("python-socketio", "yes"),
                           ("uwebsockets", "no"), ("centrifugo", "no")):
        row = exports.split(f"<td>{target}</td>", 1)[1].split("</tr>", 1)[0]
        assert f"<td>{proven}</td>" in row, (target, row)
    assert "rendered only, not run by wslab's tests" in exports


def test_report_without_extras_and_atomic(sweep: tuple[Path, Path, pd.DataFrame],
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    df = sweep[2]
    out = tmp_path / "r.html"
    write_report(df, out)  # recommends on its own; no live rows, no analysis
    text = out.read_text(encoding="utf-8")
    assert "No live rows" in text and "run the report with --trace" in text
    before = out.read_bytes()

    def boom(self: object, *args: object, **kwargs: object) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr("wslab.tune.report._Page.render", boom)
    with pytest.raises(RuntimeError):
        write_report(df, out)
    assert out.read_bytes() == before and not list(tmp_path.glob("*.part"))


def test_report_infeasible_still_written(sweep: tuple[Path, Path, pd.DataFrame],
                                         tmp_path: Path) -> None:
    df = sweep[2]
    rec = recommend(df, max_p99_ms=0.001)
    assert isinstance(rec, Recommendation) and not rec.feasible
    write_report(df, tmp_path / "r.html", recommendation=rec)
    assert "Relax max_p99_ms" in (tmp_path / "r.html").read_text(encoding="utf-8")


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(report_cmd)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from flattening the app
        pass

    return app


def test_cli_report(sweep: tuple[Path, Path, pd.DataFrame], tmp_path: Path) -> None:
    trace, results, _ = sweep
    out = tmp_path / "cli.html"
    res = CliRunner().invoke(_app(), ["report", str(results), "-o", str(out),
                                      "--trace", str(trace), "--max-p99-ms", "1000"])
    assert res.exit_code == 0, res.output
    assert "opens offline" in res.output
    assert "chat.message" in out.read_text(encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("ws_bytes_per_msg\n1\n")
    with pytest.raises(WslabError, match="missing column"):
        report_cmd(bad, output=tmp_path / "never.html")
    assert not (tmp_path / "never.html").exists()
