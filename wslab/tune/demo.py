"""The main job, end to end: analyse, sweep, validate live, recommend, export, report.

What lives here: :func:`run_demo`, the sequence ``wslab demo`` (and ``make demo``) runs on a
bundled trace with embedded defaults, writing everything into one folder. Every step is a
call into the layers below; this module only chooses the defaults and the order.

The working trace is the first ``messages`` messages of the chosen trace replayed
``speedup`` times faster than recorded (the bundled traces are a single, rather quiet
connection; speeding them up stands for a busier one). The simulator sweeps that trace;
the top candidates then run live on loopback through the link shaper with the very same
trace, so each live row has a simulated twin with identical timing.

The space (:data:`DEMO_SPACE`) asks for every combination of its lists; the sweep folds
the combinations that cannot differ (compression settings with compression off, the
interval of the ``priority`` strategy, ...; ``canonical.py``) and simulates each distinct
config once. It holds ``zstd-stream`` so that, for the default ``clients: browser``, the
recommendation says what zstd would have saved; the sweep starts from the config a browser
population can be held to (``clients.holdable_config``: a 15-bit client window).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from wslab.atomic import atomic_write_text
from wslab.config import TuningConfig
from wslab.traces.io import read_trace, write_trace
from wslab.traces.model import Trace
from wslab.tune.clients import check_clients, holdable_config
from wslab.tune.space import Space
from wslab.tune.sweep import run_sweep
from wslab.tune.validate import best_candidates, validate_live

DEMO_SPACE: dict[str, Any] = {
    "batching.strategy": ["none", "hybrid", "priority"],
    "batching.interval_ms": [5, 16, 50],
    "compression.algorithm": ["none", "permessage-deflate", "zstd-stream"],
    "compression.server_max_window_bits": [9, 12, 15],
    "compression.mem_level": [4, 8],
    "compression.policy": ["always", "adaptive"],
}

Say = Callable[[str], None]


@dataclass
class DemoResult:
    """What the demo produced: the files, the tables and the recommendation."""

    files: dict[str, Path] = field(default_factory=dict)
    results: pd.DataFrame | None = None
    recommendation: Any = None
    timings: dict[str, float] = field(default_factory=dict)


def working_trace(source: Path, messages: int, speedup: float) -> Trace:
    """The first ``messages`` of ``source``, with time divided by ``speedup``."""
    trace = read_trace(source)
    head = trace.messages[:messages]
    base = head[0].t if head else 0.0
    return Trace([dataclasses.replace(m, t=(m.t - base) / speedup) for m in head],
                 trace.meta)


def run_demo(trace_path: Path, out: Path, *, link: str = "4g", messages: int = 4000,
             speedup: float = 16.0, max_p99_ms: float | None = 250.0,
             max_kib_per_conn: float | None = 64.0, max_cpu_us_per_msg: float | None = 50.0,
             live: int = 3, space: Space | None = None, clients: str = "browser",
             say: Say | None = None) -> DemoResult:
    """Run the whole tuning loop on one trace; write every result into ``out``.

    Args:
        trace_path: The trace (a bundled one by default in the CLI).
        out: Output folder.
        link: Link profile the sweep and the live runs use.
        messages: How many leading messages of the trace to use.
        speedup: Replay this many times faster than recorded.
        max_p99_ms: Constraint on p99 latency.
        max_kib_per_conn: Constraint on compression memory per connection.
        max_cpu_us_per_msg: Constraint on compression CPU per message.
        live: How many top candidates to validate live (0: none); each replays the whole
            working trace, so its simulated twin is the sweep's row for the same point.
        space: The search space (default: :data:`DEMO_SPACE`).
        clients: Who must negotiate the recommendation: ``browser`` (default) or
            ``custom`` (see ``wslab/tune/clients.py``).
        say: Progress lines.
    """
    from wslab.analysis import analyse, analysis_json
    from wslab.tune.export import export
    from wslab.tune.recommend import recommend
    from wslab.tune.report import sim_vs_live, write_report

    clients = check_clients(clients)
    tell = say or (lambda _m: None)
    result = DemoResult()
    out.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        result.timings[name] = now - clock
        clock = now

    trace = working_trace(trace_path, messages, speedup)
    work_trace = out / "trace.jsonl.zst"
    write_trace(trace, work_trace)
    result.files["trace"] = work_trace
    tell(f"trace: {len(trace)} messages of {trace_path.name}, {speedup:g}x faster "
         f"({trace.duration:.1f} s)")

    analysis = analyse(trace)
    atomic_write_text(out / "analysis.json", json.dumps(analysis_json(analysis), indent=2))
    result.files["analysis"] = out / "analysis.json"
    lap("analyse")
    tell(f"analysed {len(analysis)} message types")

    base = holdable_config(TuningConfig().updated({"link.profile": link}), clients)
    points = (space or Space.from_dict(DEMO_SPACE, where="demo space")).grid()
    table = run_sweep(work_trace, points, out / "sweep.parquet", base=base,
                      progress=lambda d, t: tell(f"sweep {d}/{t}") if d == t else None)
    tell(f"sweep: {len(points)} requested points, {len(table)} distinct configs simulated")
    lap("sweep")
    limits = {"max_p99_ms": max_p99_ms, "max_kib_per_conn": max_kib_per_conn,
              "max_cpu_us_per_msg": max_cpu_us_per_msg}
    def choose(rows: pd.DataFrame) -> Any:
        return recommend(rows, trace=trace, max_p99_ms=max_p99_ms,
                         max_kib_per_conn=max_kib_per_conn,
                         max_cpu_us_per_msg=max_cpu_us_per_msg, clients=clients)

    rec = choose(table)
    lap("recommend (sim)")

    if live and rec.feasible:
        live_rows = validate_live(work_trace, best_candidates(table, rec.objective, limits,
                                                              live, rec.chosen["point"],
                                                              clients),
                                  link, tell)
        table = pd.concat([table, pd.DataFrame(live_rows)], ignore_index=True)
        lap("live validation")
        rec = choose(table)

    from wslab.tables import write_table

    write_table(table, out / "results.parquet")
    write_table(table, out / "results.csv")
    result.files["results"] = out / "results.parquet"
    result.results = table
    result.recommendation = rec
    atomic_write_text(out / "recommendation.json", json.dumps(rec.to_dict(), indent=2))
    result.files["recommendation"] = out / "recommendation.json"
    if rec.feasible:
        rec.config.save(out / "recommended.yaml")
        result.files["config"] = out / "recommended.yaml"
        for path in export(rec.config, "all", out / "export"):
            result.files[f"export:{path.relative_to(out / 'export')}"] = path
    lap("export")
    report = write_report(table, out / "report.html", recommendation=rec,
                          analysis_df=analysis, sim_vs_live_df=sim_vs_live(table),
                          title=f"wslab demo: {trace_path.name} on {link}")
    result.files["report"] = report
    lap("report")
    return result
