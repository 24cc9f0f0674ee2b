"""Fidelity: the simulator's prediction against a live run of the same slice of each trace.

For every bundled trace, its first messages (400 in quick mode, 3,000 in the full run) are
sped up to play in a few seconds and run live with ``wslab.harness.bench.run_bench``
(server, client and link shaper in their own processes, default config: permessage-deflate
12/5, no batching), which also simulates the same slice with the same config and link.
Each row is the measured figure with the simulated one as its peer:

- data frames and ws bytes (RFC 6455 frame bytes, both directions): target within 1 %;
- TCP data segments: context only (the kernel also counts the handshake and control
  frames, and live segments follow loopback's MSS, not the modelled link's);
- median latency: on the shaped link (10 Mbit/s each way, 40 ms RTT) within 25 %; on
  loopback context only (the model has no event loop or scheduler to wait for).

Quick mode runs the shaped link only (it carries every target); the full run adds loopback.
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
from wslab.harness.bench import run_bench
from wslab.traces.io import read_trace


def _within(value: float, peer: float, tolerance: float) -> bool:
    return peer > 0 and abs(value / peer - 1) <= tolerance


def _slice(path: Path, count: int, seconds: float) -> tuple[float, float]:
    """Speed-up and duration that play the first ``count`` messages in ``seconds``."""
    messages = read_trace(path).messages
    last = messages[min(count, len(messages)) - 1].t - messages[0].t
    return max(last / seconds, 1e-6), seconds


def _trace_rows(name: str, link_label: str, result: Any, shaped: bool
                ) -> tuple[list[dict[str, Any]], int]:
    s, p = result.summary, result.predicted
    section = f"{link_label}: measured vs simulated"
    extra = {"section": section, "trace": name, "link": link_label,
             "messages": s["messages"]}
    rows = [
        row("fidelity", f"{name}, {link_label}: data frames", s["frames"], "frames",
            peer="simulator", peer_value=p["frames"], target="within 1 %",
            ok=_within(s["frames"], p["frames"], 0.01), **extra),
        row("fidelity", f"{name}, {link_label}: ws bytes", s["ws_bytes"], "bytes",
            peer="simulator", peer_value=p["ws_bytes"], target="within 1 %",
            ok=_within(s["ws_bytes"], p["ws_bytes"], 0.01), **extra),
        row("fidelity", f"{name}, {link_label}: TCP data segments", s["tcp_segments"],
            "segments", peer="simulator", peer_value=p["tcp_segments"], **extra),
    ]
    p50, sim50 = s["latency_ms"]["p50"], p["latency_ms"]["p50"]
    rows.append(row("fidelity", f"{name}, {link_label}: p50 latency", p50, "ms",
                    peer="simulator", peer_value=sim50,
                    target="within 25 %" if shaped else "",
                    ok=_within(p50, sim50, 0.25) if shaped else None,
                    note=f"p99 {s['latency_ms']['p99']:.1f} vs "
                         f"{p['latency_ms']['p99']:.1f} ms", **extra))
    return rows, int(s["lost"] + s["duplicated"] + s["reordered"])


def run(quick: bool) -> list[dict[str, Any]]:
    count, seconds = (400, 1.5) if quick else (3000, 6.0)
    config = TuningConfig()
    rows: list[dict[str, Any]] = []
    faults = 0
    runs = 0
    traces = sorted(DATA_DIR.glob("*.jsonl.zst"))
    with tempfile.TemporaryDirectory() as tmp:
        links = [(None, "loopback", False),
                 (str(shaped_link_file(Path(tmp))), "10 Mbit/s 40 ms", True)]
        for link, label, shaped in links[1:] if quick else links:
            for path in traces:
                name = path.name.split(".")[0]
                speed, duration = _slice(path, count, seconds)
                result = run_bench(path, config, link=link, speed=speed, duration=duration,
                                   drain_timeout=3.0)
                got, bad = _trace_rows(name, label, result, shaped)
                rows += got
                faults += bad
                runs += 1
    rows.append(row("fidelity", "lost + duplicated + reordered, all runs", faults, "messages",
                    target="0", ok=faults == 0, section="integrity",
                    note=f"{runs} live runs"))
    return rows


if __name__ == "__main__":
    main(run)
