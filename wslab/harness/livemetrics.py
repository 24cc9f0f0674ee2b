"""Live server metrics: counters, a sampled time series, Prometheus text and alert rules.

What lives here: :class:`LiveMetrics`, the counters the server bumps as it works, a sampler
that snapshots them on an interval into rows (-> a pandas time series), the Prometheus
exposition served at ``/metrics`` (via ``prometheus_client``), and :class:`AlertRules`,
thresholds that fire as log lines and as events a notebook can show. The server decides
when to count; this module only keeps and reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psutil
from prometheus_client import CollectorRegistry, Gauge, generate_latest

log = logging.getLogger("wslab.server")

COUNTERS = (
    "connections_total", "connections_failed", "connections_rejected", "messages_sent",
    "messages_received", "messages_dropped", "frames_sent", "frames_received",
    "payload_bytes_sent", "compressed_bytes_in", "compressed_bytes_out", "closes_1007",
    "closes_1008", "closes_1009", "closes_1013",
)


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
    """Counters and gauges of one live server process."""

    rules: AlertRules = field(default_factory=AlertRules)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    active: int = 0
    queued: int = 0
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
        into = self.counts["compressed_bytes_in"]
        return self.counts["compressed_bytes_out"] / into if into else None

    def snapshot(self) -> dict[str, Any]:
        """Every figure now, as one row."""
        mem = self._proc.memory_info()
        cpu = self._proc.cpu_times()
        row: dict[str, Any] = {"t": time.monotonic() - self._start, "active": self.active,
                               "queued": self.queued, "rss_kib": mem.rss // 1024,
                               "cpu_s": cpu.user + cpu.system,
                               "compression_ratio": self.compression_ratio()}
        row.update(self.counts)
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
        for name in (*COUNTERS, "active", "queued", "rss_kib", "cpu_s"):
            gauge = Gauge(f"wslab_{name}", f"wslab server {name.replace('_', ' ')}",
                          registry=registry)
            gauge.set(float(row[name]))
        ratio = row["compression_ratio"]
        gauge = Gauge("wslab_compression_ratio", "compressed over original bytes",
                      registry=registry)
        gauge.set(float("nan") if ratio is None else ratio)
        return generate_latest(registry)
