"""``wslab simulate``: offline replay of a trace under a config, on a modelled link."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wslab.cli.common import out, print_json


def simulate(
    trace_path: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace file")],
    config_path: Annotated[Path | None, typer.Option("--config", "-c",
                                                     help="TuningConfig YAML/JSON")] = None,
    link: Annotated[str | None, typer.Option("--link", help="link profile or file")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed for jitter and loss")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    messages_out: Annotated[Path | None, typer.Option(
        "--messages-out", help="write the per-message table (.parquet or .csv)")] = None,
) -> None:
    """Replay TRACE through the send pipeline, real codecs and a link model."""
    from wslab.config import TuningConfig
    from wslab.sim import simulate as run
    from wslab.traces.io import read_trace

    config = TuningConfig.load(config_path) if config_path else TuningConfig()
    result = run(read_trace(trace_path), config, link=link, seed=seed)
    if messages_out is not None:
        from wslab.tables import write_table

        write_table(result.messages, messages_out)
    if json_out:
        print_json(result.summary)
        return
    out.print(summary_table(result.summary, title=f"{trace_path} on {result.link.name}"))
    for note in result.notes:
        out.print(f"note: {note}")


def summary_table(summary: dict[str, Any], title: str = "") -> Table:
    """Totals and latency per direction, as a rich table."""
    table = Table(title=title or None)
    table.add_column("")
    for col in ("all", "s2c", "c2s"):
        table.add_column(col, justify="right")
    blocks = [summary, summary["by_dir"]["s2c"], summary["by_dir"]["c2s"]]
    rows = [
        ("messages", "messages", "{:,}"), ("frames", "frames", "{:,}"),
        ("payload bytes", "payload_bytes", "{:,}"), ("wire payload", "compressed_bytes", "{:,}"),
        ("ws bytes", "ws_bytes", "{:,}"), ("tcp bytes", "tcp_bytes", "{:,}"),
        ("tcp segments", "tcp_segments", "{:,}"), ("ratio", "compression_ratio", "{:.3f}"),
        ("cpu us/msg", "cpu_us_per_msg", "{:.2f}"),
    ]
    for label, key, fmt in rows:
        table.add_row(label, *(_fmt(b.get(key), fmt) for b in blocks))
    for pct in ("p50", "p90", "p95", "p99", "max"):
        table.add_row(f"latency {pct} ms", *(_fmt(b["latency_ms"][pct], "{:.1f}")
                                             for b in blocks))
    table.add_row("lost/dup/reord", f"{summary['lost']}/{summary['duplicated']}/"
                  f"{summary['reordered']}", "", "")
    if summary.get("frames_plain"):
        kinds = ", ".join(f"{k} {v:,}" for k, v in
                          sorted(summary["plain_by_key"].items(), key=lambda kv: -kv[1])[:4])
        table.add_row("sent uncompressed", f"{summary['frames_plain']:,} frames", kinds, "")
    return table


def _fmt(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
