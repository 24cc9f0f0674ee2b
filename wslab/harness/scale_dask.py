"""``wslab scale --cluster``: the holders run on Dask workers; their clocks are measured.

What lives here, on the coordinator's side: :class:`RemoteHolder` (a holder on a Dask
worker, spoken to over a TCP socket in the same JSON lines as a local one: a
:class:`~wslab.harness.cluster.Channel`), :class:`DaskHolders` (the cluster session, the
listener the holders call back to, one task per holder pinned to a worker thread, workers
in turn), the clock bursts before the ramp and after the last receipt, and the correction
of the holders' times onto the coordinator's clock. What must not live here: the task on
the worker (``holder_relay.py``), the offset arithmetic (``clock.py``), the run's steps
(``scale.py``), starting or reaching a cluster (``dask_cluster.py``).

Clocks: the workers (servers) run on this machine and stamp each message with this
machine's ``time.monotonic()``; a holder on another host stamps receipts with its own.
Each holder's offset is measured by round trips of the ``clock`` command before its ramp
(its task answers, on the same host, then starts it) and again after the last receipt
(``clock.bracket``); every receipt and ramp time is moved onto this machine's clock, and
the uncertainty left is reported per holder and beside each latency figure.

The listener binds 127.0.0.1 unless ``ScaleOptions.callback_host`` says otherwise (the
address of this machine the Dask workers can reach); a connection that does not open with
this run's token is dropped.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness import commands as c
from wslab.harness.clock import Offset, bracket, estimate
from wslab.harness.cluster import Channel
from wslab.harness.dask_cluster import DaskSession, dask_session, parse_cluster
from wslab.harness.holder_relay import HolderSpec, run_holder
from wslab.harness.linepipe import LinePipe

ACCEPT_TIMEOUT_S = 60.0
"""Longest wait for every holder task to start on its worker and call back."""
CLOCK_ASK_TIMEOUT_S = 10.0
STOP_WAIT_S = 5.0
"""How long a holder that hung up gets to say why (its task's result) before we move on."""


class RemoteHolder(Channel):
    """A holder on a Dask worker: its ``hello`` and its JSON lines over one socket."""

    def __init__(self, sock: socket.socket, lines: LinePipe, hello: dict[str, Any],
                 future: Any) -> None:
        self.sock = sock
        self._lines = lines
        self.hello = hello
        self.future = future
        self.index = int(hello["index"])
        self.pid = 0  # the holder process's, once its task started it (``start``)
        self.what = f"holder {self.index} on {hello.get('worker') or hello['host']}"

    def readline(self, timeout: float) -> str:
        try:
            line = self._lines.readline(timeout)
        except TimeoutError:
            raise WslabError(f"{self.what} said nothing for {timeout:.0f} s") from None
        if line is None:
            raise WslabError(f"{self.what} stopped: {self._ending()}")
        return line.strip()

    def _ending(self) -> str:
        with contextlib.suppress(Exception):
            out = self.future.result(timeout=STOP_WAIT_S)
            return str(out.get("stderr") or f"exit code {out.get('exit_code')}")
        return "its connection closed"

    def _write(self, line: str) -> None:
        self.sock.sendall(line.encode())

    def alive(self) -> bool:
        return not self._lines.ended and not self.future.done()

    def send(self, sig: int = 0) -> None:
        """Hang up our sending side: the task closes the holder's stdin, and it stops."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def stop(self, timeout: float = 15.0, sig: int = 0) -> int | None:
        self.send()
        code: int | None = None
        with contextlib.suppress(Exception):
            code = self.future.result(timeout=timeout).get("exit_code")
        with contextlib.suppress(OSError):
            self.sock.close()
        return code


@dataclass
class Placed:
    """Where a holder ran and how its clock compared with ours."""

    holder: RemoteHolder
    before: Offset | None = None
    offset: Offset | None = None

    def row(self) -> dict[str, Any]:
        h = self.holder.hello
        row = {"holder": self.holder.index, "host": h["host"], "worker": h.get("worker"),
               "worker_pid": h.get("worker_pid"), "pid": self.holder.pid,
               "connections": h.get("connections"), "sources": h.get("sources", [])}
        clock = self.offset or self.before
        if clock is not None:
            row.update({k: round(v, 4) for k, v in clock.as_dict().items()})
        return row


def burst(holder: Channel, now: Callable[[], float] = time.monotonic) -> Offset:
    """One round-trip estimate of ``holder``'s clock against ours."""
    def ask() -> float:
        answer = c.expect(c.Clocked, holder.ask(c.Clock(), timeout=CLOCK_ASK_TIMEOUT_S),
                          holder.what)
        return float(answer["t"])

    return estimate(ask, now)


def shift_ready(ready: c.Ready, clock: Offset) -> c.Ready:
    """A ``ready`` line with its times on our clock."""
    return {**ready, "started": clock.to_ours(ready["started"]),
            "done": [clock.to_ours(t) for t in ready["done"]]}


def shift_receipts(report: c.Receipts, clock: Offset) -> c.Receipts:
    """A report with every receipt's arrival time on our clock (the send time is a worker's,
    already ours)."""
    return {**report, "receipts": [[*r[:4], clock.to_ours(r[4])] for r in report["receipts"]]}


class DaskHolders:
    """Holders as tasks on a Dask cluster, for the length of one run.

    Args:
        cluster: ``local`` or a scheduler address (``dask_cluster.parse_cluster``).
        callback_host: The address of this machine the workers connect back to.
    """

    def __init__(self, cluster: str, callback_host: str = "127.0.0.1") -> None:
        self._stack = contextlib.ExitStack()
        try:
            self.session: DaskSession = self._stack.enter_context(
                dask_session(parse_cluster(cluster)))
            self.listener = socket.create_server((callback_host, 0))
        except BaseException:
            self._stack.close()
            raise
        self._stack.callback(self.listener.close)
        self.token = uuid.uuid4().hex
        self.futures: list[Any] = []
        self.placed: list[Placed] = []
        self._accepted: list[RemoteHolder] = []

    def slots(self) -> list[str]:
        """One entry per worker thread, workers in turn: holder ``p`` runs on slot ``p``.
        A holder's task holds its thread for the whole run, so there must be enough."""
        info = self.session.client.scheduler_info(n_workers=-1).get("workers", {})
        threads = {addr: int(w.get("nthreads", 1)) for addr, w in info.items()}
        return [addr for turn in range(max(threads.values(), default=0))
                for addr in sorted(threads) if threads[addr] > turn]

    def start(self, url: str, config: TuningConfig, connections: int, holders: int | None,
              sources: list[str], rate: float) -> list[RemoteHolder]:
        """Submit one holder task per share (default: one per worker) and wait until each
        called back; the holders then ramp on their own."""
        slots = self.slots()
        n = holders or len(set(slots))
        if n > len(slots):
            raise WslabError(f"{n} holders need {n} Dask worker threads (each holds one for "
                             f"the whole run); the cluster has {len(slots)}")
        if sources and len(sources) < n:  # each holder (each host) its own source addresses
            sources = [f"127.0.0.{2 + i}" for i in range(min(n, 250))]
        base, extra = divmod(connections, n)
        text = config.to_yaml()
        host, port = self.listener.getsockname()[:2]
        client = self.session.client
        for p in range(n):
            spec = HolderSpec(index=p, url=url, config_yaml=text,
                              connections=base + (p < extra), rate=rate / n if rate else 0.0,
                              sources=sources[p::n] or sources)
            self.futures.append(client.submit(
                run_holder, (host, port), self.token, spec, key=f"wslab-holder-{p}-"
                f"{self.token}", workers=[slots[p]],
                allow_other_workers=False, pure=False))
        got = self._accept(n)
        self.placed = [Placed(h) for h in sorted(got, key=lambda h: h.index)]
        self.clock_before()  # answered by each task on its host's clock, before any ramp
        for pl in self.placed:
            started = c.expect(c.Started, pl.holder.ask(c.Start(), timeout=STOP_WAIT_S * 6),
                               pl.holder.what)
            pl.holder.pid = int(started["pid"])
        return [pl.holder for pl in self.placed]

    def _accept(self, n: int) -> list[RemoteHolder]:
        got: list[RemoteHolder] = []
        self.listener.settimeout(0.5)
        deadline = time.monotonic() + ACCEPT_TIMEOUT_S
        while len(got) < n:
            if time.monotonic() > deadline:
                raise WslabError(f"only {len(got)} of {n} holder(s) started on the Dask "
                                 f"workers within {ACCEPT_TIMEOUT_S:g} s")
            self._check_tasks()
            try:
                sock, _peer = self.listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(None)
            lines = LinePipe(sock.fileno())
            try:
                hello = json.loads(lines.readline(10) or "null")
            except (TimeoutError, ValueError):
                hello = None
            if not isinstance(hello, dict) or hello.get("hello") != self.token:
                sock.close()  # not one of ours
                continue
            holder = RemoteHolder(sock, lines, hello, self.futures[int(hello["index"])])
            self._accepted.append(holder)
            got.append(holder)
        return got

    def _check_tasks(self) -> None:
        for p, future in enumerate(self.futures):
            if future.status == "error":
                raise WslabError(f"holder {p} failed on its Dask worker: {future.exception()}")

    def clock_before(self) -> None:
        """The first burst, before the holders start (their tasks answer on the same
        host's clock)."""
        for pl in self.placed:
            pl.before = burst(pl.holder)

    def clock_after(self) -> None:
        """The second burst, after the last receipt; the offsets the receipts take."""
        for pl in self.placed:
            after = burst(pl.holder)
            pl.offset = bracket(pl.before, after) if pl.before is not None else after

    def corrected(self, readies: list[c.Ready],
                  reports: list[c.Receipts]) -> tuple[list[c.Ready], list[c.Receipts]]:
        """Ramp and receipt times on our clock."""
        clocks = [pl.offset or pl.before or Offset(0.0, 0.0) for pl in self.placed]
        return ([shift_ready(r, k) for r, k in zip(readies, clocks, strict=True)],
                [shift_receipts(r, k) for r, k in zip(reports, clocks, strict=True)])

    def rows(self) -> list[dict[str, Any]]:
        """One row per holder: where it ran, its offset and uncertainty in ms."""
        return [pl.row() for pl in self.placed]

    def close(self) -> None:
        """Hang up on every holder (its task then stops it), cancel what has not started,
        close the listener and the cluster session (a ``LocalCluster`` with it)."""
        for holder in self._accepted:
            with contextlib.suppress(OSError):
                holder.sock.close()
        with contextlib.suppress(Exception):
            self.session.client.cancel(self.futures)
        self._stack.close()

