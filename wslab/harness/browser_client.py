"""The browser client: a trace's client side replayed by headless Chromium's own WebSocket.

What lives here: the ``python -m wslab.harness.browser_client`` role that ``wslab bench
--client chromium`` starts in place of the load client (:func:`main`), and
:func:`run_browser`, which starts the tap (``browser_tap.py``), Chromium through
Playwright, runs the page (``browser_page.py``) with one ``evaluate``, and hands what came
back to ``browser_logs.py``, which writes the very logs the load client leaves, so
``bench.py`` joins, checks and prices them with the same code. What must not live here:
the bench's orchestration, the logs, the prediction (``browser_model.py``).

Chromium is the system's (``/usr/bin/chromium``, or ``$WSLAB_CHROMIUM``, or ``--chromium``):
Playwright never downloads a browser here. Playwright is imported only when a browser run
starts; without it the run stops with one line saying what to install.

Dying together: this role is tied to ``wslab bench`` (``lifeline``, SIGKILL when it dies).
Playwright's driver (node) leaves when this process's pipe to it closes, closing the
browsers it launched, and Chromium leaves when its own pipe to the driver
(``--remote-debugging-pipe``) closes, taking its zygote, renderers and network service
with it; the tests kill ``wslab bench`` and, apart, the driver, and find no Chromium left.

Clocks: the page stamps times with ``performance.timeOrigin + performance.now()``, the
system's real-time clock in milliseconds, which the role maps onto ``time.monotonic()``
(the clock every other wslab log uses). :func:`page_clock` checks that mapping: it reads the
page's clock between two readings of its own, several times, and says how far the page's
stamps fell outside those brackets (``outside_ms``); if every stamp did, it falls back to
the median offset of the brackets' middles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wslab import envelopes
from wslab.errors import WslabError
from wslab.harness.browser_logs import BrowserRun, PageClock, frame_of, save_logs
from wslab.harness.browser_page import PAGE
from wslab.harness.browser_tap import BrowserTap
from wslab.traces.io import read_trace
from wslab.traces.model import Message, Trace

CHROMIUM_ENV = "WSLAB_CHROMIUM"
"""Environment variable naming the Chromium to drive (default :data:`DEFAULT_CHROMIUM`)."""
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)
"""The switches this machine's Chromium needs (the same as the lab's browser tests)."""
INSTALL_HINT = ("install playwright and chromium: pip install playwright (Python package "
                "only; it drives the system browser and downloads none) and apt-get install "
                "chromium")
CLOCK_SAMPLES = 9
PAGE_CLOCK_SLACK_MS = 0.2
"""How far a page stamp may fall outside a bracket and still count as inside (Chromium
coarsens ``performance.now()`` to 5 us when isolated, 100 us otherwise)."""


@dataclass(frozen=True, slots=True)
class BrowserOptions:
    """How :func:`run_browser` replays a trace.

    Attributes:
        url: The server's ``ws://`` URL (loopback).
        connections: WebSockets the page opens, each replaying every ``c2s`` message.
        speed: Trace time is divided by this.
        expect_s2c: Messages each connection should receive (0: only wait for quiet).
        drain_timeout: Longest quiet wait for missing messages once sending is done.
        close_timeout: Longest wait for a connection's close event.
        chromium: The browser executable (None: ``$WSLAB_CHROMIUM`` or /usr/bin/chromium).
        envelope: The ``wslab.v1.*`` envelope the page offers and sends each message in,
            alone (None: none; the server then batches nothing either).
    """

    url: str
    connections: int = 1
    speed: float = 1.0
    expect_s2c: int = 0
    drain_timeout: float = 5.0
    close_timeout: float = 10.0
    chromium: str | None = None
    envelope: str | None = None


def chromium_path(explicit: str | None = None) -> str:
    """The Chromium to drive; a one-line error when it is not there."""
    path = explicit or os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise WslabError(f"no Chromium at {path} (set {CHROMIUM_ENV} or --chromium): "
                         f"{INSTALL_HINT}")
    return path


def check_playwright() -> None:
    """A one-line error now, before any process starts, when Playwright is not installed."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        raise WslabError(f"--client chromium needs Playwright: {INSTALL_HINT}")


def _async_playwright() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise WslabError(f"--client chromium needs Playwright: {INSTALL_HINT}") from None
    return async_playwright


