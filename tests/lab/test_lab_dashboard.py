"""What every panel has as a dashboard: labels that fit, tooltips, controls that apply,
a computing state, a pinned baseline, reset, the config as YAML, and numbers on bars that
are never clipped.

Each test pins something issue 15 found in a browser (descriptions cut to
"permessage-defla", the interval slider live under ``priority``, the heatmap's empty axes,
the frontier's zig-zag line...). The checks run over every panel's widget tree, so a new
control that breaks a rule fails here first.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pytest
from typer.testing import CliRunner

from wslab.config import TuningConfig
from wslab.lab import BatchingPanel, CompressionPanel, ContentPanel, RecommendPanel, ScalingPanel
from wslab.lab.base import Panel
from wslab.lab.content import ENTROPY_RANGE, PLOT_PX, REPETITION_RANGE, label_box
from wslab.lab.controls import (
    When,
    control_px,
    is_control,
    layout_problems,
    text_px,
    walk,
)
from wslab.lab.data import load_trace
from wslab.lab.recommend import NEEDS
from wslab.lab.recommend_jobs import FAST_GRID, PINNED_CHOICE, STAIRS, grid_points
from wslab.lab.scaling_figures import draw_live, draw_storm
from wslab.lab.toolbar import BUSY

FRONTIER = 2  # trace index of the Pareto frontier's points


@pytest.fixture(scope="module")
def chat():  # type: ignore[no-untyped-def]
    return load_trace("chat", messages=600)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> RecommendPanel:
    p = RecommendPanel(load_trace("chat", messages=600), workers=1,
                       points=grid_points(FAST_GRID),
                       workdir=tmp_path_factory.mktemp("dashboard"))
    p.sweep()
    return p


@pytest.fixture(scope="module")
def panels(chat, swept: RecommendPanel) -> dict[str, Panel[Any]]:  # type: ignore[no-untyped-def]
    return {"content": ContentPanel(chat), "batching": BatchingPanel(chat),
            "compression": CompressionPanel(chat), "scaling": ScalingPanel(connections=100),
            "recommend": swept}


def controls_in(panel: Panel[Any]) -> list[Any]:
    """Every control (value widget or button) in the panel's widget tree."""
    return [w for w in walk(panel.widget) if is_control(w)]


# -- labels that fit -----------------------------------------------------------------------

def test_the_model_of_the_font_flags_the_labels_issue_15_found_cut() -> None:
    # The widgets as they were: each of these was cut in Chromium.
    style = {"description_width": "150px"}
    old_column = 0.95 * 300  # 95 % of a 300 px grid column
    algorithm = W.Dropdown(options=["none", "permessage-deflate"], description="algorithm",
                           style=style)
    adaptive = W.Checkbox(description="adaptive (skip what will not shrink)", style=style)
    limit = W.SelectionSlider(options=[10, 100], description="max_connections per worker",
                              style={"description_width": "190px"})
    heatmap = W.Button(description="Compute heatmap", icon="th",
                       layout=W.Layout(width="200px"))
    for widget in (algorithm, adaptive, limit, heatmap):
        assert layout_problems(widget, width=old_column), widget.description
    assert text_px("permessage-deflate") > text_px("permessage-defla")


@pytest.mark.parametrize("name", ["content", "batching", "compression", "scaling",
                                  "recommend"])
def test_no_label_of_any_control_is_cut(panels: dict[str, Panel[Any]], name: str) -> None:
    panel = panels[name]
    problems = [p for w in controls_in(panel) for p in layout_problems(w)]
    assert not problems, problems
    bound = list(panel.controls.values())
    for w in bound:  # the grid gives every bound control a cell of at least CONTROL_PX
        assert w.layout.width == "98%", w.description
    assert control_px() >= 340


def test_buttons_size_to_their_labels(panels: dict[str, Panel[Any]]) -> None:
    for panel in panels.values():
        for w in controls_in(panel):
            if isinstance(w, W.Button) and w.description:
                assert w.layout.width == "auto", (panel.title, w.description)


