"""Fidelity: the simulator's prediction against a live run of the same slice of each trace,
on batched configs, where live timing can change how messages are grouped into frames.

Without batching every message is one frame both live and simulated, so frame counts agree
by construction and prove nothing. With batching the simulator groups messages on the
trace's virtual clock and the live harness on the event loop's: a message replayed a
little late, or a flush timer that fires late, can land in the next frame, and every
later frame boundary may shift. So each bundled trace's first messages (400 in quick
mode, 3,000 in the full run, sped up to play in a few seconds, dense enough for several
messages per frame) run live with ``wslab.harness.bench.run_bench`` (server, client and
link shaper in their own processes, permessage-deflate 12/5) under each batched strategy:

- ``time``: one frame per 16 ms window;
- ``hybrid``: 16 ms, or sooner at 16 KiB / 64 messages;
- ``priority``: critical at once, normal per 16 ms, background per 250 ms.

Each row is the measured figure with the simulated one as its peer, and ``deviation_pct``
says how far live is from the prediction (100 * (live / simulated - 1)):

- predicted messages per data frame: must exceed 1, or the slice did not batch and the
  frame check below would be the trivial one again;
- data frames and ws bytes (RFC 6455 frame bytes, both directions): targets
  :data:`FRAMES_TOLERANCE` and :data:`BYTES_TOLERANCE` (bytes move less than frames: a
  message that slips into the next frame moves a frame header, and deflate's context
  carries over either way);
- TCP data segments: context only (the kernel also counts the handshake and control
  frames, and live segments follow loopback's MSS, not the modelled link's);
- median latency (batch wait included): on the shaped link (10 Mbit/s each way, 40 ms
  RTT) within 25 %; on loopback context only.

One row per strategy gives the largest frame deviation over the traces. Quick mode runs
the shaped link and the first three traces; the full run adds loopback and every trace.
Every run must also deliver every message once and in order (lost, duplicated and
reordered summed in one row, target 0).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import main, row, shaped_link_file

from wslab.analysis.bundled import DATA_DIR
from wslab.config import TuningConfig
from wslab.harness.bench import BenchOptions, run_bench
from wslab.traces.io import read_trace

FRAMES_TOLERANCE = 0.05
BYTES_TOLERANCE = 0.02
BATCHED: dict[str, dict[str, Any]] = {
    "time": {"batching.strategy": "time", "batching.interval_ms": 16},
    "hybrid": {"batching.strategy": "hybrid", "batching.interval_ms": 16,
               "batching.max_bytes": 16384, "batching.max_messages": 64},
    "priority": {"batching.strategy": "priority"},
}


def _deviation(value: float, peer: float) -> float | None:
    return 100.0 * (value / peer - 1.0) if peer else None


def _within(value: float, peer: float, tolerance: float) -> bool:
    return peer > 0 and abs(value / peer - 1) <= tolerance


def _slice(path: Path, count: int, seconds: float) -> tuple[float, float]:
    """Speed-up and duration that play the first ``count`` messages in ``seconds``."""
    messages = read_trace(path).messages
    last = messages[min(count, len(messages)) - 1].t - messages[0].t
    return max(last / seconds, 1e-6), seconds


def _trace_rows(name: str, link_label: str, strategy: str, result: Any, shaped: bool
                ) -> tuple[list[dict[str, Any]], int, float]:
    s, p = result.summary, result.predicted
    label = f"{name}, {link_label}, {strategy}"
    extra = {"section": f"{link_label}, {strategy} batching: measured vs simulated",
             "trace": name, "link": link_label, "strategy": strategy,
             "messages": s["messages"]}
    per_frame = p["messages"] / p["frames"] if p["frames"] else 0.0
    frames_dev = _deviation(s["frames"], p["frames"])
    rows = [
        row("fidelity", f"{label}: messages per frame (simulated)", per_frame, "msg/frame",
            target="> 1 (the slice batches)", ok=per_frame > 1,
            note=f"live {s['messages'] / s['frames']:.2f}" if s["frames"] else "", **extra),
        row("fidelity", f"{label}: data frames", s["frames"], "frames",
            peer="simulator", peer_value=p["frames"],
            target=f"within {FRAMES_TOLERANCE:.0%}",
            ok=_within(s["frames"], p["frames"], FRAMES_TOLERANCE),
            deviation_pct=frames_dev, **extra),
        row("fidelity", f"{label}: ws bytes", s["ws_bytes"], "bytes",
            peer="simulator", peer_value=p["ws_bytes"],
            target=f"within {BYTES_TOLERANCE:.0%}",
            ok=_within(s["ws_bytes"], p["ws_bytes"], BYTES_TOLERANCE),
            deviation_pct=_deviation(s["ws_bytes"], p["ws_bytes"]), **extra),
        row("fidelity", f"{label}: TCP data segments", s["tcp_segments"],
            "segments", peer="simulator", peer_value=p["tcp_segments"], **extra),
    ]
    p50, sim50 = s["latency_ms"]["p50"], p["latency_ms"]["p50"]
    rows.append(row("fidelity", f"{label}: p50 latency", p50, "ms",
                    peer="simulator", peer_value=sim50,
                    target="within 25 %" if shaped else "",
                    ok=_within(p50, sim50, 0.25) if shaped else None,
                    note=f"p99 {s['latency_ms']['p99']:.1f} vs "
                         f"{p['latency_ms']['p99']:.1f} ms", **extra))
    faults = int(s["lost"] + s["duplicated"] + s["reordered"])
    return rows, faults, abs(frames_dev) if frames_dev is not None else float("inf")


def run(quick: bool) -> list[dict[str, Any]]:
    count, seconds = (400, 1.5) if quick else (3000, 6.0)
    rows: list[dict[str, Any]] = []
    faults = 0
    runs = 0
    traces = sorted(DATA_DIR.glob("*.jsonl.zst"))
    if quick:
        traces = traces[:3]
    with tempfile.TemporaryDirectory() as tmp:
        links = [(None, "loopback", False),
                 (str(shaped_link_file(Path(tmp))), "10 Mbit/s 40 ms", True)]
        for link, label, shaped in links[1:] if quick else links:
            for strategy, changes in BATCHED.items():
                config = TuningConfig().updated(changes)
                worst = 0.0
                for path in traces:
                    name = path.name.split(".")[0]
                    speed, duration = _slice(path, count, seconds)
                    result = run_bench(path, config, BenchOptions(
                        link=link, speed=speed, duration=duration, drain_timeout=3.0))
                    got, bad, dev = _trace_rows(name, label, strategy, result, shaped)
                    rows += got
                    faults += bad
                    runs += 1
                    worst = max(worst, dev)
                rows.append(row("fidelity", f"{label}, {strategy}: largest frame deviation",
                                worst, "%", target=f"<= {FRAMES_TOLERANCE:.0%}",
                                ok=worst <= 100 * FRAMES_TOLERANCE,
                                section=f"{label}, {strategy} batching: measured vs simulated",
                                note=f"over {len(traces)} traces"))
    rows.append(row("fidelity", "lost + duplicated + reordered, all runs", faults, "messages",
                    target="0", ok=faults == 0, section="integrity",
                    note=f"{runs} live runs"))
    return rows


if __name__ == "__main__":
    main(run)
