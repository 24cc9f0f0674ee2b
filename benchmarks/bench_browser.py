"""What Run All costs in the browser: bytes moved and time to the first panel, per notebook.

Two JupyterLabs run side by side, started as ``wslab lab`` starts them (loopback, the
lab's settings and server extension), each over its own copy of the notebooks: one with
the lab's figures, one with plotly's stock ``FigureWidget`` (``WSLAB_FIGURES=stock``: the
peer, which ships a copy of plotly.js in every figure's widget state). Headless Chromium
opens a notebook in a fresh page (empty cache: a first visit), clicks Run All and
measures through the DevTools protocol:

- **bytes moved by Run All**: every HTTP response (as received, compression included)
  and every websocket frame's payload, both ways, from the click until every cell has run
  and every figure is drawn;
- **first panel**: for each cell that shows a panel, the time from the cell's start (its
  previous cell's end) to its panel visible with every figure in it drawn; the figure is
  the first panel's.

Each measurement starts cold: the kernels are shut down and the notebook copied fresh
(no saved widget state, no outputs). The two sides take turns, notebook by notebook (lab,
stock, lab, stock, ...), after one unrecorded run of each; each figure is the median of
at least three turns, and the bytes ratio the median of the per-turn ratios. Targets
(issue 15): bytes at most 1/3 of the stock path for notebooks 02 and 04, first panel
under 3 s. ``--quick``: notebooks 02 and 04 in fast mode (``WSLAB_FAST=1``); the full run
takes all six as users get them.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import main, median, row, turn_ratio, turns

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab.lab_page import (  # noqa: E402 - the tests' helpers
    TIMING_JS,
    NetMeter,
    figure_report,
    first_panel_times,
    open_notebook,
    run_all,
    wait_figures_drawn,
)
from lab.lab_support import (  # noqa: E402 - the tests' helpers
    NOTEBOOKS,
    Server,
    copy_notebooks,
    jupyter_dirs,
    launch_chromium,
    server_env,
    shutdown_kernels,
    start_jupyterlab,
)

BYTES_TARGETS = {"02_frame_batching", "04_connection_scaling"}
FIRST_PANEL_TARGET_S = 3.0
QUICK = ("02_frame_batching", "04_connection_scaling")
PEER = "stock plotly FigureWidget (plotly.js in every figure)"


def _measure(browser: Any, server: Server, work: Path, stem: str) -> dict[str, Any]:
    """One cold Run All of ``stem`` on ``server``: bytes, first-panel seconds, figures."""
    shutdown_kernels(server)
    shutil.copy2(NOTEBOOKS / f"{stem}.ipynb", work / f"{stem}.ipynb")
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    try:
        meter = NetMeter.attach(page)
        open_notebook(page, server, f"{stem}.ipynb")
        page.evaluate(TIMING_JS)
        meter.mark()
        clicked = run_all(page, timeout_s=600)
        wait_figures_drawn(page)
        page.wait_for_timeout(300)
        panels = first_panel_times(page, clicked)
        figures = figure_report(page)
        return {"bytes": meter.total, "figures": len(figures),
                "first_panel_s": panels[min(panels)] if panels else float("nan")}
    finally:
        page.close()


def run(quick: bool) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    stems = QUICK if quick else tuple(sorted(
        p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wslab-bench-browser-") as tmp:
        root = Path(tmp)
        dirs = jupyter_dirs(root / "jupyter")
        lab_work = copy_notebooks(root / "lab" / "notebooks")
        stock_work = copy_notebooks(root / "stock" / "notebooks")
        with start_jupyterlab(lab_work, server_env(dirs, fast=quick)) as lab, \
                start_jupyterlab(stock_work, server_env(dirs, fast=quick, stock=True)) as stock, \
                sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                for stem in stems:
                    runs: dict[str, list[dict[str, Any]]] = {"lab": [], "stock": []}

                    def side(name: str, server: Server, work: Path, s: str = stem,
                             out: dict[str, list[dict[str, Any]]] = runs
                             ) -> Callable[[], float]:
                        def once() -> float:
                            result = _measure(browser, server, work, s)
                            out[name].append(result)
                            return float(result["bytes"])
                        return once

                    lab_bytes, stock_bytes = turns(
                        [side("lab", lab, lab_work), side("stock", stock, stock_work)])
                    recorded = {k: v[-len(lab_bytes):] for k, v in runs.items()}
                    rows += _rows(stem, lab_bytes, stock_bytes, recorded)
            finally:
                browser.close()
    return rows


def _rows(stem: str, lab_bytes: list[float], stock_bytes: list[float],
          runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    ratio = turn_ratio(lab_bytes, stock_bytes)
    bytes_target = stem in BYTES_TARGETS
    lab_panel = median(r["first_panel_s"] for r in runs["lab"])
    stock_panel = median(r["first_panel_s"] for r in runs["stock"])
    figures = runs["lab"][0]["figures"]
    return [
        row("browser", f"Run All bytes {stem}", median(lab_bytes) / 1e6, "MB", peer=PEER,
            peer_value=median(stock_bytes) / 1e6, ratio=ratio,
            target="<= 1/3 of stock" if bytes_target else "",
            ok=(ratio <= 1 / 3) if bytes_target else None, figures=figures,
            turns=len(lab_bytes)),
        row("browser", f"first panel {stem}", lab_panel, "s", peer=PEER,
            peer_value=stock_panel, target=f"< {FIRST_PANEL_TARGET_S:.0f} s",
            ok=lab_panel < FIRST_PANEL_TARGET_S if lab_panel == lab_panel else None,
            max_s=max(r["first_panel_s"] for r in runs["lab"]), turns=len(lab_bytes)),
    ]


if __name__ == "__main__":
    main(run)
