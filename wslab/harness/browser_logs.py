"""What a browser run produced, and the load client's logs it becomes.

What lives here: :class:`BrowserRun` (the page's results, the tap's view of each
connection, the page's :class:`PageClock`), :func:`frame_of` (the frame the page sends a
message in), and :func:`save_logs`, which writes the very files the load client leaves
(``client-sent``, ``client-received``, ``client-frames`` through a
:class:`~wslab.harness.loadlog.ColumnRecorder`, ``client-connections``) plus
``client-browser.json``, and :func:`read_agreed` / :func:`browser_figures`, which
``bench.py`` reads back. What must not live here: Playwright, the tap's relaying, the page.

How a page's run becomes those logs: a sent message is logged with the trace index the page
sent it under, its hand-off time (the page's stamp just before ``send()``, on the monotonic
clock), a sequence number per priority class in send order, and, from the tap, the wire
size of its frame's payload when Chromium set RSV1 on it (one frame per message, so the
tap's n-th data message is the page's n-th send); a received message by the content key of
the trace message it was named as (0 when it matched none, which the join counts as a
duplicate), its receive stamp and its frame number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wslab import envelopes
from wslab.harness.browser_tap import TappedConnection
from wslab.harness.loadlog import ColumnRecorder
from wslab.harness.recorder import message_key
from wslab.tables import read_table, write_table
from wslab.traces.model import Message, Trace


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


def frame_of(message: Message, envelope: str | None) -> tuple[bytes, bool]:
    """The payload of the frame the page sends ``message`` in, and whether it is text:
    the message itself, or the message alone in ``envelope``."""
    if envelope is None:
        return message.payload, message.is_text
    return (envelopes.encode(envelope, [message.payload], [message.is_text]),
            envelope in envelopes.TEXT_ENVELOPES)


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


def read_agreed(directory: Path, prefix: str = "client") -> str | None:
    """The ``Sec-WebSocket-Extensions`` the server answered (first connection that has one)."""
    conns = read_table(directory / f"{prefix}-connections.parquet")
    column = conns["extensions"] if "extensions" in conns else pd.Series(dtype=object)
    return next((str(a) for a in column.dropna()), None)


def browser_figures(directory: Path, conns: pd.DataFrame,
                    prefix: str = "client") -> dict[str, Any]:
    """What only a browser run has, for the bench's summary: Chromium's offer, its
    version, how late the page kept its schedule, its clock check, its CPU."""
    info = json.loads((directory / f"{prefix}-browser.json").read_text())
    first = conns.iloc[0] if len(conns) else pd.Series(dtype=object)
    return {"offered": first.get("offered"), "page_extensions": first.get("page_extensions"),
            "browser": info["browser"], "schedule_late_ms": info["schedule_late_ms"],
            "page_clock": info["clock"], "cross_origin_isolated": info["cross_origin_isolated"],
            "cpu_browser_s": info["cpu_s"]}