async def page_clock(page: Any, samples: int = CLOCK_SAMPLES) -> PageClock:
    """Read the page's clock between two of ours ``samples`` times (see the module text)."""
    diffs = []
    for _ in range(3):
        m0 = time.monotonic()
        w = time.time()
        m1 = time.monotonic()
        diffs.append((m1 - m0, w - (m0 + m1) / 2))
    wall_minus_mono = min(diffs)[1]
    brackets = []
    for _ in range(samples):
        w0 = time.time()
        stamp = await page.evaluate("performance.timeOrigin + performance.now()")
        w1 = time.time()
        brackets.append((w0, float(stamp) / 1e3, w1))
    outside = [max(0.0, w0 - s, s - w1) * 1e3 for w0, s, w1 in brackets]
    offset = 0.0
    if min(outside) > PAGE_CLOCK_SLACK_MS:  # the page's clock is not the system's
        offset = statistics.median((w0 + w1) / 2 - s for w0, s, w1 in brackets)
    return PageClock(wall_minus_mono, offset, min(w1 - w0 for w0, _, w1 in brackets) * 1e3,
                     max(outside))


def _plan(trace: Trace, options: BrowserOptions, url: str) -> dict[str, Any]:
    import base64

    def data(payload: bytes, is_text: bool) -> str:
        return payload.decode() if is_text else base64.b64encode(payload).decode()

    def payload(m: Message) -> str:
        return data(m.payload, m.is_text)

    send = [[i, m.t, text, data(frame, text)] for i, m in enumerate(trace.messages)
            if m.dir == "c2s" for frame, text in [frame_of(m, options.envelope)]]
    lookup = [[i, m.is_text, payload(m)] for i, m in enumerate(trace.messages)
              if m.dir == "s2c"]
    return {"url": url, "labels": [f"b-{n}" for n in range(options.connections)],
            "speed": options.speed, "drainMs": options.drain_timeout * 1e3,
            "closeMs": options.close_timeout * 1e3, "expect": options.expect_s2c,
            "envelope": options.envelope,
            "send": send, "lookup": lookup}


async def run_browser(trace: Trace, options: BrowserOptions) -> BrowserRun:
    """Start the tap and Chromium, replay ``trace``'s client side, return what was seen."""
    from urllib.parse import urlsplit

    from wslab.harness.meter import ProcessSampler

    async_playwright = _async_playwright()
    chromium = chromium_path(options.chromium)
    target = urlsplit(options.url)
    if target.hostname is None or target.port is None:
        raise WslabError(f"{options.url}: expected ws://HOST:PORT/")
    tap = BrowserTap((target.hostname, target.port), PAGE)
    port = await tap.start()
    c2s = [m.t for m in trace.messages if m.dir == "c2s"]
    span = (max(c2s) - min(c2s)) / options.speed if c2s else 0.0
    budget = 60.0 + span + options.drain_timeout + options.close_timeout
    me = ProcessSampler(os.getpid(), children=True)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium, args=list(CHROMIUM_ARGS),
                headless=True, handle_sigint=False, handle_sigterm=False,
                handle_sighup=False, timeout=30_000)
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/", timeout=30_000)
                clock = await page_clock(page)
                plan = _plan(trace, options, f"ws://127.0.0.1:{port}{target.path or '/'}")
                before = me.sample()
                started = time.monotonic()
                result = await asyncio.wait_for(
                    page.evaluate("plan => wslabRun(plan)", plan), budget)
                elapsed = time.monotonic() - started
                cpu = me.sample().cpu_s - before.cpu_s
                version = str(browser.version)
            finally:
                await browser.close()
    except TimeoutError:
        raise WslabError(f"the browser page did not finish within {budget:.0f} s") from None
    finally:
        await tap.stop()
    return BrowserRun(result, tap.connections, clock, version, cpu, elapsed, tap.errors)


def main(argv: list[str] | None = None) -> int:
    """The role's command line (``wslab bench --client chromium`` starts it)."""
    parser = argparse.ArgumentParser(prog="python -m wslab.harness.browser_client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--trace", required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--expect-s2c", type=int, default=0)
    parser.add_argument("--drain-timeout", type=float, default=5.0)
    parser.add_argument("--close-timeout", type=float, default=10.0)
    parser.add_argument("--chromium")
    parser.add_argument("--envelope", choices=envelopes.ENVELOPES)
    parser.add_argument("--log-dir", required=True)
    args = parser.parse_args(argv)
    options = BrowserOptions(args.url, args.connections, args.speed, args.expect_s2c,
                             args.drain_timeout, args.close_timeout, args.chromium,
                             args.envelope)
    try:
        trace = read_trace(args.trace)
        run = asyncio.run(run_browser(trace, options))
        save_logs(run, trace, Path(args.log_dir), envelope=args.envelope)
    except WslabError as exc:
        return _fail(str(exc))
    except Exception as exc:  # Playwright's own errors: a launch or a page that failed
        if type(exc).__module__.startswith("playwright"):
            return _fail(f"the browser failed: {str(exc).strip().splitlines()[0]}")
        raise
    print(json.dumps({"connections": len(run.tapped), "elapsed_s": run.elapsed_s,
                      "cpu_s": run.cpu_s}), flush=True)
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
