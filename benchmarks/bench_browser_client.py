"""A real browser as the client, beside wslab's Python load client, on one trace and server.

Both clients run through ``wslab bench`` (``run_bench``) against wslab's own server with the
same config (the library's defaults, held to a 15-bit client window as a browser
recommendation is: ``holdable_config(..., "browser")``), on the same stretch of the bundled
``game`` trace (messages both ways, text), loopback, two connections:

- paced: the trace at 10x its speed (about 1,100 messages per second per connection, both
  ways): latency p50 and p99 of every message (hand-off to receipt, both directions), and
  bytes against the simulator's prediction for each run's own negotiated parameters (the
  browser's side modelled as Chromium compresses, ``browser_model.py``). Targets: bytes
  within 1 % of the prediction each way, nothing lost, duplicated or reordered.
- flood: the same stretch with every message due at once (speed 10^6): messages per second
  from the first hand-off to the last receipt, what each client carries when nothing waits
  on a schedule.

The browser's figures include the tap (``browser_tap.py``), one more loopback hop each way,
and Chromium's own path (renderer, network service); the load client's socket is its own.
Runs go in turns (browser, load client, browser, ...: 3 turns in quick mode, 5 in the full
run, after one untimed run of each); each figure is the median of its turns and each ratio
the median of the per-turn ratios. Quick mode replays 3 s of sped-up trace, the full run
8 s.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import main, median, row, turn_ratio

from wslab.config import TuningConfig
from wslab.harness.bench import BenchOptions, run_bench
from wslab.tune.clients import holdable_config

DATA = Path(__file__).resolve().parents[1] / "data"
TRACE = DATA / "game.jsonl.zst"
MODES = {"paced": 10.0, "flood": 1e6}
CLIENTS = ("chromium", "load")


def _run(client: str, speed: float, duration: float) -> dict[str, Any]:
    config = holdable_config(TuningConfig(), "browser")
    result = run_bench(TRACE, config, BenchOptions(
        connections=2, duration=duration * MODES["paced"] / speed, speed=speed,
        drain_timeout=3.0, client=client))
    s, p, m = result.summary, result.summary["predicted"], result.messages
    span = float(m["t_recv"].max() - m["t_handoff"].min())
    out = {"p50": s["latency_ms"]["p50"], "p99": s["latency_ms"]["p99"],
           "msg_s": s["messages"] / span if span > 0 else float("nan"),
           "faults": s["lost"] + s["duplicated"] + s["reordered"] + s["connection_errors"],
           "messages": s["messages"]}
    for d in ("s2c", "c2s"):
        out[f"bytes_{d}"] = (s["by_dir"][d]["compressed_bytes"]
                             / p["by_dir"][d]["compressed_bytes"])
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    duration = 3.0 if quick else 8.0
    repeats = 3 if quick else 5
    figures: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for mode, speed in MODES.items():
        for client in CLIENTS:  # one untimed run of each
            _run(client, speed, duration)
        for _ in range(repeats):
            for client in CLIENTS:
                figures.setdefault((mode, client), []).append(_run(client, speed, duration))

    def med(mode: str, client: str, key: str) -> float:
        return median(f[key] for f in figures[(mode, client)])

    def ratio(mode: str, key: str) -> float:
        return turn_ratio([f[key] for f in figures[(mode, "chromium")]],
                          [f[key] for f in figures[(mode, "load")]])

    rows = []
    turns = f"median of {repeats} turns, 2 connections, game x10"
    for key, label in (("p50", "latency p50"), ("p99", "latency p99")):
        rows.append(row("browser_client", f"paced: {label} ms, Chromium vs load client",
                        med("paced", "chromium", key), "ms", peer="wslab load client",
                        peer_value=med("paced", "load", key), ratio=ratio("paced", key),
                        note=turns))
    rows.append(row("browser_client", "flood: msg/s, Chromium vs load client",
                    med("flood", "chromium", "msg_s"), "msg/s", peer="wslab load client",
                    peer_value=med("flood", "load", "msg_s"), ratio=ratio("flood", "msg_s"),
                    note=f"median of {repeats} turns, every message due at once"))
    for d, words in (("c2s", "client to server"), ("s2c", "server to client")):
        mine = [f[f"bytes_{d}"] for f in figures[("paced", "chromium")]]
        peer = [f[f"bytes_{d}"] for f in figures[("paced", "load")]]
        worst = max(abs(v - 1) for v in mine)
        rows.append(row("browser_client", f"bytes {words}: Chromium measured / simulated",
                        median(mine), "ratio", peer="load client measured / simulated",
                        peer_value=median(peer), ratio=median(mine) / median(peer),
                        target="within 1 % in every run", ok=worst <= 0.01,
                        note=f"worst run {worst * 100:.2f} % off"))
    faults = sum(f["faults"] for runs in figures.values() for f in runs)
    rows.append(row("browser_client", "lost + duplicated + reordered + failed connections",
                    float(faults), "count", target="0 in every run", ok=faults == 0,
                    note=f"{sum(len(v) for v in figures.values())} runs"))
    return rows


if __name__ == "__main__":
    main(run)
