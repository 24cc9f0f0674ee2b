"""``wslab probe`` from a notebook: the report as tables, and a server to try it on.

What lives here: :func:`probe` (runs ``wslab.harness.probe`` off the kernel's event loop
and returns :class:`ProbeTables`: what the server turned out to be configured with, the
offer matrix and the behaviour probes as pandas tables, plus the raw report) and
:func:`echo_server`, a python-websockets echo server on loopback with the
permessage-deflate settings you choose, run in a thread of its own and stopped when its
``with`` block ends. What must not live here: probing logic (``wslab.harness.probe*``),
the wording of rows (``wslab.tune.probe_report``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from wslab.harness.probe import ProbeOptions, run_probe
from wslab.harness.probe_wire import parse_target
from wslab.tune.probe_report import behaviour_rows, matrix_rows

QUICK_SKIP = frozenset({"idle", "max_message"})
"""What :func:`probe` leaves out unless asked: the two probes that take seconds."""


# What each of the report's server findings means, in the words a table shows.
SERVER_LABELS = {
    "deflate": "speaks permessage-deflate",
    "window_unasked": "server window when the client asks for none (bits)",
    "client_window_wish": "client window the server asks for (15: no limit asked)",
    "forces_server_no_context_takeover": "resets its own window after every message, "
                                         "even unasked",
    "forces_client_no_context_takeover": "tells the client to reset its window, unasked",
    "honours_server_no_context_takeover": "resets its window when the client asks",
    "zstd": "x-wslab-zstd modes agreed",
    "server_windows": "server window offered -> used (zlib has no 8-bit window: many "
                      "servers decline 8)",
}
HEADINGS = ("what the server is configured with", "what it does",
            "every offer and its answer (RFC 7692 checked)")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} -> {v}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    return "-" if value is None else str(value)


def _html(frame: pd.DataFrame) -> str:
    """The whole table (no cell cut short), text left-aligned, no index."""
    with pd.option_context("display.max_colwidth", None):
        text = frame.to_html(index=False, border=0, justify="left")
    return text.replace("<td>", '<td style="text-align:left">')


@dataclass
class ProbeTables:
    """A probe's findings as tables (``report`` is the ``--json`` object); shown in a
    notebook as the verdict and the three tables in full."""

    report: dict[str, Any]
    server: pd.DataFrame
    matrix: pd.DataFrame
    behaviour: pd.DataFrame

    @property
    def problems(self) -> list[str]:
        return list(self.report.get("problems") or [])

    def _repr_html_(self) -> str:
        verdict = ("no problem found" if self.report.get("ok")
                   else "problems: " + "; ".join(html.escape(p) for p in self.problems))
        parts = [f"<p><b>{html.escape(str(self.report['target']))}</b>: {verdict}</p>"]
        for heading, frame in zip(HEADINGS, (self.server, self.behaviour, self.matrix),
                                  strict=True):
            parts += [f"<p><b>{heading}</b></p>", _html(frame)]
        return "\n".join(parts)


def _server_table(report: dict[str, Any]) -> pd.DataFrame:
    server = report.get("server") or {}
    rows = [(SERVER_LABELS.get(k, k), _cell(v)) for k, v in server.items() if k != "agreed"]
    return pd.DataFrame(rows, columns=["finding", "value"])


def _behaviour_table(report: dict[str, Any]) -> pd.DataFrame:
    rows = [{"probe": r["probe"], "finding": r["finding"]} for r in behaviour_rows(report)]
    takeover = (report.get("behaviour") or {}).get("context_takeover") or {}
    sizes = takeover.get("sizes") or []
    for row in rows:  # the numbers behind the verdict, so a reader can check it
        if row["probe"] == "context takeover" and len(sizes) == 2:
            row["finding"] += (f" (a {takeover.get('message_bytes')} B message came back as "
                               f"{sizes[0]} B, then again as {sizes[1]} B)")
    return pd.DataFrame.from_records(rows, columns=["probe", "finding"])


def probe(url: str, *, timeout: float = 1.0, skip: frozenset[str] = QUICK_SKIP,
          **options: Any) -> ProbeTables:
    """Probe ``url`` (loopback only) and return the findings as tables.

    The idle and largest-message probes take seconds and are left out unless asked
    (``skip=frozenset()`` runs every probe). Runs in a worker thread, so it works inside a
    notebook whose kernel already runs an event loop. ``options`` are
    :class:`~wslab.harness.probe.ProbeOptions` fields.
    """
    opts = ProbeOptions(timeout=timeout, skip=frozenset(skip), **options)
    target = parse_target(url)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        report = pool.submit(run_probe, target, opts).result()
    return ProbeTables(report, _server_table(report),
                       pd.DataFrame.from_records(matrix_rows(report)),
                       _behaviour_table(report))


@contextmanager
def echo_server(max_size: int | None = 1 << 20, **deflate: Any) -> Iterator[str]:
    """A python-websockets echo server on 127.0.0.1 with ``deflate`` (the keywords of
    ``ServerPerMessageDeflateFactory``, e.g. ``server_max_window_bits=11``); yields its URL."""
    from websockets.asyncio.server import serve
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    ready: concurrent.futures.Future[str] = concurrent.futures.Future()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def echo(ws: Any) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except Exception:  # the peer went away: nothing more to echo
            return

    async def main() -> None:
        factory = ServerPerMessageDeflateFactory(**deflate)
        async with serve(echo, "127.0.0.1", 0, extensions=[factory], compression=None,
                         max_size=max_size) as server:
            port = server.sockets[0].getsockname()[1] if server.sockets else 0
            ready.set_result(f"ws://127.0.0.1:{port}/")
            await stop.wait()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # handed to the caller below
            if not ready.done():
                ready.set_exception(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="wslab-echo-server", daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=10)
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