# -- tooltips ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["content", "batching", "compression", "scaling",
                                  "recommend"])
def test_every_control_says_what_it_does(panels: dict[str, Panel[Any]], name: str) -> None:
    panel = panels[name]
    missing = [f"{type(w).__name__} {w.description!r}" for w in controls_in(panel)
               if not (w.tooltip or "").strip()]
    assert not missing, missing
    assert panel.download.tooltip


def test_tooltips_give_units_and_when_a_control_applies(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat)
    assert "ms" in p.controls["interval_ms"].tooltip
    assert "only with strategy time or hybrid" in p.controls["interval_ms"].tooltip
    c = CompressionPanel(chat)
    assert "2^N bytes" in c.controls["window_bits"].tooltip
    assert "only with algorithm permessage-deflate" in c.controls["mem_level"].tooltip


# -- controls that do not apply are disabled -----------------------------------------------

def _field_control(panel: Panel[Any], field: str) -> str:
    return next(name for name, b in panel.bindings.items() if field in b.fields)


def _options(widget: Any) -> list[Any]:
    return [o[1] if isinstance(o, tuple) else o for o in widget.options]


@pytest.mark.parametrize("make", [
    lambda t: BatchingPanel(t), lambda t: CompressionPanel(t),
    lambda t: ScalingPanel(connections=100)], ids=["batching", "compression", "scaling"])
def test_every_row_of_the_applies_table_is_enforced(chat, make) -> None:  # type: ignore[no-untyped-def]
    panel = make(chat[:300])
    assert panel.applies
    fields = {rule.field for rule in panel.applies.values()}
    for field in fields:
        driver = _field_control(panel, field)
        start = panel.controls[driver].value
        for value in _options(panel.controls[driver]):
            panel.set(**{driver: value})
            for name, rule in panel.applies.items():
                if rule.field == field:
                    assert panel.controls[name].disabled == (value not in rule.values), (
                        name, field, value)
        panel.set(**{driver: start})


def test_the_controls_issue_15_found_live_are_disabled(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat[:300])
    p.set(strategy="priority")
    assert p.controls["interval_ms"].disabled and not p.controls["normal"].disabled
    p.set(strategy="time")
    assert not p.controls["interval_ms"].disabled and p.controls["normal"].disabled
    c = CompressionPanel(chat[:300])
    c.set(algorithm="zstd-stream")
    assert c.controls["window_bits"].disabled and c.controls["mem_level"].disabled
    assert not c.controls["zstd_level"].disabled
    c.set(algorithm="permessage-deflate")
    assert not c.controls["window_bits"].disabled and c.controls["zstd_level"].disabled
    s = ScalingPanel(connections=100)
    s.set(compression="off")
    assert s.controls["window_bits"].disabled and s.controls["mem_level"].disabled


def test_when_reads_like_a_sentence() -> None:
    rule = When("batching.strategy", ("time", "hybrid", "size"), "strategy")
    assert rule.text() == "only with strategy time, hybrid or size"
    assert rule.holds(lambda _f: "size") and not rule.holds(lambda _f: "none")


def test_recommend_buttons_wait_for_a_sweep(swept: RecommendPanel) -> None:
    fresh = RecommendPanel(load_trace("chat", messages=200), workers=1, points=[{}],
                           workdir=swept.workdir / "fresh")
    for name in NEEDS:
        assert fresh.buttons[name].disabled, name
    assert not fresh.buttons["Run sweep"].disabled
    assert fresh.pin_button.disabled  # nothing chosen to pin
    for name in NEEDS:
        assert not swept.buttons[name].disabled, name


# -- computing state -----------------------------------------------------------------------

def test_a_slider_move_shows_computing_until_the_redraw(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat[:300])
    seen: list[str] = []

    async def move() -> None:
        p.controls["interval_ms"].value = 40.0  # as from the browser
        seen.append(p.busy_note.value)
        await p.debouncer.wait()
        seen.append(p.busy_note.value)

    asyncio.run(move())
    assert seen == [BUSY, ""]
    assert "computing" in BUSY


