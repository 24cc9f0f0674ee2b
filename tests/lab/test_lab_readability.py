"""What the panels show reads right: units and steady digits, widths that do not overlap,
the policy comparisons, the heatmap before it is filled, and the recommend panel's
client population (what browsers cannot negotiate is crossed out, never "feasible").

Found by running every notebook in JupyterLab in Chromium and looking at the screenshots;
each test pins one thing that read wrong there.
"""

from __future__ import annotations

import math
import re

import ipywidgets as W
import pytest

from wslab.lab import BatchingPanel, CompressionPanel, ContentPanel, RecommendPanel, ScalingPanel
from wslab.lab.content import LABELLED_TYPES, LARGE_MESSAGE, by_bytes
from wslab.lab.controls import walk
from wslab.lab.data import load_trace
from wslab.lab.figures import HALF_WIDTH, fmt_ms, stat_table
from wslab.lab.recommend_jobs import FAST_GRID, LEFT_OUT, grid_points
from wslab.tune.clients import client_exclusions

FEASIBLE = 1  # trace index of "meets the constraints" in the frontier figure


@pytest.fixture(scope="module")
def chat():  # type: ignore[no-untyped-def]
    return load_trace("chat", messages=1500)


def text(html_value: str) -> str:
    """The visible text of an HTML widget value, cells separated by " | "."""
    return re.sub(r"\s*\|\s*(\|\s*)+", " | ", re.sub(r"<[^>]+>", " | ", html_value)).strip()


def test_fmt_ms_keeps_steady_digits() -> None:
    assert fmt_ms(45.0) == "45.0 ms"  # not "45 ms" beside "44.9 ms"
    assert fmt_ms(44.94) == "44.9 ms"
    assert fmt_ms(4.471) == "4.47 ms"
    assert fmt_ms(0.85) == "850 \u00b5s"
    assert fmt_ms(0.0) == "0 ms"
    assert fmt_ms(1011.2) == "1,011 ms"
    assert fmt_ms(math.nan) == "n/a"


def test_stat_table_takes_any_number_of_columns_and_nothing_for_no_rows() -> None:
    assert stat_table([]) == ""
    table = stat_table([("a", "1", "2", "3")], headers=("", "x", "y", "difference"))
    assert table.count("<th") == 4 and table.count("<td") == 4


def test_figures_side_by_side_follow_the_page_in_boxes_that_wrap(chat) -> None:  # type: ignore[no-untyped-def]
    # plotly fell back to 700 px for a FigureWidget in a box, so two of them overlapped;
    # fixed widths then cropped them in narrower outputs (issue 15, notebook 04).
    assert 2 * HALF_WIDTH <= 1100
    batching, compression = BatchingPanel(chat), CompressionPanel(chat)
    scaling, content = ScalingPanel(connections=100), ContentPanel(chat)
    pairs = [(batching, ("latency", "bytes")), (compression, ("latency", "bytes")),
             (scaling, ("memory", "limits", "ramp", "fanout")),
             (content, ("ratios", "features"))]
    for panel, names in pairs:
        boxes = {id(child.children[0]): child for w in walk(panel.widget)
                 if isinstance(w, W.HBox) for child in w.children
                 if isinstance(child, W.VBox) and len(child.children) == 1}
        for name in names:
            fig = panel.figures[name]
            assert fig.layout.width is None, (panel.title, name)  # follows its box
            box = boxes.get(id(fig))
            assert box is not None, (panel.title, name)
            assert box.layout.flex == f"1 1 {HALF_WIDTH}px", (panel.title, name)


def test_compression_panel_measures_decompression(chat) -> None:  # type: ignore[no-untyped-def]
    p = CompressionPanel(chat)
    assert p.result is not None and p.result.decompress_us > 0
    assert "0.0 \u00b5s" not in text(p.stats.value).split("decompress CPU per message")[1][:12]
    assert "latency p99" in p.stats.value and " ms" in p.stats.value


def test_compression_policy_table_says_what_each_policy_did(chat) -> None:  # type: ignore[no-untyped-def]
    p = CompressionPanel(chat)
    p.set(threshold_bytes=1024)  # no chat message is that large: nothing is compressed
    assert p.config.compression.policy == "threshold"
    shown = text(p.policy_stats.value)
    assert "policy threshold | policy always | difference" in shown
    assert f"{len(chat):,} of {len(chat):,} frames went uncompressed" in shown
    assert "under 1,024 bytes" in shown
    bytes_row = shown.split("WebSocket bytes per message | ")[1].split(" | ")
    assert bytes_row[2].startswith("+") and bytes_row[2].endswith("%)")
    p.set(adaptive=True)  # the threshold stays: adaptive's size floor
    shown = text(p.policy_stats.value)
    assert "policy adaptive" in shown and "(the threshold)" in shown
    p.set(threshold_bytes=0)
    assert "(the threshold)" not in text(p.policy_stats.value)


