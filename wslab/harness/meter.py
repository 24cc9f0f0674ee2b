"""Measurement helpers for the live harness: kernel TCP counters, process CPU/RSS, raw bytes.

What lives here: :func:`tcp_info` (Linux ``TCP_INFO`` parsed with ``struct``),
:class:`ProcessSampler` (psutil CPU seconds and RSS, once or as a background time series)
and :class:`ByteCounter` / :func:`count_connection` (bytes a websockets connection really
reads and writes). What must not: any opinion about what the numbers mean (summaries and
integrity checks belong to ``wslab.metrics``) and any server or client logic.

``struct tcp_info`` (``linux/tcp.h``), the fields read here, offsets in bytes. The layout
only ever grows at the end; a field the running kernel does not fill is ``None``.

======  ====  ==========================  ======  ====  ===========================
offset  type  field                       offset  type  field
======  ====  ==========================  ======  ====  ===========================
0       u8    tcpi_state                  120     u64   tcpi_bytes_acked
1       u8    tcpi_ca_state               128     u64   tcpi_bytes_received
2       u8    tcpi_retransmits            136     u32   tcpi_segs_out
8       u32   tcpi_rto (us)               140     u32   tcpi_segs_in
16      u32   tcpi_snd_mss                144     u32   tcpi_notsent_bytes
20      u32   tcpi_rcv_mss                148     u32   tcpi_min_rtt (us)
24      u32   tcpi_unacked                152     u32   tcpi_data_segs_in
32      u32   tcpi_lost                   156     u32   tcpi_data_segs_out
36      u32   tcpi_retrans                160     u64   tcpi_delivery_rate (B/s)
60      u32   tcpi_pmtu                   168     u64   tcpi_busy_time (us)
68      u32   tcpi_rtt (us)               192     u32   tcpi_delivered
72      u32   tcpi_rttvar (us)            200     u64   tcpi_bytes_sent
80      u32   tcpi_snd_cwnd (segments)    208     u64   tcpi_bytes_retrans
100     u32   tcpi_total_retrans          228     u32   tcpi_snd_wnd
104     u64   tcpi_pacing_rate (B/s)      232+  --    newer fields, not read
======  ====  ==========================  ======  ====  ===========================

``bytes_acked`` counts sequence space the peer acknowledged: the payload, plus one for the
SYN on the side that connected (Linux 6.x; one more for a FIN once acknowledged), so for
payload prefer ``bytes_sent`` or the peer's ``bytes_received``, which count payload only
(all checked by ``tests/harness/test_meter.py``). ``segs_*`` count every segment (ACKs
included), ``data_segs_*`` only those carrying payload; ``bytes_sent`` includes
retransmitted payload.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
import threading
import time
from asyncio.trsock import TransportSocket
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import psutil

from wslab.harness.frametally import FrameTally

TCP_INFO_BUFLEN = 256
_MIN_TCP_INFO = 104  # through tcpi_total_retrans: anything shorter is not worth parsing

# (field, offset, struct code): the table in the module docstring, as data.
TCP_INFO_LAYOUT: tuple[tuple[str, int, str], ...] = (
    ("state", 0, "B"),
    ("ca_state", 1, "B"),
    ("retransmits", 2, "B"),
    ("rto_us", 8, "I"),
    ("snd_mss", 16, "I"),
    ("rcv_mss", 20, "I"),
    ("unacked", 24, "I"),
    ("lost", 32, "I"),
    ("retrans", 36, "I"),
    ("pmtu", 60, "I"),
    ("rtt_us", 68, "I"),
    ("rttvar_us", 72, "I"),
    ("snd_cwnd", 80, "I"),
    ("total_retrans", 100, "I"),
    ("pacing_rate", 104, "Q"),
    ("bytes_acked", 120, "Q"),
    ("bytes_received", 128, "Q"),
    ("segs_out", 136, "I"),
    ("segs_in", 140, "I"),
    ("notsent_bytes", 144, "I"),
    ("min_rtt_us", 148, "I"),
    ("data_segs_in", 152, "I"),
    ("data_segs_out", 156, "I"),
    ("delivery_rate", 160, "Q"),
    ("busy_time_us", 168, "Q"),
    ("delivered", 192, "I"),
    ("bytes_sent", 200, "Q"),
    ("bytes_retrans", 208, "Q"),
    ("snd_wnd", 228, "I"),
)


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """A snapshot of one socket's kernel TCP counters (``None``: not provided by the kernel)."""

    state: int | None = None
    ca_state: int | None = None
    retransmits: int | None = None
    rto_us: int | None = None
    snd_mss: int | None = None
    rcv_mss: int | None = None
    unacked: int | None = None
    lost: int | None = None
    retrans: int | None = None
    pmtu: int | None = None
    rtt_us: int | None = None
    rttvar_us: int | None = None
    snd_cwnd: int | None = None
    total_retrans: int | None = None
    pacing_rate: int | None = None
    bytes_acked: int | None = None
    bytes_received: int | None = None
    segs_out: int | None = None
    segs_in: int | None = None
    notsent_bytes: int | None = None
    min_rtt_us: int | None = None
    data_segs_in: int | None = None
    data_segs_out: int | None = None
    delivery_rate: int | None = None
    busy_time_us: int | None = None
    delivered: int | None = None
    bytes_sent: int | None = None
    bytes_retrans: int | None = None
    snd_wnd: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        """The fields as a plain dict."""
        return asdict(self)


