"""Slider-to-redraw latency of the lab panels, in the kernel, beside a bare simulation.

For each bundled trace and each replay window (the panels' default 10,000 messages, the
whole 20,000-message trace, and 5,000), a slider event is sent the way ipywidgets delivers
it (a value change on the control, inside a running asyncio loop) and the time is taken
from that event to the end of the figure update: the debounce delay, the simulation in the
worker thread and the in-place ``FigureWidget`` update. The peer is one bare ``simulate``
call of the same config on the same messages, right after each slider event (after one
untimed call first): the two take turns, one per slider value (five), and each figure is
the median of its turns. Target (issue 7): under 300 ms.

The browser adds the comm round trip and plotly's redraw on top; the browser test
(``tests/lab/test_lab_browser.py``) measures that end to end and writes
``out/test-artifacts/lab_slider_latency.json``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from common import main, row

from wslab.lab import BatchingPanel, CompressionPanel
from wslab.lab.base import Panel
from wslab.lab.data import INTERACTIVE_MESSAGES, load_trace
from wslab.sim import simulate

TRACES = ("chat", "game", "market", "telemetry", "sensor", "mixed")
TARGET_S = 0.3
# (panel, control, values the "user" moves it through)
MOVES: dict[str, tuple[type[Panel[Any]], str, tuple[Any, ...]]] = {
    "batching": (BatchingPanel, "interval_ms", (5.0, 40.0, 100.0, 10.0, 60.0)),
    "compression": (CompressionPanel, "mem_level", (3, 8, 1, 6, 4)),
}


def _bare_s(panel: Panel[Any]) -> float:
    """Seconds of one bare ``simulate`` of the panel's current config on its messages."""
    t0 = time.perf_counter()
    simulate(panel.trace, panel.config, verify=False)
    return time.perf_counter() - t0


async def _slider_latency(panel: Panel[Any], control: str,
                          values: tuple[Any, ...]) -> tuple[list[float], list[float]]:
    """Slider-to-redraw seconds per value and, in turns with them, bare simulate seconds."""
    await panel.debouncer.wait()  # the first render
    _bare_s(panel)  # untimed: the peer's first call
    took, bare = [], []
    for v in values:
        panel.controls[control].value = v  # as a slider event from the browser
        await panel.debouncer.wait()
        took.append(panel.debouncer.timings[-1].total_s)
        bare.append(_bare_s(panel))  # the same config, back to back
    return took, bare


def run(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    windows = (INTERACTIVE_MESSAGES,) if quick else (INTERACTIVE_MESSAGES, 10_000, 20_000)
    for name in TRACES[:2] if quick else TRACES:
        trace = load_trace(name, messages=None)
        for window in windows:
            for panel_name, (cls, control, values) in MOVES.items():
                panel = cls(trace, messages=window)

                async def measure(p: Panel[Any] = panel, c: str = control,
                                  vs: tuple[Any, ...] = values
                                  ) -> tuple[list[float], list[float]]:
                    return await _slider_latency(p, c, vs)

                took, bare = asyncio.run(measure())
                median = statistics.median(took)
                # The target holds for what a panel replays by default; larger windows
                # are shown for context (a user may ask for them with messages=).
                default = window == INTERACTIVE_MESSAGES
                rows.append(row(
                    f"lab.{panel_name}", f"slider->redraw {name} {window // 1000}k msgs"
                    + ("" if default else " (larger than the default window)"),
                    median, "s", peer="bare simulate()", peer_value=statistics.median(bare),
                    target=f"< {TARGET_S} s" if default else "",
                    ok=(median < TARGET_S) if default else None,
                    max_s=max(took), messages=len(panel.trace),
                ))
    return rows


if __name__ == "__main__":
    main(run)