def test_heatmap_shows_its_grid_once_it_is_filled(
        chat, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WSLAB_FAST", "1")  # a 3 x 3 grid
    p = CompressionPanel(chat)
    heat = p.figures["heatmap"]
    assert heat.layout.xaxis.visible is False  # no meaningless axes before Compute
    assert any("Compute heatmap" in a.text for a in heat.layout.annotations)
    p.run_heatmap()
    assert not heat.layout.annotations
    assert list(heat.layout.xaxis.tickvals) == list(p.wbits_axis)
    assert list(heat.layout.yaxis.tickvals) == list(p.mem_axis)
    low, high = heat.layout.xaxis.range
    assert low < p.wbits_axis[0] and high > p.wbits_axis[-1]  # outer cells shown whole
    step = (p.wbits_axis[1] - p.wbits_axis[0]) / 2
    assert (low, high) == (p.wbits_axis[0] - step, p.wbits_axis[-1] + step)


def test_content_panel_orders_by_bytes_and_names_only_the_big_types() -> None:
    p = ContentPanel(load_trace("mixed", messages=2000))
    assert p.result is not None
    df = by_bytes(p.result.per_type)
    labels = [f"{t} ({d})" for t, d in zip(df["type"], df["dir"], strict=True)]
    assert list(p.figures["ratios"].data[0].x) == labels
    assert list(df["bytes"]) == sorted(df["bytes"], reverse=True)
    named = [t for t in p.figures["features"].data[0].text if t]
    large = int((df["mean_size"] >= LARGE_MESSAGE).sum())
    assert 0 < len(named) <= LABELLED_TYPES + large < len(df)
    assert df["type"][0] in named
    # The legend sits above the plot, clear of the rotated type names.
    assert p.figures["ratios"].layout.legend.yanchor == "bottom"
    advice = text(p.advice.value)
    assert "%" in advice and ".000" not in advice.split("why")[1].split("compress")[0]


@pytest.fixture(scope="module")
def recommend(tmp_path_factory: pytest.TempPathFactory) -> RecommendPanel:
    adaptive = {"batching.strategy": "hybrid", "batching.interval_ms": 50,
                "compression.algorithm": "permessage-deflate",
                "compression.server_max_window_bits": 12, "compression.policy": "adaptive"}
    p = RecommendPanel(load_trace("chat", messages=600), workers=1,
                       points=[*grid_points(FAST_GRID), adaptive],
                       workdir=tmp_path_factory.mktemp("readability"))
    p.sweep()
    return p


def points(p: RecommendPanel, i: int) -> set[tuple[float, float]]:
    fig = p.figures["frontier"]
    return set(zip(map(float, fig.data[i].x), map(float, fig.data[i].y), strict=True))


def test_frontier_crosses_out_what_the_clients_cannot_negotiate(
        recommend: RecommendPanel) -> None:
    p = recommend
    p.set(clients="browser", max_kib_per_conn=math.inf, max_p99_ms=math.inf,
          max_cpu_us_per_msg=math.inf)
    assert p.table is not None
    sim = p.table[p.table["mode"].astype(str) == "sim"]
    gone = sim[client_exclusions(sim, "browser") != ""]
    assert len(gone) > 0  # the zstd points and the library defaults' 12-bit client window
    out = points(p, LEFT_OUT)
    assert out == set(zip(gone["ws_bytes_per_msg"].astype(float),
                          gone["latency_p99_ms"].astype(float), strict=True))
    assert not out & points(p, FEASIBLE)  # with no limits every other point is feasible
    assert p.figures["frontier"].data[LEFT_OUT].name == "left out for browser clients"
    p.set(clients="custom")
    assert points(p, LEFT_OUT) == set()
    assert out <= points(p, FEASIBLE)
    labels = dict((v, k) for k, v in p.controls["clients"].options)
    assert "zstd" in labels["browser"] and "zstd" in labels["custom"]
    p.set(clients="browser", max_kib_per_conn=64.0, max_p99_ms=250.0, max_cpu_us_per_msg=50.0)


def test_recommend_hides_the_numbers_table_when_nothing_is_feasible(
        recommend: RecommendPanel) -> None:
    p = recommend
    p.set(max_p99_ms=10.0)
    assert p.result is not None and p.result.rec is not None and not p.result.rec.feasible
    assert p.stats.value == ""  # no header row over nothing
    assert "Nothing meets these constraints" in p.explanation.value
    p.set(max_p99_ms=250.0)
    assert "library defaults" in p.stats.value


def test_recommend_policy_table_names_each_policy_and_marks_the_chosen(
        recommend: RecommendPanel) -> None:
    p = recommend
    p.set(clients="browser", max_kib_per_conn=64.0, max_p99_ms=250.0,
          max_cpu_us_per_msg=50.0, objective="ws_bytes_per_msg")
    rec = p.result.rec  # type: ignore[union-attr]
    assert rec is not None and rec.chosen is not None and not rec.policy.empty
    shown = text(p.policy.value)
    assert "policy adaptive" in shown and "policy always" in shown
    assert shown.count("(chosen)") == 1
    chosen = str(rec.chosen["compression.policy"])
    assert f"policy {chosen} (chosen)" in shown
    assert "frames sent uncompressed" in shown and " of " in shown
    assert "this policy" not in shown  # the old header named no policy

