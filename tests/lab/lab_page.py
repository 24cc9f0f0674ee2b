"""What the browser tests do and read in a page of the lab.

A meter of every request and byte the page moves (:class:`NetMeter`), and the page-side
probes: opening a notebook (:func:`open_notebook`), Run All (:func:`run_all`), first-panel
times (:data:`TIMING_JS`, :func:`panel_timings`), the figures' data and boxes
(:func:`figure_report`, :func:`cropped`) and the answer cells (:func:`answer_report`).
The servers and the browser come from :mod:`lab.lab_support`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.lab_support import Server

LOCAL_PREFIXES = ("http://127.0.0.1:", "ws://127.0.0.1:", "blob:http://127.0.0.1:",
                  "data:", "about:")
"""Requests a page of the lab may make: its own server, blobs and data URLs."""


# -- what the page moves ------------------------------------------------------------------


@dataclass
class NetMeter:
    """Every request a page makes and the bytes it moves (Chrome DevTools protocol).

    Bytes are what crossed the page's connections: HTTP responses as received (headers and
    body, compressed if the server compressed them) plus every websocket frame's payload,
    both ways. :meth:`mark` starts a new count (the requests list keeps everything).
    """

    cdp: Any
    requests: list[str] = field(default_factory=list)
    http_bytes: int = 0
    ws_bytes: int = 0
    console_errors: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, page: Any) -> NetMeter:
        meter = cls(page.context.new_cdp_session(page))
        meter.cdp.send("Network.enable")
        meter.cdp.on("Network.requestWillBeSent",
                     lambda e: meter.requests.append(e["request"]["url"]))
        meter.cdp.on("Network.webSocketCreated", lambda e: meter.requests.append(e["url"]))
        meter.cdp.on("Network.loadingFinished", meter._http)
        meter.cdp.on("Network.webSocketFrameReceived", meter._frame)
        meter.cdp.on("Network.webSocketFrameSent", meter._frame)
        page.on("console", lambda m: meter.console_errors.append(m.text)
                if m.type == "error" else None)
        page.on("pageerror", lambda e: meter.console_errors.append(f"pageerror: {e}"))
        return meter

    def _http(self, event: dict[str, Any]) -> None:
        self.http_bytes += int(event.get("encodedDataLength", 0))

    def _frame(self, event: dict[str, Any]) -> None:
        frame = event["response"]
        data = frame.get("payloadData", "")
        if frame.get("opcode") == 2:  # binary frames arrive base64-encoded
            self.ws_bytes += len(base64.b64decode(data))
        else:
            self.ws_bytes += len(data.encode())

    @property
    def total(self) -> int:
        return self.http_bytes + self.ws_bytes

    def mark(self) -> None:
        self.http_bytes = self.ws_bytes = 0
        self.console_errors.clear()

    def plotly_bundles(self) -> list[str]:
        """Requests for a copy of plotly.js: wslab's, or any JupyterLab extension's code
        named after plotly (plotly's renderer bundles its own plotly.js)."""
        paths = (u.split("?")[0] for u in self.requests)
        return [p for p in paths if p.endswith(".js") and "plotly" in p.lower()]

    def external(self) -> list[str]:
        """Requests to anything but the page's own 127.0.0.1 server (or blob/data URLs)."""
        return [u for u in self.requests if not u.startswith(LOCAL_PREFIXES)]


# -- in the page --------------------------------------------------------------------------

# Installed before Run All: stamps, per cell (by index among the notebook's cells), when its
# previous code cell finished (its start, for a cell run by Run All: cells run one after
# the other) and when a wslab panel in its outputs became visible with every figure in it
# drawn. Polls on a timer (a busy headless page may skip animation frames).
TIMING_JS = """
() => {
  const t = {start: performance.now(), done: {}, panel: {}, order: []};
  window.__wslabTiming = t;
  const cells = () => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'));
  const shown = (e) => !!e && e.getBoundingClientRect().height > 0;
  const drawn = (p) => Array.from(p.querySelectorAll('.js-plotly-plot'))
      .every((g) => g.querySelector('.main-svg') && g._fullLayout);
  const timer = setInterval(() => {
    cells().forEach((cell, i) => {
      const text = Array.from(cell.querySelectorAll('.jp-InputPrompt, .jp-OutputPrompt'))
          .map((e) => e.textContent).join(' ');
      if (cell.classList.contains('jp-CodeCell') && /\\[\\d+\\]/.test(text)
          && t.done[i] === undefined) { t.done[i] = performance.now(); t.order.push(i); }
      const panel = cell.querySelector('.wslab-panel');
      if (t.panel[i] === undefined && shown(panel) && drawn(panel)) {
        t.panel[i] = performance.now();
      }
    });
  }, 10);
  t.stop = () => clearInterval(timer);
  return true;
}
"""

FIGURES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((g) => {
  const count = (t) => {
    if (t.type === 'heatmap') return (t.z || []).reduce((n, r) => n + (r ? r.length : 0), 0);
    const n = (a) => (a && a.length) || 0;
    return Math.max(n(t.x), n(t.y));
  };
  const data = g._fullData || g.data || [];
  const box = g.closest('.widget-box, .jp-OutputArea-output, .jp-Cell, #rendered_cells')
      || document.body;
  const out = g.closest('.jp-OutputArea-output') || document.body;
  const svg = g.querySelector('.main-svg');
  const r = (e) => { const b = e.getBoundingClientRect();
                     return {left: b.left, right: b.right, width: b.width}; };
  const lay = g._fullLayout || {};
  return {
    title: (g.layout && g.layout.title
            && (typeof g.layout.title === 'string' ? g.layout.title : g.layout.title.text))
           || '',
    template: !!(g.layout && g.layout.template),
    barmode: lay.barmode || null,
    traces: data.map((t) => ({type: t.type, name: t.name || '', points: count(t),
                              visible: t.visible !== false})),
    points: data.reduce((n, t) => n + count(t), 0),
    plot: svg ? r(svg) : null, box: r(box), output: r(out),
    outputOverflow: out.scrollWidth - out.clientWidth,
  };
})
"""


def figure_report(page: Any) -> list[dict[str, Any]]:
    """Each plotly figure in the page: title, traces and their points, its box."""
    return list(page.evaluate(FIGURES_JS))


def cropped(fig: dict[str, Any], slack: float = 1.5) -> str:
    """Why ``fig`` (from :func:`figure_report`) is cropped, or ``""``: its plot area must
    lie within the box holding it and within its output, which must not scroll sideways."""
    plot = fig["plot"]
    if plot is None:
        return "not drawn"
    for name in ("box", "output"):
        box = fig[name]
        if plot["left"] < box["left"] - slack or plot["right"] > box["right"] + slack:
            return (f"plot {plot['left']:.0f}..{plot['right']:.0f} px outside its {name} "
                    f"{box['left']:.0f}..{box['right']:.0f} px")
    if fig["outputOverflow"] > slack:
        return f"its output scrolls sideways by {fig['outputOverflow']} px"
    return ""


def answer_cells(notebook: Path) -> list[tuple[int, str, str]]:
    """(index, cell type, a line of its answer text) for each answer cell of ``notebook``.

    The line is one of the answer's own (for markdown, the first numbered item), which
    must not be readable in the page after Run All. A code cell's answer is what it
    prints or shows (its line is ``""``): JupyterLab's placeholder for a hidden source
    shows the first line of code, which tells nothing.
    """
    from wslab.lab.app import is_answer_cell

    cells = json.loads(notebook.read_text())["cells"]
    found = []
    for i, cell in enumerate(cells):
        if not is_answer_cell(cell):
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if cell["cell_type"] == "markdown":
            items = [ln for ln in lines if re.match(r"^\d+\.\s", ln)]
            probe = (items or lines[1:] or lines)[0]
            probe = re.sub(r"^\d+\.\s*", "", probe)
        else:
            probe = ""
        found.append((i, cell["cell_type"], re.sub(r"[`*_]", "", probe)[:40]))
    return found


ANSWER_JS = """
([index, probe]) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  if (!cell) return {missing: true};
  cell.scrollIntoView({block: 'center'});
  const shown = (e) => { const b = e.getBoundingClientRect();
      return b.height > 0 && b.width > 0 && getComputedStyle(e).visibility !== 'hidden'; };
  const text = cell.innerText.replace(/[`*_]/g, '');
  const leaks = Array.from(cell.querySelectorAll(
      '.jp-OutputArea-output.jp-RenderedText, .jp-OutputArea-output .jp-RenderedText, '
      + '.jp-OutputArea-output table, .jp-OutputArea-output .js-plotly-plot, '
      + '.jp-OutputArea-output img')).filter(shown);
  return {
    missing: false,
    probeVisible: probe.length > 0 && text.includes(probe),
    openDetails: cell.querySelectorAll('details[open]').length,
    sourceVisible: cell.classList.contains('jp-CodeCell')
        && Array.from(cell.querySelectorAll('.jp-InputArea-editor')).some(shown),
    outputsVisible: leaks.length,
  };
}
"""


def answer_report(page: Any, notebook: Path) -> list[dict[str, Any]]:
    """What the page shows of each answer cell of ``notebook`` (see :data:`ANSWER_JS`)."""
    out = []
    for index, kind, probe in answer_cells(notebook):
        page.wait_for_timeout(100)
        seen = page.evaluate(ANSWER_JS, [index, probe])
        page.wait_for_timeout(100)  # scrolled into view: look again once laid out
        seen = page.evaluate(ANSWER_JS, [index, probe])
        out.append({"index": index, "type": kind, "probe": probe, **seen})
    return out


def leaked(answer: dict[str, Any]) -> bool:
    """True when an answer cell (from :func:`answer_report`) shows any of its answer."""
    return bool(answer["missing"] or answer["probeVisible"] or answer["openDetails"]
                or answer["sourceVisible"] or answer["outputsVisible"])


TRACEBACKS_JS = """
() => [
  ...Array.from(document.querySelectorAll('.jp-OutputArea-output'))
    .map((e) => e.innerText).filter((t) => t.includes('Traceback (most recent call last)')),
  ...Array.from(document.querySelectorAll('.wslab-error')).map((e) => e.innerText),
].map((t) => t.slice(0, 600))
"""
"""Python tracebacks in the outputs, and errors a panel shows in its status line."""


def open_notebook(page: Any, server: Server, name: str) -> None:
    """Open ``name`` in JupyterLab, alone in a fresh workspace (so no notebook opened
    before comes back with it), and wait until its kernel is idle."""
    workspace = "w" + os.urandom(4).hex()
    page.goto(server.url(f"lab/workspaces/{workspace}/tree/{name}?reset"))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    idle = page.locator(".jp-StatusBar-TextItem", has_text="| Idle")
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    deadline = time.monotonic() + 60
    while not idle.count() and time.monotonic() < deadline:
        if accept.count():  # JupyterLab may ask which kernel: python3 is preselected
            accept.first.click()
        page.wait_for_timeout(250)
    idle.first.wait_for(timeout=5_000)
    page.wait_for_timeout(300)
    if accept.count():
        accept.first.click()


RUN_STATE_JS = """
() => {
  // a cell whose source is hidden may keep an empty input prompt: read the outputs' too
  const prompts = Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell'))
      .map((c) => Array.from(c.querySelectorAll('.jp-InputPrompt, .jp-OutputPrompt'))
          .map((e) => e.textContent).join(' '));
  const status = Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'))
      .map((e) => e.textContent).join(' ');
  return {
    cells: prompts.length,
    running: prompts.some((p) => p.includes('*')),
    numbered: prompts.filter((p) => /\\[\\d+\\]/.test(p)).length,
    idle: status.includes('| Idle'),
    // a cell that raised stops Run All: the cells after it keep an empty prompt
    raised: Array.from(document.querySelectorAll('.jp-OutputArea-output'))
        .some((e) => e.innerText.includes('Traceback (most recent call last)')),
  };
}
"""


def run_all(page: Any, timeout_s: float = 180.0, settle_s: float = 2.0) -> float:
    """Run All Cells from the menu; wait until every code cell has run (or one raised).

    A cell counts as run when its prompt shows its number. A cell with a hidden source
    and no numbered output shows none: then the run is over once no cell is queued and
    the kernel has stayed idle for ``settle_s``. Returns the page's clock
    (``performance.now()``, ms) at the click.
    """
    page.locator(".lm-MenuBar-item", has_text="Run").click()
    item = page.get_by_role("menuitem", name="Run All Cells", exact=True)
    clicked = float(page.evaluate("() => performance.now()"))
    item.click()
    deadline = time.monotonic() + timeout_s
    idle_since: float | None = None
    started = False
    while time.monotonic() < deadline:
        state = page.evaluate(RUN_STATE_JS)
        started |= state["running"] or state["numbered"] > 0
        if started and not state["running"]:
            if state["numbered"] == state["cells"] or state["raised"]:
                return clicked
            now = time.monotonic()
            idle_since = (idle_since or now) if state["idle"] else None
            if idle_since is not None and now - idle_since >= settle_s:
                return clicked
        else:
            idle_since = None
        page.wait_for_timeout(100)
    raise TimeoutError(f"Run All did not finish in {timeout_s:.0f} s: {state}")


def first_panel_times(page: Any, clicked: float) -> dict[int, float]:
    """Seconds from each panel cell's start to its first panel drawn (see TIMING_JS)."""
    return {i: t["panel_s"] for i, t in panel_timings(page, clicked).items()}


def panel_timings(page: Any, clicked: float) -> dict[int, dict[str, float]]:
    """Per panel cell: seconds from its start to its panel drawn (``panel_s``) and to its
    prompt numbered (``cell_s``: the kernel ran it; the panel may be drawn before or after,
    its figures are drawn in the page after their state arrives). See :data:`TIMING_JS`."""
    t = page.evaluate("() => { const t = window.__wslabTiming; if (t.stop) t.stop(); "
                      "return {done: t.done, panel: t.panel, order: t.order}; }")
    done = {int(k): v for k, v in t["done"].items()}
    out = {}
    for key, shown_at in t["panel"].items():
        i = int(key)
        before = [v for j, v in done.items() if j < i and v <= shown_at]
        start = max(before) if before else clicked
        ran = done.get(i, float("nan"))
        out[i] = {"panel_s": max(0.0, (shown_at - start) / 1000.0),
                  "cell_s": max(0.0, (ran - start) / 1000.0)}
    return out


def wait_figures_drawn(page: Any, timeout_ms: int = 60_000) -> None:
    """Wait until every plotly figure in the page is drawn."""
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".every((g) => g._fullLayout && g.querySelector('.main-svg'))",
        timeout=timeout_ms, polling=100)
