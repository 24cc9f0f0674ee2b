"""``wslab demo``: the main job, end to end on bundled data, results in ``out/``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wslab.cli.common import err, out

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def bundled_trace(name: str) -> Path:
    """Path of a bundled trace by name (``mixed`` -> ``data/mixed.jsonl.zst``)."""
    from wslab.errors import WslabError

    path = DATA_DIR / f"{name}.jsonl.zst"
    if not path.exists():
        known = sorted(p.name.split(".")[0] for p in DATA_DIR.glob("*.jsonl.zst"))
        raise WslabError(f"no bundled trace {name!r}; known: {', '.join(known) or 'none'}")
    return path


def demo(
    trace: Annotated[Path | None, typer.Option("--trace", help="your own trace file")] = None,
    bundled: Annotated[str, typer.Option("--bundled", help="a bundled trace by name")] = "mixed",
    link: Annotated[str, typer.Option("--link", help="link profile or file")] = "4g",
    out_dir: Annotated[Path, typer.Option("--out", help="where results go")] = Path("out"),
    messages: Annotated[int, typer.Option("--messages", min=100)] = 4000,
    speedup: Annotated[float, typer.Option("--speedup", help="replay N times faster")] = 16.0,
    max_p99_ms: Annotated[float | None, typer.Option("--max-p99-ms")] = 250.0,
    max_kib_per_conn: Annotated[float | None, typer.Option("--max-kib-per-conn")] = 64.0,
    max_cpu_us_per_msg: Annotated[float | None, typer.Option("--max-cpu-us-per-msg")] = 50.0,
    live: Annotated[int, typer.Option("--live", min=0, help="candidates to run live")] = 3,
    clients: Annotated[str, typer.Option(
        "--clients", help="who must negotiate the recommendation: browser or custom")
    ] = "browser",
) -> None:
    """Analyse, sweep in simulation, validate live, recommend, export and report."""
    from wslab.link import get_profile
    from wslab.tune.clients import check_clients
    from wslab.tune.demo import run_demo

    get_profile(link)  # an unknown link or population fails before any work
    check_clients(clients)
    source = trace or bundled_trace(bundled)
    started = time.monotonic()
    result = run_demo(source, out_dir, link=link, messages=messages, speedup=speedup,
                      max_p99_ms=max_p99_ms, max_kib_per_conn=max_kib_per_conn,
                      max_cpu_us_per_msg=max_cpu_us_per_msg, live=live, clients=clients,
                      say=lambda m: err.print(f"[dim]{m}[/dim]"))
    rec = result.recommendation
    out.print()
    for line in rec.explanation:
        out.print(line)
    if result.results is not None and "mode" in result.results:
        _print_live(result.results)
    out.print()
    shown = {k: v for k, v in result.files.items() if not k.startswith("export:")}
    exports = sorted({str(p.parent) for k, p in result.files.items() if k.startswith("export:")})
    for name, path in shown.items():
        out.print(f"  {name:15s} {path}")
    for folder in exports:
        out.print(f"  {'export':15s} {folder}/")
    out.print(f"done in {time.monotonic() - started:.0f} s "
              f"({', '.join(f'{k} {v:.0f} s' for k, v in result.timings.items())})")


def _print_live(results: object) -> None:
    import pandas as pd

    assert isinstance(results, pd.DataFrame)
    live = results[results["mode"] == "live"]
    if live.empty:
        return
    sim = results[results["mode"] == "sim"].drop_duplicates("point").set_index("point")
    table = Table(title="top candidates: simulated vs measured live")
    for col in ("strategy", "compression", "ws B/msg sim", "live", "p99 ms sim", "live",
                "lost"):
        table.add_column(col, justify="left" if col in ("strategy", "compression") else "right")
    for _, row in live.iterrows():
        twin = sim.loc[row["point"]] if row["point"] in sim.index else None
        algorithm = str(row["compression.algorithm"])
        if algorithm == "none":
            deflate = "off"
        elif algorithm == "permessage-deflate":
            deflate = (f"deflate {row['compression.server_max_window_bits']}/"
                       f"{row['compression.mem_level']} {row['compression.policy']}")
        else:
            deflate = f"{algorithm} {row['compression.zstd_level']} {row['compression.policy']}"
        strategy = str(row["batching.strategy"])
        if strategy != "none":
            strategy += f" {row['batching.interval_ms']:g} ms"
        table.add_row(
            strategy, deflate,
            f"{twin['ws_bytes_per_msg']:.1f}" if twin is not None else "-",
            f"{row['ws_bytes_per_msg']:.1f}",
            f"{twin['latency_p99_ms']:.0f}" if twin is not None else "-",
            f"{row['latency_p99_ms']:.0f}",
            str(int(row["lost"]) + int(row["duplicated"]) + int(row["reordered"])))
    out.print(table)
