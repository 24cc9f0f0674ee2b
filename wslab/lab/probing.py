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


@dataclass
class ProbeTables:
    """A probe's findings as tables (``report`` is the ``--json`` object)."""

    report: dict[str, Any]
    server: pd.DataFrame
    matrix: pd.DataFrame
    behaviour: pd.DataFrame

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{self.report['target']}</b>: "
                 f"{'no problem found' if self.report.get('ok') else 'problems: '}"
                 f"{'; '.join(self.report.get('problems') or [])}</p>"]
        for frame in (self.server, self.behaviour, self.matrix):
            parts.append(frame.to_html(index=False, border=0))
        return "\n".join(parts)


def _server_table(report: dict[str, Any]) -> pd.DataFrame:
    server = report.get("server") or {}
    rows = [(k, v) for k, v in server.items() if k not in ("agreed", "server_windows")]
    windows = server.get("server_windows") or {}
    rows.append(("server windows (offered -> used)",
                 ", ".join(f"{k}->{v}" for k, v in windows.items())))
    return pd.DataFrame(rows, columns=["finding", "value"]).astype({"value": str})


def probe(url: str, *, timeout: float = 1.0, skip: frozenset[str] = QUICK_SKIP,
          **options: Any) -> ProbeTables:
    """Probe ``url`` (loopback only) and return the findings as tables.

    Runs in a worker thread, so it works inside a notebook whose kernel already runs an
    event loop. ``options`` are :class:`~wslab.harness.probe.ProbeOptions` fields.
    """
    opts = ProbeOptions(timeout=timeout, skip=frozenset(skip), **options)
    target = parse_target(url)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        report = pool.submit(run_probe, target, opts).result()
    return ProbeTables(report, _server_table(report),
                       pd.DataFrame.from_records(matrix_rows(report)),
                       pd.DataFrame.from_records(behaviour_rows(report)))


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
