"""Live server metrics: counters, a sampled time series, Prometheus text and alert rules.

What lives here: :class:`LiveMetrics`, the counters the server bumps as it works plus the
figures of what is open right now (``live``: read at every snapshot, so a connection that
stays open for days still shows what it sent), a sampler that snapshots them on an
interval into rows (-> a pandas time series), the Prometheus exposition served at
``/metrics`` (via ``prometheus_client``), :class:`AlertRules`, thresholds that fire as log
lines and as events a notebook can show, and :func:`metered_recorder`, the server's
recorder, which counts every data frame and message it logs as it logs it
(``frames_received``, ``messages_received``, ``frames_sent``, ``messages_sent``,
``payload_bytes_sent``: application bytes before compression, as in the summary records).
The server decides when to count; this module only keeps and reports. What must not live
here: the server's decisions, and the HTTP side of ``/metrics`` (``server.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import psutil
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from wslab.harness.recorder import CountingRecorder, Recorder

if TYPE_CHECKING:
    from wslab.harness.events import ProcessingQueue
    from wslab.harness.session import Session

log = logging.getLogger("wslab.server")

COUNTERS = (
    "connections_total", "connections_failed", "connections_rejected", "messages_sent",
    "messages_received", "messages_dropped", "frames_sent", "frames_received",
    "payload_bytes_sent", "compressed_bytes_in", "compressed_bytes_out", "closes_1007",
    "closes_1008", "closes_1009", "closes_1013",
)
GAUGES = ("active", "queued", "rss_kib", "cpu_s")
PROCESSING = ("processing_items", "processing_batches", "processing_waiting",
              "processing_handler_s")
"""Exported when the server runs a processing queue (``LiveServer(processing=...)``)."""


@dataclass(slots=True)
class AlertRules:
    """Thresholds; ``None`` turns a rule off.

    Attributes:
        max_rss_mib: Server memory above this fires ``memory``.
        max_compression_ratio: A running ratio (compressed / original) above this, once
            100 kB went through the compressor, fires ``poor_compression``.
        max_failure_rate: Failed over attempted connections, above this after 20
            attempts, fires ``connection_failures``.
    """

    max_rss_mib: float | None = 1024.0
    max_compression_ratio: float | None = 0.9
    max_failure_rate: float | None = 0.05


@dataclass(slots=True)
class Alert:
    """One rule firing (a rule fires again only after it has cleared)."""

    t: float
    rule: str
    value: float
    threshold: float
    message: str


@dataclass
class LiveMetrics:
    """Counters and gauges of one live server process.

    Attributes:
        counts: Counters of what is done: closed connections' totals, and what the
            server counts as it happens.
        live: Figures of what is open now, read at every snapshot: a counter's name adds
            to that counter (e.g. bytes compressed so far on open connections), any other
            name (``queued``, the ``processing_*`` figures) is a gauge.
    """

    rules: AlertRules = field(default_factory=AlertRules)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    active: int = 0
    queued: int = 0
    live: Callable[[], Mapping[str, float]] | None = None
    series: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    _firing: set[str] = field(default_factory=set)
    _proc: psutil.Process = field(default_factory=psutil.Process)
    _start: float = field(default_factory=time.monotonic)

    def bump(self, name: str, by: int = 1) -> None:
        """Add to a counter."""
        self.counts[name] += by

    def compression_ratio(self) -> float | None:
        """Compressed bytes out of the compressor over bytes into it, so far."""
        row = self.snapshot()
        return _ratio(row)

    def snapshot(self) -> dict[str, Any]:
        """Every figure now, as one row."""
        mem = self._proc.memory_info()
        cpu = self._proc.cpu_times()
        row: dict[str, Any] = {"t": time.monotonic() - self._start, "active": self.active,
                               "queued": self.queued, "rss_kib": mem.rss // 1024,
                               "cpu_s": cpu.user + cpu.system}
        row.update(self.counts)
        if self.live is not None:
            for name, value in self.live().items():
                row[name] = row[name] + value if name in self.counts else value
        row["compression_ratio"] = _ratio(row)
        return row

    def sample(self) -> dict[str, Any]:
        """Snapshot into the time series and check the alert rules."""
        row = self.snapshot()
        self.series.append(row)
        self._check(row)
        return row

    def frame(self) -> pd.DataFrame:
        """The sampled time series, one row per sample."""
        return pd.DataFrame(self.series)

    def _check(self, row: dict[str, Any]) -> None:
        r = self.rules
        attempts = row["connections_total"] + row["connections_failed"]
        checks = [
            ("memory", row["rss_kib"] / 1024, r.max_rss_mib, True),
            ("poor_compression", row["compression_ratio"] or 0.0, r.max_compression_ratio,
             row["compressed_bytes_in"] >= 100_000),
            ("connection_failures", row["connections_failed"] / attempts if attempts else 0.0,
             r.max_failure_rate, attempts >= 20),
        ]
        for rule, value, threshold, armed in checks:
            if threshold is None:
                continue
            if armed and value > threshold:
                if rule not in self._firing:
                    self._firing.add(rule)
                    alert = Alert(row["t"], rule, float(value), float(threshold),
                                  f"alert {rule}: {value:.4g} > {threshold:.4g}")
                    self.alerts.append(alert)
                    log.warning(alert.message)
            else:
                self._firing.discard(rule)

    def prometheus(self, extra: Mapping[str, int | float | str] | None = None) -> bytes:
        """The current figures in the Prometheus text exposition format.

        Args:
            extra: More figures (e.g. admission control's counters), exported as
                ``wslab_admission_<name>``; a text value becomes a ``state`` label.
        """
        registry = CollectorRegistry()
        for name, value in (extra or {}).items():
            key = "".join(c if c.isalnum() else "_" for c in name)
            if isinstance(value, str):
                state = Gauge(f"wslab_admission_{key}", f"admission {name} (1 = current)",
                              ["state"], registry=registry)
                state.labels(state=value).set(1.0)
            else:
                Gauge(f"wslab_admission_{key}", f"admission {name}",
                      registry=registry).set(float(value))
        row = self.snapshot()
        for name in (*COUNTERS, *GAUGES, *(p for p in PROCESSING if p in row)):
            gauge = Gauge(f"wslab_{name}", f"wslab server {name.replace('_', ' ')}",
                          registry=registry)
            gauge.set(float(row[name]))
        ratio = row["compression_ratio"]
        gauge = Gauge("wslab_compression_ratio", "compressed over original bytes",
                      registry=registry)
        gauge.set(float("nan") if ratio is None else ratio)
        return generate_latest(registry)


def open_figures(sessions: Iterable[Session],
                 processing: ProcessingQueue | None = None) -> dict[str, float]:
    """What open connections hold and did so far (a :attr:`LiveMetrics.live` source).

    Closed connections' totals are in the counters already; these are added to them.
    """
    queued = dropped = into = out = 0
    for session in sessions:
        queued += session.queued
        dropped += session.dropped
        if session.ext is not None:
            into += session.ext.compressor.bytes_in
            out += session.ext.compressor.bytes_out
    figures: dict[str, float] = {"queued": queued, "messages_dropped": dropped,
                                 "compressed_bytes_in": into, "compressed_bytes_out": out}
    if processing is not None:
        figures.update({"processing_items": processing.items,
                        "processing_batches": processing.batches,
                        "processing_waiting": processing.waiting,
                        "processing_handler_s": processing.handler_ns / 1e9})
    return figures


def closing_code(ws: Any) -> int | None:
    """The code a closed connection ended with, whoever closed it: the server's own when
    it closed first (a peer it fails, e.g. for a message past ``max_size``, never answers
    with a close frame, so the library's ``close_code`` would say 1006)."""
    protocol = ws.protocol
    sent, received = protocol.close_sent, protocol.close_rcvd
    if sent is not None and (received is None or not protocol.close_rcvd_then_sent):
        return int(sent.code)
    return ws.close_code  # type: ignore[no-any-return]


def _ratio(row: Mapping[str, Any]) -> float | None:
    into = row["compressed_bytes_in"]
    return float(row["compressed_bytes_out"] / into) if into else None


if TYPE_CHECKING:
    _Base = Recorder
else:
    _Base = object


class _Metering(_Base):
    """Counts what a recorder logs into ``counts`` (a :class:`LiveMetrics`' counters)."""

    __slots__ = ()
    counts: dict[str, int]

    def on_sent_frame(self, conn: str, direction: str, messages: list[Any], frame: int,
                      t_flushed: float) -> None:
        """Count one data frame that left, its messages and their payload bytes; log it."""
        counts = self.counts
        counts["frames_sent"] += 1
        counts["messages_sent"] += len(messages)
        counts["payload_bytes_sent"] += (len(messages[0].payload) if len(messages) == 1
                                         else sum(len(m.payload) for m in messages))
        super().on_sent_frame(conn, direction, messages, frame, t_flushed)

    def on_received_frame(self, conn: str, direction: str, t_recv: float,
                          payloads: list[tuple[bytes, bool]], frame: int) -> list[int]:
        """Count one data frame that arrived and its messages; log them."""
        counts = self.counts
        counts["frames_received"] += 1
        counts["messages_received"] += len(payloads)
        return super().on_received_frame(conn, direction, t_recv, payloads, frame)

    def on_received(self, conn: str, direction: str, t_recv: float, payload: bytes,
                    frame: int) -> int:
        """Count a frame that carried one message; log it."""
        counts = self.counts
        counts["frames_received"] += 1
        counts["messages_received"] += 1
        return super().on_received(conn, direction, t_recv, payload, frame)


class _MeteredRecorder(_Metering, Recorder):
    __slots__ = ("counts",)


class _MeteredCountingRecorder(_Metering, CountingRecorder):
    __slots__ = ("counts",)


def metered_recorder(counts: dict[str, int], *, record: bool = True) -> Recorder:
    """A recorder that also counts every frame and message into ``counts``.

    Args:
        counts: The counters to add to (:attr:`LiveMetrics.counts`).
        record: Keep a row per message (:class:`~wslab.harness.recorder.Recorder`) or
            counts only (:class:`~wslab.harness.recorder.CountingRecorder`).
    """
    recorder = _MeteredRecorder() if record else _MeteredCountingRecorder()
    recorder.counts = counts
    return recorder
