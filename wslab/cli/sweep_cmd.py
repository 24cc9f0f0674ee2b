"""``wslab sweep``: many configs over one trace, one tidy row per distinct config."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from wslab.cli.common import err, out

SEARCHES = ("grid", "random", "optuna")


def sweep(
    trace_path: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace file")],
    space_path: Annotated[Path, typer.Option("--space", help="search space YAML")],
    output: Annotated[Path, typer.Option("-o", "--output", help=".parquet or .csv")],
    mode: Annotated[str, typer.Option("--mode", help="sim (live runs: --validate)")] = "sim",
    search: Annotated[str, typer.Option("--search", help="grid | random | optuna")] = "grid",
    samples: Annotated[int, typer.Option("--samples", min=1,
                                         help="points for random / trials for optuna")] = 50,
    config_path: Annotated[Path | None, typer.Option("--config", "-c",
                                                     help="base TuningConfig")] = None,
    link: Annotated[str | None, typer.Option("--link", help="link profile for every point")
                    ] = None,
    validate: Annotated[int, typer.Option("--validate", min=0,
                                          help="run the best N points live as well")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int | None, typer.Option("--workers", min=1)] = None,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", help="run the points on Dask: 'local' (a LocalCluster on loopback, "
        "--workers processes) or a scheduler address tcp://HOST:8786")] = None,
    clients: Annotated[str, typer.Option(
        "--clients", help="browser: start from the client window browsers really use (15 "
        "bits); custom: the base config as given")] = "browser",
) -> None:
    """Simulate every point of a search space on TRACE; resumable, results as a table.

    Points that differ only in settings that cannot matter (window bits with compression
    off, an interval without batching, ...) are simulated once and listed once.
    With --clients browser (the default) the base config's client_max_window_bits is 15,
    the window Firefox and Safari compress with, unless the space varies it.

    With --cluster the points run on Dask workers (the trace travels once to each); the
    table is the one a local run gives, and an interrupted sweep resumes the same way.

    With --validate N the N best points (fewest bytes per message, nothing lost) also run
    live through `wslab bench`, and their rows (mode "live") join the table beside their
    simulated twins.
    """
    from wslab.config import TuningConfig
    from wslab.errors import WslabError
    from wslab.link import get_profile
    from wslab.traces.io import read_meta
    from wslab.tune.space import Space
    from wslab.tune.sweep import load_space_points, run_sweep

    if mode != "sim":
        raise WslabError(f"unknown sweep mode {mode!r}; points are simulated (--mode sim) "
                         "and the best validated live with --validate N")
    if search not in SEARCHES:
        raise WslabError(f"unknown search {search!r}; known: {', '.join(SEARCHES)}")
    read_meta(trace_path)  # a missing or malformed trace fails here, before any work
    space = Space.load(space_path)
    from wslab.tune.clients import holdable_config

    given = TuningConfig.load(config_path) if config_path else TuningConfig()
    base = holdable_config(given, clients)
    if base != given:
        err.print(f"[dim]--clients {clients}: compression.client_max_window_bits "
                  f"{given.compression.client_max_window_bits} -> "
                  f"{base.compression.client_max_window_bits} (what browsers compress with; "
                  "--clients custom keeps the config's)[/dim]")
    if link is not None:
        get_profile(link)
        base = base.updated({"link.profile": link})
    if cluster is not None:
        from wslab.harness.dask_cluster import parse_cluster

        parse_cluster(cluster)  # a malformed address fails here, before any work
    if cluster is not None and search == "optuna":
        raise WslabError("--cluster runs grid and random searches; an optuna search runs "
                         "on this machine (leave out --cluster)")
    with contextlib.ExitStack() as stack, Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=err, transient=False) as bar:
        task = bar.add_task(f"sweep ({search})", total=None)
        runner = None
        if cluster is not None:
            from wslab.tune.sweep_dask import dask_runner

            runner = stack.enter_context(dask_runner(cluster, workers))
            err.print(f"[dim]Dask: {runner.workers} worker(s); dashboard "
                      f"{runner.dashboard_link or '(none)'}[/dim]")

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if search == "optuna":
            from wslab.tune.optimise import run_optimise

            table = run_optimise(trace_path, space, output, trials=samples, base=base,
                                 seed=seed, workers=workers, progress=tick)
        else:
            points = load_space_points(space, search, samples, seed)
            table = run_sweep(trace_path, points, output, base=base, seed=seed,
                              workers=workers, progress=tick, runner=runner)
    if validate:
        import pandas as pd

        from wslab.tables import write_tables
        from wslab.tune.validate import best_candidates, validate_live

        picked = best_candidates(table.assign(mode="sim"), "ws_bytes_per_msg", {}, validate,
                                 clients=clients)
        rows = validate_live(trace_path, picked, base.link.profile,
                             say=lambda m: err.print(f"[dim]{m}[/dim]"))
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
        write_tables(table, output)
    out.print(f"wrote {output} (and its .csv/.parquet twin): {len(table)} rows (one per "
              f"distinct config) x {len(table.columns)} columns")
