"""``wslab sweep``: many configs over one trace, one tidy row per point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from wslab.cli.common import out


def sweep(
    trace_path: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace file")],
    space_path: Annotated[Path, typer.Option("--space", help="search space YAML")],
    output: Annotated[Path, typer.Option("-o", "--output", help=".parquet or .csv")],
    mode: Annotated[str, typer.Option("--mode", help="sim (live: see wslab bench)")] = "sim",
    search: Annotated[str, typer.Option("--search", help="grid | random")] = "grid",
    samples: Annotated[int, typer.Option("--samples", min=1, help="points for random")] = 50,
    config_path: Annotated[Path | None, typer.Option("--config", "-c",
                                                     help="base TuningConfig")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int | None, typer.Option("--workers", min=1)] = None,
) -> None:
    """Simulate every point of a search space on TRACE; resumable, results as a table."""
    from wslab.config import TuningConfig
    from wslab.errors import WslabError
    from wslab.traces.io import read_meta
    from wslab.tune.space import Space
    from wslab.tune.sweep import load_space_points, run_sweep

    if mode != "sim":
        raise WslabError(f"unknown sweep mode {mode!r}; this version sweeps in simulation "
                         "(--mode sim)")
    read_meta(trace_path)  # a missing or malformed trace fails here, before any work
    space = Space.load(space_path)
    points = load_space_points(space, search, samples, seed)
    base = TuningConfig.load(config_path) if config_path else TuningConfig()
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=out,
                  transient=False) as bar:
        task = bar.add_task("sweep", total=len(points))
        table = run_sweep(trace_path, points, output, base=base, seed=seed, workers=workers,
                          progress=lambda done, total: bar.update(task, completed=done))
    out.print(f"wrote {output}: {len(table)} points x {len(table.columns)} columns")