def parse_tcp_info(buf: bytes) -> TcpInfo | None:
    """Parse a raw ``TCP_INFO`` buffer (native byte order); ``None`` if it is too short."""
    if len(buf) < _MIN_TCP_INFO:
        return None
    values: dict[str, int] = {}
    for name, offset, code in TCP_INFO_LAYOUT:
        if offset + struct.calcsize("=" + code) <= len(buf):
            values[name] = struct.unpack_from("=" + code, buf, offset)[0]
    return TcpInfo(**values)


def tcp_info(sock: socket.socket | TransportSocket) -> TcpInfo | None:
    """Kernel TCP counters of a connected socket, or ``None`` off Linux or on failure.

    Args:
        sock: A TCP socket, or the ``TransportSocket`` of an asyncio transport
            (``transport.get_extra_info("socket")``).
    """
    opt = getattr(socket, "TCP_INFO", None)
    if not sys.platform.startswith("linux") or opt is None:
        return None
    try:
        buf = sock.getsockopt(socket.IPPROTO_TCP, opt, TCP_INFO_BUFLEN)
    except OSError:
        return None
    return parse_tcp_info(buf)


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU seconds and resident memory of a process (optionally with its children)."""

    t: float
    cpu_user_s: float
    cpu_system_s: float
    rss_kib: int

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds."""
        return self.cpu_user_s + self.cpu_system_s

    def as_dict(self) -> dict[str, float]:
        """The sample with ``cpu_s`` added, ready for a DataFrame row."""
        return {**asdict(self), "cpu_s": self.cpu_s}


