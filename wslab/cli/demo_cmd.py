"""``wslab demo``: the main job, end to end on bundled data, results in ``out/``.

Today it runs the layers that exist: load a bundled trace, analyse it, and write the
analysis as JSON and CSV. Later layers (simulate, sweep, live validation, recommend, export,
report) join as they land.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from wslab.atomic import atomic_write_text
from wslab.cli.analyse_cmd import analysis_table
from wslab.cli.common import json_safe, out

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
    out_dir: Annotated[Path, typer.Option("--out", help="where results go")] = Path("out"),
) -> None:
    """Analyse a bundled (or your own) trace and write the results to out/."""
    from wslab.analysis import analyse, analysis_json
    from wslab.traces.io import read_trace

    path = trace or bundled_trace("mixed")
    loaded = read_trace(path)
    out.print(
        f"[bold]wslab demo[/bold]: {path} ({len(loaded)} messages, "
        f"{loaded.payload_bytes / 1e6:.2f} MB payload, {loaded.duration:.1f} s)"
    )
    frame = analyse(loaded)
    out.print(analysis_table(frame, title="content analysis (deflate 12/5, level 6)"))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = out_dir / "analysis.json"
    atomic_write_text(json_path, json.dumps(json_safe(analysis_json(frame)), indent=2))
    written.append(json_path)
    csv_path = out_dir / "analysis.csv"
    atomic_write_text(csv_path, frame.to_csv(index=False))
    written.append(csv_path)
    for p in written:
        out.print(f"  wrote {p}")
