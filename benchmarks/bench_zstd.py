"""zstd live against permessage-deflate live, on every bundled trace.

Issue 13: ``x-wslab-zstd`` runs live; this puts it beside the websockets library's default
permessage-deflate (window 12, memLevel 5, level 6) on the same trace, the same machine and
the same run, alternating configs so load elsewhere hits all of them alike. For each trace
and for ``zstd-stream`` (one context per connection, window 2^15) and ``zstd-dict``
(per-message frames with per-type dictionaries trained on the trace's prefix; both sides
replay only the messages after it, deflate too, so the bytes compare the same messages):

- **bytes**: live compressed payload bytes, zstd over deflate (lower is better), with the
  simulator's prediction for the zstd run beside it (target: within 1 %);
- **CPU**: the codecs' own CPU per message in the server and client processes, zstd over
  deflate.

Every row also checks integrity (lost, duplicated, reordered = 0). The figures are medians
of alternating runs (3 in quick mode on two traces, 3 in the full run on all six).

Memory per connection does not depend on the trace, so it is measured once, as DESIGN.md
defines it: the server's RSS growth divided by the connections held, in a ``wslab scale``
run of ``SCALE_CONNECTIONS`` connections that each received broadcasts (a zstd stream
allocates its window and tables on its first compressed message), deflate and
``zstd-stream`` alternating, beside the estimate the sweep uses (``memory_estimate_kib``).
``zstd-dict`` keeps no per-connection context (its per-message codecs and dictionaries are
held once per process), so its row is the estimate, which counts the dictionaries per
connection anyway.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import main, row

from wslab.config import TuningConfig
from wslab.harness.bench import BenchOptions, run_bench, scaled_trace
from wslab.sim.dictionaries import held_out
from wslab.traces.io import write_trace
from wslab.tune.sweep import memory_estimate_kib

DATA = Path(__file__).resolve().parents[1] / "data"
TRACES = ("chat", "game", "market", "telemetry", "sensor", "mixed")
CONNECTIONS = 4
SCALE_CONNECTIONS = 1000
SPEED = {"chat": 400.0, "game": 20.0, "market": 60.0, "telemetry": 2000.0, "sensor": 100.0,
         "mixed": 50.0}
DURATION_S = 4.0


def _configs() -> dict[str, TuningConfig]:
    deflate = TuningConfig()
    return {"deflate": deflate,
            "zstd-stream": deflate.updated({"compression.algorithm": "zstd-stream"}),
            "zstd-dict": deflate.updated({"compression.algorithm": "zstd-dict"})}


def _codec_us_per_msg(summary: dict[str, Any]) -> float:
    blocks = summary["by_dir"]
    msgs = summary["messages"] or 1
    return sum((blocks[d]["cpu_us_per_msg"] or 0.0) * blocks[d]["messages"]
               for d in ("s2c", "c2s")) / msgs


def _bench(path: Path, config: TuningConfig, speed: float,
           duration: float | None) -> dict[str, Any]:
    options = BenchOptions(connections=CONNECTIONS, duration=duration, speed=speed,
                           drain_timeout=3.0)
    return run_bench(path, config, options).summary


def _one_trace(name: str, repeats: int, tmp: Path) -> list[dict[str, Any]]:
    path = DATA / f"{name}.jsonl.zst"
    configs = _configs()
    # zstd-dict replays the messages after its dictionaries' training prefix; deflate
    # replays those very messages too for its comparison (a file of them, already scaled).
    held = tmp / f"{name}-held-out.jsonl"
    write_trace(held_out(scaled_trace(path, SPEED[name], DURATION_S)), held)
    plans = {"deflate": (path, configs["deflate"], SPEED[name], DURATION_S),
             "deflate-held-out": (held, configs["deflate"], 1.0, None),
             "zstd-stream": (path, configs["zstd-stream"], SPEED[name], DURATION_S),
             "zstd-dict": (path, configs["zstd-dict"], SPEED[name], DURATION_S)}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in plans}
    for _ in range(repeats):
        for label, (trace_path, config, speed, duration) in plans.items():
            runs[label].append(_bench(trace_path, config, speed, duration))
    return (_rows(name, "zstd-stream", configs["zstd-stream"], configs["deflate"],
                  runs["zstd-stream"], runs["deflate"])
            + _rows(name, "zstd-dict", configs["zstd-dict"], configs["deflate"],
                    runs["zstd-dict"], runs["deflate-held-out"]))


def _median(runs: list[dict[str, Any]], fn: Any) -> float:
    return float(statistics.median(fn(s) for s in runs))


def _rows(name: str, label: str, config: TuningConfig, deflate: TuningConfig,
          mine: list[dict[str, Any]], peer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    intact = all((s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
                 for s in mine + peer)
    same = all(s["messages"] == peer[0]["messages"] for s in mine + peer)
    z_bytes = _median(mine, lambda s: s["compressed_bytes"])
    d_bytes = _median(peer, lambda s: s["compressed_bytes"])
    predicted = _median(mine, lambda s: s["predicted"]["compressed_bytes"])
    z_cpu = _median(mine, _codec_us_per_msg)
    d_cpu = _median(peer, _codec_us_per_msg)
    dict_bytes = int(mine[0].get("predicted", {}).get("dictionary_bytes") or 0)
    gap = abs(z_bytes - predicted) / predicted if predicted else float("inf")
    common = {"trace": name, "algorithm": label, "connections": CONNECTIONS,
              "messages": mine[0]["messages"], "intact": intact,
              "same_messages_as_deflate": same}
    return [
        row("zstd", f"{name}: {label} live bytes vs deflate live", z_bytes, "bytes",
            peer="permessage-deflate (websockets defaults) live, same messages",
            peer_value=d_bytes, target="prediction within 1 %, nothing lost",
            ok=gap <= 0.01 and intact and same, predicted_bytes=predicted,
            prediction_gap=gap, **common),
        row("zstd", f"{name}: {label} codec CPU per message vs deflate", z_cpu, "us/msg",
            peer="permessage-deflate live", peer_value=d_cpu,
            estimate_kib=memory_estimate_kib(config, dict_bytes), **common),
    ]


def _memory(repeats: int) -> list[dict[str, Any]]:
    """Memory per connection held, zstd-stream against deflate, from real scale runs."""
    from wslab.harness.scale import ScaleOptions, run_scale

    configs = _configs()
    opts = ScaleOptions(connections=SCALE_CONNECTIONS, broadcasts=2, directs=0, idle_s=0.5)
    got: dict[str, list[float]] = {"deflate": [], "zstd-stream": []}
    lost: dict[str, int] = {"deflate": 0, "zstd-stream": 0}
    for _ in range(repeats):
        for label in got:
            summary = run_scale(configs[label], opts).summary
            got[label].append(float(summary["memory_per_connection_kib"]))
            lost[label] += int(summary.get("lost", 0) or 0)
    z, d = statistics.median(got["zstd-stream"]), statistics.median(got["deflate"])
    return [
        row("zstd", f"zstd-stream memory per connection vs deflate ({SCALE_CONNECTIONS:,} "
            "connections)", z, "KiB", peer="permessage-deflate (websockets defaults)",
            peer_value=d, estimate_kib=memory_estimate_kib(configs["zstd-stream"]),
            deflate_estimate_kib=memory_estimate_kib(configs["deflate"]),
            window_log=configs["zstd-stream"].compression.zstd_window_log,
            intact=lost["zstd-stream"] == 0 and lost["deflate"] == 0),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wslab-bench-zstd-") as tmp:
        for name in (("chat", "market") if quick else TRACES):
            rows += _one_trace(name, 3, Path(tmp))
    rows += _memory(3)
    return rows


if __name__ == "__main__":
    main(run)
