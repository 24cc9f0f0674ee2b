"""Batching gain, live: messages per second and TCP segments per message, per strategy.

The bundled ``game`` trace's messages (payloads, types, priorities; all sent client to
server) go through ``wslab.harness.bench.run_bench`` (server, client and optional link
shaper, each in its own process), once per strategy: time, size, count, hybrid and
priority with the config defaults (16 ms, 16 KiB, 64 messages, per-class holds
0/16/250 ms), each against unbatched. Compression is off, so only batching differs.
Two links: loopback, and the shaper at 10 Mbit/s each way with 40 ms RTT (no jitter, no
loss). Two workloads:

- **flood**: offered at 200,000 messages per second, more than any strategy carries;
  messages per second = delivered / (last arrival - first hand-over). A flood lets the
  kernel and asyncio coalesce unbatched writes too, so this is batching's least gain.
- **paced**: offered at 2,000 messages per second; TCP data segments per message (the
  client socket's ``tcp_data_segs_out`` from ``TCP_INFO``, handshake and close included,
  over the messages sent) and the median latency, the price batching asks. On the shaped
  link the counter is the client's loopback hop into the shaper.

Quick mode runs the flood on loopback and the paced load on the shaped link; the full run
runs both workloads on both links. Integrity (lost, duplicated, reordered, dropped) is
summed over every run and must be 0.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import main, row, shaped_link_file

from wslab.analysis.bundled import DATA_DIR
from wslab.config import TuningConfig
from wslab.harness.bench import BenchOptions, run_bench
from wslab.traces.io import read_trace, write_trace
from wslab.traces.model import Trace

FLOOD = 200_000.0  # messages per second offered: more than any strategy carries
PACED = 2_000.0
STRATEGIES = ("none", "time", "size", "count", "hybrid", "priority")


def game_trace(n: int, rate: float, path: Path) -> Path:
    """The game trace's first ``n`` messages, all client to server, ``rate`` per second."""
    source = read_trace(DATA_DIR / "game.jsonl.zst")
    messages = [dataclasses.replace(m, t=i / rate, dir="c2s", conn=None)
                for i, m in enumerate(source.messages[:n])]
    write_trace(Trace(messages, source.meta), path)
    return path


def _measure(trace: Path, config: TuningConfig, link: str | None, n: int) -> dict[str, float]:
    result = run_bench(trace, config, BenchOptions(link=link, drain_timeout=5.0))
    m = result.messages
    delivered = m[m["delivered"]] if "delivered" in m else m
    span = float(delivered["t_recv"].max() - m["t_handoff"].min())
    s = result.summary
    segments = s["by_dir"]["c2s"]["tcp_segments"]
    return {"msg_s": len(delivered) / span if span > 0 else float("nan"),
            "segs_per_msg": segments / n, "frames": s["frames"],
            "faults": s["lost"] + s["duplicated"] + s["reordered"] + s.get("dropped", 0),
            "p50_ms": s["latency_ms"]["p50"]}


def _rows(workload: str, label: str, n: int, got: dict[str, dict[str, float]]
          ) -> list[dict[str, Any]]:
    plain = got["none"]
    section = f"{label}, {workload} ({n} messages): each strategy vs unbatched"
    rows = []
    for strategy in STRATEGIES[1:]:
        r = got[strategy]
        extra: dict[str, Any] = {"section": section, "link": label, "workload": workload,
                 "strategy": strategy, "messages": n}
        note = f"{r['frames']:.0f} frames vs {plain['frames']:.0f}"
        if workload == "flood":
            rows.append(row("batching", f"{label} flood, {strategy}: msg/s", r["msg_s"],
                            "msg/s", peer="unbatched", peer_value=plain["msg_s"], note=note,
                            **extra))
        rows.append(row("batching", f"{label} {workload}, {strategy}: TCP segments/msg",
                        r["segs_per_msg"], "segments/msg", peer="unbatched",
                        peer_value=plain["segs_per_msg"],
                        note=note if workload == "paced" else "", **extra))
        if workload == "paced":
            rows.append(row("batching", f"{label} paced, {strategy}: p50 latency",
                            r["p50_ms"], "ms", peer="unbatched", peer_value=plain["p50_ms"],
                            **extra))
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    n_flood, n_paced = (4000, 1000) if quick else (20_000, 4000)
    base = TuningConfig().updated({"compression.algorithm": "none"})
    rows: list[dict[str, Any]] = []
    faults = 0.0
    runs = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shaped = shaped_link_file(work)
        links = [(None, "loopback"), (str(shaped), "10 Mbit/s 40 ms")]
        plan = ([("flood", *links[0]), ("paced", *links[1])] if quick else
                [(w, *link) for link in links for w in ("flood", "paced")])
        for workload, link, label in plan:
            n, rate = (n_flood, FLOOD) if workload == "flood" else (n_paced, PACED)
            trace = game_trace(n, rate, work / f"{workload}-{n}.jsonl")
            got: dict[str, dict[str, float]] = {}
            for strategy in STRATEGIES:
                got[strategy] = _measure(trace, base.updated({"batching.strategy": strategy}),
                                         link, n)
                faults += got[strategy]["faults"]
                runs += 1
            rows += _rows(workload, label, n, got)
    rows.append(row("batching", "lost + duplicated + reordered + dropped, all runs", faults,
                    "messages", target="0", ok=faults == 0, section="integrity",
                    note=f"{runs} live runs"))
    return rows


if __name__ == "__main__":
    main(run)
