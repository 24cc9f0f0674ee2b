"""``wslab analyse``: content analysis per message type and direction."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wslab.cli.common import out, print_json


def analyse(
    trace_path: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace file")],
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    window_bits: Annotated[int, typer.Option("--window-bits", min=9, max=15)] = 12,
    mem_level: Annotated[int, typer.Option("--mem-level", min=1, max=9)] = 5,
    level: Annotated[int, typer.Option("--level", min=-1, max=9)] = 6,
) -> None:
    """Entropy, repetition, JSON structure and measured compression ratios per type."""
    from wslab.analysis import analyse as run_analysis
    from wslab.analysis import analysis_json
    from wslab.traces.io import read_trace

    frame = run_analysis(read_trace(trace_path), window_bits=window_bits,
                         mem_level=mem_level, level=level)
    if json_out:
        doc = analysis_json(frame)
        doc.setdefault("trace", str(trace_path))
        doc.setdefault("settings", {"window_bits": window_bits, "mem_level": mem_level,
                                    "level": level})
        print_json(doc)
        return
    out.print(analysis_table(frame, title=f"{trace_path} (deflate {window_bits}/{mem_level}, "
                                          f"level {level})"))


def analysis_table(frame: object, title: str = "") -> Table:
    """A rich table of the analysis DataFrame, the columns a reader needs first."""
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    columns = [
        ("type", "type"), ("dir", "dir"), ("messages", "msgs"), ("mean_size", "mean B"),
        ("entropy_bits_per_byte", "entropy"), ("repetition", "repeat"),
        ("json_fraction", "json"), ("deflate_ratio", "deflate"),
        ("deflate_ratio_no_context", "deflate/nct"), ("zstd_ratio", "zstd"),
        ("zstd_dict_ratio", "zstd+dict"), ("recommendation", "advice"),
    ]
    table = Table(title=title or None)
    for _, label in columns:
        table.add_column(label, justify="left" if label in ("type", "dir", "advice") else "right")
    for _, r in frame.iterrows():
        cells = []
        for col, _ in columns:
            v = r.get(col)
            if isinstance(v, float):
                cells.append("-" if v != v else (f"{v:.0f}" if col == "mean_size" else f"{v:.3f}"))
            else:
                cells.append(str(v))
        table.add_row(*cells)
    return table
