"""The Voila app (``wslab lab --app --notebook NN``) in headless Chromium, as on a projector.

For notebooks 02 and 03, the app is started as ``wslab lab --app`` starts it (on a free
127.0.0.1 port, fast mode) and opened at ``/``. Then:

- it opens on the chosen notebook, shows its narrative and panels and no code and no
  answer (none of the answer cells' text, no answer check box);
- every figure the page shows has data (points and bars counted in the page's plotly
  figures, not just an SVG), its title, the lab's template (``plotly_white``: before the
  fix the figures fell back to plotly's default), stacked bars where the panel stacks them,
  and is not cropped;
- the page loads one plotly.js (plotly's renderer extension, which holds a second one,
  is left out);
- the figures follow the page: in a 760 px window none is cropped and each takes a new
  width, and back at 1400 px each has its width again;
- the page asks nothing of the network (every request goes to its own 127.0.0.1 server),
  and the browser's console shows no error.

The figures of a panel in a VBox came out empty in the app before: plotly's FigureWidget
only sent changes as one-off messages, and Voila's page connects after the kernel ran
the notebook (see :mod:`wslab.lab.figures`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab.lab_page import NetMeter, answer_cells, cropped, figure_report, wait_figures_drawn
from lab.lab_support import (
    ARTIFACTS,
    copy_notebooks,
    launch_chromium,
    need_chromium,
    server_env,
    start_voila,
)

APPS = ("02_frame_batching", "03_compression_negotiation")
STACKED = {"02_frame_batching": "Bytes on the wire per message"}
"""A figure per notebook whose bars are stacked (they came out grouped before the fix)."""

PAGE_JS = """
() => ({
  heading: (document.querySelector('#rendered_cells h1') || {}).innerText || '',
  text: document.querySelector('#rendered_cells').innerText,
  panels: document.querySelectorAll('.wslab-panel').length,
  code: Array.from(document.querySelectorAll('.jp-InputArea-editor, .cm-editor'))
      .filter((e) => e.getBoundingClientRect().height > 0).length,
  answerBoxes: document.querySelectorAll('.wslab-answer').length,
  backgrounds: Array.from(document.querySelectorAll('.js-plotly-plot'))
      .map((g) => (g._fullLayout || {}).plot_bgcolor || ''),
})
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


NARROW, WIDE = 760, 1400
"""Viewport widths (px) of the resize check: a laptop window half the screen, a projector."""


def _widths(page: Any) -> list[float]:
    return [f["plot"]["width"] if f["plot"] else 0.0
            for f in figure_report(page) if f["box"]["width"] > 0]


def _settled(page: Any, before: list[float]) -> list[float]:
    """Figure widths once they stop changing (each redraw after a resize takes a frame)."""
    last, now = before, _widths(page)
    for _ in range(50):
        page.wait_for_timeout(200)
        last, now = now, _widths(page)
        if now == last and now != before:
            break
    return now


def _resize(page: Any, figures: list[dict[str, Any]], stem: str) -> dict[str, Any]:
    """Narrow the page, then widen it back: the figures follow (see the test)."""
    wide = [f["plot"]["width"] for f in figures]
    page.set_viewport_size({"width": NARROW, "height": 1000})
    narrow = _settled(page, wide)
    narrow_figures = [f for f in figure_report(page) if f["box"]["width"] > 0]
    page.locator(".wslab-panel .js-plotly-plot").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"app-{stem}-narrow.png"))
    page.set_viewport_size({"width": WIDE, "height": 1000})
    back = _settled(page, narrow)
    return {"wide": wide, "narrow": narrow, "back": back,
            "cropped": [cropped(f) for f in narrow_figures if cropped(f)]}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("stem", APPS)
def test_voila_app(browser: Any, stem: str, tmp_path: Path,
                   jupyter_env: dict[str, str]) -> None:
    work = copy_notebooks(tmp_path / "notebooks")
    notebook = work / f"{stem}.ipynb"
    with start_voila(notebook, server_env(jupyter_env, fast=True)) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        meter = NetMeter.attach(page)
        try:
            page.goto(f"{server.base}/", timeout=120_000)
            page.wait_for_function(
                "() => document.querySelectorAll('.wslab-panel .js-plotly-plot').length > 0",
                timeout=120_000, polling=100)
            wait_figures_drawn(page)
            page.wait_for_timeout(1000)  # the kernel's last messages land
            seen = page.evaluate(PAGE_JS)
            figures = [f for f in figure_report(page) if f["box"]["width"] > 0]
            page.locator(".wslab-panel").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / f"app-{stem}.png"))
            resized = _resize(page, figures, stem)
        except Exception:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"app-{stem}-failed.png"))
            raise
        finally:
            page.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"app-{stem}.json").write_text(json.dumps(
        {"figures": figures, "requests": len(meter.requests),
         "bytes": meter.total}, indent=2))

    assert seen["heading"].startswith(stem[:2]), f"the app opened on {seen['heading']!r}"
    assert seen["panels"] >= 1
    assert seen["code"] == 0, "the app shows code"
    assert seen["answerBoxes"] == 0, "the app shows an answer check"
    for _index, _kind, probe in answer_cells(notebook):
        assert not probe or probe not in seen["text"].replace("`", ""), (
            f"the app shows an answer: {probe!r}")
    assert not meter.external(), f"requests off this machine: {meter.external()}"
    assert not meter.console_errors, f"console errors: {meter.console_errors}"

    assert figures, "no figure in the app"
    for fig in figures:
        assert fig["title"], "a figure lost its title"
        assert fig["points"] > 0, f"figure {fig['title']!r} has no data: {fig['traces']}"
        why = cropped(fig)
        assert not why, f"figure {fig['title']!r} is cropped: {why}"
    assert all(bg in ("white", "#fff", "#ffffff", "rgb(255, 255, 255)")
               for bg in seen["backgrounds"]), (
        f"figures lost the plotly_white template: {seen['backgrounds']}")
    if stem in STACKED:
        fig = next(f for f in figures if STACKED[stem] in f["title"])
        assert fig["barmode"] == "stack", f"{fig['title']!r} bars are {fig['barmode']}"
    assert len(meter.plotly_bundles()) == 1, f"plotly.js: {meter.plotly_bundles()}"
    # figures follow the page: narrowed, every one still fits its box and they take new
    # widths (figures side by side wrap one under the other and may grow); widened again,
    # each is back to its width. A fixed width keeps its width throughout.
    assert not resized["cropped"], f"cropped in a {NARROW} px page: {resized['cropped']}"
    assert all(abs(n - w) > 10 for n, w in zip(resized["narrow"], resized["wide"],
                                               strict=True)), resized
    assert all(abs(b - w) <= 2 for b, w in zip(resized["back"], resized["wide"], strict=True)), (
        resized)
