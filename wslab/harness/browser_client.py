"""The browser client: a trace's client side replayed by headless Chromium's own WebSocket.

What lives here: the ``python -m wslab.harness.browser_client`` role that ``wslab bench
--client chromium`` starts in place of the load client (:func:`main`), and
:func:`run_browser`, which starts the tap (``browser_tap.py``), Chromium through
Playwright, runs the page (``browser_page.py``) with one ``evaluate`` and turns what came
back into the very logs the load client leaves (``client-sent``, ``client-received``,
``client-frames``, ``client-connections``), so ``bench.py`` joins, checks and prices them
with the same code. What must not live here: the bench's orchestration, the prediction
(``browser_model.py``).

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

import numpy as np
import pandas as pd

from wslab import envelopes
from wslab.errors import WslabError
from wslab.harness.browser_page import PAGE
from wslab.harness.browser_tap import BrowserTap, TappedConnection
from wslab.harness.loadlog import ColumnRecorder
from wslab.harness.recorder import message_key
from wslab.tables import write_table
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


@dataclass(frozen=True, slots=True)
class PageClock:
    """How page stamps map onto this process's ``time.monotonic()``.

    Attributes:
        wall_minus_monotonic: ``time.time() - time.monotonic()``, seconds.
        page_offset_s: Added to a page stamp (seconds since the epoch) to get ``time.time()``.
        bracket_ms: The narrowest bracket around a page reading.
        outside_ms: How far page readings fell outside their brackets at most (0: all in).
    """

    wall_minus_monotonic: float
    page_offset_s: float
    bracket_ms: float
    outside_ms: float

    def monotonic(self, time_origin_ms: float, stamps_ms: Any) -> np.ndarray[Any, Any]:
        """Page stamps (ms since ``time_origin_ms``) on the monotonic clock, seconds."""
        stamps = np.asarray(stamps_ms, dtype=np.float64)
        return ((time_origin_ms + stamps) / 1e3 + self.page_offset_s
                - self.wall_minus_monotonic)


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


def frame_of(message: Message, envelope: str | None) -> tuple[bytes, bool]:
    """The payload of the frame the page sends ``message`` in, and whether it is text:
    the message itself, or the message alone in ``envelope``."""
    if envelope is None:
        return message.payload, message.is_text
    return (envelopes.encode(envelope, [message.payload], [message.is_text]),
            envelope in envelopes.TEXT_ENVELOPES)


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


@dataclass
class BrowserRun:
    """What a browser run produced: the page's results, the tap's view, the clock."""

    page: dict[str, Any]
    tapped: list[TappedConnection]
    clock: PageClock
    version: str
    cpu_s: float
    elapsed_s: float
    errors: list[str]

    def tap_errors(self) -> list[str]:
        """What the tap could not relay (a head that never came, a refused upstream)."""
        return list(self.errors)


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


@dataclass(slots=True)
class _Sent:
    """One message the page sent, shaped as the load log's frame records are."""

    index: int
    seq: int
    t: float


@dataclass(slots=True)
class _Frame:
    messages: list[_Sent]
    flushed_at: float
    key: str
    payload: bytes


def _percentiles(values: Any) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return {"p50": None, "p99": None, "max": None}
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
            "max": float(arr.max())}


def recorder_of(run: BrowserRun, trace: Trace, envelope: str | None = None,
                ) -> tuple[ColumnRecorder, list[dict[str, Any]]]:
    """The page's results as the load client's logs: a :class:`ColumnRecorder` (sent
    messages with their wire sizes from the tap, received messages by content key) and one
    row per connection with the columns ``client-connections`` has."""
    messages = trace.messages
    recorder = ColumnRecorder(messages)
    tapped = {c.label: c for c in run.tapped}
    origin = float(run.page["timeOrigin"])
    keys: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    for page_conn in run.page["connections"]:
        label = str(page_conn["label"])
        tap = tapped.get(label)
        row: dict[str, Any] = {"conn": label, "error": page_conn.get("error")}
        rows.append(row)
        if "sentT" not in page_conn:
            continue
        sent_index = [int(i) for i in page_conn["sentIndex"]]
        sent_t = run.clock.monotonic(origin, page_conn["sentT"])
        recv_index = [int(i) for i in page_conn["recvIndex"]]
        recv_t = run.clock.monotonic(origin, page_conn["recvT"])
        log = recorder.new_log(label, len(sent_index), len(recv_index))
        wires: list[int | None] = [None] * len(sent_index)
        if tap is not None:
            for n, (size, rsv1) in enumerate(zip(tap.up.message_bytes, tap.up.message_rsv1,
                                                 strict=False)):
                if n < len(wires) and rsv1:
                    wires[n] = int(size)
        seqs: dict[str, int] = {}
        frames = []
        for i, t in zip(sent_index, sent_t.tolist(), strict=True):
            m = messages[i]
            prio = str(m.priority)
            seq = seqs[prio] = seqs.get(prio, -1) + 1
            frames.append(_Frame([_Sent(i, seq, t)], t, m.type, frame_of(m, envelope)[0]))
        log.on_sent(frames, wires)
        recv_frame = page_conn.get("recvFrame") or range(len(recv_index))
        for i, t, frame in zip(recv_index, recv_t.tolist(), recv_frame, strict=True):
            if i >= 0 and i not in keys:
                keys[i] = message_key(messages[i].payload)
            log.on_received(t, keys[i] if i >= 0 else 0, int(frame))
        row.update({
            "extensions": tap.agreed if tap is not None else page_conn.get("extensions"),
            "offered": tap.offered if tap is not None else None,
            "page_extensions": page_conn.get("extensions") or None,
            "subprotocol": page_conn.get("protocol") or None,
            "messages_sent": len(sent_index), "messages_received": len(recv_index),
            "close_code": page_conn.get("closeCode"),
            "compress_ns": None,  # Chromium's compression CPU is not observable per message
            **{f"late_ms_{k}": v for k, v in _percentiles(page_conn["late"]).items()},
        })
        if tap is not None:
            row.update({"frames_sent": tap.up.data_frames,
                        "read": tap.down.data_bytes + tap.down.control_bytes,
                        "written": tap.up.data_bytes + tap.up.control_bytes,
                        **tap.down.as_dict("in_"), **tap.up.as_dict("out_")})
            row.update({f"tcp_{k}": v for k, v in (tap.tcp or {}).items()})
    return recorder, rows


def save_logs(run: BrowserRun, trace: Trace, directory: Path, prefix: str = "client",
              envelope: str | None = None) -> None:
    """Write the load client's files for this run in ``directory``, plus
    ``PREFIX-browser.json`` (Chromium's version, the clock check, the tap's errors)."""
    recorder, rows = recorder_of(run, trace, envelope)
    recorder.save(directory, prefix)
    write_table(pd.DataFrame(rows), directory / f"{prefix}-connections.parquet")
    late = [v for c in run.page["connections"] for v in c.get("late", [])]
    (directory / f"{prefix}-browser.json").write_text(json.dumps({
        "browser": f"Chromium {run.version}", "user_agent": run.page.get("userAgent"),
        "cross_origin_isolated": run.page.get("isolated"),
        "clock": {"bracket_ms": run.clock.bracket_ms, "outside_ms": run.clock.outside_ms,
                  "page_offset_ms": run.clock.page_offset_s * 1e3},
        "schedule_late_ms": _percentiles(late), "cpu_s": run.cpu_s,
        "elapsed_s": run.elapsed_s, "tap_errors": run.tap_errors(),
    }))


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