def test_a_panel_says_it_is_building_while_it_builds(
        chat, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import IPython
    import IPython.display

    shown: list[Any] = []

    class Handle:
        def update(self, obj: Any, **_kw: Any) -> None:
            shown.append(("update", obj))

    def display(obj: Any, **kw: Any) -> Handle:
        shown.append(("display", obj))
        return Handle()

    class Shell:
        kernel = object()

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    monkeypatch.setattr(IPython.display, "display", display)
    BatchingPanel(chat[:200])
    assert shown[0][0] == "display" and "building" in shown[0][1]["text/html"]
    assert shown[-1] == ("update", {"text/html": "", "text/plain": ""})


def test_a_running_job_shows_computing(chat) -> None:  # type: ignore[no-untyped-def]
    p = CompressionPanel(chat[:200])
    notes: list[str] = []

    async def job(progress: Any) -> None:
        notes.append(p.busy_note.value)

    async def go() -> None:
        await p.start_task(job)

    asyncio.run(go())
    assert notes == [BUSY] and p.busy_note.value == ""


# -- pinned baseline -----------------------------------------------------------------------

def test_batching_pin_draws_the_baseline_beside_the_current_run(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat)
    assert p.unpin_button.disabled and not p.pin_button.disabled
    pinned_frames = p.result.cost.frames  # type: ignore[union-attr]
    p.pin()
    p.set(interval_ms=120)
    lat = p.figures["latency"]
    pinned = [t for t in lat.data if t.name.startswith("pinned")]
    assert pinned and any(len(t.x) for t in pinned)
    assert all(t.line.dash == "dot" for t in pinned)
    assert list(p.figures["bytes"].data[0].x) == ["unbatched", "pinned", "this config"]
    assert "pinned" in p.stats.value
    assert p.pinned is not None and p.pinned.cost.frames == pinned_frames
    assert p.result.cost.frames < pinned_frames  # type: ignore[union-attr]
    p.unpin()
    assert not any(len(t.x) for t in pinned) and "pinned" not in p.stats.value
    assert list(p.figures["bytes"].data[0].x) == ["unbatched", "this config"]


def test_every_panel_pins_and_unpins(panels: dict[str, Panel[Any]]) -> None:
    for name, panel in panels.items():
        panel.pin()
        assert panel.pinned is not None, name
        assert not panel.unpin_button.disabled
        panel.unpin()
        assert panel.pinned is None and panel.unpin_button.disabled
    c = panels["compression"]
    c.pin()
    assert len(c.figures["latency"].data[2].x) > 0 and "pinned" in c.stats.value
    c.unpin()
    s = panels["scaling"]
    s.pin()
    s.set(connections=1_000)
    assert "pinned" in s.estimate_stats.value
    assert len(s.figures["limits"].data[1].x) > 0
    assert any(v is not None for v in s.figures["memory"].data[3].y)
    s.unpin()
    s.set(connections=100)
    content = panels["content"]
    content.pin()
    content.set(window_bits=9)
    tick = content.figures["ratios"].data[-1]
    assert len(tick.x) == len(content.figures["ratios"].data[0].x)
    assert not np.allclose(np.asarray(tick.y, dtype=float),
                           np.asarray(content.figures["ratios"].data[0].y, dtype=float),
                           equal_nan=True)
    content.unpin()
    content.set(window_bits=12)


def test_recommend_pins_the_chosen_config(swept: RecommendPanel) -> None:
    p = swept
    p.set(max_kib_per_conn=math.inf)
    p.pin()
    star = p.figures["frontier"].data[PINNED_CHOICE]
    assert len(star.x) == 1
    p.set(max_kib_per_conn=64.0)
    assert "pinned" in p.stats.value
    p.unpin()
    assert len(star.x) == 0


# -- reset ---------------------------------------------------------------------------------

def test_reset_puts_every_control_back(chat) -> None:  # type: ignore[no-untyped-def]
    p = CompressionPanel(chat[:400])
    start_config, start_values = p.config, {k: w.value for k, w in p.controls.items()}
    start_ratio = p.result.ratio  # type: ignore[union-attr]
    p.set(algorithm="zstd-stream", threshold_bytes=256, adaptive=True, profile="lan")
    p.reset()
    assert p.config == start_config
    assert {k: w.value for k, w in p.controls.items()} == start_values
    assert p.result.ratio == start_ratio  # type: ignore[union-attr]
    assert not p.controls["window_bits"].disabled  # deflate again
    s = ScalingPanel(connections=100)
    s.set(compression="off", connections=1_000, workers=3)
    s.reset()
    assert s.params["connections"] == 100 and s.config.scaling.workers == 1
    assert s.params["compression"] == "configured" and not s.controls["mem_level"].disabled


# -- the config as YAML --------------------------------------------------------------------

def _downloaded(panel: Panel[Any], tmp_path: Path) -> Path:
    found = re.search(r"download='([^']+)' href='data:text/yaml;charset=utf-8;base64,"
                      r"([A-Za-z0-9+/=]+)'", panel.download.value)
    assert found, panel.download.value
    path = tmp_path / found.group(1)
    path.write_bytes(base64.b64decode(found.group(2)))
    return path


def test_every_panel_offers_its_config_as_yaml_the_cli_accepts(
        panels: dict[str, Panel[Any]], tmp_path: Path) -> None:
    from wslab.cli import app

    runner = CliRunner()
    for name, panel in panels.items():
        path = _downloaded(panel, tmp_path)
        assert path.suffix == ".yaml"
        assert TuningConfig.load(path) == panel.current_config(), name
        result = runner.invoke(app, ["config", "check", str(path)])
        assert result.exit_code == 0, result.output
    b = panels["batching"]
    b.set(interval_ms=77)
    assert TuningConfig.load(_downloaded(b, tmp_path)).batching.interval_ms == 77
    b.set(interval_ms=16)
    rec = panels["recommend"]
    assert rec.current_config() == rec.chosen_config  # what it recommends, not its base


# -- the heatmap ---------------------------------------------------------------------------

def test_heatmap_explains_itself_before_compute_and_marks_the_setting(
        chat, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WSLAB_FAST", "1")  # a 3 x 3 grid: 9, 12, 15 x 1, 5, 9
    p = CompressionPanel(chat[:400])
    heat = p.figures["heatmap"]
    assert heat.layout.xaxis.visible is False and heat.layout.yaxis.visible is False
    assert heat.data[0].showscale is False
    note = " ".join(a.text for a in heat.layout.annotations)
    assert "Compute heatmap" in note and "9 cells" in note
    assert len(heat.data[1].x) == 0  # nothing outlined on an empty grid
    p.run_heatmap()
    assert not heat.layout.annotations
    assert heat.layout.xaxis.visible and list(heat.layout.xaxis.tickvals) == [9, 12, 15]
    assert heat.data[0].showscale
    assert (list(heat.data[1].x), list(heat.data[1].y)) == ([12], [5])
    p.pin()
    p.set(window_bits=15, mem_level=9)
    assert (list(heat.data[1].x), list(heat.data[1].y)) == ([15], [9])
    assert (list(heat.data[2].x), list(heat.data[2].y)) == ([12], [5])  # the pinned cell
    p.set(algorithm="zstd-stream")
    assert len(heat.data[1].x) == 0  # zstd has no cell in a deflate grid


def test_heatmap_progress_sits_beside_its_button(chat) -> None:  # type: ignore[no-untyped-def]
    p = CompressionPanel(chat[:200])
    rows = [w for w in walk(p.widget) if isinstance(w, W.HBox)
            and p.heatmap_button in w.children]
    assert rows and p.progress in rows[0].children and p.cancel_button in rows[0].children
    assert sum(1 for w in walk(p.widget) if w is p.progress) == 1


# -- the frontier --------------------------------------------------------------------------

def test_frontier_is_markers_and_a_staircase_not_a_zigzag(swept: RecommendPanel) -> None:
    p = swept
    p.set(max_kib_per_conn=math.inf, max_p99_ms=math.inf, max_cpu_us_per_msg=math.inf)
    fig = p.figures["frontier"]
    assert "lines" not in fig.data[FRONTIER].mode
    stairs = fig.data[STAIRS]
    xs, ys = list(stairs.x), list(stairs.y)
    assert len(xs) >= 2 and stairs.line.shape == "hv"
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)
    front = set(zip(fig.data[FRONTIER].x, fig.data[FRONTIER].y, strict=True))
    assert set(zip(xs, ys, strict=True)) <= front
    for x, y in front:  # every frontier point is on or above the staircase
        below = [sy for sx, sy in zip(xs, ys, strict=True) if sx <= x]
        assert below and y >= min(below)
    p.set(max_kib_per_conn=64.0, max_p99_ms=250.0, max_cpu_us_per_msg=50.0)


# -- numbers on bars -----------------------------------------------------------------------

def _labelled_bars(fig: Any) -> list[Any]:
    return [t for t in fig.data if t.type == "bar" and t.text is not None
            and any(str(x) for x in t.text)]


def test_numbers_on_bars_and_names_on_points_are_never_clipped(
        panels: dict[str, Panel[Any]]) -> None:
    s = panels["scaling"]
    draw_live(s.figures["ramp"], s.figures["fanout"], {
        "ramp_per_second": [60, 40], "time_to_n_s": 1.6, "workers": 1, "broker": "memory",
        "broadcast_receipts": 500,
        "broadcast_latency_ms": {"p50": 1.0, "p90": 2.0, "p95": 3.0, "p99": 9.5, "max": 12.0}})
    draw_storm(s.figures["storm"], {"clients": 300, "held": 100, "refused_1013": 200,
                                    "handshake_failed": 0, "admission": {"queued": 100},
                                    "max_connections": 100, "pending_queue": 100})
    s.set(connections=200_000)  # some limits far past 100 %
    checked = 0
    for panel in panels.values():
        for name, fig in panel.figures.items():
            for bar in _labelled_bars(fig):
                checked += 1
                assert bar.cliponaxis is False, (panel.title, name)
                values = [v for v in (bar.x if bar.orientation == "h" else bar.y)
                          if v is not None]
                axis = fig.layout.xaxis if bar.orientation == "h" else fig.layout.yaxis
                assert axis.range is not None, (panel.title, name)
                assert axis.range[1] >= 1.1 * max(values), (panel.title, name)
            for pts in fig.data:
                if pts.type == "scatter" and pts.text is not None and any(pts.text):
                    assert pts.cliponaxis is False, (panel.title, name)
    assert checked >= 5
    s.set(connections=100)



def test_scatter_names_do_not_overlap() -> None:
    # 01 on the mixed trace: market.depth, market.ticker, market.trade and chat.message sit
    # within a few pixels of each other, and all named "top center" they overlapped.
    p = ContentPanel(load_trace("mixed", messages=2000))
    pts = p.figures["features"].data[0]
    (x0, x1), (y0, y1) = ENTROPY_RANGE, REPETITION_RANGE
    sx, sy = PLOT_PX[0] / (x1 - x0), PLOT_PX[1] / (y1 - y0)
    boxes = [label_box((x - x0) * sx, (y - y0) * sy, size / 2, name, where)
             for x, y, size, name, where in zip(pts.x, pts.y, pts.marker.size, pts.text,
                                                pts.textposition, strict=True) if name]
    assert len(boxes) >= 3
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    assert len(set(pts.textposition)) > 1  # not every name on top of its marker
