"""``wslab report``: one self-contained HTML page from a sweep's results.

What lives here: the typer command function :func:`report` (options, loading, analysis of
the optional trace). What must not live here: page assembly or figures, which are
:mod:`wslab.tune.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wslab.cli.common import out
from wslab.cli.recommend_cmd import Clients, MaxCpu, MaxKib, MaxP99, Objective, Seed, TraceOpt


def report(
    results: Annotated[Path, typer.Argument(metavar="RESULTS",
                                            help="results table (.parquet or .csv)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the HTML page to write")] = (
        Path("report.html")),
    trace: TraceOpt = None,
    max_p99_ms: MaxP99 = None,
    max_kib_per_conn: MaxKib = None,
    max_cpu_us_per_msg: MaxCpu = None,
    objective: Objective = "ws_bytes_per_msg",
    seed: Seed = 0,
    clients: Clients = "browser",
    title: Annotated[str, typer.Option("--title", help="page title")] = "wslab tuning report",
    probe: Annotated[Path | None, typer.Option(
        "--probe", help="a wslab probe report (probe -o FILE) for its own section")] = None,
) -> None:
    """Write the frontier, the chosen point, sim vs live and per-type compression as HTML.

    With --trace the page also gets the per-type compression analysis of that trace, and
    baselines missing from the table are simulated on it. The page opens offline.
    """
    from wslab.tables import read_table
    from wslab.tune.recommend import recommend as choose
    from wslab.tune.report import write_report

    table = read_table(results)
    analysis = None
    loaded = None
    if trace is not None:
        from wslab.analysis import analyse
        from wslab.traces.io import read_trace

        loaded = read_trace(trace)
        analysis = analyse(loaded)
    rec = choose(table, max_p99_ms=max_p99_ms, max_kib_per_conn=max_kib_per_conn,
                 max_cpu_us_per_msg=max_cpu_us_per_msg, objective=objective, trace=loaded,
                 seed=seed, clients=clients, where=str(results))
    probed = None
    if probe is not None:
        import json

        from wslab.errors import WslabError

        try:
            probed = json.loads(probe.read_text())
        except (OSError, ValueError) as exc:
            raise WslabError(f"--probe {probe}: not a probe report ({exc})") from None
        if not isinstance(probed, dict) or "target" not in probed:
            raise WslabError(f"--probe {probe}: not a probe report (no target)")
    path = write_report(table, output, recommendation=rec, analysis_df=analysis, title=title,
                        probe=probed)
    size = path.stat().st_size / 1e6
    out.print(f"wrote {path} ({size:.1f} MB, opens offline)", markup=False)
