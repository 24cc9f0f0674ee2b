"""``wslab recommend``: pick one config from a sweep's results and say why.

What lives here: the typer command function :func:`recommend` (options, printing, writing
the chosen config) and the option definitions the report command shares. What must not live
here: choosing or explaining, which is :mod:`wslab.tune.recommend`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from wslab.cli.common import out, print_json

if TYPE_CHECKING:
    from wslab.tune.recommend import Recommendation

MaxP99 = Annotated[float | None, typer.Option(
    "--max-p99-ms", min=0, help="upper bound on p99 latency, ms")]
MaxKib = Annotated[float | None, typer.Option(
    "--max-kib-per-conn", min=0, help="upper bound on memory per connection, KiB")]
MaxCpu = Annotated[float | None, typer.Option(
    "--max-cpu-us-per-msg", min=0, help="upper bound on CPU per message, µs")]
Objective = Annotated[str, typer.Option(
    "--objective", help="column to minimise (ws_bytes_per_msg, tcp_bytes_per_msg, "
    "latency_p99_ms, cpu_us_per_msg, mem_kib_per_conn, ...)")]
TraceOpt = Annotated[Path | None, typer.Option(
    "--trace", help="the trace the sweep ran on: simulates baselines missing from the table")]
Seed = Annotated[int, typer.Option("--seed", help="link seed for simulated baselines "
                                   "(use the sweep's)")]
Clients = Annotated[str, typer.Option(
    "--clients", help="who must negotiate it: browser (leaves out zstd and client windows "
    "below 15 bits, and says what they would save) or custom")]


def recommend(
    results: Annotated[Path, typer.Argument(metavar="RESULTS",
                                            help="results table (.parquet or .csv)")],
    max_p99_ms: MaxP99 = None,
    max_kib_per_conn: MaxKib = None,
    max_cpu_us_per_msg: MaxCpu = None,
    objective: Objective = "ws_bytes_per_msg",
    trace: TraceOpt = None,
    seed: Seed = 0,
    clients: Clients = "browser",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="write the chosen config here (YAML, or JSON for .json)")] = None,
) -> None:
    """Choose the config from RESULTS that minimises the objective under the constraints.

    With --clients browser (the default) configs browsers cannot negotiate are left out,
    and the explanation says what the best of them would have saved.

    Exits 1 (after saying which constraint to relax, and by how much) when no point meets
    the constraints; nothing is written then.
    """
    from wslab.tables import read_table
    from wslab.tune.recommend import recommend as choose

    table = read_table(results)
    rec = choose(table, max_p99_ms=max_p99_ms, max_kib_per_conn=max_kib_per_conn,
                 max_cpu_us_per_msg=max_cpu_us_per_msg, objective=objective, trace=trace,
                 seed=seed, clients=clients, where=str(results))
    if rec.chosen is not None and output is not None:
        rec.config.save(output)
    if as_json:
        print_json(rec.to_dict())
    else:
        for line in rec.explanation:
            out.print(line, markup=False)
        if not rec.comparison.empty:
            out.print(comparison_table(rec))
        if rec.chosen is not None and output is not None:
            out.print(f"wrote {output}", markup=False)
    if rec.chosen is None:
        raise typer.Exit(1)


def comparison_table(rec: Recommendation) -> Table:
    """The chosen point against each baseline, as a rich table."""
    from wslab.tune.recommend_explain import fmt, label

    table = Table(title="chosen against the baselines")
    for column in ("against", "metric", "baseline", "chosen", "change"):
        table.add_column(column, justify="left" if column in ("against", "metric") else "right")
    for row in rec.comparison.to_dict(orient="records"):
        metric = str(row["metric"])
        pct = row["change_pct"]
        change = f"{pct:+.1f} %" if pct == pct else fmt(metric, row["change"])
        table.add_row(str(row["baseline"]),
                      label(metric), fmt(metric, row["base"]), fmt(metric, row["chosen"]),
                      change)
    return table
