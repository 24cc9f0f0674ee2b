"""Every notebook in JupyterLab, Run All, in headless Chromium: what an attendee sees.

One JupyterLab for the module, started as ``wslab lab`` starts it (its command, its
settings, wslab's server extension), on 127.0.0.1 over a copy of ``notebooks/``, in fast
mode (``WSLAB_FAST=1``) so the six notebooks take a couple of minutes. For each notebook,
in a fresh page: Run All, then

- no answer shows (every answer cell's text closed, its code's output only the closed
  check box), no Python traceback and no panel error in the outputs, no error in the
  browser's console, no request to anything but the server on 127.0.0.1;
- every figure is drawn and has data, and none is cropped: its plot area lies within the
  box that holds it and within its output, which does not scroll sideways;
- the page (from its opening) loads plotly.js at most once: no copy per figure, none in
  plotly's JupyterLab renderer;
- what Run All moved (HTTP and websocket bytes, both ways, measured by the browser) is at
  most a third of the plotly.js copies the stock ``FigureWidget`` ships (one per figure);
- the time from a panel's cell starting to its panel drawn (target 3 s, reported in
  ``out/test-artifacts/lab_run_all.json``; a hard bound fails only a hung page).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab.lab_page import (
    TIMING_JS,
    TRACEBACKS_JS,
    NetMeter,
    answer_report,
    cropped,
    figure_report,
    leaked,
    open_notebook,
    panel_timings,
    run_all,
    wait_figures_drawn,
)
from lab.lab_support import (
    ARTIFACTS,
    NOTEBOOKS,
    Server,
    lab_in_chromium,
)

NOTEBOOK_NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
FIRST_PANEL_TARGET_S = 3.0
FIRST_PANEL_BOUND_S = 30.0
"""Fails only a page that hangs; the target is reported, the machine may be busy."""
REPORT = ARTIFACTS / "lab_run_all.json"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory,
        jupyter_env: dict[str, str]) -> Iterator[tuple[Server, Path, Any]]:
    """(JupyterLab, the notebooks' folder, a Chromium) shared by the module's tests."""
    with lab_in_chromium(tmp_path_factory.mktemp("lab") / "notebooks", jupyter_env,
                         fast=True) as lab:
        yield lab


def _record(name: str, entry: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[name] = entry
    REPORT.write_text(json.dumps(report, indent=2, sort_keys=True))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_run_all_in_jupyterlab(lab: tuple[Server, Path, Any], name: str) -> None:
    from wslab.lab_assets import plotly_js_path

    server, work, browser = lab
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    meter = NetMeter.attach(page)
    try:
        open_notebook(page, server, name)
        page.evaluate(TIMING_JS)
        meter.mark()  # from here on: what Run All moves
        clicked = run_all(page)
        wait_figures_drawn(page)
        page.wait_for_timeout(500)
        moved = meter.total
        timings = panel_timings(page, clicked)
        panels = {i: t['panel_s'] for i, t in timings.items()}
        figures = figure_report(page)
        tracebacks = page.evaluate(TRACEBACKS_JS)
        answers = answer_report(page, work / name)
        page.screenshot(path=str(ARTIFACTS / f"lab-{Path(name).stem}.png"))
        for i in range(page.locator(".wslab-panel").count()):  # for a person to look at
            page.locator(".wslab-panel").nth(i).evaluate(
                "(e) => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(200)
            page.screenshot(path=str(ARTIFACTS / f"lab-{Path(name).stem}-panel{i}.png"))
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"lab-{Path(name).stem}-failed.png"))
        raise
    finally:
        page.close()

    stock_bytes = len(figures) * plotly_js_path().stat().st_size
    _record(name, {
        "run_all_bytes": moved, "http_bytes": meter.http_bytes, "ws_bytes": meter.ws_bytes,
        "figures": len(figures), "stock_plotly_bytes": stock_bytes,
        "first_panel_s": {str(k): round(v, 3) for k, v in panels.items()},
        "panel_cell_ran_s": {str(k): round(t["cell_s"], 3) for k, t in timings.items()},
        "first_panel_target_s": FIRST_PANEL_TARGET_S,
    })
    print(f"\n{name}: Run All moved {moved / 1e6:.2f} MB; first panel "
          + ", ".join(f"{v:.2f} s" for v in panels.values()))

    assert not tracebacks, f"{name}: errors in the outputs: {tracebacks}"
    assert not meter.console_errors, f"{name}: console errors: {meter.console_errors}"
    assert not meter.external(), f"{name}: requests off this machine: {meter.external()}"
    shown = [a for a in answers if leaked(a)]
    assert not shown, f"{name}: Run All shows answers: {shown}"
    for fig in figures:
        assert fig["points"] > 0, f"{name}: figure {fig['title']!r} has no data"
        assert fig["title"], f"{name}: a figure has no title"
        why = cropped(fig)
        assert not why, f"{name}: figure {fig['title']!r} is cropped: {why}"
    if figures:
        # stock FigureWidgets ship one plotly.js each; the lab moves at most a third of that
        assert moved <= stock_bytes / 3, (
            f"{name}: Run All moved {moved:,} B for {len(figures)} figures "
            f"(stock plotly.js copies: {stock_bytes:,} B)")
        assert panels, f"{name}: no panel was drawn"
    bundles = meter.plotly_bundles()
    assert len(bundles) == (1 if figures else len(bundles[:1])), f"{name}: plotly.js {bundles}"
    for cell, seconds in panels.items():
        assert seconds < FIRST_PANEL_BOUND_S, f"{name}: cell {cell} took {seconds:.1f} s"