class ProcessSampler:
    """Samples a process's CPU time and RSS with psutil, once or in a background thread.

    Args:
        pid: Process to watch (default: this one).
        children: Also add up the process's descendants (e.g. worker processes).
    """

    def __init__(self, pid: int | None = None, *, children: bool = False) -> None:
        self.proc = psutil.Process(pid if pid is not None else os.getpid())
        self.children = children
        self.baseline = self.sample()
        self.series: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> ProcSample:
        """One sample now."""
        procs = [self.proc]
        if self.children:
            procs += self.proc.children(recursive=True)
        user = system = 0.0
        rss = 0
        for p in procs:
            try:
                with p.oneshot():
                    cpu = p.cpu_times()
                    user, system = user + cpu.user, system + cpu.system
                    rss += p.memory_info().rss
            except psutil.NoSuchProcess:
                if p is self.proc:
                    raise
        return ProcSample(time.monotonic(), user, system, rss // 1024)

    def delta(self, since: ProcSample | None = None) -> dict[str, float]:
        """CPU seconds used and RSS growth (KiB) since ``since`` (default: construction)."""
        a, b = since or self.baseline, self.sample()
        return {
            "wall_s": b.t - a.t,
            "cpu_user_s": b.cpu_user_s - a.cpu_user_s,
            "cpu_system_s": b.cpu_system_s - a.cpu_system_s,
            "cpu_s": b.cpu_s - a.cpu_s,
            "rss_kib": float(b.rss_kib),
            "rss_growth_kib": float(b.rss_kib - a.rss_kib),
        }

    def start(self, interval: float = 0.1) -> None:
        """Record a sample every ``interval`` seconds into :attr:`series` until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("sampler already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        t0 = self.baseline.t
        next_at = time.monotonic()
        while True:
            try:
                row = self.sample().as_dict()
            except psutil.NoSuchProcess:
                return
            row["elapsed_s"] = row["t"] - t0
            self.series.append(row)
            next_at += interval
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return

    def stop(self) -> pd.DataFrame:
        """Stop the background thread; returns the time series (see :meth:`frame`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.frame()

    def frame(self) -> pd.DataFrame:
        """The series as a DataFrame: ``t``, ``elapsed_s``, CPU seconds, ``rss_kib``."""
        return pd.DataFrame(self.series)

    def __enter__(self) -> ProcessSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(slots=True)
class ByteCounter:
    """Raw bytes (and calls) through one connection's transport, both ways."""

    read: int = 0
    written: int = 0
    reads: int = 0
    writes: int = 0
    frames_in: FrameTally | None = None
    frames_out: FrameTally | None = None
    _undo: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def on_read(self, data: bytes | bytearray | memoryview) -> None:
        """Count one chunk handed to the protocol."""
        self.read += len(data)
        self.reads += 1
        if self.frames_in is not None:
            self.frames_in.feed(data)

    def on_write(self, data: bytes | bytearray | memoryview) -> None:
        """Count one chunk handed to the transport."""
        self.written += len(data)
        self.writes += 1
        if self.frames_out is not None:
            self.frames_out.feed(data)

    def wrap_transport(self, transport: asyncio.WriteTransport) -> None:
        """Count everything written through ``transport.write``/``writelines``."""
        write, writelines = transport.write, transport.writelines

        def counted_write(data: bytes | bytearray | memoryview) -> None:
            self.on_write(data)
            write(data)

        def counted_writelines(list_of_data: Iterable[bytes | bytearray | memoryview[Any]]) -> None:
            chunks = list(list_of_data)
            for chunk in chunks:
                self.on_write(chunk)
            writelines(chunks)

        transport.write = counted_write  # type: ignore[method-assign]
        transport.writelines = counted_writelines  # type: ignore[method-assign]
        self._undo.append(lambda: _restore(transport, ("write", "writelines")))

    def wrap_protocol(self, protocol: asyncio.Protocol) -> None:
        """Count everything the transport hands to ``protocol.data_received``."""
        received = protocol.data_received

        def counted(data: bytes) -> None:
            self.on_read(data)
            received(data)

        protocol.data_received = counted  # type: ignore[method-assign]
        self._undo.append(lambda: _restore(protocol, ("data_received",)))

    def detach(self) -> None:
        """Stop counting (restore the original methods)."""
        while self._undo:
            self._undo.pop()()

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (frame tallies prefixed ``in_``/``out_``)."""
        out = {name: getattr(self, name) for name in ("read", "written", "reads", "writes")}
        for prefix, tally in (("in_", self.frames_in), ("out_", self.frames_out)):
            if tally is not None:
                out.update(tally.as_dict(prefix))
        return out


def _restore(obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        obj.__dict__.pop(name, None)


def count_connection(ws: Any, *, frames: bool = False) -> ByteCounter:
    """Count the raw bytes of a websockets (asyncio) connection from now on.

    The ``websockets.asyncio`` ``Connection`` is itself the asyncio protocol: the transport
    calls its ``data_received`` with what the socket read, and it sends with
    ``self.transport.write``. Both are wrapped on the instance, so the cost is one extra
    call per chunk. Counting starts when called, i.e. after the opening handshake if called
    on a connection returned by ``connect()`` or passed to a server handler.

    Args:
        ws: A ``websockets.asyncio`` client or server connection.
        frames: Also sort the bytes into data and control frames (see
            :class:`~wslab.harness.frametally.FrameTally`); call it right after the
            handshake so the streams start on a frame boundary.

    Returns:
        The live counter; call :meth:`ByteCounter.detach` to stop.
    """
    counter = ByteCounter()
    if frames:
        counter.frames_in = FrameTally()
        counter.frames_out = FrameTally()
    counter.wrap_transport(ws.transport)
    counter.wrap_protocol(ws)
    return counter
